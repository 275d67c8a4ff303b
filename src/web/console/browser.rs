//! The object browser: a bucket's folders (key prefixes up to a `/`) with
//! breadcrumbs, paging by cursor, a name filter and sorting; an object's
//! page (details, preview, share, rename, delete); and the forms that
//! upload files, make a folder and delete files. Uploads with a script go
//! to the JSON API instead (see `assets/console/upload.js`).

use askama::Template;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::pages::{Chrome, render};
use super::session::{ConsoleError, CsrfForm, Visitor, done, failed, refused};
use super::words;
use crate::core::CoreError;
use crate::core::accounts::Access;
use crate::core::names::ObjectKey;
use crate::core::objects::{ByteRange, EtagMatch, ReadConditions};
use crate::model::{ObjectAttrs, PutCondition};
use crate::web::WebState;

/// Entries on one page of a folder, unless the person picks another of
/// [`PAGE_SIZES`].
const PAGE_SIZE: usize = 200;
const PAGE_SIZES: [usize; 3] = [50, 200, 1000];

/// Characters left as they are in a key placed in a URL path: slashes
/// keep separating folders.
const PATH_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub fn key_in_path(key: &str) -> String {
    utf8_percent_encode(key, PATH_KEEP).to_string()
}

pub fn in_query(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// The console page of a folder.
pub fn folder_url(bucket: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        format!("/ui/buckets/{bucket}")
    } else {
        format!("/ui/buckets/{bucket}?prefix={}", in_query(prefix))
    }
}

/// Whether a key cannot travel in a URL path: browsers resolve `.` and
/// `..` segments (even percent-encoded) before sending, so `a/../b` would
/// reach `b`. Such keys travel in the query instead.
pub fn needs_query(key: &str) -> bool {
    key.split('/')
        .any(|segment| segment == "." || segment == "..")
}

/// The console page of an object.
pub fn object_url(bucket: &str, key: &str) -> String {
    if needs_query(key) {
        return format!("/ui/buckets/{bucket}/object?key={}", in_query(key));
    }
    format!("/ui/buckets/{bucket}/objects/{}", key_in_path(key))
}

/// The object's bytes, through the JSON API (ranges, so video seeks), or
/// the console's own route for keys that cannot be in a path.
pub fn raw_url(bucket: &str, key: &str) -> String {
    if needs_query(key) {
        return format!("/ui/buckets/{bucket}/file?key={}", in_query(key));
    }
    format!("/api/v1/buckets/{bucket}/objects/{}", key_in_path(key))
}

#[derive(Deserialize)]
pub struct KeyQuery {
    key: String,
}

/// `GET /ui/buckets/{bucket}/object?key=`: an object's page by a key in
/// the query (see [`needs_query`]).
pub async fn object_by_query(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(bucket): Path<String>,
    Query(query): Query<KeyQuery>,
) -> Result<Response, ConsoleError> {
    visitor.audit_object(&bucket, Some(&query.key));
    object_page(&state, &visitor, bucket, query.key, None).await
}

/// `GET /ui/buckets/{bucket}/file?key=`: an object's bytes by a key in
/// the query, under the same rule as the API's download.
pub async fn file_by_query(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(bucket): Path<String>,
    Query(query): Query<KeyQuery>,
    method: axum::http::Method,
    headers: axum::http::HeaderMap,
) -> Result<Response, ConsoleError> {
    visitor.audit_object(&bucket, Some(&query.key));
    state
        .store
        .authorize(Some(&visitor.principal), &bucket, Access::Read)
        .await?;
    crate::web::api::objects::serve_object(&state, &bucket, &query.key, &method, &headers)
        .await
        .map_err(|e| ConsoleError::status(e.status, e.message))
}

/// The folder a key sits in (`a/b/` for `a/b/c.txt`).
fn parent_of(key: &str) -> &str {
    let trimmed = key.strip_suffix('/').unwrap_or(key);
    match trimmed.rfind('/') {
        Some(i) => &key[..=i],
        None => "",
    }
}

pub struct Crumb {
    pub(super) label: String,
    pub(super) href: String,
}

