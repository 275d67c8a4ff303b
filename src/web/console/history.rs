//! History from the audit log: a person's own actions (`/ui/history`) and,
//! for admins, everyone's (`/ui/admin/audit`, with an NDJSON export),
//! filtered by action, bucket, user and dates, newest first, paged by
//! cursor.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::pages::{Chrome, render};
use super::session::{ConsoleError, Visitor};
use super::words;
use crate::model::AuditFilter;
use crate::web::WebState;

/// The actions offered in the filter, with the words shown for them.
const ACTIONS: &[(&str, &str)] = &[
    ("auth.login", "sign-in"),
    ("auth.logout", "sign-out"),
    ("object.put", "upload (one file)"),
    ("object.upload_form", "upload (form)"),
    ("upload.complete", "upload (in parts)"),
    ("s3:PutObject", "S3 upload"),
    ("object.get", "download"),
    ("s3:GetObject", "S3 download"),
    ("object.get_shared", "download by share link"),
    ("object.delete", "delete"),
    ("s3:DeleteObject", "S3 delete"),
    ("object.share", "share"),
    ("object.rename", "rename"),
    ("bucket.create", "bucket created"),
    ("bucket.delete", "bucket deleted"),
    ("key.create", "key created"),
    ("key.revoke", "key revoked"),
    ("user.password_change", "password changed"),
    ("user.create", "user created"),
    ("user.disable", "user disabled"),
    ("user.enable", "user enabled"),
    ("user.delete", "user deleted"),
    ("quota.set_user", "quota set"),
    ("backup.*", "backup, restore, forget, mirror"),
];

const PAGE: i64 = 100;

#[derive(Deserialize, Default)]
pub struct HistoryQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    bucket: String,
    #[serde(default)]
    actor: String,
    /// `YYYY-MM-DD`, inclusive.
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    /// The id of the last record of the previous page.
    before: Option<i64>,
}

pub struct HistoryRow {
    when: String,
    actor: String,
    action: String,
    target: String,
    status: u16,
    ok: bool,
    bytes: String,
    /// What a backup run reported about itself, in words.
    note: Option<String>,
}

#[derive(Template)]
#[template(path = "console/history.html")]
struct HistoryPage {
    chrome: Chrome,
    heading: &'static str,
    base: &'static str,
    everyone: bool,
    actions: &'static [(&'static str, &'static str)],
    action: String,
    bucket: String,
    actor: String,
    from: String,
    to: String,
    rows: Vec<HistoryRow>,
    older: Option<String>,
    export_url: String,
}

/// A backup run's report in a line: what, from where to where, and how it
/// went with its figures.
fn run_note(detail: &str) -> Option<String> {
    let run: serde_json::Value = serde_json::from_str(detail).ok()?;
    let text = |name: &str| run[name].as_str().unwrap_or_default().to_owned();
    let count = |name: &str| run[name].as_u64().unwrap_or(0);
    let bytes = |name: &str| words::size(count(name) as i64);
    let route = format!(
        "{} {} → {}",
        text("kind"),
        text("source"),
        text("destination")
    );
    if run["phase"] == "started" {
        return Some(format!("{route}: started on {}", text("host")));
    }
    let mut note = format!(
        "{route}: {} on {}; {} files ({}) looked at, {} ({}) sent",
        text("status"),
        text("host"),
        count("files_scanned"),
        bytes("bytes_scanned"),
        count("files_sent"),
        bytes("bytes_sent"),
    );
    if count("files_deleted") > 0 || count("snapshots_removed") > 0 {
        note.push_str(&format!(
            ", {} snapshots and {} objects ({}) removed",
            count("snapshots_removed"),
            count("files_deleted"),
            bytes("bytes_deleted")
        ));
    }
    if count("errors") > 0 {
        note.push_str(&format!(", {} errors", count("errors")));
    }
    Some(note)
}

