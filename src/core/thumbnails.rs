//! Gallery thumbnails: made on the server from JPEG, PNG, WebP and GIF
//! (first frame) objects, turned by their EXIF orientation, at most
//! [`EDGE`] pixels on a side as JPEG (and for the large view a preview of
//! at most [`PREVIEW_EDGE`], so the original is read only on demand);
//! stored once per object version beside its metadata and made again only
//! when the object changes. Making
//! them runs on a bounded pool of threads at a lower CPU priority (one at
//! a time by default, so a folder of 2,000 photos never takes more than one
//! core, and requests go first) behind a bounded queue; previews have one
//! such thread of their own.
//! Hostile images are harmless: decoding is held to [`MAX_PIXELS_SIDE`]
//! pixels a side and [`MAX_DECODE_BYTES`] of memory, sources over
//! [`MAX_SOURCE_BYTES`] are not read, and whatever cannot be decoded gets
//! a placeholder (remembered, so it is not tried again) rather than an
//! error, a crash or a stuck worker.

use std::io::Cursor;
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::accounts::Access;
use super::{CoreError, CoreResult, Principal, Store, now_ms};
use crate::core::meta::{Mutation, Rendition};
use crate::core::objects::ReadConditions;

/// The longest side of a thumbnail, in pixels.
pub const EDGE: u32 = 256;
/// The longest side of the large view's preview: a laptop screen's width.
pub const PREVIEW_EDGE: u32 = 1600;
/// Images larger than this on a side are not decoded.
pub const MAX_PIXELS_SIDE: u32 = 12_000;
/// Memory one decode may allocate.
pub const MAX_DECODE_BYTES: u64 = 160 * 1024 * 1024;
/// Objects larger than this are not read for a thumbnail.
pub const MAX_SOURCE_BYTES: i64 = 48 * 1024 * 1024;
/// Thumbnails waiting for a worker before more are refused as busy.
const QUEUE: usize = 256;
/// Previews waiting for their worker: a person opens one photo at a time,
/// so a few suffice, and more are answered with the original.
const PREVIEW_QUEUE: usize = 16;

/// The bounded pool thumbnails are made on.
pub struct Thumbnailer {
    workers: Arc<Semaphore>,
    waiting: Arc<Semaphore>,
    /// Images to shrink, each with where its answer goes; the threads end
    /// when this is dropped.
    jobs: std::sync::mpsc::Sender<ShrinkJob>,
}

type ShrinkJob = (
    bytes::Bytes,
    Rendition,
    tokio::sync::oneshot::Sender<Result<Vec<u8>, String>>,
);

impl Thumbnailer {
    /// The thumbnails' pool: `workers` at once (at least one), each on a
    /// thread of its own, with [`QUEUE`] more waiting.
    pub fn new(workers: usize) -> Self {
        Self::with("thumbnail", workers, QUEUE)
    }

    /// The previews' pool: one worker of its own, so that a photo opened
    /// while its folder's thumbnails are being made is not queued behind
    /// them.
    pub fn for_previews() -> Self {
        Self::with("preview", 1, PREVIEW_QUEUE)
    }

    fn with(name: &str, workers: usize, queue_length: usize) -> Self {
        let workers = workers.max(1);
        let (jobs, queue) = std::sync::mpsc::channel::<ShrinkJob>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for n in 0..workers {
            let queue = queue.clone();
            let started = std::thread::Builder::new()
                .name(format!("{name}-{n}"))
                .spawn(move || {
                    behind_requests();
                    loop {
                        let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok((bytes, rendition, answer)) = job else {
                            return;
                        };
                        // A decoder that panics on a hostile file costs
                        // that file a placeholder, not the worker.
                        let shrunk = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            shrink(&bytes, rendition)
                        }))
                        .unwrap_or_else(|_| Err("the decoder failed".to_owned()));
                        let _ = answer.send(shrunk);
                    }
                });
            if let Err(e) = started {
                tracing::error!(error = %e, "no thread for thumbnails");
            }
        }
        Self {
            workers: Arc::new(Semaphore::new(workers)),
            waiting: Arc::new(Semaphore::new(queue_length)),
            jobs,
        }
    }

    async fn shrink(
        &self,
        bytes: bytes::Bytes,
        rendition: Rendition,
    ) -> CoreResult<Result<Vec<u8>, String>> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.jobs
            .send((bytes, rendition, answer))
            .map_err(|_| CoreError::Unavailable("no thumbnail worker is running".into()))?;
        answered
            .await
            .map_err(|_| CoreError::Unavailable("the thumbnail worker failed".into()))
    }
}

