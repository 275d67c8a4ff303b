//! The JSON API at `/api/v1`: accounts and keys, sessions, buckets and
//! grants, objects, quotas, audit and usage, and pools (members,
//! contributions, groups, results, events over SSE and WebSocket,
//! webhooks). Callers authenticate with HTTP Basic, a session bearer token or
//! a pool member token; every answer is JSON (errors as
//! `{"error": {"code", "message", "request_id"}}`) and every call is audited.
//! Handlers parse and answer; the rules they apply live in `core`. One file
//! (or folder) per resource; the OpenAPI document is built from them.

mod accounts;
mod actions;
mod audit;
mod backup_runs;
mod buckets;
pub mod error;
pub(crate) mod objects;
mod openapi;
pub mod pools;
mod quotas;
mod sessions;
mod uploads;

use axum::Router;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::error::{ApiError, REQUEST_ID};
use super::WebState;
use crate::core::Principal;
use crate::serving::PeerAddr;

/// The API's routes and the OpenAPI document that describes them, built
/// from the same handler annotations so the two cannot drift apart.
pub fn router(state: WebState) -> Router<WebState> {
    let router = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(accounts::me))
        .routes(routes!(sessions::login))
        .routes(routes!(sessions::logout))
        .routes(routes!(sessions::signup))
        .routes(routes!(accounts::list_users, accounts::create_user))
        .routes(routes!(accounts::delete_user))
        .routes(routes!(accounts::disable_user))
        .routes(routes!(accounts::enable_user))
        .routes(routes!(accounts::set_password))
        .routes(routes!(accounts::list_keys, accounts::create_key))
        .routes(routes!(accounts::revoke_key))
        .routes(routes!(buckets::list, buckets::create))
        .routes(routes!(buckets::show, buckets::remove))
        .routes(routes!(buckets::set_public))
        .routes(routes!(buckets::grant, buckets::revoke_grant))
        .routes(routes!(quotas::user))
        .routes(routes!(quotas::bucket))
        .routes(routes!(objects::list, objects::post_form))
        .routes(routes!(objects::share))
        .routes(routes!(uploads::create))
        .routes(routes!(uploads::parts))
        .routes(routes!(uploads::put_part))
        .routes(routes!(uploads::complete))
        .routes(routes!(uploads::abort))
        .routes(routes!(audit::query))
        .routes(routes!(audit::own_usage))
        .routes(routes!(audit::all_usage))
        .routes(routes!(backup_runs::report, backup_runs::list));
    let (routes, document) = pools::routes(router)
        // OpenAPI has no multi-segment parameter, so the object routes are
        // documented as `{key}` (in `openapi::ApiDoc`) and routed here with
        // axum's catch-all, which lets keys contain slashes.
        .route(
            "/api/v1/buckets/{bucket}/objects/{*key}",
            get(objects::get)
                .head(objects::get)
                .put(objects::put_raw)
                .delete(objects::delete),
        )
        .split_for_parts();
    let document = Arc::new(openapi::finish(document));
    routes
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let document = document.clone();
                async move { axum::Json(document.as_ref().clone()) }
            }),
        )
        // Object bodies stream into storage, which enforces its own limit;
        // JSON bodies are read through `JsonBody`, which has its own.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(state, with_request_id))
}

/// Who an API request turned out to be, filled in by the extractors.
#[derive(Clone, Default)]
pub struct ApiActor(Arc<Mutex<ActorSlot>>);

#[derive(Clone, Default)]
struct ActorSlot {
    principal: Option<Principal>,
    /// The name given, when no user is behind it (yet).
    claimed: Option<String>,
    /// The user whose usage the request counts for, and the bucket, when
    /// the caller is not a user (a pool member counts for the pool's owner).
    billed: Option<(String, String)>,
    /// The bucket and key acted on, when the route does not name them
    /// (they came in the body: a new bucket's name, a form's key).
    object: Option<(String, Option<String>)>,
    /// The action, when the route alone does not tell it (a backup run
    /// says whether it was a backup or a restore), and the client's own
    /// account of its work.
    reported: Option<Reported>,
}