/// Midnight UTC of a `YYYY-MM-DD` day, in unix milliseconds.
fn day_start_ms(day: &str) -> Option<i64> {
    let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

fn query_string(q: &HistoryQuery, everyone: bool) -> String {
    let mut pairs = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in [
        ("action", &q.action),
        ("bucket", &q.bucket),
        ("from", &q.from),
        ("to", &q.to),
    ] {
        if !value.is_empty() {
            pairs.append_pair(name, value);
        }
    }
    if everyone && !q.actor.is_empty() {
        pairs.append_pair("actor", &q.actor);
    }
    pairs.finish()
}

async fn history(
    state: &WebState,
    visitor: &Visitor,
    query: HistoryQuery,
    everyone: bool,
) -> Result<Response, ConsoleError> {
    let who = &visitor.principal;
    let bad_date = |what: &str| {
        ConsoleError::status(
            axum::http::StatusCode::BAD_REQUEST,
            format!("The {what} date is not a date; use the date picker or YYYY-MM-DD."),
        )
    };
    let from_ms = match query.from.as_str() {
        "" => None,
        day => Some(day_start_ms(day).ok_or_else(|| bad_date("from"))?),
    };
    let to_ms = match query.to.as_str() {
        "" => None,
        day => Some(day_start_ms(day).ok_or_else(|| bad_date("to"))? + 86_400_000 - 1),
    };
    let filter = AuditFilter {
        actor_id: (!everyone).then(|| who.user_id.clone()),
        actor: (everyone && !query.actor.is_empty()).then(|| query.actor.clone()),
        action: (!query.action.is_empty() && !query.action.ends_with('*'))
            .then(|| query.action.clone()),
        action_prefix: query.action.strip_suffix('*').map(str::to_owned),
        bucket: (!query.bucket.is_empty()).then(|| query.bucket.clone()),
        status: None,
        from_ms,
        to_ms,
        before_id: query.before,
    };
    let records = state.store.audit_page(who, &filter, PAGE).await?;
    let base = if everyone {
        "/ui/admin/audit"
    } else {
        "/ui/history"
    };
    let filters = query_string(&query, everyone);
    let older = (records.len() as i64 == PAGE)
        .then(|| records.last().map(|r| r.id))
        .flatten()
        .map(|id| {
            let joiner = if filters.is_empty() { "" } else { "&" };
            format!("{base}?{filters}{joiner}before={id}")
        });
    let rows = records
        .into_iter()
        .map(|r| {
            let target = match (&r.bucket, &r.key, &r.target) {
                (Some(b), Some(k), _) => format!("{b}/{k}"),
                (Some(b), None, _) => b.clone(),
                (None, _, Some(t)) => t.clone(),
                _ => String::new(),
            };
            HistoryRow {
                when: words::time(r.time_ms),
                actor: r.actor,
                action: r.action,
                target,
                ok: r.status < 400,
                status: r.status,
                bytes: words::size((r.bytes_in + r.bytes_out) as i64),
                note: r.detail.as_deref().and_then(run_note),
            }
        })
        .collect();
    let export_url = {
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        pairs.append_pair("format", "ndjson");
        for (name, value) in [
            ("action", &query.action),
            ("bucket", &query.bucket),
            ("actor", &query.actor),
        ] {
            if !value.is_empty() {
                pairs.append_pair(name, value);
            }
        }
        if let Some(from) = from_ms {
            pairs.append_pair("from", &from.to_string());
        }
        if let Some(to) = to_ms {
            pairs.append_pair("to", &to.to_string());
        }
        format!("/api/v1/audit?{}", pairs.finish())
    };
    let heading = if everyone {
        "Audit log"
    } else {
        "Your history"
    };
    Ok(render(HistoryPage {
        chrome: Chrome::for_visitor(visitor, heading, if everyone { "admin" } else { "history" }),
        heading,
        base,
        everyone,
        actions: ACTIONS,
        action: query.action,
        bucket: query.bucket,
        actor: query.actor,
        from: query.from,
        to: query.to,
        rows,
        older,
        export_url,
    }))
}

/// `GET /ui/history`: what this person did.
pub async fn own(
    State(state): State<WebState>,
    visitor: Visitor,
    Query(query): Query<HistoryQuery>,
) -> Result<Response, ConsoleError> {
    history(&state, &visitor, query, false).await
}

/// `GET /ui/admin/audit`: what everyone did (admins).
pub async fn everyone(
    State(state): State<WebState>,
    visitor: Visitor,
    Query(query): Query<HistoryQuery>,
) -> Result<Response, ConsoleError> {
    super::admin::require_admin(&visitor)?;
    history(&state, &visitor, query, true).await
}
