//! Cases for the group-commit path of small PUTs: many inline puts sent at
//! once share a batch, and each is still accepted or refused on its own.

use futures::future::join_all;

use super::{
    alice_with_buckets, counters, fresh_count, in_blobs, inline, put, put_if, refs, trashed,
};
use crate::core::meta::{MetaError, MetaStore, Mutation, MutationOutcome, PutCondition};

on_every_engine!(concurrent_small_puts_all_land);

async fn concurrent_small_puts_all_land(store: MetaStore) {
    alice_with_buckets(&store, &["one", "two"]).await;
    // What the batch replaces: a blob object and an inline one.
    put(&store, &in_blobs("one", "k0", &[("blob-old", 100)]))
        .await
        .unwrap();
    put(&store, &inline("one", "k1", b"old")).await.unwrap();
    store
        .apply(Mutation::SetBucketQuota {
            bucket: "two".into(),
            bytes: Some(10),
        })
        .await
        .unwrap();

    let mut mutations = Vec::new();
    for i in 0..90 {
        let data = format!("one-{i}");
        mutations.push(put_if(
            &inline("one", &format!("k{i}"), data.as_bytes()),
            PutCondition::Always,
        ));
    }
    // Indexes 90.. are the puts that are refused, or land in a way worth
    // checking on their own.
    mutations.push(put_if(
        &inline("one", "k1", b"not-again"),
        PutCondition::IfAbsent,
    ));
    mutations.push(put_if(&inline("missing", "k", b"x"), PutCondition::Always));
    for i in 0..4 {
        // 4 bytes each under a 10-byte quota: two fit.
        mutations.push(put_if(
            &inline("two", &format!("q{i}"), b"four"),
            PutCondition::Always,
        ));
    }
    // The same key twice in one burst: the later one wins.
    mutations.push(put_if(&inline("two", "dup", b"a"), PutCondition::Always));
    mutations.push(put_if(&inline("two", "dup", b"b"), PutCondition::Always));

    let results = join_all(mutations.into_iter().map(|m| store.apply(m))).await;
    for (i, result) in results[..90].iter().enumerate() {
        assert!(
            matches!(result, Ok(MutationOutcome::Done)),
            "put {i}: {result:?}"
        );
    }
    let mut results = results.into_iter().skip(90);
    let mut next = || results.next().expect("a result per mutation");
    assert_refused!(next(), MetaError::PreconditionFailed);
    assert_refused!(next(), MetaError::NoSuchBucket);
    next().unwrap();
    next().unwrap();
    for _ in 0..2 {
        assert_refused!(
            next(),
            MetaError::QuotaExceeded {
                scope: "bucket",
                quota: 10,
                used: 8
            }
        );
    }
    next().unwrap();
    next().unwrap();

    for i in 0..90 {
        let key = format!("k{i}");
        let stored = store.object("one", &key).await.unwrap().expect(&key);
        assert_eq!(
            stored.body,
            inline("one", &key, format!("one-{i}").as_bytes()).body
        );
    }
    assert_eq!(
        refs(&store, "blob-old").await,
        None,
        "overwritten in the batch"
    );
    assert!(trashed(&store, "blob-old").await);
    let dup = store.object("two", "dup").await.unwrap().expect("dup");
    assert_eq!(dup.body, inline("two", "dup", b"b").body);
    assert!(store.object("two", "q2").await.unwrap().is_none());
    assert_eq!(
        counters(&store, "one").await,
        fresh_count(&store, "one").await
    );
    assert_eq!(counters(&store, "one").await.0, 90);
    assert_eq!(counters(&store, "two").await, (3, 9));
    assert_eq!(
        counters(&store, "two").await,
        fresh_count(&store, "two").await
    );
}
