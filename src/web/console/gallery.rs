//! The gallery: a folder's images as a grid of thumbnails, newest first or
//! by name, loaded lazily by the browser as the person scrolls, 200 tiles
//! a page with the next page appended near the end of the grid
//! (`/ui/buckets/{bucket}/gallery`); one image large with its neighbours
//! (`.../photo`, next and previous by link or arrow key), shown as a
//! screen-sized preview with the original a link away; and the thumbnails
//! and previews themselves (`.../thumb`, `.../preview`), made once on the
//! server and sent with an ETag and a long cache (their URL names the
//! object version).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::browser::{crumbs, folder_url, in_query, object_url, raw_url};
use super::pages::{Chrome, render};
use super::session::{ConsoleError, Visitor};
use crate::core::CoreError;
use crate::core::Rendition;
use crate::core::accounts::Access;
use crate::core::thumbnails::{PLACEHOLDER_SVG, is_image_name};
use crate::model::ObjectSummary;
use crate::web::WebState;

/// Images a gallery page shows; more are a link away.
const PAGE: usize = 200;
/// Listing pages of 1,000 keys a gallery reads at most: a folder of more
/// files shows the images among its first 20,000 and says so.
const MOST_PAGES: usize = 20;

#[derive(Deserialize, Default)]
pub struct GalleryQuery {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    page: usize,
}

#[derive(Deserialize)]
pub struct PhotoQuery {
    key: String,
    #[serde(default)]
    sort: String,
}

#[derive(Deserialize)]
pub struct ThumbQuery {
    key: String,
}

pub struct Tile {
    name: String,
    href: String,
    thumb: String,
}

#[derive(Template)]
#[template(path = "console/gallery.html")]
struct GalleryPage {
    chrome: Chrome,
    crumbs: Vec<super::browser::Crumb>,
    heading: String,
    folder_href: String,
    newest_href: String,
    name_href: String,
    by_name: bool,
    tiles: Vec<Tile>,
    total: usize,
    /// The folder has more files than the gallery looks through.
    cut_short: bool,
    more: Option<String>,
}

#[derive(Template)]
#[template(path = "console/photo.html")]
struct PhotoPage {
    chrome: Chrome,
    crumbs: Vec<super::browser::Crumb>,
    name: String,
    position: usize,
    total: usize,
    /// The screen-sized preview shown.
    image: String,
    /// The file itself, on demand.
    original: String,
    details: String,
    gallery: String,
    previous: Option<String>,
    next: Option<String>,
}

fn by_name(sort: &str) -> bool {
    sort == "name"
}

fn sort_word(by_name: bool) -> &'static str {
    if by_name { "name" } else { "newest" }
}

/// The images directly in a folder, in the order asked, and whether the
/// folder held more files than were looked at.
async fn images(
    state: &WebState,
    bucket: &str,
    prefix: &str,
    by_name: bool,
) -> Result<(Vec<ObjectSummary>, bool), ConsoleError> {
    let mut found = Vec::new();
    let mut after = String::new();
    let mut cut_short = false;
    for read in 1.. {
        let page = state
            .store
            .list_objects(bucket, prefix, Some("/"), &after, 1000)
            .await?;
        found.extend(page.objects.into_iter().filter(|o| is_image_name(&o.key)));
        match page.last {
            Some(last) if page.truncated && read < MOST_PAGES => after = last,
            Some(_) if page.truncated => {
                cut_short = true;
                break;
            }
            _ => break,
        }
    }
    if !by_name {
        found.sort_by(|a, b| {
            b.last_modified_ms
                .cmp(&a.last_modified_ms)
                .then_with(|| a.key.cmp(&b.key))
        });
    }
    Ok((found, cut_short))
}

fn name_of(key: &str) -> &str {
    key.rsplit('/').find(|p| !p.is_empty()).unwrap_or(key)
}

fn photo_url(bucket: &str, key: &str, by_name: bool) -> String {
    format!(
        "/ui/buckets/{bucket}/photo?key={}&sort={}",
        in_query(key),
        sort_word(by_name)
    )
}

/// The address of an object version's thumbnail (`thumb`) or preview.
fn rendition_url(bucket: &str, object: &ObjectSummary, kind: &str) -> String {
    // The version in the URL lets the browser keep a thumbnail for good.
    format!(
        "/ui/buckets/{bucket}/{kind}?key={}&v={}",
        in_query(&object.key),
        in_query(&format!(
            "{}-{}",
            object.etag.trim_matches('"'),
            object.last_modified_ms
        ))
    )
}

fn gallery_url(bucket: &str, prefix: &str, by_name: bool, page: usize) -> String {
    let mut url = format!("/ui/buckets/{bucket}/gallery?sort={}", sort_word(by_name));
    if !prefix.is_empty() {
        url.push_str(&format!("&prefix={}", in_query(prefix)));
    }
    if page > 0 {
        url.push_str(&format!("&page={page}"));
    }
    url
}

