//! The console's session cookie and the CSRF token bound to it, shared by
//! the console pages and the JSON API (whose cookie-authenticated callers
//! must send the token too). The cookie carries an ordinary session token
//! (the same server-side sessions as `Authorization: Bearer`), so ending
//! the session on any node ends it everywhere.

use axum::http::{HeaderMap, HeaderValue, header};
use sha2::{Digest, Sha256};

/// The cookie that carries the session token.
pub const SESSION_COOKIE: &str = "cistern_session";

/// The header a script sends the CSRF token in (forms send the `csrf`
/// field).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The session token of a cookie-authenticated request. A request with
/// two session cookies has none: one may have been planted for a narrower
/// path by a page on another port of this host.
pub fn session_token(headers: &HeaderMap) -> Option<&str> {
    let count = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter(|pair| pair.trim().starts_with(&format!("{SESSION_COOKIE}=")))
        .count();
    if count > 1 {
        return None;
    }
    cookie(headers, SESSION_COOKIE)
}

/// The CSRF token for a session: derived from the session token, which a
/// page from another site cannot read (the cookie is `HttpOnly`), so it
/// cannot compute this either. Nothing extra is stored.
pub fn csrf_token(session_token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"cistern csrf v1\0")
        .chain_update(session_token.as_bytes())
        .finalize();
    hex::encode(&digest[..16])
}

/// Whether `offered` is the CSRF token of this session (compared through
/// digests, so the time taken does not tell where they differ).
pub fn csrf_matches(session_token: &str, offered: &str) -> bool {
    Sha256::digest(csrf_token(session_token).as_bytes()) == Sha256::digest(offered.as_bytes())
}

/// Whether cookies must be marked `Secure`: the console's public URL is
/// https, or a proxy in front says the request came over TLS.
pub fn wants_secure(headers: &HeaderMap, public_url: Option<&str>) -> bool {
    public_url.is_some_and(|u| u.starts_with("https://"))
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value for `name`; `max_age_secs` 0 removes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    set_cookie_at(name, value, "/", max_age_secs, secure)
}

/// A `Set-Cookie` value for `name` sent only under `path`.
pub fn set_cookie_at(
    name: &str,
    value: &str,
    path: &str,
    max_age_secs: u64,
    secure: bool,
) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_session_among_other_cookies() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; cistern_session=cs_x ; b=2"),
        );
        assert_eq!(session_token(&headers), Some("cs_x"));
        headers.insert(header::COOKIE, HeaderValue::from_static("cistern_session="));
        assert_eq!(session_token(&headers), None);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("cistern_session=cs_planted; cistern_session=cs_real"),
        );
        assert_eq!(session_token(&headers), None);
    }

    #[test]
    fn the_csrf_token_belongs_to_one_session() {
        let token = csrf_token("cs_one");
        assert!(csrf_matches("cs_one", &token));
        assert!(!csrf_matches("cs_two", &token));
        assert!(!csrf_matches("cs_one", ""));
    }

    #[test]
    fn cookies_are_http_only_and_strict() {
        let value = set_cookie(SESSION_COOKIE, "cs_x", 60, true);
        let text = value.to_str().unwrap();
        assert!(text.contains("HttpOnly") && text.contains("SameSite=Strict"));
        assert!(text.ends_with("; Secure"));
    }
}
