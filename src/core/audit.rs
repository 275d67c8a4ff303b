//! The audit pipeline. Front-ends hand every finished request to
//! [`AuditLog::record`], which never waits: records go through a bounded
//! queue to one task that appends them in batches (every 200 ms or 1,000
//! records) through the group-commit writer, together with the day's usage
//! counters. A clean shutdown flushes the queue; a crash loses at most what
//! was queued and not yet committed (about the last 200 ms). Rows older than
//! the retention are deleted hourly. The queries of the log and of the
//! usage counters are here too, with who may see what: users their own
//! records and usage, admins everything.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{CoreError, CoreResult, Principal, Store, now_ms};
use crate::core::meta::audit::day_of;
use crate::core::meta::{AuditRecord, Mutation};
use crate::model::{AuditFilter, BucketRecord, StoredRow, UsageRow};

/// The action family of backup, restore, forget and mirror runs.
pub const BACKUP_ACTIONS: &str = "backup.";

const QUEUE: usize = 100_000;
const BATCH: usize = 1_000;
const INTERVAL: Duration = Duration::from_millis(200);

enum Message {
    Record(Box<AuditRecord>),
    Flush(oneshot::Sender<()>),
}

/// Handle for recording; cheap to clone. A disabled log records nothing.
#[derive(Clone)]
pub struct AuditLog {
    queue: Option<mpsc::Sender<Message>>,
    dropped: Arc<AtomicU64>,
}

impl AuditLog {
    pub fn disabled() -> Self {
        Self {
            queue: None,
            dropped: Arc::default(),
        }
    }

    /// Starts the writer task; `retention` bounds how long rows are kept.
    pub fn start(store: Store, retention: Retention) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, receiver, retention));
        Self {
            queue: Some(queue),
            dropped: Arc::default(),
        }
    }

    pub fn record(&self, record: AuditRecord) {
        let Some(queue) = &self.queue else { return };
        if queue.try_send(Message::Record(Box::new(record))).is_err() {
            // Never slow a request down for its audit record; count the loss.
            let lost = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            metrics::counter!("cistern_audit_dropped_total").increment(1);
            if lost.is_power_of_two() {
                tracing::warn!(lost, "audit queue full; records dropped");
            }
        }
    }

    /// Waits until everything recorded so far is committed.
    pub async fn flush(&self) {
        let Some(queue) = &self.queue else { return };
        let (done, wait) = oneshot::channel();
        if queue.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write(store: &Store, batch: &mut Vec<AuditRecord>) {
    if batch.is_empty() {
        return;
    }
    let records = std::mem::take(batch);
    let count = records.len();
    if let Err(e) = store.meta.apply(Mutation::AppendAudit { records }).await {
        tracing::error!(error = %e, count, "could not write audit records");
    }
}

/// How long the log's rows are kept. Daily usage has its own, longer
/// retention, so a year of usage can be plotted while audit records, which
/// are far more numerous, go sooner.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub audit: Duration,
    pub usage: Duration,
}

async fn run(store: Store, mut receiver: mpsc::Receiver<Message>, retention: Retention) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut tick = tokio::time::interval(INTERVAL);
    let mut expiry = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            message = receiver.recv() => match message {
                Some(Message::Record(record)) => {
                    batch.push(*record);
                    if batch.len() >= BATCH {
                        write(&store, &mut batch).await;
                    }
                }
                Some(Message::Flush(done)) => {
                    write(&store, &mut batch).await;
                    let _ = done.send(());
                }
                None => {
                    write(&store, &mut batch).await;
                    return;
                }
            },
            _ = tick.tick() => write(&store, &mut batch).await,
            _ = expiry.tick() => {
                record_stored(&store).await;
                // A retention of "forever" (a huge number of days) keeps
                // everything rather than wrapping around.
                let before = |kept: Duration| {
                    now_ms().saturating_sub(i64::try_from(kept.as_millis()).unwrap_or(i64::MAX))
                };
                let expire = Mutation::ExpireAudit {
                    before_ms: before(retention.audit),
                    usage_before_ms: before(retention.usage),
                };
                if let Err(e) = store.meta.apply(expire).await {
                    tracing::warn!(error = %e, "could not expire old audit records");
                }
            }
        }
    }
}

/// Stored data and traffic added up.
#[derive(Debug, Clone, Copy, Default)]
pub struct UsageTotals {
    pub objects: i64,
    pub bytes_stored: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub requests: i64,
}

impl UsageTotals {
    fn add_bucket(&mut self, bucket: &BucketRecord) {
        self.objects += bucket.object_count;
        self.bytes_stored += bucket.bytes_stored;
    }

    fn add_day(&mut self, day: &UsageRow) {
        self.bytes_in += day.bytes_in;
        self.bytes_out += day.bytes_out;
        self.requests += day.requests;
    }
}

/// A user's own usage.
pub struct OwnUsage {
    pub totals: UsageTotals,
    /// The buckets the user owns.
    pub buckets: Vec<BucketRecord>,
    /// Traffic per day and bucket.
    pub daily: Vec<UsageRow>,
}