impl ApiActor {
    pub(crate) fn set(parts: &Parts, principal: Option<&Principal>, claimed: Option<&str>) {
        if let Some(actor) = parts.extensions.get::<ApiActor>()
            && let Ok(mut slot) = actor.0.lock()
        {
            slot.principal = principal.cloned();
            slot.claimed = claimed.map(str::to_owned);
        }
    }

    /// Names the bucket (and key) a request acted on, for its audit record.
    pub(crate) fn name_object(&self, bucket: &str, key: Option<&str>) {
        if let Ok(mut slot) = self.0.lock() {
            slot.object = Some((bucket.to_owned(), key.map(str::to_owned)));
        }
    }

    /// Records the request as `action` on `target` with the client's
    /// report.
    pub(crate) fn report(&self, action: String, target: String, detail: String) {
        if let Ok(mut slot) = self.0.lock() {
            slot.reported = Some(Reported {
                action,
                target,
                detail,
            });
        }
    }

    /// A pool member: audited under `pool/member`, counted in the usage
    /// of the pool's owner on the pool's bucket.
    pub(crate) fn set_member(parts: &Parts, name: String, owner_id: &str, bucket: &str) {
        if let Some(actor) = parts.extensions.get::<ApiActor>()
            && let Ok(mut slot) = actor.0.lock()
        {
            slot.claimed = Some(name);
            slot.billed = Some((owner_id.to_owned(), bucket.to_owned()));
        }
    }
}

/// A request's own account of itself, for its audit record.
#[derive(Clone)]
struct Reported {
    action: String,
    target: String,
    detail: String,
}

/// The status an audit record keeps when the answer's own status does not
/// tell (a console form that failed still answers with a redirect).
#[derive(Clone, Copy)]
pub struct AuditStatus(pub axum::http::StatusCode);

/// The most a route's body may announce: one object for a raw upload or a
/// result, no bound for forms that carry many files (each file is held to
/// its own limit as it streams), 1 MiB of JSON for everything else.
fn body_limit(method: &axum::http::Method, route: &str, max_object_size: u64) -> u64 {
    use axum::http::Method;
    match (method, route) {
        (&Method::PUT, "/api/v1/buckets/{bucket}/objects/{*key}")
        | (&Method::PUT, "/api/v1/buckets/{bucket}/uploads/{upload}/parts/{number}")
        | (&Method::PUT, "/api/v1/pools/{pool}/groups/{group}/result") => max_object_size,
        (&Method::POST, "/api/v1/buckets/{bucket}/objects")
        | (&Method::POST, "/ui/buckets/{bucket}/upload")
        | (&Method::POST, "/api/v1/pools/{pool}/contributions") => u64::MAX,
        _ => JSON_BODY_LIMIT as u64,
    }
}