/// Bucket, then each folder of `prefix`, then (for an object) its name.
pub(super) fn crumbs(bucket: &str, prefix: &str, last: Option<&str>) -> Vec<Crumb> {
    let mut crumbs = vec![Crumb {
        label: bucket.to_owned(),
        href: folder_url(bucket, ""),
    }];
    let mut upto = String::new();
    for part in prefix.split('/').filter(|p| !p.is_empty()) {
        upto.push_str(part);
        upto.push('/');
        crumbs.push(Crumb {
            label: part.to_owned(),
            href: folder_url(bucket, &upto),
        });
    }
    if let Some(last) = last {
        crumbs.push(Crumb {
            label: last.to_owned(),
            href: String::new(),
        });
    }
    crumbs
}

pub struct Row {
    folder: bool,
    /// The full key (or prefix), for the selection checkbox.
    key: String,
    label: String,
    href: String,
    size: String,
    modified: String,
    bytes: i64,
    modified_ms: i64,
}

#[derive(Template)]
#[template(path = "console/browser.html")]
struct BrowserPage {
    chrome: Chrome,
    bucket: String,
    prefix: String,
    folder_label: String,
    crumbs: Vec<Crumb>,
    filter: String,
    sort: String,
    rows: Vec<Row>,
    here: String,
    first_page: Option<String>,
    next_page: Option<String>,
    /// Sorted by size or date while the folder spans several pages.
    sorted_within_page: bool,
    /// Entries per page on offer: the number, its URL, whether it is this one.
    page_sizes: Vec<(usize, String, bool)>,
    can_write: bool,
    can_manage: bool,
}

#[derive(Deserialize, Default)]
pub struct FolderQuery {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    filter: String,
    #[serde(default)]
    sort: String,
    /// The last entry of the previous page.
    #[serde(default)]
    after: String,
    /// Entries per page, one of [`PAGE_SIZES`].
    size: Option<usize>,
}

fn folder_query_url(bucket: &str, q: &FolderQuery, after: &str) -> String {
    let mut url = format!("/ui/buckets/{bucket}?prefix={}", in_query(&q.prefix));
    for (name, value) in [("filter", &q.filter), ("sort", &q.sort)] {
        if !value.is_empty() {
            url.push_str(&format!("&{name}={}", in_query(value)));
        }
    }
    if let Some(size) = q.size.filter(|s| *s != PAGE_SIZE) {
        url.push_str(&format!("&size={size}"));
    }
    if !after.is_empty() {
        url.push_str(&format!("&after={}", in_query(after)));
    }
    url
}

