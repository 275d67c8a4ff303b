//! Who is looking at a console page, and what they sent: the signed-in
//! [`Visitor`] (from the session cookie; anyone else is sent to sign in),
//! form fields checked against the session's CSRF token ([`CsrfForm`]),
//! one-shot notices carried across a redirect ([`Flash`]), and errors shown
//! as pages ([`ConsoleError`]).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::pages;
use crate::core::{CoreError, Principal};
use crate::web::WebState;
use crate::web::api::ApiActor;
use crate::web::cookie;

/// The cookie that carries a notice to the next page.
pub const FLASH_COOKIE: &str = "cistern_flash";

/// A signed-in person.
pub struct Visitor {
    pub principal: Principal,
    /// For forms and the page's scripts.
    pub csrf: String,
    /// A notice left by the action that redirected here.
    pub flash: Option<Flash>,
    actor: Option<ApiActor>,
}

impl Visitor {
    /// Names the bucket and key acted on in the request's audit record,
    /// when the route does not (they came in the form).
    pub fn audit_object(&self, bucket: &str, key: Option<&str>) {
        if let Some(actor) = &self.actor {
            actor.name_object(bucket, key);
        }
    }
}

impl FromRequestParts<WebState> for Visitor {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, ConsoleError> {
        let sign_in = || ConsoleError::SignIn {
            next: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
        };
        let Some(token) = cookie::session_token(&parts.headers) else {
            return Err(sign_in());
        };
        let principal = match state.store.session_principal(token).await {
            Ok(principal) => principal,
            Err(CoreError::BadSession | CoreError::AccountDisabled(_)) => return Err(sign_in()),
            Err(other) => return Err(other.into()),
        };
        ApiActor::set(parts, Some(&principal), None);
        if let Some(slot) = parts.extensions.get::<VisitorSlot>()
            && let Ok(mut seen) = slot.0.lock()
        {
            *seen = Some(SeenVisitor {
                name: principal.name.clone(),
                is_admin: principal.is_admin(),
                csrf: cookie::csrf_token(token),
            });
        }
        Ok(Visitor {
            actor: parts.extensions.get::<ApiActor>().cloned(),
            csrf: cookie::csrf_token(token),
            flash: Flash::from_headers(&parts.headers),
            principal,
        })
    }
}

/// Who a request turned out to be signed in as, so that an error page
/// rendered after the handler gave up still shows their navigation.
#[derive(Clone, Default)]
pub struct VisitorSlot(pub std::sync::Arc<std::sync::Mutex<Option<SeenVisitor>>>);

#[derive(Clone)]
pub struct SeenVisitor {
    pub name: String,
    pub is_admin: bool,
    pub csrf: String,
}

/// Marks a response as an error page, with its words, so it can be drawn
/// again with the visitor's navigation.
#[derive(Clone)]
pub struct ErrorMarker {
    pub status: StatusCode,
    pub message: String,
}

/// Some visitor, or nobody (the sign-in and share pages).
pub struct MaybeVisitor(pub Option<Visitor>);

impl FromRequestParts<WebState> for MaybeVisitor {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, ConsoleError> {
        match Visitor::from_request_parts(parts, state).await {
            Ok(visitor) => Ok(Self(Some(visitor))),
            Err(ConsoleError::SignIn { .. }) => Ok(Self(None)),
            Err(other) => Err(other),
        }
    }
}

/// A notice for the next page: whether it reports success or a problem,
/// and its words.
#[derive(Debug, Clone)]
pub struct Flash {
    pub ok: bool,
    pub message: String,
}

impl Flash {
    pub fn from_headers(headers: &axum::http::HeaderMap) -> Option<Flash> {
        let raw = cookie::cookie(headers, FLASH_COOKIE)?;
        let text = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .ok()?;
        let (kind, message) = text.split_once(':')?;
        Some(Flash {
            ok: kind == "ok",
            message: message.chars().take(500).collect(),
        })
    }

    fn cookie_value(&self) -> String {
        // Encoded, a long notice could outgrow what a cookie may hold.
        let message: String = self.message.chars().take(300).collect();
        let text = format!("{}:{message}", if self.ok { "ok" } else { "error" });
        percent_encoding::utf8_percent_encode(&text, percent_encoding::NON_ALPHANUMERIC).to_string()
    }
}

