//! Cloud object stores by location URL: `s3://bucket[/prefix]`, `azure://container[/prefix]` (also
//! `az://`) and `gs://bucket[/prefix]`, configured from `[storage.s3]`, `[storage.azure]`,
//! `[storage.gcs]` over the providers' standard environment (`AWS_*`, `AZURE_*`, `GOOGLE_*`).

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::signer::Signer;

use crate::config::StorageConfig;

/// A cloud store opened from a location URL, and what can sign URLs of its objects.
pub struct CloudStore {
    pub store: Arc<dyn ObjectStore>,
    pub presigner: Presigner,
}

/// Signs GET URLs of a cloud store's objects, whose keys may sit below a prefix of the bucket.
#[derive(Clone, Debug)]
pub struct Presigner {
    signer: Arc<dyn Signer>,
    prefix: Path,
}

impl Presigner {
    /// A URL that lets anyone GET object `key` (relative to the prefix) for `expires_in`.
    pub async fn get_url(&self, key: &Path, expires_in: Duration) -> object_store::Result<String> {
        let full: Path = self.prefix.parts().chain(key.parts()).collect();
        let url = self.signer.signed_url(reqwest::Method::GET, &full, expires_in).await?;
        Ok(url.to_string())
    }
}

/// Opens the cloud store `url` names; `Ok(None)` when `url` is not a cloud location.
pub fn open(url: &str, config: &StorageConfig) -> anyhow::Result<Option<CloudStore>> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok(None);
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = Path::from(prefix.trim_matches('/'));
    let cloud = |bucket: &str| -> anyhow::Result<()> {
        anyhow::ensure!(
            !bucket.is_empty(),
            "storage location {url:?} names no bucket or container"
        );
        Ok(())
    };
    let (store, signer): (Arc<dyn ObjectStore>, Arc<dyn Signer>) = match scheme {
        "s3" => {
            cloud(bucket)?;
            let s3 = Arc::new(s3_builder(bucket, config).build()?);
            (s3.clone(), s3)
        }
        "azure" | "az" => {
            cloud(bucket)?;
            let azure = Arc::new(azure_builder(bucket, config).build()?);
            (azure.clone(), azure)
        }
        "gs" => {
            cloud(bucket)?;
            let gcs = Arc::new(gcs_builder(bucket, config).build()?);
            (gcs.clone(), gcs)
        }
        _ => return Ok(None),
    };
    let store: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix.clone()))
    };
    Ok(Some(CloudStore {
        store,
        presigner: Presigner { signer, prefix },
    }))
}

/// Sets `value` through `apply` unless it is empty (left to the environment).
fn set<B>(builder: B, value: &str, apply: impl FnOnce(B, String) -> B) -> B {
    if value.is_empty() {
        builder
    } else {
        apply(builder, value.to_owned())
    }
}

fn s3_builder(bucket: &str, config: &StorageConfig) -> AmazonS3Builder {
    let s3 = &config.s3;
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    builder = set(builder, &s3.endpoint, AmazonS3Builder::with_endpoint);
    builder = set(builder, &s3.region, AmazonS3Builder::with_region);
    builder = set(builder, &s3.access_key_id, AmazonS3Builder::with_access_key_id);
    builder = set(builder, &s3.secret_access_key, AmazonS3Builder::with_secret_access_key);
    if s3.allow_http {
        builder = builder.with_allow_http(true);
    }
    builder
}

fn azure_builder(container: &str, config: &StorageConfig) -> MicrosoftAzureBuilder {
    let azure = &config.azure;
    let mut builder = MicrosoftAzureBuilder::from_env().with_container_name(container);
    builder = set(builder, &azure.account, MicrosoftAzureBuilder::with_account);
    builder = set(builder, &azure.access_key, MicrosoftAzureBuilder::with_access_key);
    builder = set(builder, &azure.endpoint, MicrosoftAzureBuilder::with_endpoint);
    if azure.allow_http {
        builder = builder.with_allow_http(true);
    }
    builder
}

fn gcs_builder(bucket: &str, config: &StorageConfig) -> GoogleCloudStorageBuilder {
    let builder = GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket);
    set(
        builder,
        &config.gcs.service_account_path,
        GoogleCloudStorageBuilder::with_service_account_path,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn cloud_locations_open_with_their_prefix_and_others_are_not_cloud() {
        let mut config = Config::for_tests(std::path::Path::new("/nonexistent")).storage;
        config.s3.endpoint = "http://127.0.0.1:1".into();
        config.s3.region = "us-east-1".into();
        config.s3.allow_http = true;
        let opened = open("s3://bucket/some/prefix/", &config).unwrap().unwrap();
        assert_eq!(opened.presigner.prefix.as_ref(), "some/prefix");
        assert!(open("s3://", &config).is_err());
        assert!(open("file:///tmp/x", &config).unwrap().is_none());
        assert!(open("memory://", &config).unwrap().is_none());
    }
}