impl Store {
    /// A page of the audit records matching `filter`, newest first. Users
    /// see what they did; admins see everything (or one user's, with
    /// `filter.actor_id`).
    pub async fn audit_page(
        &self,
        who: &Principal,
        filter: &AuditFilter,
        limit: i64,
    ) -> CoreResult<Vec<AuditRecord>> {
        let filter = AuditFilter {
            actor_id: if who.is_admin() {
                filter.actor_id.clone()
            } else {
                Some(who.user_id.clone())
            },
            ..filter.clone()
        };
        Ok(self.meta.audit(&filter, limit).await?)
    }

    /// The caller's own backup, restore, forget and mirror runs, newest
    /// first: the latest record of each run (its end, or its start while
    /// it is running or when it died).
    pub async fn backup_runs(&self, who: &Principal, limit: usize) -> CoreResult<Vec<AuditRecord>> {
        let mut filter = AuditFilter {
            actor_id: Some(who.user_id.clone()),
            action_prefix: Some(BACKUP_ACTIONS.to_owned()),
            ..AuditFilter::default()
        };
        let mut seen = std::collections::HashSet::new();
        let mut runs = Vec::new();
        loop {
            let page = self.meta.audit(&filter, 500).await?;
            let Some(last) = page.last() else {
                return Ok(runs);
            };
            filter.before_id = Some(last.id);
            for record in page {
                let fresh = record.detail.is_some()
                    && record
                        .target
                        .as_ref()
                        .is_some_and(|t| seen.insert(t.clone()));
                if fresh {
                    runs.push(record);
                    if runs.len() == limit {
                        return Ok(runs);
                    }
                }
            }
        }
    }

    /// The caller's buckets and traffic.
    pub async fn own_usage(&self, who: &Principal) -> CoreResult<OwnUsage> {
        let buckets: Vec<BucketRecord> = self
            .meta
            .buckets()
            .await?
            .into_iter()
            .filter(|b| b.owner_id == who.user_id)
            .collect();
        let daily = self.meta.usage(Some(&who.user_id), None).await?;
        let mut totals = UsageTotals::default();
        buckets.iter().for_each(|b| totals.add_bucket(b));
        daily.iter().for_each(|d| totals.add_day(d));
        Ok(OwnUsage {
            totals,
            buckets,
            daily,
        })
    }

    /// Every user's usage by user name (the id of a user who is gone), in
    /// the order of their ids; admins only.
    /// With `since` (`YYYY-MM-DD`), traffic counts from that day on.
    pub async fn usage_by_user(
        &self,
        who: &Principal,
        since: Option<&str>,
    ) -> CoreResult<Vec<UserUsage>> {
        if !who.is_admin() {
            return Err(CoreError::AccessDenied);
        }
        let names: BTreeMap<String, String> = self
            .meta
            .accounts()
            .await?
            .into_iter()
            .map(|a| (a.id, a.name))
            .collect();
        let mut totals: BTreeMap<String, UsageTotals> = names
            .keys()
            .map(|id| (id.clone(), UsageTotals::default()))
            .collect();
        for b in self.meta.buckets().await? {
            totals.entry(b.owner_id.clone()).or_default().add_bucket(&b);
        }
        for d in self.meta.usage(None, since).await? {
            totals.entry(d.user_id.clone()).or_default().add_day(&d);
        }
        Ok(totals
            .into_iter()
            .map(|(id, totals)| match names.get(&id) {
                Some(name) => UserUsage {
                    name: name.clone(),
                    deleted: false,
                    totals,
                },
                // Usage kept from an account since deleted: its id.
                None => UserUsage {
                    name: id,
                    deleted: true,
                    totals,
                },
            })
            .collect())
    }
}

/// One user's usage in the admin's list.
pub struct UserUsage {
    /// The user's name; a deleted user's id.
    pub name: String,
    /// The account is gone; its usage is kept with the usage retention.
    pub deleted: bool,
    pub totals: UsageTotals,
}

/// Whose usage a report covers.
#[derive(Debug, Clone)]
pub enum UsageSubject {
    /// The caller's own.
    Own,
    /// A user by name: the caller's own, or anyone's for an admin.
    User(String),
    /// The whole server (admins).
    Server,
}

/// One day of a usage report.
#[derive(Debug, Clone, Default)]
pub struct UsageDay {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    /// Bytes stored at the day's last record; `None` when none was made
    /// (the server was not running that day).
    pub stored: Option<i64>,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub requests: i64,
}

/// One bucket's share of a report: stored now, traffic over the period.
#[derive(Debug, Clone, Default)]
pub struct BucketUsage {
    pub bucket: String,
    pub objects: i64,
    pub stored: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub requests: i64,
}

/// Usage over the last days, oldest first, today (counted live) last.
#[derive(Debug, Clone, Default)]
pub struct UsageReport {
    /// The user's name; `None` for the whole server.
    pub user: Option<String>,
    pub days: Vec<UsageDay>,
    pub buckets: Vec<BucketUsage>,
    /// Every bucket of the subject, whichever one the report is about.
    pub bucket_names: Vec<String>,
    /// Stored now, and the traffic of the period.
    pub totals: UsageTotals,
    pub quota: Option<i64>,
}

