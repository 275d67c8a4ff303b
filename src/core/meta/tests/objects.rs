//! Cases for buckets and single objects: creating and deleting buckets,
//! overwrites and the blobs they release, preconditions, deletes, copies
//! that share blobs, and bucket counters and stored totals that stay equal
//! to a fresh count.

use super::{
    ALICE, BOB, add_bucket, add_user, alice_with_buckets, counters, delete, fresh_count, in_blobs,
    inline, put, put_if, refs, trashed,
};
use crate::core::meta::{MetaError, MetaStore, Mutation, MutationOutcome, PutCondition, Rendition};

on_every_engine!(
    create_bucket_twice,
    delete_bucket_refuses_until_empty,
    overwrite_releases_the_old_blobs,
    conditional_puts,
    delete_object_releases_its_blobs,
    copy_shares_blob_references,
    counters_match_a_fresh_count,
    stored_totals_sum_every_bucket,
    thumbnails_go_and_stay_gone_with_their_object,
);

fn create(name: &str, owner_id: &str, now_ms: i64) -> Mutation {
    Mutation::CreateBucket {
        name: name.to_owned(),
        owner_id: owner_id.to_owned(),
        now_ms,
    }
}

async fn create_bucket_twice(store: MetaStore) {
    add_user(&store, ALICE).await;
    add_user(&store, BOB).await;
    store.apply(create("photos", ALICE, 10)).await.unwrap();
    assert_refused!(
        store.apply(create("photos", ALICE, 20)).await,
        MetaError::BucketAlreadyOwnedByYou
    );
    assert_refused!(
        store.apply(create("photos", BOB, 30)).await,
        MetaError::BucketAlreadyExists
    );
    let buckets = store.buckets().await.unwrap();
    assert_eq!(buckets.len(), 1);
    assert_eq!(buckets[0].owner_id, ALICE);
    assert_eq!(buckets[0].created_ms, 10, "the first creation stands");
}

async fn delete_bucket_refuses_until_empty(store: MetaStore) {
    alice_with_buckets(&store, &["b"]).await;
    let drop_bucket = || Mutation::DeleteBucket { name: "b".into() };
    put(&store, &inline("b", "k", b"data")).await.unwrap();
    assert_refused!(store.apply(drop_bucket()).await, MetaError::BucketNotEmpty);
    delete(&store, "b", "k").await.unwrap();
    store
        .apply(Mutation::CreateUpload {
            upload: crate::model::UploadRecord {
                upload_id: "up-1".into(),
                bucket: "b".into(),
                key: "big".into(),
                initiated_ms: 1,
                attrs: Default::default(),
            },
        })
        .await
        .unwrap();
    assert_refused!(store.apply(drop_bucket()).await, MetaError::BucketNotEmpty);
    store
        .apply(Mutation::AbortUpload {
            upload_id: "up-1".into(),
        })
        .await
        .unwrap();
    store.apply(drop_bucket()).await.unwrap();
    assert!(store.bucket("b").await.unwrap().is_none());
    assert_refused!(store.apply(drop_bucket()).await, MetaError::NoSuchBucket);
}

async fn overwrite_releases_the_old_blobs(store: MetaStore) {
    alice_with_buckets(&store, &["b"]).await;
    let mut first = in_blobs("b", "k", &[("blob-1", 10), ("blob-2", 5)]);
    first.attrs.content_type = Some("text/plain".into());
    first
        .attrs
        .user_metadata
        .insert("camera".into(), "north".into());
    put(&store, &first).await.unwrap();
    let stored = store.object("b", "k").await.unwrap().expect("stored");
    assert_eq!(stored.body, first.body);
    assert_eq!(stored.attrs, first.attrs);
    assert_eq!(
        (stored.size, stored.etag.as_str()),
        (15, first.etag.as_str())
    );
    assert_eq!(refs(&store, "blob-1").await, Some(1));
    assert_eq!(refs(&store, "blob-2").await, Some(1));

    let second = in_blobs("b", "k", &[("blob-3", 7)]);
    put(&store, &second).await.unwrap();
    let stored = store.object("b", "k").await.unwrap().expect("stored");
    assert_eq!(stored.body, second.body);
    assert_eq!(stored.size, 7);
    assert_eq!(stored.attrs, second.attrs, "attributes are replaced too");
    for old in ["blob-1", "blob-2"] {
        assert_eq!(refs(&store, old).await, None, "{old} released");
        assert!(trashed(&store, old).await, "{old} queued for the sweeper");
    }
    assert_eq!(refs(&store, "blob-3").await, Some(1));
    assert!(!trashed(&store, "blob-3").await);
    let ids: Vec<String> = ["blob-1", "blob-2", "blob-3", "blob-never"]
        .map(String::from)
        .to_vec();
    let mut known = store.known_blobs(&ids).await.unwrap();
    known.sort();
    assert_eq!(
        known,
        ["blob-1", "blob-2", "blob-3"],
        "trash counts as known"
    );

    let third = inline("b", "k", b"tiny");
    put(&store, &third).await.unwrap();
    let stored = store.object("b", "k").await.unwrap().expect("stored");
    assert_eq!(stored.body, third.body);
    assert_eq!(refs(&store, "blob-3").await, None);
    assert!(trashed(&store, "blob-3").await);
    assert_eq!(counters(&store, "b").await, (1, 4));
}

