//! The gallery: thumbnails made on the server from JPEG (with each EXIF
//! orientation), PNG, WebP and GIF, turned upright, small, cached by ETag
//! and made again when the object changes; placeholders for a
//! decompression bomb and a truncated JPEG without the server's memory
//! growing; the grid and the large view with its neighbours.

use std::io::{Cursor, Write};

use image::metadata::Orientation;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

use crate::helpers::*;

/// A picture whose top-left quarter is red and the rest blue, 512 x 256.
fn upright() -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(512, 256, |x, y| {
        if x < 128 && y < 128 {
            Rgb([230, 20, 20])
        } else {
            Rgb([20, 20, 230])
        }
    }))
}

fn encoded(picture: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    picture
        .write_to(&mut Cursor::new(&mut out), format)
        .unwrap();
    out
}

/// A JPEG stored the way a camera held sideways stores it: the pixels
/// turned so that applying EXIF `orientation` shows the upright picture.
fn camera_jpeg(orientation: u8) -> Vec<u8> {
    // 6 and 8 undo each other; every other orientation undoes itself.
    let undo = match orientation {
        6 => 8,
        8 => 6,
        n => n,
    };
    let mut stored = upright();
    stored.apply_orientation(Orientation::from_exif(undo).unwrap());
    let jpeg = encoded(&stored, ImageFormat::Jpeg);
    // An APP1 Exif segment right after SOI: a little-endian TIFF header
    // and one IFD entry, Orientation (0x0112), SHORT, 1 value.
    let mut exif = b"Exif\0\0II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0".to_vec();
    exif.extend([orientation, 0, 0, 0, 0, 0, 0, 0]);
    let mut with_exif = jpeg[..2].to_vec();
    with_exif.extend([0xFF, 0xE1]);
    with_exif.extend(((exif.len() + 2) as u16).to_be_bytes());
    with_exif.extend(exif);
    with_exif.extend(&jpeg[2..]);
    with_exif
}

/// A PNG of `side` x `side` pixels of `depth` bits and colour `colour`,
/// every row zero (`rows` of them written; the rest missing).
fn png_of_zeros(side: u32, depth: u8, colour: u8, rows: u32, row_bytes: usize) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend(kind);
        out.extend(data);
        out.extend(crc.finalize().to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend(side.to_be_bytes());
    header.extend(side.to_be_bytes());
    header.extend([depth, colour, 0, 0, 0]); // deflate, no filter, no interlace
    chunk(&mut png, b"IHDR", &header);
    let mut deflated = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let row = vec![0u8; 1 + row_bytes];
    for _ in 0..rows {
        deflated.write_all(&row).unwrap();
    }
    chunk(&mut png, b"IDAT", &deflated.finish().unwrap());
    chunk(&mut png, b"IEND", &[]);
    png
}

/// A PNG that claims 30,000 x 30,000 pixels of one bit and holds them:
/// about 100 KB that would decode to 900 MB as 8-bit pixels.
fn decompression_bomb() -> Vec<u8> {
    png_of_zeros(30_000, 1, 0, 30_000, 30_000 / 8)
}

/// The most memory a process has held (VmHWM), in MiB.
fn peak_resident_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024
}

/// The real binary serving on loopback, so that its memory is its own
/// (the in-process test servers share theirs with every other test).
struct ServerProcess {
    child: tokio::process::Child,
    s3: String,
    web: String,
    _data: tempfile::TempDir,
}

impl ServerProcess {
    async fn start() -> Self {
        let port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .unwrap()
                .port()
        };
        let (s3_port, web_port) = (port(), port());
        let data = tempfile::tempdir().unwrap();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cistern"))
            .args(["serve", "--log-level", "warn"])
            .args(["--s3-listen", &format!("127.0.0.1:{s3_port}")])
            .args(["--web-listen", &format!("127.0.0.1:{web_port}")])
            .args(["--root-user", ROOT_USER, "--root-password", ROOT_PASSWORD])
            .arg("--data-dir")
            .arg(data.path())
            .env_remove("CISTERN_DATABASE_URL")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let server = Self {
            child,
            s3: format!("http://127.0.0.1:{s3_port}"),
            web: format!("http://127.0.0.1:{web_port}"),
            _data: data,
        };
        let ready = format!("{}/health/ready", server.web);
        poll_within(
            std::time::Duration::from_secs(30),
            "the server is ready",
            || async {
                reqwest::get(&ready)
                    .await
                    .ok()
                    .filter(|r| r.status() == 200)
            },
        )
        .await;
        server
    }
}

/// The server's answer for a console path, signed in by `session`.
async fn fetch(app: &TestApp, session: &str, path: &str) -> reqwest::Response {
    fetch_from(&app.web_url(""), session, path).await
}