/// `GET /ui/buckets/{bucket}`: one page of a folder. Paging follows key
/// order with a cursor, so page 500 costs what page 1 does; sorting by
/// size or date orders the page shown.
pub async fn folder(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(bucket): Path<String>,
    Query(query): Query<FolderQuery>,
) -> Result<Response, ConsoleError> {
    let rights = readable(&state, &visitor, &bucket).await?;
    let (can_write, can_manage) = (rights.write, rights.manage);
    let listed_prefix = format!("{}{}", query.prefix, query.filter);
    let page_size = query
        .size
        .filter(|s| PAGE_SIZES.contains(s))
        .unwrap_or(PAGE_SIZE);
    let page = state
        .store
        .list_objects(&bucket, &listed_prefix, Some("/"), &query.after, page_size)
        .await?;
    let name_in_folder = |key: &str| key[query.prefix.len().min(key.len())..].to_owned();
    let mut rows: Vec<Row> = page
        .common_prefixes
        .iter()
        .map(|p| Row {
            folder: true,
            key: p.clone(),
            label: name_in_folder(p),
            href: folder_url(&bucket, p),
            size: String::new(),
            modified: String::new(),
            bytes: -1,
            modified_ms: 0,
        })
        .collect();
    rows.extend(
        page.objects
            .iter()
            // The empty object that marks a folder made here.
            .filter(|o| o.key != query.prefix)
            .map(|o| Row {
                folder: false,
                key: o.key.clone(),
                label: name_in_folder(&o.key),
                href: object_url(&bucket, &o.key),
                size: words::size(o.size),
                modified: words::time(o.last_modified_ms),
                bytes: o.size,
                modified_ms: o.last_modified_ms,
            }),
    );
    match query.sort.as_str() {
        "size" => rows.sort_by(|a, b| (!a.folder, b.bytes).cmp(&(!b.folder, a.bytes))),
        "date" => rows.sort_by(|a, b| (!a.folder, b.modified_ms).cmp(&(!b.folder, a.modified_ms))),
        _ => rows.sort_by(|a, b| (!a.folder, &a.key).cmp(&(!b.folder, &b.key))),
    }
    let next_page = page
        .truncated
        .then(|| {
            page.last
                .as_deref()
                .map(|last| folder_query_url(&bucket, &query, last))
        })
        .flatten();
    let first_page = (!query.after.is_empty()).then(|| folder_query_url(&bucket, &query, ""));
    let page_sizes = PAGE_SIZES
        .iter()
        .map(|&size| {
            let url = folder_query_url(
                &bucket,
                &FolderQuery {
                    size: Some(size),
                    prefix: query.prefix.clone(),
                    filter: query.filter.clone(),
                    sort: query.sort.clone(),
                    after: String::new(),
                },
                "",
            );
            (size, url, size == page_size)
        })
        .collect();
    let folder_label = query
        .prefix
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    Ok(render(BrowserPage {
        chrome: Chrome::for_visitor(
            &visitor,
            if query.prefix.is_empty() {
                bucket.clone()
            } else {
                format!("{bucket}/{}", query.prefix)
            },
            "buckets",
        ),
        crumbs: crumbs(&bucket, &query.prefix, None),
        here: folder_query_url(&bucket, &query, &query.after),
        folder_label,
        sort: if query.sort.is_empty() {
            "name".into()
        } else {
            query.sort.clone()
        },
        filter: query.filter.clone(),
        prefix: query.prefix.clone(),
        rows,
        sorted_within_page: matches!(query.sort.as_str(), "size" | "date")
            && (first_page.is_some() || next_page.is_some()),
        first_page,
        next_page,
        page_sizes,
        can_write,
        can_manage,
        bucket,
    }))
}

/// What the visitor may do to a bucket they may read (refused otherwise,
/// as `authorize` refuses).
async fn readable(
    state: &WebState,
    visitor: &Visitor,
    bucket: &str,
) -> Result<crate::core::accounts::BucketRights, ConsoleError> {
    let rights = state
        .store
        .bucket_rights(Some(&visitor.principal), bucket)
        .await?;
    if rights.read {
        Ok(rights)
    } else {
        Err(CoreError::AccessDenied.into())
    }
}

/// How an object can be shown in its page.
pub enum Preview {
    Image,
    Video,
    Audio,
    Pdf,
    /// The first bytes, as text.
    Text(String),
    None,
}

/// Text this long is shown at most.
const TEXT_PREVIEW: u64 = 64 * 1024;

fn looks_textual(content_type: &str, key: &str) -> bool {
    const CODE: &[&str] = &[
        "txt", "md", "csv", "json", "toml", "yaml", "yml", "xml", "log", "rs", "py", "js", "ts",
        "go", "c", "h", "cpp", "java", "sh", "sql", "ini", "conf", "html", "css",
    ];
    content_type.starts_with("text/")
        || matches!(
            content_type,
            "application/json" | "application/xml" | "application/toml"
        )
        || key
            .rsplit_once('.')
            .is_some_and(|(_, ext)| CODE.contains(&ext.to_ascii_lowercase().as_str()))
}

pub struct ShareView {
    url: String,
    expires: String,
}

#[derive(Template)]
#[template(path = "console/object.html")]
struct ObjectPage {
    chrome: Chrome,
    bucket: String,
    key: String,
    name: String,
    crumbs: Vec<Crumb>,
    raw_url: String,
    folder_url: String,
    preview: Preview,
    truncated: bool,
    size: String,
    bytes: i64,
    content_type: String,
    etag: String,
    modified: String,
    metadata: Vec<(String, String)>,
    share_link: Option<ShareView>,
    can_write: bool,
}

