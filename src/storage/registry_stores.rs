//! Which object store holds each registry's blobs: by default a folder per registry under the data
//! directory (`<data>/registries/<name>/`); a registry may name another location by URL: `file:///path`,
//! `memory://`, or a cloud store (`s3://`, `azure://`, `az://`, `gs://`, see [`super::cloud`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use object_store::memory::InMemory;

use super::{BlobStore, Placement, cloud, key};
use crate::config::StorageConfig;

/// Builds and caches one [`BlobStore`] per registry.
pub struct RegistryStores {
    config: StorageConfig,
    cache: RwLock<HashMap<String, BlobStore>>,
}

impl RegistryStores {
    /// The storage location of a new registry `name` given `requested` (its own, if any): the requested
    /// one, else `<storage.default_location>/<name lowercased>`, else none (the data folder).
    pub fn location_for(&self, name: &str, requested: Option<&str>) -> Option<String> {
        let default = self.config.default_location.trim_end_matches('/');
        requested
            .map(str::to_owned)
            .or_else(|| (!default.is_empty()).then(|| key::registry_location(default, name)))
    }

    pub fn new(config: StorageConfig) -> Self {
        RegistryStores {
            config,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Why a new registry may not take the storage location `url`, if it may not: deleting a registry
    /// deletes everything at its location, so the location must hold nothing yet, share nothing with the
    /// locations of `others` (URLs of existing registries), and a folder must stay out of the data folder
    /// (the database, the other registries' folders).
    pub async fn refuse_location(&self, name: &str, url: &str, others: &[String]) -> Option<String> {
        if url == "memory://" {
            return None; // every registry gets a memory store of its own
        }
        if let Some(other) = others.iter().find(|other| overlaps(url, other)) {
            return Some(format!(
                "storage location {url:?} overlaps {other:?}, another registry's: each registry needs a location \
                 of its own"
            ));
        }
        if let Some(path) = url.strip_prefix("file://")
            && overlaps_path(std::path::Path::new(path), &self.config.data_dir)
        {
            return Some(format!(
                "storage location {url:?} overlaps the data folder {}: choose a folder outside it",
                self.config.data_dir.display()
            ));
        }
        let store = match self.get(name, Some(url)) {
            Ok(store) => store,
            Err(e) => return Some(format!("storage location {url:?}: {e:#}")),
        };
        match store.holds_anything().await {
            Ok(false) => None,
            Ok(true) => Some(format!(
                "storage location {url:?} is not empty: deleting the registry would delete what it holds, so a \
                 new registry's location must be empty"
            )),
            Err(e) => Some(format!("storage location {url:?} cannot be listed: {e}")),
        }
    }

    /// Whether the stores of registries `a` and `b` (each a name and its configured location) share
    /// objects: the same default folder, or one location within the other.
    pub fn share_objects(&self, a: (&str, Option<&str>), b: (&str, Option<&str>)) -> bool {
        let location = |(name, url): (&str, Option<&str>)| {
            url.map(str::to_owned)
                .unwrap_or_else(|| format!("file://{}", self.default_dir(name).display()))
        };
        overlaps(&location(a), &location(b))
    }

    /// The store of registry `name`, whose configured location is `url` (`None`: the default folder).
    pub fn get(&self, name: &str, url: Option<&str>) -> anyhow::Result<BlobStore> {
        let cache_key = format!("{name}\n{}", url.unwrap_or(""));
        if let Some(store) = self
            .cache
            .read()
            .map_err(|_| anyhow::anyhow!("store cache poisoned"))?
            .get(&cache_key)
        {
            return Ok(store.clone());
        }
        let store = self.open(name, url)?;
        self.cache
            .write()
            .map_err(|_| anyhow::anyhow!("store cache poisoned"))?
            .insert(cache_key, store.clone());
        Ok(store)
    }

    /// Removes every blob of registry `name` (its whole folder when it has the default location).
    pub async fn remove(&self, name: &str, url: Option<&str>) -> anyhow::Result<()> {
        let store = self.get(name, url)?;
        if let Ok(mut cache) = self.cache.write() {
            cache.retain(|key, _| !key.starts_with(&format!("{name}\n")));
        }
        match url {
            None => {
                let dir = self.default_dir(name);
                match tokio::fs::remove_dir_all(&dir).await {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(anyhow::anyhow!("removing {}: {e}", dir.display()))
                    }
                    _ => Ok(()),
                }
            }
            Some(_) => Ok(store.delete_everything().await?),
        }
    }

    /// Whether local storage is usable: the data folder's file system has at least `min_free_mib` left
    /// (root's reserved blocks do not count), and a small file can be written and removed there.
    pub async fn probe(&self) -> anyhow::Result<()> {
        let stat = rustix::fs::statvfs(&self.config.data_dir)?;
        let free_mib = stat.f_bavail.saturating_mul(stat.f_frsize) >> 20;
        anyhow::ensure!(
            free_mib >= self.config.min_free_mib,
            "{free_mib} MiB free in the data folder, under the {} MiB floor (storage.min_free_mib)",
            self.config.min_free_mib
        );
        let probe = self.config.data_dir.join(".readyz");
        tokio::fs::write(&probe, b"ok").await?;
        tokio::fs::remove_file(&probe).await?;
        Ok(())
    }

    fn default_dir(&self, name: &str) -> PathBuf {
        key::registry_folder(&self.config.data_dir, name)
    }

    fn open(&self, name: &str, url: Option<&str>) -> anyhow::Result<BlobStore> {
        let dir = match url {
            None => self.default_dir(name),
            Some("memory://") => return Ok(BlobStore::new(Arc::new(InMemory::new()), Placement::Rename)),
            Some(url) => match (url.strip_prefix("file://"), cloud::open(url, &self.config)?) {
                (Some(path), _) => PathBuf::from(path),
                (None, Some(cloud)) => {
                    let store = BlobStore::new(cloud.store, Placement::InPlace);
                    return Ok(if self.config.redirect {
                        store.with_presigner(cloud.presigner)
                    } else {
                        store
                    });
                }
                (None, None) => anyhow::bail!(
                    "unsupported storage location {url:?} (use file:///path, s3://bucket[/prefix], \
                     azure://container[/prefix] or gs://bucket[/prefix])"
                ),
            },
        };
        BlobStore::on_local_files(dir, self.config.sync_writes)
    }
}

/// Whether one location URL is the other or lies below it.
fn overlaps(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_end_matches('/'), b.trim_end_matches('/'));
    let below = |inner: &str, outer: &str| inner.strip_prefix(outer).is_some_and(|rest| rest.starts_with('/'));
    a == b || below(a, b) || below(b, a)
}

