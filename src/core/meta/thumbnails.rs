//! Stored gallery renditions of images (thumbnails for the grid, previews
//! for the large view): one row per image object and rendition, stamped
//! with the object version it was made from; written through the
//! group-commit writer, dropped with their object
//! (`objects::delete_object`).

use sqlx::{AnyConnection, Row};

use super::{MetaResult, MetaStore, MutationOutcome};

/// What an image is shrunk to; each kind has a table of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rendition {
    /// The gallery grid's tile.
    Thumbnail,
    /// The large view's screen-sized picture.
    Preview,
}

impl Rendition {
    const ALL: [Rendition; 2] = [Rendition::Thumbnail, Rendition::Preview];

    fn table(self) -> &'static str {
        match self {
            Rendition::Thumbnail => "thumbnails",
            Rendition::Preview => "previews",
        }
    }
}

/// A thumbnail as stored: what it was made from, and the JPEG (`None`: the
/// image could not be read, so a placeholder stands for it).
#[derive(Debug, Clone)]
pub struct StoredThumbnail {
    pub stamp: String,
    pub jpeg: Option<Vec<u8>>,
}

pub(super) async fn put(
    conn: &mut AnyConnection,
    rendition: Rendition,
    bucket: &str,
    key: &str,
    stamp: &str,
    jpeg: Option<&[u8]>,
    made_ms: i64,
) -> MetaResult<MutationOutcome> {
    // Only while the object is there: one deleted while its thumbnail was
    // being made leaves no row behind.
    sqlx::query(&format!(
        "INSERT INTO {} (bucket, object_key, stamp, jpeg, made_ms) \
         SELECT $1, $2, $3, $4, $5 WHERE EXISTS \
         (SELECT 1 FROM objects WHERE bucket = $1 AND key = $2) \
         ON CONFLICT (bucket, object_key) DO UPDATE SET stamp = excluded.stamp, jpeg = excluded.jpeg, \
         made_ms = excluded.made_ms",
        rendition.table()
    ))
    .bind(bucket)
    .bind(key)
    .bind(stamp)
    .bind(jpeg.map(<[u8]>::to_vec))
    .bind(made_ms)
    .execute(&mut *conn)
    .await?;
    Ok(MutationOutcome::Done)
}

/// Drops the renditions of an object that is being deleted.
pub(super) async fn drop_for(conn: &mut AnyConnection, bucket: &str, key: &str) -> MetaResult<()> {
    for rendition in Rendition::ALL {
        sqlx::query(&format!(
            "DELETE FROM {} WHERE bucket = $1 AND object_key = $2",
            rendition.table()
        ))
        .bind(bucket)
        .bind(key)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

impl MetaStore {
    pub async fn rendition(
        &self,
        rendition: Rendition,
        bucket: &str,
        key: &str,
    ) -> MetaResult<Option<StoredThumbnail>> {
        let row = sqlx::query(&format!(
            "SELECT stamp, jpeg FROM {} WHERE bucket = $1 AND object_key = $2",
            rendition.table()
        ))
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
