//! The metadata store's own test suite. A case is an async function that
//! takes a fresh, empty store; `on_every_engine!` turns it into one test on
//! SQLite and one on PostgreSQL, so both engines are held to the same
//! behaviour. The PostgreSQL run gets a database of its own on the server
//! that `CISTERN_TEST_DATABASE_URL` names, and does nothing when that is
//! unset. Shared fixtures (users, buckets, objects, blob reference counts)
//! live here too.

use std::future::Future;
use std::time::Duration;

use md5::{Digest, Md5};
use sqlx::Row;

use super::NoticeMode;
use super::{
    BlobSegment, MetaResult, MetaStore, Mutation, MutationOutcome, ObjectAttrs, ObjectBody,
    ObjectRecord, PutCondition,
};
use crate::model::AccountRecord;

/// One test per engine for each case named; a case is a function of this
/// module's child taking a [`MetaStore`].
macro_rules! on_every_engine {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            #[tokio::test]
            async fn sqlite() {
                crate::core::meta::tests::on_sqlite(super::$case).await
            }

            #[tokio::test]
            async fn postgres() {
                crate::core::meta::tests::on_postgres(super::$case).await
            }
        }
    )+};
}

/// Asserts that a mutation was refused with an error matching `pattern`.
macro_rules! assert_refused {
    ($result:expr, $pattern:pat) => {
        match $result {
            Err($pattern) => {}
            other => panic!("expected {}, got {other:?}", stringify!($pattern)),
        }
    };
}

mod accounts;
mod audit;
mod migrations;
mod objects;
mod small_puts;
mod uploads;

/// How long a case waits for a free connection before failing.
const CONNECTION_WAIT: Duration = Duration::from_secs(30);

/// Runs `case` on a store in a new SQLite file.
async fn on_sqlite<Case, Run>(case: Case)
where
    Case: FnOnce(MetaStore) -> Run,
    Run: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = MetaStore::open(None, dir.path(), CONNECTION_WAIT, NoticeMode::Auto)
        .await
        .expect("open a SQLite store");
    case(store.clone()).await;
    store.close().await;
}

/// Runs `case` on a store in a new PostgreSQL database, which is dropped
/// afterwards (a failed case leaves it behind for inspection).
async fn on_postgres<Case, Run>(case: Case)
where
    Case: FnOnce(MetaStore) -> Run,
    Run: Future<Output = ()>,
{
    let Ok(server) = std::env::var("CISTERN_TEST_DATABASE_URL") else {
        eprintln!("CISTERN_TEST_DATABASE_URL is not set: no PostgreSQL run");
        return;
    };
    let url = crate::testing::fresh_postgres_database(&server).await;
    let unused_data_dir = std::env::temp_dir();
    let store = MetaStore::open(
        Some(&url),
        &unused_data_dir,
        CONNECTION_WAIT,
        NoticeMode::Auto,
    )
    .await
    .expect("open a PostgreSQL store");
    case(store.clone()).await;
    store.close().await;
    // Best effort: the CI run drops whatever is left.
    if let (Ok(mut admin), Some((_, name))) = (
        <sqlx::AnyConnection as sqlx::Connection>::connect(&server).await,
        url.rsplit_once('/'),
    ) {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
}

pub(super) const ALICE: &str = "u-alice";
pub(super) const BOB: &str = "u-bob";

/// Creates a user whose name is its id without the `u-`.
async fn add_user(store: &MetaStore, id: &str) {
    let account = AccountRecord {
        id: id.to_owned(),
        name: id.trim_start_matches("u-").to_owned(),
        role: crate::model::Role::User,
        created_ms: 1,
        disabled_ms: None,
        password_hash: None,
    };
    store
        .apply(Mutation::CreateUser { account })
        .await
        .expect("create a user");
}

async fn add_bucket(store: &MetaStore, name: &str, owner_id: &str) {
    store
        .apply(Mutation::CreateBucket {
            name: name.to_owned(),
            owner_id: owner_id.to_owned(),
            now_ms: 1,
        })
        .await
        .expect("create a bucket");
}

/// Alice, and her bucket(s) of these names.
async fn alice_with_buckets(store: &MetaStore, buckets: &[&str]) {
    add_user(store, ALICE).await;
    for bucket in buckets {
        add_bucket(store, bucket, ALICE).await;
    }
}

/// Hex MD5, the ETag of a simple upload.
fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// An object kept in its row.
fn inline(bucket: &str, key: &str, data: &[u8]) -> ObjectRecord {
    ObjectRecord {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size: data.len() as i64,
        etag: md5_hex(data),
        last_modified_ms: 1_000,
        attrs: ObjectAttrs::default(),
        body: ObjectBody::Inline(bytes::Bytes::copy_from_slice(data)),
        parts_count: None,
    }
}

/// An object made of these (blob id, length) segments.
fn in_blobs(bucket: &str, key: &str, segments: &[(&str, i64)]) -> ObjectRecord {
    let segments: Vec<BlobSegment> = segments
        .iter()
        .map(|(blob, len)| BlobSegment {
            blob: (*blob).to_owned(),
            len: *len,
        })
        .collect();
    ObjectRecord {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size: segments.iter().map(|s| s.len).sum(),
        etag: md5_hex(key.as_bytes()),
        last_modified_ms: 1_000,
        attrs: ObjectAttrs::default(),
        body: ObjectBody::Blobs(segments),
        parts_count: None,
    }
}

fn put_if(object: &ObjectRecord, condition: PutCondition) -> Mutation {
    Mutation::PutObject {
        object: object.clone(),
        condition,
    }
}

/// Stores an object with just-written blobs, unconditionally.
async fn put(store: &MetaStore, object: &ObjectRecord) -> MetaResult<MutationOutcome> {
    store.apply(put_if(object, PutCondition::Always)).await
}

async fn delete(store: &MetaStore, bucket: &str, key: &str) -> MetaResult<MutationOutcome> {
    store
        .apply(Mutation::DeleteObject {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
        .await
}

/// A blob's reference count, `None` when no row references it.
async fn refs(store: &MetaStore, blob: &str) -> Option<i64> {
    sqlx::query("SELECT refs FROM blobs WHERE id = $1")
        .bind(blob)
        .fetch_optional(&store.pool)
        .await
        .expect("read a blob row")
        .map(|row| row.try_get("refs").expect("refs column"))
}

/// Whether a blob waits in the trash for the sweeper.
async fn trashed(store: &MetaStore, blob: &str) -> bool {
    store
        .trashed_blobs(i64::MAX, 10_000)
        .await
        .expect("read the trash")
        .iter()
        .any(|id| id == blob)
}

/// The bucket's (object count, bytes stored) counters.
async fn counters(store: &MetaStore, bucket: &str) -> (i64, i64) {
    let bucket = store
        .bucket(bucket)
        .await
        .expect("read a bucket")
        .expect("the bucket exists");
    (bucket.object_count, bucket.bytes_stored)
}

/// (object count, bytes) of a bucket counted from its object rows now.
async fn fresh_count(store: &MetaStore, bucket: &str) -> (i64, i64) {
    let row = sqlx::query(
        "SELECT COUNT(*) AS objects, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes \
         FROM objects WHERE bucket = $1",
    )
    .bind(bucket)
    .fetch_one(&store.pool)
    .await
    .expect("count objects");
    (
        row.try_get("objects").expect("objects column"),
        row.try_get("bytes").expect("bytes column"),
    )
}