const DAY_MS: i64 = 86_400_000;

/// Records what every bucket holds today, so that "stored over time" has
/// a point per day (run at start and hourly; the day's last run stays).
async fn record_stored(store: &Store) {
    let day = day_of(now_ms());
    let rows = match store.meta.buckets().await {
        Ok(buckets) => buckets
            .into_iter()
            .map(|b| StoredRow {
                day: day.clone(),
                user_id: b.owner_id,
                bucket: b.name,
                bytes: b.bytes_stored,
                objects: b.object_count,
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the buckets to record bytes stored");
            return;
        }
    };
    if let Err(e) = store.meta.apply(Mutation::RecordStored { rows }).await {
        tracing::warn!(error = %e, "could not record the bytes stored today");
    }
}

impl Store {
    /// Usage over the last `days` days (1 to 366) of one user, one of
    /// their buckets, or the whole server: bytes stored per day (recorded
    /// daily, today's counted now), bytes uploaded and downloaded and
    /// requests per day, the same per bucket, and the quota. Users see
    /// their own; admins anyone's and the server's.
    pub async fn usage_report(
        &self,
        who: &Principal,
        subject: UsageSubject,
        bucket: Option<&str>,
        days: u32,
    ) -> CoreResult<UsageReport> {
        let days = i64::from(days.clamp(1, 366));
        let (user_id, user) = match subject {
            UsageSubject::Own => (Some(who.user_id.clone()), Some(who.name.clone())),
            UsageSubject::User(name) if name == who.name => {
                (Some(who.user_id.clone()), Some(who.name.clone()))
            }
            UsageSubject::User(name) if who.is_admin() => {
                let account = self.account(&name).await?;
                (Some(account.id), Some(account.name))
            }
            UsageSubject::Server if who.is_admin() => (None, None),
            UsageSubject::User(_) | UsageSubject::Server => return Err(CoreError::AccessDenied),
        };
        let now = now_ms();
        let day_list: Vec<String> = (0..days)
            .map(|i| day_of(now - (days - 1 - i) * DAY_MS))
            .collect();
        let first = day_list[0].clone();
        let wanted = |b: &str| bucket.is_none_or(|only| only == b);
        let mine = |owner: &str| user_id.as_deref().is_none_or(|id| id == owner);
        let (buckets, others): (Vec<BucketRecord>, Vec<BucketRecord>) = self
            .meta
            .buckets()
            .await?
            .into_iter()
            .filter(|b| mine(&b.owner_id))
            .partition(|b| wanted(&b.name));
        let mut bucket_names: Vec<String> = buckets
            .iter()
            .chain(&others)
            .map(|b| b.name.clone())
            .collect();
        bucket_names.sort();
        let traffic: Vec<UsageRow> = self
            .meta
            .usage(user_id.as_deref(), Some(&first))
            .await?
            .into_iter()
            .filter(|r| r.day >= first && wanted(&r.bucket))
            .collect();
        let stored = self.meta.stored_usage(user_id.as_deref(), &first).await?;
        let mut by_day: BTreeMap<&str, UsageDay> = day_list
            .iter()
            .map(|d| {
                let day = UsageDay {
                    day: d.clone(),
                    ..UsageDay::default()
                };
                (d.as_str(), day)
            })
            .collect();
        for r in &traffic {
            if let Some(day) = by_day.get_mut(r.day.as_str()) {
                day.bytes_in += r.bytes_in;
                day.bytes_out += r.bytes_out;
                day.requests += r.requests;
            }
        }
        for r in stored.iter().filter(|r| wanted(&r.bucket)) {
            if let Some(day) = by_day.get_mut(r.day.as_str()) {
                *day.stored.get_or_insert(0) += r.bytes;
            }
        }
        let mut totals = UsageTotals::default();
        buckets.iter().for_each(|b| totals.add_bucket(b));
        traffic.iter().for_each(|d| totals.add_day(d));
        if let Some(today) = by_day.get_mut(day_list[day_list.len() - 1].as_str()) {
            today.stored = Some(totals.bytes_stored);
        }
        let bucket_rows = buckets
            .iter()
            .map(|b| {
                let mut row = BucketUsage {
                    bucket: b.name.clone(),
                    objects: b.object_count,
                    stored: b.bytes_stored,
                    ..BucketUsage::default()
                };
                for r in traffic.iter().filter(|r| r.bucket == b.name) {
                    row.bytes_in += r.bytes_in;
                    row.bytes_out += r.bytes_out;
                    row.requests += r.requests;
                }
                row
            })
            .collect();
        let quota = match &user_id {
            Some(id) => self.meta.user_quotas().await?.get(id).copied(),
            None => None,
        };
        Ok(UsageReport {
            user,
            days: by_day.into_values().collect(),
            buckets: bucket_rows,
            bucket_names,
            totals,
            quota,
        })
    }
}
