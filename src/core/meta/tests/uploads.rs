//! Cases for multipart uploads (parts, completion, abort) and for quotas,
//! which refuse any growth past the room left.

use md5::{Digest, Md5};

use super::{ALICE, alice_with_buckets, counters, in_blobs, md5_hex, put, refs, trashed};
use crate::core::meta::quota::Room;
use crate::core::meta::{
    BlobSegment, MetaError, MetaStore, Mutation, MutationOutcome, ObjectBody, PartRecord,
    PutCondition, UploadRecord,
};

on_every_engine!(
    multipart_create_part_complete,
    multipart_abort_releases_parts,
    quotas_refuse_past_the_room,
);

fn create_upload(upload_id: &str, bucket: &str, key: &str) -> Mutation {
    let mut upload = UploadRecord {
        upload_id: upload_id.into(),
        bucket: bucket.into(),
        key: key.into(),
        initiated_ms: 1,
        attrs: Default::default(),
    };
    upload.attrs.content_type = Some("video/mp4".into());
    Mutation::CreateUpload { upload }
}

/// A part whose ETag is the MD5 of `content`.
fn part(upload_id: &str, number: i32, blob: &str, size: i64, content: &str) -> Mutation {
    Mutation::PutPart {
        upload_id: upload_id.into(),
        part: PartRecord {
            part_number: number,
            blob_id: blob.into(),
            size,
            etag: md5_hex(content.as_bytes()),
            last_modified_ms: 5,
        },
    }
}

fn complete(upload_id: &str, parts: &[(i32, &str)]) -> Mutation {
    Mutation::CompleteUpload {
        upload_id: upload_id.into(),
        parts: parts
            .iter()
            .map(|(n, etag)| (*n, (*etag).to_owned()))
            .collect(),
        min_part_size: 5,
        now_ms: 9,
        condition: PutCondition::Always,
    }
}

async fn multipart_create_part_complete(store: MetaStore) {
    alice_with_buckets(&store, &["b"]).await;
    assert_refused!(
        store.apply(create_upload("up-x", "missing", "k")).await,
        MetaError::NoSuchBucket
    );
    store
        .apply(create_upload("up-1", "b", "movie"))
        .await
        .unwrap();
    store
        .apply(part("up-1", 1, "blob-1a", 10, "one, first try"))
        .await
        .unwrap();
    // Sending part 1 again replaces it and releases its first blob.
    store
        .apply(part("up-1", 1, "blob-1b", 10, "one"))
        .await
        .unwrap();
    assert_eq!(refs(&store, "blob-1a").await, None);
    assert!(trashed(&store, "blob-1a").await);
    store
        .apply(part("up-1", 2, "blob-2", 3, "two"))
        .await
        .unwrap();
    store
        .apply(part("up-1", 3, "blob-3", 10, "three"))
        .await
        .unwrap();
    let parts = store.list_parts("up-1", 0, 100).await.unwrap();
    let listed: Vec<(i32, &str)> = parts
        .iter()
        .map(|p| (p.part_number, p.blob_id.as_str()))
        .collect();
    assert_eq!(listed, [(1, "blob-1b"), (2, "blob-2"), (3, "blob-3")]);
    let uploads = store.list_uploads("b", "", "", "", 10).await.unwrap();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].upload_id, "up-1");

    let etag = |content: &str| md5_hex(content.as_bytes());
    let (one, two, three) = (etag("one"), etag("two"), etag("three"));
    assert_refused!(
        store.apply(complete("up-1", &[])).await,
        MetaError::InvalidPart(_)
    );
    assert_refused!(
        store.apply(complete("up-1", &[(2, &two), (1, &one)])).await,
        MetaError::InvalidPartOrder
    );
    assert_refused!(
        store.apply(complete("up-1", &[(1, &two)])).await,
        MetaError::InvalidPart(_)
    );
    assert_refused!(
        store.apply(complete("up-1", &[(1, &one), (4, &one)])).await,
        MetaError::InvalidPart(_)
    );
    assert_refused!(
        store
            .apply(complete("up-1", &[(2, &two), (3, &three)]))
            .await,
        MetaError::EntityTooSmall(2)
    );
    assert!(store.upload("up-1").await.unwrap().is_some(), "still open");

    let quoted = format!("\"{one}\"");
    let outcome = store
        .apply(complete("up-1", &[(1, &quoted), (3, &three)]))
        .await
        .unwrap();
    let MutationOutcome::Completed(object) = outcome else {
        panic!("expected Completed, got {outcome:?}");
    };
    let mut digests = Md5::new();
    for content in ["one", "three"] {
        digests.update(Md5::digest(content.as_bytes()));
    }
    assert_eq!(
        object.etag,
        format!("{}-2", hex::encode(digests.finalize()))
    );
    assert_eq!((object.size, object.parts_count), (20, Some(2)));
    let segments = |ids: &[&str]| {
        ObjectBody::Blobs(
            ids.iter()
                .map(|id| BlobSegment {
                    blob: (*id).into(),
                    len: 10,
                })
                .collect(),
        )
    };
    assert_eq!(object.body, segments(&["blob-1b", "blob-3"]));
    let stored = store.object("b", "movie").await.unwrap().expect("stored");
    assert_eq!(stored.body, object.body);
    assert_eq!(
        (stored.etag.as_str(), stored.parts_count),
        (object.etag.as_str(), Some(2))
    );
    assert_eq!(stored.attrs.content_type.as_deref(), Some("video/mp4"));
    // The chosen parts' blobs are adopted as they are; the other is released.
    assert_eq!(refs(&store, "blob-1b").await, Some(1));
    assert_eq!(refs(&store, "blob-3").await, Some(1));
    assert_eq!(refs(&store, "blob-2").await, None);
    assert!(trashed(&store, "blob-2").await);
    assert!(store.upload("up-1").await.unwrap().is_none());
    assert!(store.list_parts("up-1", 0, 100).await.unwrap().is_empty());
    assert_eq!(counters(&store, "b").await, (1, 20));
}

