//! Cases for the audit log: appends, filtered reads paged by a cursor,
//! daily usage, and retention.

use super::{ALICE, BOB};
use crate::core::meta::{MetaStore, Mutation};
use crate::model::{AuditFilter, AuditRecord, StoredRow};

on_every_engine!(
    audit_filters_pages_and_expires,
    stored_bytes_are_kept_per_day
);

const DAY_MS: i64 = 86_400_000;

fn record(
    time_ms: i64,
    actor_id: Option<&str>,
    action: &str,
    bucket: &str,
    status: u16,
) -> AuditRecord {
    AuditRecord {
        id: 0,
        time_ms,
        request_id: format!("req-{time_ms}"),
        actor_id: actor_id.map(str::to_owned),
        actor: actor_id
            .map_or("anonymous", |id| id.trim_start_matches("u-"))
            .to_owned(),
        access_key: None,
        source: Some("127.0.0.1".into()),
        action: action.into(),
        bucket: Some(bucket.into()),
        key: Some("k".into()),
        target: None,
        status,
        bytes_in: 10,
        bytes_out: 100,
        user_agent: None,
        detail: None,
    }
}

/// Request ids of the records `filter` finds, newest first.
async fn found(store: &MetaStore, filter: &AuditFilter, limit: i64) -> Vec<String> {
    store
        .audit(filter, limit)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.request_id)
        .collect()
}

async fn audit_filters_pages_and_expires(store: MetaStore) {
    let records = vec![
        record(1_000, Some(ALICE), "PutObject", "b", 200),
        record(2_000, Some(ALICE), "GetObject", "b", 200),
        record(3_000, Some(BOB), "GetObject", "b", 403),
        record(DAY_MS + 1_000, None, "GetObject", "c", 200),
        record(DAY_MS + 2_000, Some(ALICE), "PutObject", "c", 200),
        record(DAY_MS + 3_000, Some(ALICE), "GetObject", "b", 200),
    ];
    store
        .apply(Mutation::AppendAudit { records })
        .await
        .unwrap();

    let all = store.audit(&AuditFilter::default(), 100).await.unwrap();
    assert_eq!(all.len(), 6);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let newest = &all[0];
    assert_eq!(newest.actor, "alice");
    assert_eq!((newest.bytes_in, newest.bytes_out), (10, 100));
    assert_eq!(newest.source.as_deref(), Some("127.0.0.1"));

    // Alice's records, two a page, each page after the previous one's last id.
    let mut filter = AuditFilter {
        actor_id: Some(ALICE.into()),
        ..Default::default()
    };
    let mut pages = Vec::new();
    loop {
        let page = store.audit(&filter, 2).await.unwrap();
        let Some(last) = page.last() else { break };
        filter.before_id = Some(last.id);
        pages.push(
            page.iter()
                .map(|r| r.request_id.clone())
                .collect::<Vec<_>>(),
        );
    }
    let req = |ms: i64| format!("req-{ms}");
    assert_eq!(
        pages,
        [
            vec![req(DAY_MS + 3_000), req(DAY_MS + 2_000)],
            vec![req(2_000), req(1_000)],
        ]
    );

    let refused = AuditFilter {
        status: Some(403),
        ..Default::default()
    };
    assert_eq!(found(&store, &refused, 100).await, [req(3_000)]);
    let puts_in_c = AuditFilter {
        action: Some("PutObject".into()),
        bucket: Some("c".into()),
        ..Default::default()
    };
    assert_eq!(found(&store, &puts_in_c, 100).await, [req(DAY_MS + 2_000)]);
    let window = AuditFilter {
        from_ms: Some(2_000),
        to_ms: Some(DAY_MS + 1_000),
        ..Default::default()
    };
    assert_eq!(
        found(&store, &window, 100).await,
        [req(DAY_MS + 1_000), req(3_000), req(2_000)]
    );
    let by_name = AuditFilter {
        actor: Some("anonymous".into()),
        ..Default::default()
    };
    assert_eq!(found(&store, &by_name, 100).await, [req(DAY_MS + 1_000)]);

    // Usage is billed per day, user and bucket; anonymous traffic to no one.
    let usage: Vec<(String, String, i64, i64, i64)> = store
        .usage(Some(ALICE), None)
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.day, u.bucket, u.bytes_in, u.bytes_out, u.requests))
        .collect();
    assert_eq!(
        usage,
        [
            ("1970-01-01".into(), "b".into(), 20, 200, 2),
            ("1970-01-02".into(), "b".into(), 10, 100, 1),
            ("1970-01-02".into(), "c".into(), 10, 100, 1),
        ]
    );
    assert_eq!(
        store.usage(None, None).await.unwrap().len(),
        4,
        "bob's, not anonymous"
    );

    store
        .apply(Mutation::ExpireAudit {
            before_ms: DAY_MS,
            usage_before_ms: DAY_MS,
        })
        .await
        .unwrap();
    assert_eq!(
        found(&store, &AuditFilter::default(), 100).await,
        [
            req(DAY_MS + 3_000),
            req(DAY_MS + 2_000),
            req(DAY_MS + 1_000)
        ]
    );
    let days: Vec<String> = store
        .usage(None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.day)
        .collect();
    assert_eq!(days, ["1970-01-02", "1970-01-02"]);
}

fn stored(day: &str, bucket: &str, bytes: i64) -> StoredRow {
    StoredRow {
        day: day.into(),
        user_id: ALICE.into(),
        bucket: bucket.into(),
        bytes,
        objects: 1,
    }
}

async fn stored_bytes_are_kept_per_day(store: MetaStore) {
    let rows = vec![
        stored("1970-01-01", "b", 10),
        stored("1970-01-02", "b", 20),
        stored("1970-01-02", "c", 5),
    ];
    store.apply(Mutation::RecordStored { rows }).await.unwrap();
    // A later record of the same day replaces the earlier one.
    let rows = vec![stored("1970-01-02", "b", 25)];
    store.apply(Mutation::RecordStored { rows }).await.unwrap();
    let seen = |rows: Vec<StoredRow>| -> Vec<(String, String, i64)> {
        rows.into_iter()
            .map(|r| (r.day, r.bucket, r.bytes))
            .collect()
    };
    let all = store.stored_usage(Some(ALICE), "1970-01-01").await.unwrap();
    assert_eq!(
        seen(all),
        [
            ("1970-01-01".into(), "b".into(), 10),
            ("1970-01-02".into(), "b".into(), 25),
            ("1970-01-02".into(), "c".into(), 5)
        ]
    );
    assert!(
        store
            .stored_usage(Some(BOB), "1970-01-01")
            .await
            .unwrap()
            .is_empty()
    );
    // Usage is kept longer than the audit log: expiring the log alone
    // leaves every day's figure.
    store
        .apply(Mutation::ExpireAudit {
            before_ms: 2 * DAY_MS,
            usage_before_ms: 0,
        })
        .await
        .unwrap();
    let left = store.stored_usage(None, "1970-01-01").await.unwrap();
    assert_eq!(left.len(), 3, "usage has a retention of its own");
    store
        .apply(Mutation::ExpireAudit {
            before_ms: DAY_MS,
            usage_before_ms: DAY_MS,
        })
        .await
        .unwrap();
    let left = store.stored_usage(None, "1970-01-01").await.unwrap();
    assert_eq!(left.len(), 2, "the first day is past retention");
}
