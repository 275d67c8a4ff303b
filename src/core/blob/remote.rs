//! Blobs in an `object_store` backend, for clusters: every Cistern node
//! points at the same bucket. `s3://bucket/prefix` reads the usual `AWS_*`
//! variables (endpoint, keys, region; `AWS_ALLOW_HTTP=true` for plain HTTP).
//! A write cut off by a client disconnect cannot abort its backend upload
//! from `Drop`; give the backend bucket a lifecycle rule that aborts
//! incomplete multipart uploads.

use std::sync::Arc;
use std::time::SystemTime;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;
use object_store::{GetOptions, GetRange, ObjectStore, WriteMultipart};

use super::{BlobError, BlobStore, ByteStream};

/// Part size for uploads to the backend.
const PART_SIZE: usize = 8 * 1024 * 1024;

pub struct RemoteBlobs {
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
}

fn backend(e: object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { path, .. } => BlobError::NotFound(path),
        other => BlobError::Backend(other.to_string()),
    }
}

/// Retries of one backend request. A blob store that is away must turn
/// into a prompt 503 for the client (who retries), not a request that
/// hangs for minutes: a few quick retries ride out a dropped connection or
/// a node of the blob cluster restarting.
fn retry_config() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig::default(),
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(10),
    }
}

impl RemoteBlobs {
    pub fn open(url: &str) -> Result<Self, BlobError> {
        let parsed = url::Url::parse(url).map_err(|e| BlobError::BadUrl(format!("{url}: {e}")))?;
        let store: Arc<dyn ObjectStore> = match parsed.scheme() {
            "s3" => Arc::new(
                object_store::aws::AmazonS3Builder::from_env()
                    .with_url(url)
                    .with_retry(retry_config())
                    // Set key by key: the options `from_env` read (such as
                    // AWS_ALLOW_HTTP) stay.
                    .with_config(
                        object_store::aws::AmazonS3ConfigKey::Client(
                            object_store::ClientConfigKey::ConnectTimeout,
                        ),
                        "5s",
                    )
                    .build()
                    .map_err(|e| BlobError::BadUrl(e.to_string()))?,
            ),
            "memory" => Arc::new(object_store::memory::InMemory::new()),
            other => {
                return Err(BlobError::BadUrl(format!(
                    "scheme {other} is not supported"
                )));
            }
        };
        let prefix = StorePath::from(parsed.path().trim_matches('/'));
        Ok(Self { store, prefix })
    }

    fn path(&self, id: &str) -> StorePath {
        self.prefix.child("blobs").child(id)
    }
}

#[async_trait::async_trait]
impl BlobStore for RemoteBlobs {
    async fn write(&self, id: &str, mut data: ByteStream) -> Result<u64, BlobError> {
        let upload = self
            .store
            .put_multipart(&self.path(id))
            .await
            .map_err(backend)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut written = 0u64;
        while let Some(chunk) = data.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e.into());
                }
            };
            if let Err(e) = writer.wait_for_capacity(4).await {
                let _ = writer.abort().await;
                return Err(backend(e));
            }
            written += chunk.len() as u64;
            writer.put(chunk);
        }
        writer.finish().await.map_err(backend)?;
        Ok(written)
    }

    async fn read(&self, id: &str, offset: u64, len: u64) -> Result<ByteStream, BlobError> {
        if len == 0 {
            return Ok(Box::pin(futures::stream::empty()));
        }
        let options = GetOptions {
            range: Some(GetRange::Bounded(offset..offset + len)),
            ..GetOptions::default()
        };
        let result = self
            .store
            .get_opts(&self.path(id), options)
            .await
            .map_err(backend)?;
        Ok(Box::pin(
            result
                .into_stream()
                .map_err(|e| std::io::Error::other(e.to_string())),
        ))
    }

    async fn delete(&self, id: &str) -> Result<(), BlobError> {
        match self.store.delete(&self.path(id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }

    async fn list_before(&self, cutoff: SystemTime) -> Result<Vec<String>, BlobError> {
        let cutoff: chrono::DateTime<chrono::Utc> = cutoff.into();
        let dir = self.prefix.child("blobs");
        let metas: Vec<_> = self
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(backend)?;
        Ok(metas
            .into_iter()
            .filter(|m| m.last_modified < cutoff)
            .filter_map(|m| m.location.filename().map(str::to_owned))
            .collect())
    }

    async fn check(&self) -> Result<(), BlobError> {
        let dir = self.prefix.child("blobs");
        let mut listing = self.store.list(Some(&dir));
        match listing.next().await {
            Some(Err(e)) => Err(backend(e)),
            _ => Ok(()),
        }
    }
}