pub async fn object(
    State(state): State<WebState>,
    visitor: Visitor,
    Path((bucket, key)): Path<(String, String)>,
) -> Result<Response, ConsoleError> {
    object_page(&state, &visitor, bucket, key, None).await
}

/// An object's page; with the share link just made, shown this once.
async fn object_page(
    state: &WebState,
    visitor: &Visitor,
    bucket: String,
    key: String,
    share_link: Option<ShareView>,
) -> Result<Response, ConsoleError> {
    let can_write = readable(state, visitor, &bucket).await?.write;
    let object = state.store.head_object(&bucket, &key).await?;
    let content_type = object
        .attrs
        .content_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".into());
    let mut truncated = false;
    let preview = if content_type.starts_with("image/") {
        Preview::Image
    } else if content_type.starts_with("video/") {
        Preview::Video
    } else if content_type.starts_with("audio/") {
        Preview::Audio
    } else if content_type == "application/pdf" {
        Preview::Pdf
    } else if looks_textual(&content_type, &key) && object.size > 0 {
        truncated = object.size as u64 > TEXT_PREVIEW;
        let read = state
            .store
            .get_object(
                &bucket,
                &key,
                &ReadConditions::default(),
                Some(ByteRange::From {
                    first: 0,
                    last: Some(TEXT_PREVIEW.min(object.size as u64) - 1),
                }),
            )
            .await?;
        let bytes = crate::core::objects::collect(read.body)
            .await
            .map_err(|e| crate::core::CoreError::BodyRead(e.to_string()))?;
        Preview::Text(String::from_utf8_lossy(&bytes).into_owned())
    } else {
        Preview::None
    };
    let name = key
        .rsplit('/')
        .find(|p| !p.is_empty())
        .unwrap_or(&key)
        .to_owned();
    let folder = parent_of(&key).to_owned();
    let mut metadata: Vec<(String, String)> = object
        .attrs
        .user_metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (label, value) in [
        ("Cache-Control", &object.attrs.cache_control),
        ("Content-Disposition", &object.attrs.content_disposition),
        ("Content-Encoding", &object.attrs.content_encoding),
    ] {
        if let Some(value) = value {
            metadata.push((label.to_owned(), value.clone()));
        }
    }
    Ok(render(ObjectPage {
        chrome: Chrome::for_visitor(visitor, format!("{name} in {bucket}"), "buckets"),
        crumbs: crumbs(&bucket, &folder, Some(&name)),
        raw_url: raw_url(&bucket, &key),
        folder_url: folder_url(&bucket, &folder),
        preview,
        truncated,
        size: words::size(object.size),
        bytes: object.size,
        content_type,
        etag: object.etag.clone(),
        modified: words::time(object.last_modified_ms),
        metadata,
        share_link,
        can_write,
        name,
        key,
        bucket,
    }))
}

#[derive(Template)]
#[template(path = "console/confirm_delete.html")]
struct ConfirmDeletePage {
    chrome: Chrome,
    bucket: String,
    keys: Vec<String>,
    folders: usize,
    back: String,
}

/// Where a form may send the person back to: a page of this bucket.
fn back_to(bucket: &str, back: &str) -> String {
    if back.starts_with(&format!("/ui/buckets/{bucket}")) {
        back.to_owned()
    } else {
        folder_url(bucket, "")
    }
}

