//! The garbage collector. Per registry, one metadata transaction takes the links and blobs that nothing
//! references and nothing touched for the grace period, queueing the blobs' objects
//! (`metadata::collection`); the objects are deleted from the store after that commits, each queue row
//! once its objects are gone. A sweep deletes objects the metadata does not know (left by a crash) once
//! they are older than the grace period, and the stores of deleted registries are emptied. One collector
//! runs at a time across nodes (a lease); what it does is safe even if two ran.

use std::collections::HashSet;
use std::time::Duration;

use futures::TryStreamExt;

use crate::errors::OciError;
use crate::metadata::{self, Db, collection::Collected, gc_runs, registries::RegistryRow, store_removals};
use crate::storage::registry_stores::RegistryStores;
use crate::storage::{BlobLayout, BlobStore, ObjectKey};
use crate::telemetry::Metrics;

pub use metadata::gc_runs::GcRun;
pub use metadata::store_removals::StoreRemoval;

/// The lease one collector holds across nodes.
const LEASE: &str = "collector";
/// How long the lease lasts unless renewed (it is renewed between registries, queue batches and sweep
/// pages): a node that dies holding it keeps other nodes from collecting this long.
const LEASE_SECS: i64 = 15;
/// Queue rows deleted per batch.
const QUEUE_BATCH: i64 = 100;
/// Objects the sweep checks against the metadata per statement.
const SWEEP_PAGE: usize = 300;
/// How long whoever empties a deleted registry's store holds it before another node may take it over.
pub const REMOVAL_CLAIM_SECS: i64 = 3600;

/// What a collection of one registry did (or, dry, would do).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub registry: String,
    pub dry_run: bool,
    /// Repository links of blobs never referenced, removed.
    pub links_removed: i64,
    pub blobs_removed: i64,
    pub bytes_reclaimed: i64,
    /// Objects the sweep deleted; `None` when the store was not swept.
    pub objects_swept: Option<i64>,
}

/// The collector: the database, the stores, and the grace period.
pub struct Collector<'a> {
    pub db: &'a Db,
    pub stores: &'a RegistryStores,
    pub metrics: &'a Metrics,
    pub grace_secs: i64,
}

/// The collector's lease, held by one run; give it back with [`Collector::release`].
pub struct Lease {
    holder: String,
}

