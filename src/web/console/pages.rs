//! The console's page templates (in `templates/console/`, checked when the
//! binary is compiled) and what every page shares: the [`Chrome`] around
//! the content (title, navigation, the visitor's name, the CSRF token, a
//! notice) and rendering to a response.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::assets;
use super::session::{Flash, SeenVisitor, Visitor};

/// What the layout around every page needs.
pub struct Chrome {
    pub title: String,
    /// The signed-in person's name; `None` shows no navigation.
    pub user: Option<String>,
    pub is_admin: bool,
    pub csrf: String,
    pub flash: Option<Flash>,
    /// Which navigation entry is current.
    pub section: &'static str,
}

impl Chrome {
    pub fn for_visitor(visitor: &Visitor, title: impl Into<String>, section: &'static str) -> Self {
        Self {
            title: title.into(),
            user: Some(visitor.principal.name.clone()),
            is_admin: visitor.principal.is_admin(),
            csrf: visitor.csrf.clone(),
            flash: visitor.flash.clone(),
            section,
        }
    }

    /// The layout for someone not signed in.
    pub fn anonymous(title: impl Into<String>, flash: Option<Flash>) -> Self {
        Self {
            title: title.into(),
            user: None,
            is_admin: false,
            csrf: String::new(),
            flash,
            section: "",
        }
    }

    /// The URL of an embedded file, for the templates.
    pub fn asset(&self, name: &str) -> String {
        assets::url(name)
    }
}

/// Renders a page; a template that fails to render is a bug, shown as
/// the plain error page.
pub fn render(page: impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a console template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    chrome: Chrome,
    heading: String,
    message: String,
}

/// A page that says what went wrong and where to go next, with the
/// navigation of the visitor when one is signed in.
pub fn error_page(status: StatusCode, message: &str, visitor: Option<&SeenVisitor>) -> Response {
    let heading = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::TOO_MANY_REQUESTS => "Please wait",
        s if s.is_server_error() => "Something went wrong",
        _ => "That did not work",
    };
    let mut chrome = Chrome::anonymous(heading, None);
    if let Some(visitor) = visitor {
        chrome.user = Some(visitor.name.clone());
        chrome.is_admin = visitor.is_admin;
        chrome.csrf = visitor.csrf.clone();
    }
    render(ErrorPage {
        chrome,
        heading: heading.to_owned(),
        message: message.to_owned(),
    })
}
