//! The sweeper reclaims blob space. It deletes blobs that committed changes
//! released (overwrites, deletes, aborted uploads) once they have sat in the
//! trash for `trash_delay`, so that reads which started before the change
//! can finish (a GET opens its first 16 blobs at once, and an open file
//! outlives its deletion; later segments of a large multipart object are
//! opened as the stream reaches them); and it deletes orphans, blobs that no row references and that
//! are older than `orphan_grace` (left by writes interrupted before their
//! commit, for example by a crash). It also aborts multipart uploads left
//! idle (no new part) for longer than `upload_expiry`, which releases their
//! parts.

use std::time::{Duration, SystemTime};

use super::{CoreResult, Store};

#[derive(Debug, Clone)]
pub struct SweepSettings {
    pub trash_delay: Duration,
    pub orphan_grace: Duration,
    pub orphan_interval: Duration,
    /// Uploads in parts that receive no part for this long are aborted.
    pub upload_expiry: Duration,
}

impl Default for SweepSettings {
    fn default() -> Self {
        Self {
            trash_delay: Duration::from_secs(900),
            orphan_grace: Duration::from_secs(3600),
            orphan_interval: Duration::from_secs(3600),
            upload_expiry: Duration::from_secs(24 * 3600),
        }
    }
}

/// What one pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub trashed: usize,
    pub orphans: usize,
}

impl Store {
    /// Deletes released blobs older than `delay`.
    pub async fn sweep_trash(&self, delay: Duration) -> CoreResult<usize> {
        let cutoff = super::now_ms() - delay.as_millis() as i64;
        let mut removed = 0;
        loop {
            let batch = self.meta.trashed_blobs(cutoff, 500).await?;
            if batch.is_empty() {
                return Ok(removed);
            }
            for id in &batch {
                // A blob that cannot be removed now stays in the trash for
                // the next pass instead of stopping this one.
                if let Err(e) = self.blobs.delete(id).await {
                    tracing::warn!(blob = %id, error = %e, "could not delete a released blob");
                    return Ok(removed);
                }
            }
            self.meta.forget_trashed(&batch).await?;
            removed += batch.len();
        }
    }

    /// Aborts uploads that have had no new part for `max_age` (counted
    /// from their start when they have none); their parts go to the
    /// trash. Returns how many were aborted.
    pub async fn expire_uploads(&self, max_age: Duration) -> CoreResult<usize> {
        let cutoff = super::now_ms() - max_age.as_millis() as i64;
        let mut aborted = 0;
        loop {
            let stale = self.meta.idle_uploads(cutoff, 100).await?;
            if stale.is_empty() {
                return Ok(aborted);
            }
            for upload in &stale {
                match self
                    .abort_upload(&upload.bucket, &upload.key, &upload.upload_id)
                    .await
                {
                    // Completed or aborted meanwhile (here or on another node).
                    Ok(()) | Err(super::CoreError::NoSuchUpload) => aborted += 1,
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// Deletes blobs that no row references and that were last written
    /// before `grace` ago.
    pub async fn sweep_orphans(&self, grace: Duration) -> CoreResult<usize> {
        let cutoff = SystemTime::now() - grace;
        let candidates = self.blobs.list_before(cutoff).await?;
        let mut removed = 0;
        for chunk in candidates.chunks(500) {
            let known = self.meta.known_blobs(chunk).await?;
            for id in chunk.iter().filter(|id| !known.contains(id)) {
                match self.blobs.delete(id).await {
                    Ok(()) => removed += 1,
                    Err(e) => {
                        tracing::warn!(blob = %id, error = %e, "could not delete an orphan blob")
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Runs the sweeper until `shutdown` resolves.
    pub async fn run_sweeper(
        &self,
        settings: SweepSettings,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut last_orphan_pass: Option<tokio::time::Instant> = None;
        loop {
            match self.expire_uploads(settings.upload_expiry).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(aborted = n, "aborted abandoned uploads"),
                Err(e) => tracing::warn!(error = %e, "expiring abandoned uploads failed"),
            }
            if let Err(e) = self.sweep_trash(settings.trash_delay).await {
                tracing::warn!(error = %e, "sweeping released blobs failed");
            }
            if last_orphan_pass.is_none_or(|t| t.elapsed() >= settings.orphan_interval) {
                match self.sweep_orphans(settings.orphan_grace).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "removed orphan blobs"),
                    Err(e) => tracing::warn!(error = %e, "orphan sweep failed"),
                }
                last_orphan_pass = Some(tokio::time::Instant::now());
            }
            // Released blobs become deletable `trash_delay` after release;
            // an upload can expire at the latest one upload lifetime later.
            let wait = settings
                .trash_delay
                .min(settings.upload_expiry)
                .max(Duration::from_secs(1));
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(wait) => {}
                () = self.sweep.notified() => {
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(settings.trash_delay) => {}
                    }
                }
            }
        }
    }
}