/// Lowers the calling thread's CPU priority (Linux keeps one per thread),
/// so that on a busy machine requests are served before thumbnails are
/// made: a folder of photos filling in must not slow every GET. Raising
/// the nice value needs no privilege.
fn behind_requests() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its arguments; `who` 0 is this thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// A thumbnail to send: the JPEG, or `None` for the placeholder; `etag`
/// names the object version it shows.
pub struct Thumbnail {
    pub jpeg: Option<Vec<u8>>,
    pub etag: String,
}

/// Whether a key names a kind of image thumbnails are made of.
pub fn is_image_name(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    [".jpg", ".jpeg", ".png", ".webp", ".gif"]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

fn stamp_of(object: &crate::model::ObjectRecord) -> String {
    format!("{}-{}", object.etag, object.last_modified_ms)
}

fn etag_of(rendition: Rendition, stamp: &str) -> String {
    use sha2::Digest;
    let kind = match rendition {
        Rendition::Thumbnail => "t",
        Rendition::Preview => "p",
    };
    format!(
        "\"{kind}-{}\"",
        hex::encode(&sha2::Sha256::digest(stamp.as_bytes())[..12])
    )
}

impl Store {
    /// The thumbnail or preview of an image object the caller may read,
    /// made now if there is none for its current version.
    pub async fn thumbnail(
        &self,
        who: &Principal,
        bucket: &str,
        key: &str,
        rendition: Rendition,
    ) -> CoreResult<Thumbnail> {
        self.authorize(Some(who), bucket, Access::Read).await?;
        let object = self.head_object(bucket, key).await?;
        let stamp = stamp_of(&object);
        if let Some(stored) = self.meta.rendition(rendition, bucket, key).await?
            && stored.stamp == stamp
        {
            return Ok(Thumbnail {
                jpeg: stored.jpeg,
                etag: etag_of(rendition, &stamp),
            });
        }
        let queued = self
            .image_pool(rendition)
            .waiting
            .clone()
            .try_acquire_owned()
            .map_err(|_| CoreError::Busy("too many thumbnails waiting to be made"))?;
        // Made in a task of its own, which holds the pool's permits to the
        // end: a request that goes away (the browser left the page) neither
        // frees a worker while its decode still runs nor wastes the work.
        let store = self.clone();
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        tokio::spawn(async move {
            let _queued = queued;
            let _working = store
                .image_pool(rendition)
                .workers
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| CoreError::Busy("thumbnails are not being made"))?;
            store.make_thumbnail(&bucket, &key, rendition).await
        })
        .await
        .map_err(|e| CoreError::Unavailable(format!("the thumbnail task failed: {e}")))?
    }

    fn image_pool(&self, rendition: Rendition) -> &Thumbnailer {
        match rendition {
            Rendition::Thumbnail => &self.thumbnailer,
            Rendition::Preview => &self.previewer,
        }
    }

    /// Reads the current version of an image, shrinks it (a placeholder
    /// when it is too big or no image this can read) and stores the result
    /// for that version.
    async fn make_thumbnail(
        &self,
        bucket: &str,
        key: &str,
        rendition: Rendition,
    ) -> CoreResult<Thumbnail> {
        let read = self
            .get_object(bucket, key, &ReadConditions::default(), None)
            .await?;
        // The size and the stamp are those of the version read, which may
        // be newer than the one the request looked up.
        let stamp = stamp_of(&read.object);
        let jpeg = if read.object.size > MAX_SOURCE_BYTES {
            None
        } else {
            let bytes = crate::core::objects::collect(read.body)
                .await
                .map_err(|e| CoreError::BodyRead(e.to_string()))?;
            self.image_pool(rendition)
                .shrink(bytes, rendition)
                .await?
                .ok()
        };
        self.meta
            .apply(Mutation::PutThumbnail {
                rendition,
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                stamp: stamp.clone(),
                jpeg: jpeg.clone(),
                made_ms: now_ms(),
            })
            .await?;
        Ok(Thumbnail {
            jpeg,
            etag: etag_of(rendition, &stamp),
        })
    }
}

