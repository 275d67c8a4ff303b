//! Signing in, up and out, and the account page (password change, sign
//! out everywhere). Sign-in goes through the same throttled password check
//! as the API and opens the same kind of server-side session; the cookie
//! only carries its token.

use askama::Template;
use axum::extract::{Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::pages::{Chrome, render};
use super::session::{
    ConsoleError, CsrfForm, Flash, MaybeVisitor, Visitor, done, failed, read_form, refused,
};
use super::words;
use crate::core::CoreError;
use crate::web::api::{ApiActor, peer_ip};
use crate::web::{WebState, cookie};

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    chrome: Chrome,
    next: String,
    name: String,
    allow_signup: bool,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Only console pages of this site are places to go back to after signing
/// in (no `//evil.example`).
fn safe_next(next: &str) -> &str {
    if next.starts_with("/ui/") && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/ui/buckets"
    }
}

/// `GET /ui/sign-in`: the form, or straight on for someone signed in.
pub async fn sign_in_page(
    State(state): State<WebState>,
    MaybeVisitor(visitor): MaybeVisitor,
    Query(query): Query<NextQuery>,
    headers: axum::http::HeaderMap,
) -> Response {
    let next = query.next.unwrap_or_default();
    if visitor.is_some() {
        return super::session::redirect(safe_next(&next), None);
    }
    let flash = super::session::Flash::from_headers(&headers);
    render(SignInPage {
        chrome: Chrome::anonymous("Sign in", flash),
        next,
        name: String::new(),
        allow_signup: state.api.allow_signup,
    })
}

/// `POST /ui/sign-in`.
pub async fn sign_in(State(state): State<WebState>, parts: Parts, request: Request) -> Response {
    let fields = match read_form(request).await {
        Ok(fields) => fields,
        Err(e) => return e.into_response(),
    };
    let name = fields.text("name").to_owned();
    ApiActor::set(&parts, None, Some(&name));
    let next = safe_next(fields.text("next")).to_owned();
    let outcome = match state
        .store
        .login_from(&name, fields.raw("password"), peer_ip(&parts))
        .await
    {
        Ok(who) => {
            ApiActor::set(&parts, Some(&who), None);
            state
                .store
                .open_session(&who, state.api.session_ttl)
                .await
                .map(|session| (who, session))
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok((_, session)) => {
            let mut response = super::session::redirect(&next, None);
            response.headers_mut().append(
                header::SET_COOKIE,
                cookie::set_cookie(
                    cookie::SESSION_COOKIE,
                    &session.token,
                    state.api.session_ttl.as_secs(),
                    cookie::wants_secure(&parts.headers, state.api.public_url.as_deref()),
                ),
            );
            response
        }
        Err(error) => {
            // The same status the JSON API answers for this error.
            let message = words::for_error(&error);
            let status = crate::web::api::error::ApiError::from(error).status;
            let mut response = render(SignInPage {
                chrome: Chrome::anonymous("Sign in", Some(Flash { ok: false, message })),
                next,
                name,
                allow_signup: state.api.allow_signup,
            });
            *response.status_mut() = status;
            response
        }
    }
}

#[derive(Template)]
#[template(path = "console/sign_up.html")]
struct SignUpPage {
    chrome: Chrome,
    name: String,
}

fn signup_disabled() -> ConsoleError {
    ConsoleError::not_found(words::for_error(&CoreError::SignupDisabled))
}

/// `GET /ui/sign-up`, when the server allows it.
pub async fn sign_up_page(State(state): State<WebState>) -> Result<Response, ConsoleError> {
    if !state.api.allow_signup {
        return Err(signup_disabled());
    }
    Ok(render(SignUpPage {
        chrome: Chrome::anonymous("Sign up", None),
        name: String::new(),
    }))
}

/// `POST /ui/sign-up`: creates the account, then the person signs in.
pub async fn sign_up(
    State(state): State<WebState>,
    parts: Parts,
    request: Request,
) -> Result<Response, ConsoleError> {
    if !state.api.allow_signup {
        return Err(signup_disabled());
    }
    let fields = read_form(request).await?;
    let name = fields.text("name").to_owned();
    ApiActor::set(&parts, None, Some(&name));
    let problem = if fields.raw("password") != fields.raw("repeat") {
        Some("The two passwords differ; type the same password twice.".to_owned())
    } else {
        match state
            .store
            .create_user(&name, fields.raw("password"), "user")
            .await
        {
            Ok(_) => None,
            Err(e) => Some(words::for_error(&e)),
        }
    };
    let Some(problem) = problem else {
        return Ok(done(
            "/ui/sign-in",
            format!("Your account {name} is ready. Sign in with it."),
        ));
    };
    let mut response = render(SignUpPage {
        chrome: Chrome::anonymous(
            "Sign up",
            Some(Flash {
                ok: false,
                message: problem,
            }),
        ),
        name,
    });
    *response.status_mut() = StatusCode::BAD_REQUEST;
    Ok(response)
}

/// A response that also removes the session cookie.
fn signed_out(response: Response, headers: &axum::http::HeaderMap, state: &WebState) -> Response {
    let mut response = response;
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie::set_cookie(
            cookie::SESSION_COOKIE,
            "",
            0,
            cookie::wants_secure(headers, state.api.public_url.as_deref()),
        ),
    );
    response
}