impl Collector<'_> {
    /// The lease if no other collector holds it.
    pub async fn try_lease(&self) -> Result<Option<Lease>, OciError> {
        let holder = uuid::Uuid::new_v4().to_string();
        let held = metadata::leases::acquire(self.db, LEASE, &holder, LEASE_SECS).await?;
        Ok(held.then_some(Lease { holder }))
    }

    /// The lease, waiting up to `wait` for another collector to finish; CONFLICT if it does not.
    pub async fn lease_within(&self, wait: Duration) -> Result<Lease, OciError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(lease) = self.try_lease().await? {
                return Ok(lease);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(OciError::Conflict(
                    "another collection is running (on this node or another); try again when it ends".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Keeps the lease; an error if another collector took it over (this one stalled past its expiry).
    pub async fn renew(&self, lease: &Lease) -> Result<(), OciError> {
        if metadata::leases::acquire(self.db, LEASE, &lease.holder, LEASE_SECS).await? {
            Ok(())
        } else {
            Err(OciError::Internal(anyhow::anyhow!(
                "the collector's lease passed to another node; stopping"
            )))
        }
    }

    pub async fn release(&self, lease: Lease) {
        if let Err(e) = metadata::leases::release(self.db, LEASE, &lease.holder).await {
            tracing::warn!(error = %e, "giving the collector's lease back failed; it expires by itself");
        }
    }

    fn cutoff(&self) -> i64 {
        metadata::now() - self.grace_secs
    }

    /// What collecting `reg` now would take.
    pub async fn dry_run(&self, reg: &RegistryRow) -> Result<Report, OciError> {
        let would = metadata::collection::collectable(self.db, reg.id, self.cutoff()).await?;
        Ok(report(reg, true, would, None))
    }

    /// Collects `reg` under `lease`: takes what is collectable, deletes the queued objects, and sweeps
    /// the store when `sweep` says so.
    pub async fn collect(&self, lease: &Lease, reg: &RegistryRow, sweep: bool) -> Result<Report, OciError> {
        let started_at = metadata::now();
        let store = self
            .stores
            .get(&reg.name, reg.storage_url.as_deref())
            .map_err(OciError::Internal)?;
        let collected = self.take_collectable(reg).await?;
        self.drain_queue(lease).await?;
        let swept = match sweep {
            true => Some(self.sweep(lease, reg.id, &store).await?),
            false => None,
        };
        gc_runs::record(
            self.db,
            &gc_runs::Finished {
                registry_id: reg.id,
                started_at,
                links: collected.links,
                blobs: collected.blobs,
                bytes: collected.bytes,
                swept,
            },
        )
        .await?;
        if collected.blobs > 0 || swept.unwrap_or(0) > 0 {
            tracing::info!(registry = %reg.name, links = collected.links, blobs = collected.blobs,
                bytes = collected.bytes, swept = swept.unwrap_or(0), "collected garbage");
        }
        Ok(report(reg, false, collected, swept))
    }

    /// Takes what is collectable in `reg`. On Postgres a push that referenced a blob as the collection
    /// took it makes the collection fail at commit (the foreign keys hold); the next attempt sees the
    /// reference.
    async fn take_collectable(&self, reg: &RegistryRow) -> Result<Collected, OciError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match metadata::collection::collect(self.db, reg.id, self.cutoff()).await {
                Err(e) if attempts < 3 && metadata::is_foreign_key_violation(&e) => continue,
                collected => return Ok(collected?),
            }
        }
    }

    /// Deletes the objects of every queued blob, then its row (an object already gone counts as deleted).
    pub async fn drain_queue(&self, lease: &Lease) -> Result<(), OciError> {
        loop {
            let batch = metadata::gc_queue::next(self.db, QUEUE_BATCH).await?;
            for queued in &batch {
                let store = self
                    .stores
                    .get(&queued.registry, queued.storage_url.as_deref())
                    .map_err(OciError::Internal)?;
                let layout = BlobLayout::from_stored(queued.object_key.clone(), queued.parts.as_deref())
                    .map_err(|e| OciError::Internal(e.into()))?;
                store.delete(&layout).await?;
                metadata::gc_queue::done(self.db, queued.id).await?;
                self.metrics
                    .gc_reclaimed_bytes
                    .with_label_values(&[&queued.registry])
                    .inc_by(queued.size as u64);
            }
            if (batch.len() as i64) < QUEUE_BATCH {
                return Ok(());
            }
            self.renew(lease).await?;
        }
    }

    /// Deletes the objects of registry `registry_id`'s store that are older than the grace period and
    /// that the metadata does not know; how many. Each page of the listing is checked against the
    /// metadata after it was listed, so an object a commit records meanwhile is known by then (by its
    /// upload until the commit, by its key after).
    async fn sweep(&self, lease: &Lease, registry_id: i64, store: &BlobStore) -> Result<i64, OciError> {
        let mut pages = store.objects_written_before(self.cutoff()).try_chunks(SWEEP_PAGE);
        let mut swept = 0;
        while let Some(page) = pages.try_next().await.map_err(|e| OciError::from(e.1))? {
            let names: Vec<&str> = page.iter().flat_map(|(key, _)| key.known_by()).collect();
            let kept: HashSet<String> = metadata::collection::kept(self.db, registry_id, &names)
                .await?
                .into_iter()
                .collect();
            let unknown: Vec<ObjectKey> = page
                .iter()
                .filter(|(key, _)| !key.known_by().iter().any(|name| kept.contains(*name)))
                .map(|(key, _)| key.clone())
                .collect();
            swept += unknown.len() as i64;
            store.delete_objects(unknown).await?;
            self.renew(lease).await?;
        }
        Ok(swept)
    }

    /// One scheduled pass: when no other collector runs, collects every registry (sweeping those not
    /// swept for a grace period), then empties the stores of deleted registries nobody is emptying.
    pub async fn scheduled_pass(&self) -> Result<(), OciError> {
        let Some(lease) = self.try_lease().await? else {
            return Ok(());
        };
        let result = self.pass(&lease).await;
        self.release(lease).await;
        result
    }

    async fn pass(&self, lease: &Lease) -> Result<(), OciError> {
        for reg in metadata::registries::list(self.db).await? {
            let sweep = gc_runs::swept_at(self.db, reg.id).await? < self.cutoff();
            if let Err(e) = self.collect(lease, &reg, sweep).await {
                tracing::warn!(registry = %reg.name, error = format!("{e:#}"), "collecting garbage failed; retried at the next pass");
            }
            self.renew(lease).await?;
        }
        self.drain_queue(lease).await?;
        for removal in store_removals::claim_lapsed(self.db, REMOVAL_CLAIM_SECS).await? {
            empty_store(self.db, self.stores, &removal).await?;
        }
        Ok(())
    }
}

fn report(reg: &RegistryRow, dry_run: bool, c: Collected, swept: Option<i64>) -> Report {
    Report {
        registry: reg.name.clone(),
        dry_run,
        links_removed: c.links,
        blobs_removed: c.blobs,
        bytes_reclaimed: c.bytes,
        objects_swept: swept,
    }
}

/// Empties the store of a deleted registry, then forgets it.
pub async fn empty_store(db: &Db, stores: &RegistryStores, removal: &StoreRemoval) -> Result<(), OciError> {
    stores
        .remove(&removal.name, removal.storage_url.as_deref())
        .await
        .map_err(OciError::Internal)?;
    store_removals::done(db, removal.id).await?;
    tracing::info!(registry = %removal.name, "emptied the store of a deleted registry");
    Ok(())
}

/// What the collections of every registry did.
pub async fn runs(db: &Db) -> Result<Vec<GcRun>, OciError> {
    Ok(gc_runs::all(db).await?)
}

/// `(registry name, queued blobs, their bytes)` of every registry with objects queued for deletion.
pub async fn queued(db: &Db) -> Result<Vec<(String, i64, i64)>, OciError> {
    Ok(metadata::gc_queue::depth_by_registry(db).await?)
}
