//! Blob storage: the bytes of objects and parts, named by generated ids and
//! never by object keys. [`BlobStore`] is the one interface the service layer
//! sees. [`local::LocalBlobs`] keeps blobs on local disk and makes each one
//! durable (file and directory fsync) before a write returns;
//! [`remote::RemoteBlobs`] puts them in any `object_store` backend (an
//! S3-compatible cluster) chosen by `CISTERN_BLOB_URL`.

pub mod local;
pub mod remote;

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

pub use crate::model::ByteStream;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {0} not found")]
    NotFound(String),
    #[error("blob i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("blob backend: {0}")]
    Backend(String),
    #[error("unsupported blob url: {0}")]
    BadUrl(String),
}

#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Writes a new blob from `data`. Returns the number of bytes once they
    /// are durable. On error nothing usable is left behind (at worst an
    /// orphan that the sweeper removes).
    async fn write(&self, id: &str, data: ByteStream) -> Result<u64, BlobError>;
    /// Streams `len` bytes from `offset`.
    async fn read(&self, id: &str, offset: u64, len: u64) -> Result<ByteStream, BlobError>;
    /// Removes a blob; removing a missing blob is not an error.
    async fn delete(&self, id: &str) -> Result<(), BlobError>;
    /// Ids of blobs last modified before `cutoff` (candidates for the orphan sweep).
    async fn list_before(&self, cutoff: SystemTime) -> Result<Vec<String>, BlobError>;
    /// Answers when the store is usable, for readiness probes.
    async fn check(&self) -> Result<(), BlobError>;
}

/// Opens the blob store that `blob_url` names, or local disk under
/// `data_dir/blobs` when it is unset.
pub async fn open(
    blob_url: Option<&str>,
    data_dir: &Path,
) -> Result<Arc<dyn BlobStore>, BlobError> {
    match blob_url {
        None => Ok(Arc::new(
            local::LocalBlobs::open(&data_dir.join("blobs")).await?,
        )),
        Some(url) if url.starts_with("file://") => {
            let path = url.trim_start_matches("file://");
            Ok(Arc::new(local::LocalBlobs::open(Path::new(path)).await?))
        }
        Some(url) => Ok(Arc::new(remote::RemoteBlobs::open(url)?)),
    }
}

/// A new blob id: time-ordered (UUIDv7) so listings and logs read in order.
pub fn new_blob_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}
