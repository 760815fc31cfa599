//! Storage quotas: whether a push fits in its registry's quota (the bytes of its blobs, each counted once),
//! and the warning a push past the warning threshold carries.
//!
//! What a registry stores is the sum of its blobs' sizes in the database. This process keeps that sum for
//! a second and adds to it the blobs it admits meanwhile, so a push neither sums the table nor waits on a
//! counter row that every push would write. A refusal is only ever decided on a fresh sum (with the blob
//! looked up: one the registry has already adds nothing), so it never comes from a stale reading; an
//! admission may be, which lets several nodes overshoot a quota by what they admit within a second.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytesize::ByteSize;

use crate::errors::OciError;
use crate::metadata::{self, Db};
use crate::oci::digest::Digest;
use crate::tenant::Tenant;

/// How long a sum of a registry's blob sizes is used before it is read again.
const READING_LIFETIME: Duration = Duration::from_secs(1);
/// A registry past its warning threshold is logged at most this often.
const WARNING_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// What a push is about to add to its registry.
#[derive(Debug, Clone, Copy)]
pub enum Adding<'a> {
    /// Nothing yet (an upload opened without a body): refused only when the registry is at its quota.
    Nothing,
    /// An upload that will have staged this many bytes, its digest not known yet.
    Staged(u64),
    /// Blob `digest` of this many bytes: nothing when the registry has it already.
    Blob(&'a Digest, u64),
}

#[derive(Clone, Copy)]
struct Reading {
    bytes: u64,
    at: Instant,
}

/// The sums of the registries' blob sizes this process last read, and when it last logged a warning.
pub struct StorageMeter {
    readings: Mutex<HashMap<i64, Reading>>,
    warned: Mutex<HashMap<i64, Instant>>,
    warning_percent: u8,
}

impl StorageMeter {
    /// A meter whose pushes warn from `warning_percent` of a quota on.
    pub fn new(warning_percent: u8) -> Self {
        StorageMeter {
            readings: Mutex::new(HashMap::new()),
            warned: Mutex::new(HashMap::new()),
            warning_percent,
        }
    }

    /// Admits `adding` to `reg` or refuses it with [`OciError::QuotaExceeded`]. An admitted blob counts in
    /// this process's reading of the registry at once. Returns the warning to give the client when the
    /// registry is, with it, at the warning threshold or past it.
    pub async fn admit(&self, db: &Db, reg: &Tenant, adding: Adding<'_>) -> Result<Option<String>, OciError> {
        let Some(quota) = reg.limits.storage_bytes else {
            return Ok(None);
        };
        let id = reg.row.id;
        let mut size = adding.size();
        let mut used = self.used(db, id, false).await?;
        if !fits(used, size, quota, adding) {
            used = self.used(db, id, true).await?;
            let known = match adding {
                Adding::Blob(digest, _) => metadata::blobs::in_registry(db, id, &digest.to_string())
                    .await?
                    .is_some(),
                _ => false,
            };
            if known {
                size = 0;
            } else if !fits(used, size, quota, adding) {
                return Err(self.refusal(reg, used, size, quota));
            }
        }
        if let Adding::Blob(..) = adding {
            self.count(id, size);
        }
        Ok(self.warning(reg, used.saturating_add(size), quota))
    }

    /// The bytes registry `id` stores: this process's reading if it is fresh enough and `fresh` is not
    /// asked, else a new sum.
    async fn used(&self, db: &Db, id: i64, fresh: bool) -> Result<u64, OciError> {
        if !fresh
            && let Some(reading) = self.lock_readings().get(&id)
            && reading.at.elapsed() < READING_LIFETIME
        {
            return Ok(reading.bytes);
        }
        let bytes = u64::try_from(metadata::usage::stored_bytes(db, id).await?).unwrap_or(0);
        let reading = Reading {
            bytes,
            at: Instant::now(),
        };
        self.lock_readings().insert(id, reading);
        Ok(bytes)
    }

    fn count(&self, id: i64, bytes: u64) {
        if let Some(reading) = self.lock_readings().get_mut(&id) {
            reading.bytes = reading.bytes.saturating_add(bytes);
        }
    }

    fn lock_readings(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Reading>> {
        self.readings.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn refusal(&self, reg: &Tenant, used: u64, size: u64, quota: u64) -> OciError {
        let name = &reg.row.name;
        tracing::info!(registry = %name, used, quota, adding = size, "push refused: storage quota exceeded");
        let (used, quota_text) = (ByteSize(used), ByteSize(quota));
        let needs = if size > 0 {
            format!("this push needs {} more", ByteSize(size))
        } else {
            "takes no new upload until space is given back".to_string()
        };
        OciError::QuotaExceeded(format!(
            "storage quota exceeded: registry {name} stores {used} of its {quota_text} quota and {needs}; \
             delete images it no longer needs (their space is given back once collected: berth gc run -n {name}) \
             or ask the operator for a larger quota"
        ))
    }

    /// The warning for a registry that, with this push, stores `used` of its `quota`; logged once a minute
    /// per registry.
    fn warning(&self, reg: &Tenant, used: u64, quota: u64) -> Option<String> {
        let percent = used.saturating_mul(100) / quota.max(1);
        if percent < u64::from(self.warning_percent) {
            return None;
        }
        let name = &reg.row.name;
        let mut warned = self.warned.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if warned
            .get(&reg.row.id)
            .is_none_or(|at| at.elapsed() >= WARNING_LOG_INTERVAL)
        {
            warned.insert(reg.row.id, Instant::now());
            tracing::warn!(registry = %name, used, quota, percent, "registry nears its storage quota");
        }
        Some(format!(
            "registry {name} uses {percent}% of its {} storage quota ({})",
            ByteSize(quota),
            ByteSize(used)
        ))
    }
}

impl Adding<'_> {
    fn size(self) -> u64 {
        match self {
            Adding::Nothing => 0,
            Adding::Staged(n) | Adding::Blob(_, n) => n,
        }
    }
}

/// Whether a registry storing `used` may take `adding`, of `size` bytes, under `quota`.
fn fits(used: u64, size: u64, quota: u64, adding: Adding<'_>) -> bool {
    match adding {
        Adding::Nothing => used < quota,
        _ => used.saturating_add(size) <= quota,
    }
}