/// `GET /ui/buckets/{bucket}/gallery`.
pub async fn gallery(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(bucket): Path<String>,
    Query(query): Query<GalleryQuery>,
) -> Result<Response, ConsoleError> {
    visitor.audit_object(&bucket, None);
    state
        .store
        .authorize(Some(&visitor.principal), &bucket, Access::Read)
        .await?;
    let by_name = by_name(&query.sort);
    let (all, cut_short) = images(&state, &bucket, &query.prefix, by_name).await?;
    let total = all.len();
    let tiles = all
        .iter()
        .skip(query.page.saturating_mul(PAGE))
        .take(PAGE)
        .map(|o| Tile {
            name: name_of(&o.key).to_owned(),
            href: photo_url(&bucket, &o.key, by_name),
            thumb: rendition_url(&bucket, o, "thumb"),
        })
        .collect();
    let more = (total > query.page.saturating_add(1).saturating_mul(PAGE))
        .then(|| gallery_url(&bucket, &query.prefix, by_name, query.page + 1));
    let heading = match name_of(&query.prefix) {
        "" => format!("Gallery of {bucket}"),
        folder => format!("Gallery of {folder}"),
    };
    Ok(render(GalleryPage {
        chrome: Chrome::for_visitor(&visitor, heading.clone(), "buckets"),
        crumbs: crumbs(&bucket, &query.prefix, Some("Gallery")),
        heading,
        folder_href: folder_url(&bucket, &query.prefix),
        newest_href: gallery_url(&bucket, &query.prefix, false, 0),
        name_href: gallery_url(&bucket, &query.prefix, true, 0),
        by_name,
        tiles,
        total,
        cut_short,
        more,
    }))
}

/// `GET /ui/buckets/{bucket}/photo?key=`: one image large, with the
/// previous and next of its folder in the gallery's order.
pub async fn photo(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(bucket): Path<String>,
    Query(query): Query<PhotoQuery>,
) -> Result<Response, ConsoleError> {
    visitor.audit_object(&bucket, Some(&query.key));
    state
        .store
        .authorize(Some(&visitor.principal), &bucket, Access::Read)
        .await?;
    let by_name = by_name(&query.sort);
    let prefix = match query.key.rfind('/') {
        Some(i) => &query.key[..=i],
        None => "",
    };
    let (all, _) = images(&state, &bucket, prefix, by_name).await?;
    let Some(at) = all.iter().position(|o| o.key == query.key) else {
        return Err(CoreError::NoSuchKey.into());
    };
    let neighbour = |i: Option<usize>| {
        i.and_then(|i| all.get(i))
            .map(|o| photo_url(&bucket, &o.key, by_name))
    };
    let name = name_of(&query.key).to_owned();
    Ok(render(PhotoPage {
        chrome: Chrome::for_visitor(&visitor, name.clone(), "buckets"),
        crumbs: crumbs(&bucket, prefix, Some(&name)),
        position: at + 1,
        total: all.len(),
        image: rendition_url(&bucket, &all[at], "preview"),
        original: raw_url(&bucket, &query.key),
        details: object_url(&bucket, &query.key),
        gallery: gallery_url(&bucket, prefix, by_name, at / PAGE),
        previous: neighbour(at.checked_sub(1)),
        next: neighbour(Some(at + 1)),
        name,
    }))
}

/// `GET /ui/buckets/{bucket}/thumb?key=`: the thumbnail (JPEG), or the
/// placeholder for what cannot be shown as one.
pub async fn thumb(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(bucket): Path<String>,
    Query(query): Query<ThumbQuery>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    rendition(state, visitor, bucket, query, headers, Rendition::Thumbnail).await
}

/// `GET /ui/buckets/{bucket}/preview?key=`: the large view's picture
/// (JPEG, at most 1,600 pixels a side), or the placeholder.
pub async fn preview(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(bucket): Path<String>,
    Query(query): Query<ThumbQuery>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    rendition(state, visitor, bucket, query, headers, Rendition::Preview).await
}

async fn rendition(
    state: WebState,
    visitor: Visitor,
    bucket: String,
    query: ThumbQuery,
    headers: HeaderMap,
    rendition: Rendition,
) -> Result<Response, ConsoleError> {
    visitor.audit_object(&bucket, Some(&query.key));
    let made = match state
        .store
        .thumbnail(&visitor.principal, &bucket, &query.key, rendition)
        .await
    {
        // The large view shows the original where no preview can be made
        // (too big to decode here, or too many waiting).
        Ok(made) if made.jpeg.is_none() && rendition == Rendition::Preview => {
            return Ok(Redirect::temporary(&raw_url(&bucket, &query.key)).into_response());
        }
        Err(CoreError::Busy(_)) if rendition == Rendition::Preview => {
            return Ok(Redirect::temporary(&raw_url(&bucket, &query.key)).into_response());
        }
        Ok(made) => made,
        // Too many waiting: a placeholder now, the real one next time.
        Err(CoreError::Busy(_)) => return Ok(placeholder("no-store")),
        Err(e) => return Err(e.into()),
    };
    let Some(jpeg) = made.jpeg else {
        return Ok(placeholder("private, max-age=3600"));
    };
    let etag = HeaderValue::from_str(&made.etag).map_err(|_| CoreError::NoSuchKey)?;
    let cache = HeaderValue::from_static("private, max-age=31536000, immutable");
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|seen| seen.as_bytes() == etag.as_bytes())
    {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache)],
        )
            .into_response());
    }
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache),
        ],
        jpeg,
    )
        .into_response())
}

fn placeholder(cache: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        PLACEHOLDER_SVG,
    )
        .into_response()
}
