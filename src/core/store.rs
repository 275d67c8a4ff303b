//! The service layer's handle on storage: [`Store`] holds the metadata
//! store, the blob store and the node's shared state (caches, event hub,
//! password pool), opens them from settings and answers the health probes.
//! Every front-end reaches data only through its methods; the stores below
//! it are private to `core`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::CoreResult;
use crate::core::blob::BlobStore;
use crate::core::meta::MetaStore;
use crate::model::StoredTotals;

/// Limits and thresholds of the object store.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Bodies up to this size live inline in the metadata row.
    pub inline_threshold: u64,
    /// Smallest part allowed before the last one when completing an upload.
    pub min_part_size: u64,
    /// Largest single PUT or part.
    pub max_object_size: u64,
    /// Password checks run at once (0: one per core).
    pub password_checks: usize,
    /// How long a password check may wait for its turn.
    pub password_queue: std::time::Duration,
    /// Gallery thumbnails made at once.
    pub thumbnail_workers: usize,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            inline_threshold: 64 * 1024,
            min_part_size: 5 * 1024 * 1024,
            max_object_size: 5 * 1024 * 1024 * 1024,
            password_checks: 0,
            password_queue: std::time::Duration::from_secs(2),
            thumbnail_workers: 1,
        }
    }
}

/// The service layer's handle on storage; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(super) meta: MetaStore,
    pub(super) blobs: Arc<dyn BlobStore>,
    pub(super) settings: StoreSettings,
    /// Wakes the sweeper after a commit released blobs.
    pub(super) sweep: Arc<Notify>,
    /// Recently used credentials, so that signed requests do not each cost
    /// a lookup.
    pub(super) credentials_cache: Arc<super::accounts::CredentialsCache>,
    /// Woken when this node writes a pool event.
    pub(super) pool_events: Arc<Notify>,
    /// New pool events, for every open event stream of this node.
    pub(super) event_hub: Arc<super::events::EventHub>,
    /// Slows down repeated failed logins.
    pub(super) throttle: Arc<super::sessions::LoginThrottle>,
    /// Bounded password hashing and recently checked credentials.
    pub(super) passwords: Arc<super::passwords::Passwords>,
    /// The bounded pool gallery thumbnails are made on.
    pub(super) thumbnailer: Arc<super::thumbnails::Thumbnailer>,
    pub(super) previewer: Arc<super::thumbnails::Thumbnailer>,
}

/// Where a store keeps its data.
#[derive(Debug, Clone)]
pub struct StoreLocation<'a> {
    /// `None`: SQLite in the data directory.
    pub database_url: Option<&'a str>,
    /// `None`: files under the data directory.
    pub blob_url: Option<&'a str>,
    pub data_dir: &'a Path,
    /// How long a request waits for a free database connection.
    pub database_wait: Duration,
    /// How nodes sharing the database hear of each other's changes.
    pub database_notices: crate::core::meta::NoticeMode,
}

impl Store {
    /// Opens (and migrates) the metadata store and opens the blob store.
    pub async fn open(location: StoreLocation<'_>, settings: StoreSettings) -> CoreResult<Self> {
        let meta = MetaStore::open(
            location.database_url,
            location.data_dir,
            location.database_wait,
            location.database_notices,
        )
        .await?;
        let blobs = crate::core::blob::open(location.blob_url, location.data_dir).await?;
        Ok(Self::new(meta, blobs, settings))
    }

    fn new(meta: MetaStore, blobs: Arc<dyn BlobStore>, settings: StoreSettings) -> Self {
        Self {
            meta,
            blobs,
            sweep: Arc::new(Notify::new()),
            credentials_cache: Arc::default(),
            pool_events: Arc::new(Notify::new()),
            event_hub: Arc::new(super::events::EventHub::default()),
            throttle: Arc::default(),
            passwords: Arc::new(super::passwords::Passwords::new(
                settings.password_checks,
                settings.password_queue,
            )),
            thumbnailer: Arc::new(super::thumbnails::Thumbnailer::new(
                settings.thumbnail_workers,
            )),
            previewer: Arc::new(super::thumbnails::Thumbnailer::for_previews()),
            settings,
        }
    }

    /// Closes the database connections once the writer has committed.
    pub async fn close(&self) {
        self.meta.close().await;
    }

    /// Whether the metadata store answers a query.
    pub async fn check_metadata(&self) -> CoreResult<()> {
        Ok(self.meta.ping().await?)
    }

    /// Whether the blob store answers.
    pub async fn check_blobs(&self) -> CoreResult<()> {
        Ok(self.blobs.check().await?)
    }

    /// Objects and bytes over every bucket.
    pub async fn stored_totals(&self) -> CoreResult<StoredTotals> {
        Ok(self.meta.stored_totals().await?)
    }
}