/// Gives each API request an id (the `x-request-id` header and error
/// bodies) and an audit record naming its action and target; refuses a
/// body announced larger than its route takes before reading any of it.
pub(crate) async fn with_request_id(
    State(state): State<WebState>,
    request: Request,
    next: Next,
) -> Response {
    let id = crate::serving::new_request_id();
    let actor = ApiActor::default();
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(actor.clone());
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let params = axum::extract::RawPathParams::from_request_parts(&mut parts, &state)
        .await
        .ok();
    let described = actions::describe(
        parts.method.as_str(),
        route.as_deref(),
        parts.uri.path(),
        params.iter().flat_map(|p| p.iter()),
    );
    let source = parts
        .extensions
        .get::<PeerAddr>()
        .map(|p| p.0.ip().to_string());
    let user_agent = parts
        .headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let limit = route.as_deref().map_or(JSON_BODY_LIMIT as u64, |route| {
        body_limit(&parts.method, route, state.api.max_object_size)
    });
    let declared = crate::serving::declared_length(&parts.headers, &["content-length"]);
    // Bytes received are counted as the handler reads them: streamed
    // uploads announce no length.
    let received = Arc::new(AtomicU64::new(0));
    let mut response = if declared > limit {
        let mut refusal = ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("this request may carry at most {limit} bytes; it announced {declared}"),
        )
        .into_response();
        // The body is not read, so the connection cannot carry another
        // request.
        refusal.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        REQUEST_ID.scope(id.clone(), async { refusal }).await
    } else {
        let received = received.clone();
        let body = axum::body::Body::from_stream(body.into_data_stream().map(move |chunk| {
            if let Ok(bytes) = &chunk {
                received.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            chunk
        }));
        REQUEST_ID
            .scope(id.clone(), next.run(Request::from_parts(parts, body)))
            .await
    };
    let bytes_in = received.load(Ordering::Relaxed);
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let ActorSlot {
        principal,
        claimed,
        billed,
        object,
        reported,
    } = actor.0.lock().map(|s| s.clone()).unwrap_or_default();
    let (billed_user, billed_bucket) = billed.unzip();
    let (named_bucket, named_key) = object.unzip();
    // A console form answers with a redirect whether it worked or not; a
    // failure says so in an extension.
    let status = response
        .extensions()
        .get::<AuditStatus>()
        .map_or(response.status(), |s| s.0);
    let ok = status.is_success() || status.is_redirection();
    let (action, target, detail) = match reported {
        Some(r) if ok => (r.action, Some(r.target), Some(r.detail)),
        _ => (described.action, described.target, None),
    };
    state.audit.record(crate::model::AuditRecord {
        id: 0,
        time_ms: crate::core::now_ms(),
        request_id: id,
        actor_id: principal
            .as_ref()
            .map(|p| p.user_id.clone())
            .or(billed_user),
        actor: principal
            .as_ref()
            .map(|p| p.name.clone())
            .or(claimed)
            .unwrap_or_else(|| "anonymous".to_owned()),
        access_key: None,
        source,
        action,
        bucket: billed_bucket.or(named_bucket).or(described.bucket),
        key: named_key.flatten().or(described.key),
        target,
        status: status.as_u16(),
        bytes_in: if ok { bytes_in } else { 0 },
        bytes_out: if ok {
            crate::serving::declared_length(response.headers(), &["content-length"])
        } else {
            0
        },
        user_agent,
        detail,
    });
    response
}

/// The authenticated caller of an API request.
pub struct Caller(pub Principal);

impl FromRequestParts<WebState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, ApiError> {
        let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return from_session_cookie(parts, state).await;
        };
        let header = header.to_str().map_err(|_| ApiError::unauthorized())?;
        if let Some(token) = header.strip_prefix("Bearer ") {
            let principal = state.store.session_principal(token.trim()).await?;
            ApiActor::set(parts, Some(&principal), None);
            return Ok(Caller(principal));
        }
        let (name, password) = basic_credentials(header).ok_or_else(ApiError::unauthorized)?;
        ApiActor::set(parts, None, Some(&name));
        let principal = state
            .store
            .login_from(&name, &password, peer_ip(parts))
            .await?;
        ApiActor::set(parts, Some(&principal), None);
        Ok(Caller(principal))
    }
}

/// The name and password of an `Authorization: Basic` header.
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let encoded = header.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (name, password) = decoded.split_once(':')?;
    Some((name.to_owned(), password.to_owned()))
}

/// The caller of the backup commands' report route: an S3 access key and
/// secret as HTTP Basic (what those commands hold), or any caller
/// [`Caller`] accepts. No other route takes a key pair this way.
pub struct KeyCaller(pub Principal);

impl FromRequestParts<WebState> for KeyCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, ApiError> {
        let basic = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(basic_credentials);
        let Some((key, secret)) = basic else {
            return Caller::from_request_parts(parts, state)
                .await
                .map(|Caller(p)| KeyCaller(p));
        };
        ApiActor::set(parts, None, Some(&key));
        let principal = state
            .store
            .login_with_key(&key, &secret, peer_ip(parts))
            .await?;
        ApiActor::set(parts, Some(&principal), None);
        Ok(KeyCaller(principal))
    }
}