async fn multipart_abort_releases_parts(store: MetaStore) {
    alice_with_buckets(&store, &["b"]).await;
    store.apply(create_upload("up-1", "b", "k")).await.unwrap();
    store
        .apply(part("up-1", 1, "blob-1", 10, "one"))
        .await
        .unwrap();
    store
        .apply(part("up-1", 2, "blob-2", 10, "two"))
        .await
        .unwrap();
    let abort = || Mutation::AbortUpload {
        upload_id: "up-1".into(),
    };
    store.apply(abort()).await.unwrap();
    for blob in ["blob-1", "blob-2"] {
        assert_eq!(refs(&store, blob).await, None);
        assert!(trashed(&store, blob).await);
    }
    assert!(store.upload("up-1").await.unwrap().is_none());
    assert_refused!(store.apply(abort()).await, MetaError::NoSuchUpload);
    assert_refused!(
        store.apply(part("up-1", 3, "blob-3", 10, "three")).await,
        MetaError::NoSuchUpload
    );
    assert_eq!(refs(&store, "blob-3").await, None);
    assert!(store.object("b", "k").await.unwrap().is_none());
    assert_eq!(counters(&store, "b").await, (0, 0));
}

async fn quotas_refuse_past_the_room(store: MetaStore) {
    alice_with_buckets(&store, &["q", "r"]).await;
    let bucket_quota = |bytes| Mutation::SetBucketQuota {
        bucket: "q".into(),
        bytes,
    };
    store.apply(bucket_quota(Some(100))).await.unwrap();
    put(&store, &in_blobs("q", "a", &[("blob-a", 60)]))
        .await
        .unwrap();
    assert_refused!(
        put(&store, &in_blobs("q", "b", &[("blob-b", 50)])).await,
        MetaError::QuotaExceeded {
            scope: "bucket",
            quota: 100,
            used: 60
        }
    );
    assert!(store.object("q", "b").await.unwrap().is_none());
    assert_eq!(refs(&store, "blob-b").await, None);
    let room = |scope, quota, used| Some(Room { scope, quota, used });
    assert_eq!(
        store.quota_room("q").await.unwrap(),
        room("bucket", 100, 60)
    );
    assert_eq!(store.quota_room("r").await.unwrap(), None);

    // Growing an object counts only what it adds.
    put(&store, &in_blobs("q", "a", &[("blob-a2", 90)]))
        .await
        .unwrap();
    store
        .apply(Mutation::SetUserQuota {
            user_id: ALICE.into(),
            bytes: Some(120),
        })
        .await
        .unwrap();
    // The tightest quota sets the room: 10 left in the bucket, 30 for the user.
    assert_eq!(
        store.quota_room("q").await.unwrap(),
        room("bucket", 100, 90)
    );
    assert_eq!(store.quota_room("r").await.unwrap(), room("user", 120, 90));
    put(&store, &in_blobs("r", "c", &[("blob-c", 25)]))
        .await
        .unwrap();
    assert_refused!(
        put(&store, &in_blobs("r", "d", &[("blob-d", 6)])).await,
        MetaError::QuotaExceeded {
            scope: "user",
            quota: 120,
            used: 115
        }
    );
    // Shrinking is always allowed, even with no room left.
    put(&store, &in_blobs("q", "a", &[("blob-a3", 80)]))
        .await
        .unwrap();
    store.apply(bucket_quota(None)).await.unwrap();
    assert_eq!(store.quota_room("q").await.unwrap(), room("user", 120, 105));
    assert_eq!(counters(&store, "q").await, (1, 80));
    assert_eq!(counters(&store, "r").await, (1, 25));

    assert_refused!(
        store
            .apply(Mutation::SetUserQuota {
                user_id: "u-nobody".into(),
                bytes: Some(1),
            })
            .await,
        MetaError::NoSuchUser
    );
    assert_refused!(
        store
            .apply(Mutation::SetBucketQuota {
                bucket: "missing".into(),
                bytes: Some(1),
            })
            .await,
        MetaError::NoSuchBucket
    );
}
