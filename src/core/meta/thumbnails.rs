//! Stored gallery thumbnails: one row per image object, stamped with the
//! object version it was made from; written through the group-commit
//! writer, dropped with their object (`objects::delete_object`).

use sqlx::{AnyConnection, Row};

use super::{MetaResult, MetaStore, MutationOutcome};

/// A thumbnail as stored: what it was made from, and the JPEG (`None`: the
/// image could not be read, so a placeholder stands for it).
#[derive(Debug, Clone)]
pub struct StoredThumbnail {
    pub stamp: String,
    pub jpeg: Option<Vec<u8>>,
}

pub(super) async fn put(
    conn: &mut AnyConnection,
    bucket: &str,
    key: &str,
    stamp: &str,
    jpeg: Option<&[u8]>,
    made_ms: i64,
) -> MetaResult<MutationOutcome> {
    // Only while the object is there: one deleted while its thumbnail was
    // being made leaves no row behind.
    sqlx::query(
        "INSERT INTO thumbnails (bucket, object_key, stamp, jpeg, made_ms) \
         SELECT $1, $2, $3, $4, $5 WHERE EXISTS \
         (SELECT 1 FROM objects WHERE bucket = $1 AND key = $2) \
         ON CONFLICT (bucket, object_key) DO UPDATE SET stamp = excluded.stamp, jpeg = excluded.jpeg, \
         made_ms = excluded.made_ms",
    )
    .bind(bucket)
    .bind(key)
    .bind(stamp)
    .bind(jpeg.map(<[u8]>::to_vec))
    .bind(made_ms)
    .execute(&mut *conn)
    .await?;
    Ok(MutationOutcome::Done)
}

/// Drops the thumbnail of an object that is being deleted.
pub(super) async fn drop_for(conn: &mut AnyConnection, bucket: &str, key: &str) -> MetaResult<()> {
    sqlx::query("DELETE FROM thumbnails WHERE bucket = $1 AND object_key = $2")
        .bind(bucket)
        .bind(key)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl MetaStore {
    pub async fn thumbnail(&self, bucket: &str, key: &str) -> MetaResult<Option<StoredThumbnail>> {
        let row =
            sqlx::query("SELECT stamp, jpeg FROM thumbnails WHERE bucket = $1 AND object_key = $2")
                .bind(bucket)
                .bind(key)
                .fetch_optional(&mut *self.conn().await?)
                .await?;
        row.map(|row| {
            Ok(StoredThumbnail {
                stamp: row.try_get("stamp")?,
                jpeg: row.try_get("jpeg")?,
            })
        })
        .transpose()
    }
}