async fn conditional_puts(store: MetaStore) {
    alice_with_buckets(&store, &["b"]).await;
    let first = inline("b", "k", b"first");
    store
        .apply(put_if(&first, PutCondition::IfAbsent))
        .await
        .unwrap();
    let refused = in_blobs("b", "k", &[("blob-refused", 3)]);
    assert_refused!(
        store.apply(put_if(&refused, PutCondition::IfAbsent)).await,
        MetaError::PreconditionFailed
    );
    assert_refused!(
        store
            .apply(put_if(&refused, PutCondition::IfEtag("not-it".into())))
            .await,
        MetaError::PreconditionFailed
    );
    // A refused write leaves no trace: its blob is an orphan for the sweeper.
    assert_eq!(refs(&store, "blob-refused").await, None);
    assert!(!trashed(&store, "blob-refused").await);
    let stored = store.object("b", "k").await.unwrap().expect("stored");
    assert_eq!(stored.etag, first.etag);

    let second = inline("b", "k", b"second");
    store
        .apply(put_if(&second, PutCondition::IfEtag(first.etag.clone())))
        .await
        .unwrap();
    let stored = store.object("b", "k").await.unwrap().expect("stored");
    assert_eq!(stored.etag, second.etag);
    assert_refused!(
        store
            .apply(put_if(
                &inline("b", "absent", b"x"),
                PutCondition::IfEtag(second.etag.clone())
            ))
            .await,
        MetaError::NoSuchKey
    );
    assert!(store.object("b", "absent").await.unwrap().is_none());
    assert_eq!(counters(&store, "b").await, (1, 6));
}

async fn delete_object_releases_its_blobs(store: MetaStore) {
    alice_with_buckets(&store, &["b"]).await;
    put(
        &store,
        &in_blobs("b", "k", &[("blob-1", 10), ("blob-2", 4)]),
    )
    .await
    .unwrap();
    assert!(matches!(
        delete(&store, "b", "k").await,
        Ok(MutationOutcome::Deleted(true))
    ));
    assert!(store.object("b", "k").await.unwrap().is_none());
    for blob in ["blob-1", "blob-2"] {
        assert_eq!(refs(&store, blob).await, None);
        assert!(trashed(&store, blob).await);
    }
    assert_eq!(counters(&store, "b").await, (0, 0));
    assert!(matches!(
        delete(&store, "b", "k").await,
        Ok(MutationOutcome::Deleted(false))
    ));
    assert_eq!(counters(&store, "b").await, (0, 0));
    assert_refused!(delete(&store, "nope", "k").await, MetaError::NoSuchBucket);
}

async fn copy_shares_blob_references(store: MetaStore) {
    alice_with_buckets(&store, &["b", "c"]).await;
    let source = in_blobs("b", "src", &[("blob-1", 10)]);
    put(&store, &source).await.unwrap();
    let copy = |key: &str| Mutation::CopyObject {
        object: crate::model::ObjectRecord {
            bucket: "c".into(),
            key: key.into(),
            ..source.clone()
        },
        condition: PutCondition::Always,
    };
    store.apply(copy("dst")).await.unwrap();
    assert_eq!(refs(&store, "blob-1").await, Some(2));
    // Copied again onto the same key: the new version's reference takes
    // the old one's place (the cluster race test found this counted twice).
    store.apply(copy("dst")).await.unwrap();
    assert_eq!(refs(&store, "blob-1").await, Some(2), "one per object");
    let copied = store.object("c", "dst").await.unwrap().expect("copied");
    assert_eq!(copied.body, source.body);
    assert_eq!(counters(&store, "c").await, (1, 10));

    delete(&store, "b", "src").await.unwrap();
    assert_eq!(
        refs(&store, "blob-1").await,
        Some(1),
        "the copy still holds it"
    );
    assert!(!trashed(&store, "blob-1").await);
    put(&store, &inline("c", "dst", b"small")).await.unwrap();
    assert_eq!(refs(&store, "blob-1").await, None);
    assert!(trashed(&store, "blob-1").await);

    // The source's blob is gone: the copy must be retried from a fresh read.
    assert_refused!(store.apply(copy("late")).await, MetaError::SourceChanged);
    assert!(store.object("c", "late").await.unwrap().is_none());
    assert_eq!(counters(&store, "c").await, (1, 5));
}