/// `POST /ui/sign-out`: ends this session on the server, so it is over on
/// every node and in every tab at once.
pub async fn sign_out(
    State(state): State<WebState>,
    visitor: Visitor,
    headers: axum::http::HeaderMap,
    CsrfForm(_): CsrfForm,
) -> Result<Response, ConsoleError> {
    state.store.close_session(&visitor.principal).await?;
    Ok(signed_out(
        done("/ui/sign-in", "You are signed out."),
        &headers,
        &state,
    ))
}

/// `POST /ui/sign-out-everywhere`: ends every session of this person.
pub async fn sign_out_everywhere(
    State(state): State<WebState>,
    visitor: Visitor,
    headers: axum::http::HeaderMap,
    CsrfForm(_): CsrfForm,
) -> Result<Response, ConsoleError> {
    state
        .store
        .revoke_other_sessions(&visitor.principal.user_id, None)
        .await?;
    Ok(signed_out(
        done("/ui/sign-in", "You are signed out on every device."),
        &headers,
        &state,
    ))
}

#[derive(Template)]
#[template(path = "console/account.html")]
struct AccountPage {
    chrome: Chrome,
    name: String,
    role: String,
}

/// `GET /ui/account`.
pub async fn account_page(visitor: Visitor) -> Response {
    render(AccountPage {
        chrome: Chrome::for_visitor(&visitor, "Your account", "account"),
        name: visitor.principal.name.clone(),
        role: visitor.principal.role.to_string(),
    })
}

/// `POST /ui/account/password`: the current password first, as anyone at
/// an unlocked screen could otherwise take the account over.
pub async fn change_password(
    State(state): State<WebState>,
    visitor: Visitor,
    parts: Parts,
    CsrfForm(fields): CsrfForm,
) -> Result<Response, ConsoleError> {
    const BACK: &str = "/ui/account";
    let who = &visitor.principal;
    if fields.raw("password") != fields.raw("repeat") {
        return Ok(failed(
            BACK,
            "The two new passwords differ; type the same one twice.",
        ));
    }
    if let Err(e) = state
        .store
        .login_from(&who.name, fields.raw("current"), peer_ip(&parts))
        .await
    {
        let message = match e {
            CoreError::BadLogin => "The current password is wrong.".to_owned(),
            other => words::for_error(&other),
        };
        return Ok(failed(BACK, message));
    }
    if let Err(e) = state
        .store
        .set_password(&who.name, fields.raw("password"))
        .await
    {
        return Ok(refused(BACK, e));
    }
    state
        .store
        .revoke_other_sessions(&who.user_id, who.session.as_deref())
        .await?;
    Ok(done(
        BACK,
        "Your password is changed. Other sessions are signed out.",
    ))
}