/// A console page's script calling the API: the session cookie, and for
/// anything but a read, the CSRF token in its header (a form on another
/// site can make the browser send the cookie, not the header).
async fn from_session_cookie(parts: &mut Parts, state: &WebState) -> Result<Caller, ApiError> {
    use crate::web::cookie;
    let token = cookie::session_token(&parts.headers).ok_or_else(ApiError::unauthorized)?;
    let principal = state.store.session_principal(token).await?;
    ApiActor::set(parts, Some(&principal), None);
    let reads_only = matches!(
        parts.method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    let offered = parts
        .headers
        .get(cookie::CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !reads_only && !cookie::csrf_matches(token, offered) {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "csrf_token_missing",
            format!(
                "a request signed in by cookie must carry the page's CSRF token in the {} header",
                cookie::CSRF_HEADER
            ),
        ));
    }
    Ok(Caller(principal))
}

/// The caller of a request that anonymous callers may also make (reads of
/// public-read buckets): `None` without an `Authorization` header, and a
/// refusal for one that does not check out.
pub struct MaybeCaller(pub Option<Principal>);

impl FromRequestParts<WebState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, ApiError> {
        if !parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
        {
            // A cookie whose session ended elsewhere reads as nobody, so
            // public buckets still open.
            return Ok(MaybeCaller(
                from_session_cookie(parts, state).await.ok().map(|c| c.0),
            ));
        }
        let Caller(principal) = Caller::from_request_parts(parts, state).await?;
        Ok(MaybeCaller(Some(principal)))
    }
}

/// Maps a refusal for a caller that may be anonymous: an anonymous caller
/// turned away, or asking for a bucket that is not there, is asked to
/// authenticate (401) rather than told no (403) or what exists (404).
pub fn refusal_for(who: &Option<Principal>) -> impl Fn(crate::core::CoreError) -> ApiError + '_ {
    use crate::core::CoreError;
    move |error| match (who, error) {
        (None, CoreError::AccessDenied | CoreError::NoSuchBucket) => ApiError::unauthorized(),
        (_, error) => ApiError::from(error),
    }
}

/// The client's address, as the accept loop recorded it.
pub fn peer_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    parts.extensions.get::<PeerAddr>().map(|p| p.0.ip())
}

/// Whether this request may read `/metrics` (see [`super::MetricsAccess`]).
pub async fn may_read_metrics(parts: &mut Parts, state: &WebState) -> Result<(), ApiError> {
    use sha2::{Digest, Sha256};
    let token = match &state.api.metrics_access {
        super::MetricsAccess::Public => return Ok(()),
        super::MetricsAccess::Token(token) => Some(token),
        super::MetricsAccess::AdminsOnly => None,
    };
    let bearer = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // Digests compared, so the comparison takes the same time wherever
    // the two tokens differ.
    if let (Some(token), Some(bearer)) = (token, bearer)
        && Sha256::digest(token.as_bytes()) == Sha256::digest(bearer.as_bytes())
    {
        return Ok(());
    }
    let Caller(caller) = Caller::from_request_parts(parts, state).await?;
    require_admin(&caller)
}

/// Refuses callers who are not admins.
pub fn require_admin(caller: &Principal) -> Result<(), ApiError> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(ApiError::from(crate::core::CoreError::AccessDenied))
    }
}

/// The largest JSON request body accepted (object bodies are not JSON and
/// stream without this limit).
pub const JSON_BODY_LIMIT: usize = 1 << 20;

/// A JSON body whose errors name the field that is wrong.
pub struct JsonBody<T>(pub T);

impl<T: serde::de::DeserializeOwned> axum::extract::FromRequest<WebState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &WebState) -> Result<Self, ApiError> {
        let bytes = axum::body::to_bytes(request.into_body(), JSON_BODY_LIMIT)
            .await
            .map_err(|_| {
                ApiError::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("a JSON body may have at most {JSON_BODY_LIMIT} bytes"),
                )
            })?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_json",
                e.to_string(),
            )
        })
    }
}

/// Query parameters whose errors are JSON and name the parameter.
pub struct QueryArgs<T>(pub T);

impl<T: serde::de::DeserializeOwned> FromRequestParts<WebState> for QueryArgs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryArgs(q.0))
            .map_err(|e| ApiError::bad_field("query", e.body_text()))
    }
}