/// Whether one folder is the other or lies below it, compared by their components (`..` resolved where
/// the folders exist).
fn overlaps_path(a: &std::path::Path, b: &std::path::Path) -> bool {
    let resolve = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (a, b) = (resolve(a), resolve(b));
    a.starts_with(&b) || b.starts_with(&a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_overlap_when_one_holds_the_other() {
        assert!(overlaps("s3://bucket/a", "s3://bucket/a/"));
        assert!(overlaps("s3://bucket", "s3://bucket/a"));
        assert!(overlaps("file:///srv/r/x", "file:///srv/r"));
        assert!(!overlaps("s3://bucket/a", "s3://bucket/ab"));
        assert!(!overlaps("s3://bucket/a", "azure://bucket/a"));
        assert!(overlaps_path(
            std::path::Path::new("/"),
            std::path::Path::new("/var/lib/berth")
        ));
        assert!(!overlaps_path(
            std::path::Path::new("/srv/a"),
            std::path::Path::new("/srv/ab")
        ));
    }

    #[test]
    fn new_registries_get_their_own_location_or_one_below_the_default() {
        let mut config = crate::config::Config::for_tests(std::path::Path::new("/tmp/unused")).storage;
        let stores = RegistryStores::new(config.clone());
        assert_eq!(stores.location_for("MyReg1", None), None, "the data folder");
        assert_eq!(
            stores.location_for("MyReg1", Some("s3://own/x")).as_deref(),
            Some("s3://own/x")
        );
        config.default_location = "s3://berth-blobs/".into();
        let stores = RegistryStores::new(config);
        assert_eq!(
            stores.location_for("MyReg1", None).as_deref(),
            Some("s3://berth-blobs/myreg1")
        );
        assert_eq!(
            stores.location_for("MyReg1", Some("file:///srv/r")).as_deref(),
            Some("file:///srv/r")
        );
    }
}