/// A small deterministic sequence of numbers (no dependency on a random
/// source, so a failure replays).
struct Sequence(u64);

impl Sequence {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

async fn counters_match_a_fresh_count(store: MetaStore) {
    let buckets = ["b", "c"];
    alice_with_buckets(&store, &buckets).await;
    let mut sequence = Sequence(7);
    let mut blob_ids = 0;
    for round in 0..12 {
        // Each round is one burst of concurrent writes, so most of them
        // share a batch; keys repeat, so they overwrite and delete.
        let mut mutations = Vec::new();
        for _ in 0..20 {
            let bucket = buckets[sequence.below(2) as usize];
            let key = format!("k{}", sequence.below(8));
            let size = 1 + sequence.below(50) as i64;
            mutations.push(match sequence.below(4) {
                0 => Mutation::DeleteObject {
                    bucket: bucket.into(),
                    key,
                },
                1 => {
                    blob_ids += 1;
                    put_if(
                        &in_blobs(bucket, &key, &[(&format!("blob-{blob_ids}"), size)]),
                        PutCondition::Always,
                    )
                }
                _ => put_if(
                    &inline(bucket, &key, &vec![round as u8; size as usize]),
                    PutCondition::Always,
                ),
            });
        }
        let results =
            futures::future::join_all(mutations.into_iter().map(|m| store.apply(m))).await;
        for result in results {
            result.unwrap();
        }
    }
    let mut objects = 0;
    for bucket in buckets {
        let fresh = fresh_count(&store, bucket).await;
        assert_eq!(counters(&store, bucket).await, fresh, "bucket {bucket}");
        objects += fresh.0;
    }
    assert!(objects > 0, "the sequence leaves some objects");
}

async fn stored_totals_sum_every_bucket(store: MetaStore) {
    let totals = store.stored_totals().await.unwrap();
    assert_eq!((totals.objects, totals.bytes), (0, 0));
    alice_with_buckets(&store, &["b"]).await;
    add_user(&store, BOB).await;
    add_bucket(&store, "c", BOB).await;
    put(&store, &inline("b", "one", b"12345")).await.unwrap();
    put(&store, &in_blobs("b", "two", &[("blob-1", 100)]))
        .await
        .unwrap();
    put(&store, &inline("c", "three", b"123")).await.unwrap();
    put(&store, &inline("c", "three", b"1234567"))
        .await
        .unwrap();
    let totals = store.stored_totals().await.unwrap();
    assert_eq!((totals.objects, totals.bytes), (3, 112));
    delete(&store, "b", "two").await.unwrap();
    let totals = store.stored_totals().await.unwrap();
    assert_eq!((totals.objects, totals.bytes), (2, 12));
}

fn rendition(rendition: Rendition, key: &str) -> Mutation {
    Mutation::PutThumbnail {
        rendition,
        bucket: "b".into(),
        key: key.into(),
        stamp: "v1".into(),
        jpeg: Some(b"jpeg".to_vec()),
        made_ms: 10,
    }
}

async fn thumbnails_go_and_stay_gone_with_their_object(store: MetaStore) {
    alice_with_buckets(&store, &["b"]).await;
    put(&store, &inline("b", "photo.jpg", b"image"))
        .await
        .unwrap();
    for kind in [Rendition::Thumbnail, Rendition::Preview] {
        store.apply(rendition(kind, "photo.jpg")).await.unwrap();
    }
    let stored = |kind| store.rendition(kind, "b", "photo.jpg");
    assert!(stored(Rendition::Thumbnail).await.unwrap().is_some());
    assert!(stored(Rendition::Preview).await.unwrap().is_some());
    delete(&store, "b", "photo.jpg").await.unwrap();
    for kind in [Rendition::Thumbnail, Rendition::Preview] {
        assert!(stored(kind).await.unwrap().is_none(), "{kind:?} dropped");
        // Made from a version read before the delete, stored after it.
        store.apply(rendition(kind, "photo.jpg")).await.unwrap();
        assert!(
            stored(kind).await.unwrap().is_none(),
            "no {kind:?} outlives its object"
        );
    }
}