/// `POST /ui/buckets/{bucket}/delete-files`: the chosen files (and
/// folders, with what they hold), after a page that asks to confirm.
pub async fn delete_files(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(bucket): Path<String>,
    CsrfForm(fields): CsrfForm,
) -> Result<Response, ConsoleError> {
    state
        .store
        .authorize(Some(&visitor.principal), &bucket, Access::Write)
        .await?;
    let back = back_to(&bucket, fields.text("back"));
    let keys: Vec<String> = fields.all("key").into_iter().map(str::to_owned).collect();
    visitor.audit_object(
        &bucket,
        keys.first().filter(|_| keys.len() == 1).map(String::as_str),
    );
    if keys.is_empty() {
        return Ok(failed(&back, "Select the files to delete first."));
    }
    if fields.text("confirmed") != "yes" {
        return Ok(render(ConfirmDeletePage {
            chrome: Chrome::for_visitor(&visitor, "Confirm deletion", "buckets"),
            folders: keys.iter().filter(|k| k.ends_with('/')).count(),
            bucket,
            keys,
            back,
        }));
    }
    let mut deleted = 0usize;
    for key in &keys {
        if key.ends_with('/') {
            deleted += delete_folder(&state, &bucket, key).await?;
        } else if state.store.delete_object(&bucket, key).await? {
            deleted += 1;
        }
    }
    let noun = if deleted == 1 { "file" } else { "files" };
    Ok(done(&back, format!("Deleted {deleted} {noun}.")))
}

/// Deletes everything under a prefix; returns how many objects went.
async fn delete_folder(
    state: &WebState,
    bucket: &str,
    prefix: &str,
) -> Result<usize, ConsoleError> {
    let mut deleted = 0;
    let mut after = String::new();
    loop {
        let page = state
            .store
            .list_objects(bucket, prefix, None, &after, 1000)
            .await?;
        for object in &page.objects {
            if state.store.delete_object(bucket, &object.key).await? {
                deleted += 1;
            }
        }
        match page.last {
            Some(last) if page.truncated => after = last,
            _ => return Ok(deleted),
        }
    }
}

/// `POST /ui/buckets/{bucket}/folders`: a folder is an empty object whose
/// key ends in `/`, so it shows before anything is put in it.
pub async fn create_folder(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(bucket): Path<String>,
    CsrfForm(fields): CsrfForm,
) -> Result<Response, ConsoleError> {
    state
        .store
        .authorize(Some(&visitor.principal), &bucket, Access::Write)
        .await?;
    let prefix = fields.raw("prefix");
    let back = folder_url(&bucket, prefix);
    let name = fields.text("name").trim_matches('/');
    if name.is_empty() {
        return Ok(failed(&back, "Give the folder a name."));
    }
    let key = match ObjectKey::parse(&format!("{prefix}{name}/")) {
        Ok(key) => key,
        Err(e) => return Ok(refused(&back, e)),
    };
    visitor.audit_object(&bucket, Some(key.as_str()));
    let empty: crate::model::ByteStream = Box::pin(futures::stream::empty());
    let made = state
        .store
        .put_object(
            &bucket,
            &key,
            ObjectAttrs::default(),
            crate::core::objects::IncomingBody {
                stream: empty,
                declared_len: Some(0),
                md5: true,
                checksums: Vec::new(),
                verify: Box::new(|_| Ok(())),
            },
            // A folder of that name (or a file named like one) stays.
            PutCondition::IfAbsent,
        )
        .await;
    match made {
        Ok(_) | Err(CoreError::PreconditionFailed) => {}
        Err(e) => return Ok(refused(&back, e)),
    }
    Ok(done(
        &folder_url(&bucket, key.as_str()),
        format!("The folder {name} is ready."),
    ))
}

/// `POST /ui/buckets/{bucket}/rename`: a copy under the new key (no bytes
/// move), then the old key is deleted.
pub async fn rename(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(bucket): Path<String>,
    CsrfForm(fields): CsrfForm,
) -> Result<Response, ConsoleError> {
    state
        .store
        .authorize(Some(&visitor.principal), &bucket, Access::Write)
        .await?;
    let old = fields.raw("key");
    visitor.audit_object(&bucket, Some(old));
    let back = object_url(&bucket, old);
    let new = match ObjectKey::parse(fields.raw("new_key")) {
        Ok(key) => key,
        Err(e) => return Ok(refused(&back, e)),
    };
    if new.as_str() == old {
        return Ok(failed(&back, "That is already its name."));
    }
    let source = state.store.head_object(&bucket, old).await?;
    // The copy neither overwrites a file already at the new name nor
    // takes a version of the old one other than the one just looked at.
    let copied = state
        .store
        .copy_object(
            &bucket,
            old,
            &ReadConditions {
                if_match: Some(EtagMatch::Tags(vec![source.etag.clone()])),
                ..ReadConditions::default()
            },
            &bucket,
            &new,
            None,
            PutCondition::IfAbsent,
        )
        .await;
    match copied {
        Ok(_) => {}
        Err(CoreError::PreconditionFailed) => {
            return Ok(failed(
                &back,
                format!(
                    "{} already exists, or the file changed meanwhile; delete it first or pick another name.",
                    new.as_str()
                ),
            ));
        }
        Err(e) => return Ok(refused(&back, e)),
    }
    if let Err(e) = state.store.delete_object(&bucket, old).await {
        return Ok(failed(
            &object_url(&bucket, new.as_str()),
            format!(
                "Copied to {}, but the old name could not be removed ({}). Delete it by hand.",
                new.as_str(),
                words::for_error(&e)
            ),
        ));
    }
    Ok(done(
        &object_url(&bucket, new.as_str()),
        format!("Renamed to {}.", new.as_str()),
    ))
}