/// Decodes an image within the limits, turns it upright and shrinks it to
/// a JPEG of at most [`EDGE`] (a thumbnail) or [`PREVIEW_EDGE`] (a
/// preview) pixels a side; a smaller picture keeps its size.
pub fn shrink(bytes: &[u8], rendition: Rendition) -> Result<Vec<u8>, String> {
    let (edge, quality) = match rendition {
        Rendition::Thumbnail => (EDGE, 80),
        Rendition::Preview => (PREVIEW_EDGE, 85),
    };
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    // The JPEG decoder fills a cut file's missing rows with grey: a JPEG
    // with no end marker after its last scan is taken for cut. (Data after
    // the end marker, as phones append, is fine.)
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_is_whole(bytes) {
        return Err("the JPEG is cut short (no end marker after its last scan)".to_owned());
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_PIXELS_SIDE);
    limits.max_image_height = Some(MAX_PIXELS_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let orientation = image::ImageDecoder::orientation(&mut decoder)
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    // The reader's limits check the sides; the memory of the whole
    // picture is checked here, before it is allocated.
    let needed = image::ImageDecoder::total_bytes(&decoder);
    if needed > MAX_DECODE_BYTES {
        return Err(format!("decoding would take {needed} bytes"));
    }
    let picture = image::DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    // Shrunk first, so that turning it copies only the small picture.
    let mut small = if picture.width() <= edge && picture.height() <= edge {
        picture
    } else {
        let small = picture.thumbnail(edge, edge);
        drop(picture);
        small
    };
    small.apply_orientation(orientation);
    let small = small.to_rgb8();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, quality)
        .encode_image(&small)
        .map_err(|e| e.to_string())?;
    Ok(jpeg)
}

/// Whether a JPEG has its end marker after the start of its last scan.
fn jpeg_is_whole(bytes: &[u8]) -> bool {
    let last_scan = bytes
        .windows(2)
        .rposition(|w| w == [0xFF, 0xDA])
        .unwrap_or(0);
    bytes[last_scan..].windows(2).any(|w| w == [0xFF, 0xD9])
}

/// The picture shown where a thumbnail cannot be made.
pub const PLACEHOLDER_SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" width="256" height="256"><rect width="64" height="64" fill="#eef2f7"/><path d="M14 46l12-16 9 11 6-7 9 12z" fill="#b7c2d0"/><circle cx="42" cy="22" r="5" fill="#b7c2d0"/></svg>"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_an_image_gets_no_thumbnail() {
        assert!(shrink(b"not an image at all", Rendition::Thumbnail).is_err());
        assert!(is_image_name("IMG_0001.JPG"));
        assert!(!is_image_name("notes.txt"));
    }

    #[test]
    fn a_big_picture_shrinks_to_the_edge_keeping_its_shape() {
        let png = |width, height| {
            let picture =
                image::RgbImage::from_fn(width, height, |x, _| image::Rgb([(x % 256) as u8, 0, 0]));
            let mut png = Vec::new();
            image::DynamicImage::ImageRgb8(picture)
                .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
                .unwrap();
            png
        };
        let sides = |jpeg: Vec<u8>| {
            let small = image::load_from_memory(&jpeg).unwrap();
            (small.width(), small.height())
        };
        let wide = png(3200, 1600);
        assert_eq!(
            sides(shrink(&wide, Rendition::Thumbnail).unwrap()),
            (256, 128)
        );
        assert_eq!(
            sides(shrink(&wide, Rendition::Preview).unwrap()),
            (1600, 800)
        );
        // A picture smaller than a preview is not blown up.
        let modest = png(640, 400);
        assert_eq!(
            sides(shrink(&modest, Rendition::Preview).unwrap()),
            (640, 400)
        );
    }
}