async fn fetch_from(web: &str, session: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{web}{path}"))
        .header("cookie", format!("cistern_session={session}"))
        .send()
        .await
        .unwrap()
}

/// A server with the bucket `photos`, an S3 client and a console session
/// for the root user.
async fn app_with_photos() -> (TestApp, aws_sdk_s3::Client, String) {
    let app = spawn_app().await;
    let s3 = app.client();
    s3.create_bucket().bucket("photos").send().await.unwrap();
    let session = app.api().root_session().await;
    (app, s3, session)
}

fn red(pixel: &Rgb<u8>) -> bool {
    pixel[0] > 150 && pixel[2] < 100
}

#[tokio::test]
async fn thumbnails_are_upright_small_cached_and_made_again_when_the_image_changes() {
    let (app, s3, session) = app_with_photos().await;
    let mut pictures: Vec<(String, Vec<u8>)> = (1..=8)
        .map(|n| (format!("trip/exif-{n}.jpg"), camera_jpeg(n)))
        .collect();
    let picture = upright();
    pictures.push(("trip/plain.png".into(), encoded(&picture, ImageFormat::Png)));
    pictures.push((
        "trip/plain.webp".into(),
        encoded(&picture, ImageFormat::WebP),
    ));
    pictures.push(("trip/plain.gif".into(), encoded(&picture, ImageFormat::Gif)));
    for (key, bytes) in &pictures {
        put_bytes(&s3, "photos", key, bytes.clone()).await;
    }
    for (key, _) in &pictures {
        let answer = fetch(
            &app,
            &session,
            &format!("/ui/buckets/photos/thumb?key={key}"),
        )
        .await;
        assert_eq!(answer.status(), 200, "{key}");
        assert_eq!(answer.headers()["content-type"], "image/jpeg", "{key}");
        let bytes = answer.bytes().await.unwrap();
        assert!(bytes.len() < 40 * 1024, "{key}: {} bytes", bytes.len());
        let thumb = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert_eq!(
            thumb.dimensions(),
            (256, 128),
            "{key} is upright and landscape"
        );
        assert!(
            red(thumb.get_pixel(20, 20)),
            "{key}: the red corner is top left"
        );
        assert!(
            !red(thumb.get_pixel(236, 20)),
            "{key}: top right is not red"
        );
        assert!(
            !red(thumb.get_pixel(20, 108)),
            "{key}: bottom left is not red"
        );
    }

    // Cached by ETag; an overwritten image gets a new thumbnail.
    let path = "/ui/buckets/photos/thumb?key=trip/plain.png";
    let first = fetch(&app, &session, path).await;
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        first.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let again = reqwest::Client::new()
        .get(app.web_url(path))
        .header("cookie", format!("cistern_session={session}"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let mut flipped = upright();
    flipped.apply_orientation(Orientation::FlipHorizontal);
    put_bytes(
        &s3,
        "photos",
        "trip/plain.png",
        encoded(&flipped, ImageFormat::Png),
    )
    .await;
    let changed = fetch(&app, &session, path).await;
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);
    let thumb = image::load_from_memory(&changed.bytes().await.unwrap())
        .unwrap()
        .to_rgb8();
    assert!(
        red(thumb.get_pixel(236, 20)),
        "the new picture's red corner is top right"
    );
    s3.delete_object()
        .bucket("photos")
        .key("trip/plain.png")
        .send()
        .await
        .unwrap();
    assert_eq!(fetch(&app, &session, path).await.status(), 404);

    // The grid, newest first, and the large view with its neighbours.
    let grid = fetch(&app, &session, "/ui/buckets/photos/gallery?prefix=trip/")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(grid.matches("loading=\"lazy\"").count(), 10, "{grid}");
    let gif = grid.find("plain.gif\"").unwrap();
    let first_jpeg = grid.find("exif-1.jpg\"").unwrap();
    assert!(gif < first_jpeg, "the newest comes first");
    let by_name = fetch(
        &app,
        &session,
        "/ui/buckets/photos/gallery?prefix=trip/&sort=name",
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(by_name.find("exif-1.jpg\"").unwrap() < by_name.find("plain.gif\"").unwrap());
    let view = fetch(
        &app,
        &session,
        "/ui/buckets/photos/photo?key=trip/exif-2.jpg&sort=name",
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(view.contains("2 of 10"), "{view}");
    assert!(
        view.contains("rel=\"prev\"") && view.contains("exif-1.jpg&#38;sort=name"),
        "{view}"
    );
    assert!(
        view.contains("rel=\"next\"") && view.contains("exif-3.jpg&#38;sort=name"),
        "{view}"
    );
    app.stop().await;
}

#[tokio::test]
async fn hostile_images_get_a_placeholder_and_the_server_keeps_answering() {
    let server = ServerProcess::start().await;
    let s3 = client_for(&server.s3, ROOT_USER, ROOT_PASSWORD, None);
    s3.create_bucket().bucket("photos").send().await.unwrap();
    let session = ApiClient::at(&server.web).root_session().await;
    let bomb = decompression_bomb();
    assert!(
        bomb.len() < 200 * 1024,
        "a small file: {} bytes",
        bomb.len()
    );
    put_bytes(&s3, "photos", "bomb.png", bomb).await;
    let jpeg = camera_jpeg(1);
    put_bytes(&s3, "photos", "cut.jpg", jpeg[..jpeg.len() / 2].to_vec()).await;
    put_bytes(&s3, "photos", "text.gif", b"GIF89a but not really".to_vec()).await;
    // Within the limit on sides, but 10,000 x 10,000 16-bit RGBA pixels
    // would take 800 MB.
    put_bytes(
        &s3,
        "photos",
        "deep.png",
        png_of_zeros(10_000, 16, 6, 10_000, 80_000),
    )
    .await;
    let pid = server.child.id().unwrap();
    for key in ["bomb.png", "cut.jpg", "text.gif", "deep.png"] {
        let path = format!("/ui/buckets/photos/thumb?key={key}");
        let (thumb, other) = tokio::join!(
            fetch_from(&server.web, &session, &path),
            fetch_from(&server.web, &session, "/ui/buckets")
        );
        assert_eq!(other.status(), 200, "other pages answer meanwhile");
        assert_eq!(thumb.status(), 200, "{key}");
        assert_eq!(
            thumb.headers()["content-type"],
            "image/svg+xml",
            "{key} gets the placeholder"
        );
        let peak = peak_resident_mib(pid);
        assert!(peak < 300, "{key}: the server held {peak} MiB at most");
    }
}

#[tokio::test]
async fn the_large_view_shows_a_stored_screen_sized_preview_and_links_the_original() {
    let (app, s3, session) = app_with_photos().await;
    // A wide picture, larger than a preview: its top-left quarter red.
    let big = DynamicImage::ImageRgb8(RgbImage::from_fn(3200, 1600, |x, y| {
        if x < 1600 && y < 800 {
            Rgb([220, 30, 30])
        } else {
            Rgb([30, 30, 220])
        }
    }));
    put_bytes(&s3, "photos", "wide.png", encoded(&big, ImageFormat::Png)).await;

    let view = fetch(&app, &session, "/ui/buckets/photos/photo?key=wide.png")
        .await
        .text()
        .await
        .unwrap();
    let shown = view
        .split("<div class=\"lightbox\">")
        .nth(1)
        .and_then(|lightbox| lightbox.split("<img src=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("the large view's picture")
        .replace("&#38;", "&");
    assert!(
        shown.starts_with("/ui/buckets/photos/preview?key=wide.png&v="),
        "{shown}"
    );
    assert!(
        view.contains(
            r#"href="/api/v1/buckets/photos/objects/wide.png" class="button">Original</a>"#
        ),
        "{view}"
    );

    let answer = fetch(&app, &session, &shown).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "image/jpeg");
    let etag = answer.headers()["etag"].to_str().unwrap().to_owned();
    let bytes = answer.bytes().await.unwrap();
    let preview = image::load_from_memory(&bytes).unwrap().to_rgb8();
    assert_eq!(preview.dimensions(), (1600, 800));
    assert!(red(preview.get_pixel(100, 100)) && !red(preview.get_pixel(1500, 100)));

    // Stored once: asked again, the same version answers 304; the
    // thumbnail is another picture with another tag.
    let again = reqwest::Client::new()
        .get(app.web_url(&shown))
        .header("cookie", format!("cistern_session={session}"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let thumb = fetch(&app, &session, "/ui/buckets/photos/thumb?key=wide.png").await;
    assert_ne!(thumb.headers()["etag"].to_str().unwrap(), etag);

    // What cannot be previewed is shown as it is: the large view's
    // picture leads to the original.
    put_bytes(&s3, "photos", "fake.gif", b"GIF89a, not really".to_vec()).await;
    let refused = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.web_url("/ui/buckets/photos/preview?key=fake.gif"))
        .header("cookie", format!("cistern_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 307);
    assert_eq!(
        refused.headers()["location"],
        "/api/v1/buckets/photos/objects/fake.gif"
    );

    // Gone with its object.
    s3.delete_object()
        .bucket("photos")
        .key("wide.png")
        .send()
        .await
        .unwrap();
    assert_eq!(fetch(&app, &session, &shown).await.status(), 404);
    app.stop().await;
}