/// `POST /ui/buckets/{bucket}/upload`: the plain form, for when scripts
/// do not run. The CSRF token is the form's first field, checked before
/// any file is read.
pub async fn upload(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(bucket): Path<String>,
    headers: axum::http::HeaderMap,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, ConsoleError> {
    let bad = |why: String| ConsoleError::status(StatusCode::BAD_REQUEST, why);
    let mut form =
        form.map_err(|e| bad(format!("That upload could not be read: {}", e.body_text())))?;
    let first = form
        .next_field()
        .await
        .map_err(|e| bad(format!("That upload could not be read: {}", e.body_text())))?;
    let token = crate::web::cookie::session_token(&headers).unwrap_or_default();
    let csrf_ok = match first {
        Some(field) if field.name() == Some("csrf") => {
            let offered = field.text().await.unwrap_or_default();
            crate::web::cookie::csrf_matches(token, &offered)
        }
        _ => false,
    };
    if !csrf_ok {
        return Err(ConsoleError::csrf());
    }
    state
        .store
        .authorize(Some(&visitor.principal), &bucket, Access::Write)
        .await?;
    let back = folder_url(&bucket, "");
    match crate::web::api::objects::store_form_files(&state, &bucket, &mut form).await {
        Ok(stored) if stored.is_empty() => Ok(failed(&back, "Choose files to upload first.")),
        Ok(stored) => {
            let folder = parent_of(&stored[0].key).to_owned();
            let noun = if stored.len() == 1 { "file" } else { "files" };
            Ok(done(
                &folder_url(&bucket, &folder),
                format!("Uploaded {} {noun}.", stored.len()),
            ))
        }
        Err(e) => Ok(failed(&back, format!("The upload stopped: {}", e.message))),
    }
}

/// `POST /ui/buckets/{bucket}/share`: a link anyone can open, for a
/// lifetime of up to seven days.
pub async fn share(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(bucket): Path<String>,
    headers: axum::http::HeaderMap,
    CsrfForm(fields): CsrfForm,
) -> Result<Response, ConsoleError> {
    let key = fields.raw("key").to_owned();
    visitor.audit_object(&bucket, Some(&key));
    let back = object_url(&bucket, &key);
    let lifetime: u64 = fields.text("lifetime").parse().unwrap_or(0);
    if !(60..=crate::core::presign::MAX_EXPIRY_SECS).contains(&lifetime) {
        return Ok(failed(
            &back,
            "Choose how long the link works: up to 7 days.",
        ));
    }
    let base = super::public_base(&state, &headers);
    let link =
        super::share::make_link(&state, &visitor.principal, &bucket, &key, lifetime, &base).await?;
    // The page is the answer (not a redirect), so no link can be planted
    // in a URL for someone else to see on this trusted page.
    let mut visitor = visitor;
    visitor.flash = Some(super::session::Flash {
        ok: true,
        message: "The share link is ready. Copy it below.".into(),
    });
    let share = ShareView {
        url: link.url,
        expires: words::time(link.expires_ms),
    };
    object_page(&state, &visitor, bucket, key, Some(share)).await
}