/// A redirect after a form (so reloading the next page repeats nothing),
/// with an optional notice for it.
pub fn redirect(to: &str, flash: Option<Flash>) -> Response {
    let mut response = (
        StatusCode::SEE_OTHER,
        [(
            header::LOCATION,
            HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/ui/")),
        )],
    )
        .into_response();
    if let Some(flash) = flash {
        response.headers_mut().append(
            header::SET_COOKIE,
            cookie::set_cookie(FLASH_COOKIE, &flash.cookie_value(), 60, false),
        );
    }
    response
}

/// Redirects with a success notice.
pub fn done(to: &str, message: impl Into<String>) -> Response {
    redirect(
        to,
        Some(Flash {
            ok: true,
            message: message.into(),
        }),
    )
}

/// Redirects with a problem to show on the page it leads back to; the
/// audit log records the request as refused (400).
pub fn failed(to: &str, message: impl Into<String>) -> Response {
    refused_with(to, message.into(), StatusCode::BAD_REQUEST)
}

/// Redirects with a service error in words; the audit log keeps the
/// status the JSON API would have answered.
pub fn refused(to: &str, error: CoreError) -> Response {
    let message = super::words::for_error(&error);
    refused_with(
        to,
        message,
        crate::web::api::error::ApiError::from(error).status,
    )
}

fn refused_with(to: &str, message: String, status: StatusCode) -> Response {
    let mut response = redirect(to, Some(Flash { ok: false, message }));
    response
        .extensions_mut()
        .insert(crate::web::api::AuditStatus(status));
    response
}

/// The largest form the console takes (uploads use multipart and stream).
const FORM_LIMIT: usize = 256 * 1024;

/// The fields of a submitted form whose `csrf` field matched the session.
pub struct CsrfForm(pub FormFields);

pub struct FormFields(Vec<(String, String)>);

impl FormFields {
    /// The first value of `name`, trimmed; empty when absent.
    pub fn text(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .unwrap_or_default()
    }

    /// The value of `name` as given (passwords keep their spaces).
    pub fn raw(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }

    /// Every value of a repeated field (checkboxes).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Reads a urlencoded body of at most [`FORM_LIMIT`] bytes.
pub async fn read_form(request: Request) -> Result<FormFields, ConsoleError> {
    let bytes = axum::body::to_bytes(request.into_body(), FORM_LIMIT)
        .await
        .map_err(|_| {
            ConsoleError::status(
                StatusCode::PAYLOAD_TOO_LARGE,
                "That form was too large to accept.",
            )
        })?;
    Ok(FormFields(
        url::form_urlencoded::parse(&bytes)
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect(),
    ))
}

impl FromRequest<WebState> for CsrfForm {
    type Rejection = ConsoleError;

    async fn from_request(request: Request, _state: &WebState) -> Result<Self, ConsoleError> {
        let token = cookie::session_token(request.headers()).map(str::to_owned);
        let fields = read_form(request).await?;
        match token {
            Some(token) if cookie::csrf_matches(&token, fields.raw("csrf")) => Ok(CsrfForm(fields)),
            _ => Err(ConsoleError::csrf()),
        }
    }
}

/// Why a console page could not be shown.
#[derive(Debug)]
pub enum ConsoleError {
    /// Nobody signed in: go to the sign-in page, then back to `next`.
    SignIn { next: String },
    /// Shown as a page with this status and these words.
    Page { status: StatusCode, message: String },
}

impl ConsoleError {
    pub fn status(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Page {
            status,
            message: message.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::status(StatusCode::NOT_FOUND, what)
    }

    pub fn csrf() -> Self {
        Self::status(
            StatusCode::FORBIDDEN,
            "This form has expired or did not come from this site. Go back, reload the page and try again.",
        )
    }
}

impl From<CoreError> for ConsoleError {
    fn from(error: CoreError) -> Self {
        let message = super::words::for_error(&error);
        Self::status(
            crate::web::api::error::ApiError::from(error).status,
            message,
        )
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            ConsoleError::SignIn { next } => {
                let target = format!(
                    "/ui/sign-in?next={}",
                    percent_encoding::utf8_percent_encode(
                        &next,
                        percent_encoding::NON_ALPHANUMERIC
                    )
                );
                redirect(&target, None)
            }
            ConsoleError::Page { status, message } => {
                let mut response = pages::error_page(status, &message, None);
                *response.status_mut() = status;
                response
                    .extensions_mut()
                    .insert(ErrorMarker { status, message });
                response
            }
        }
    }
}
