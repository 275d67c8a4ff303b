//! Usage you can see: `/ui/usage` (a person's own) and `/ui/admin/usage`
//! (every user, sortable, and the whole server; `?user=` for one user).
//! Bytes stored over time, bytes uploaded and downloaded and requests per
//! day, for the last 30, 90 or 365 days, in total or for one bucket, with
//! the quota where one is set. The plots are SVG drawn here; the numbers
//! they show are written beside them.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::admin::require_admin;
use super::pages::{Chrome, render};
use super::plot;
use super::session::{ConsoleError, Visitor};
use super::words;
use crate::core::audit::{UsageReport, UsageSubject};
use crate::web::WebState;

const PERIODS: [u32; 3] = [30, 90, 365];

#[derive(Deserialize, Default)]
pub struct UsageQuery {
    days: Option<u32>,
    #[serde(default)]
    bucket: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    sort: String,
}

/// A number of bytes in words, with the exact count for machines.
pub struct Amount {
    words: String,
    bytes: i64,
}

impl Amount {
    fn of(bytes: i64) -> Self {
        Self {
            words: words::size(bytes),
            bytes,
        }
    }
}

pub struct Period {
    days: u32,
    href: String,
    current: bool,
}

pub struct Plot {
    title: String,
    svg: String,
}

pub struct QuotaBar {
    used: i64,
    max: i64,
    high: i64,
    words: String,
}

pub struct BucketRow {
    name: String,
    objects: i64,
    stored: String,
    uploaded: String,
    downloaded: String,
    requests: i64,
}

pub struct UserRow {
    name: String,
    /// Its own usage page; none for a deleted user.
    href: Option<String>,
    objects: i64,
    stored: String,
    uploaded: String,
    downloaded: String,
    requests: i64,
}

pub struct SortLink {
    label: &'static str,
    href: String,
    /// `ascending` or `descending` for the column the table is sorted by.
    current: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "console/usage.html")]
struct UsagePage {
    chrome: Chrome,
    heading: String,
    everyone: bool,
    base: &'static str,
    user: String,
    days: u32,
    periods: Vec<Period>,
    bucket: String,
    bucket_choices: Vec<String>,
    stored: Amount,
    objects: i64,
    uploaded: Amount,
    downloaded: Amount,
    requests: i64,
    quota: Option<QuotaBar>,
    plots: Vec<Plot>,
    buckets: Vec<BucketRow>,
    users: Vec<UserRow>,
    sorts: Vec<SortLink>,
}

fn link(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        query.append_pair(name, value);
    }
    let query = query.finish();
    if query.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{query}")
    }
}

/// `GET /ui/usage`: the visitor's own usage.
pub async fn own(
    State(state): State<WebState>,
    visitor: Visitor,
    Query(query): Query<UsageQuery>,
) -> Result<Response, ConsoleError> {
    page(&state, &visitor, query, false).await
}

/// `GET /ui/admin/usage`: every user's and the server's (admins).
pub async fn everyone(
    State(state): State<WebState>,
    visitor: Visitor,
    Query(query): Query<UsageQuery>,
) -> Result<Response, ConsoleError> {
    require_admin(&visitor)?;
    page(&state, &visitor, query, true).await
}

async fn page(
    state: &WebState,
    visitor: &Visitor,
    query: UsageQuery,
    everyone: bool,
) -> Result<Response, ConsoleError> {
    let days = query.days.filter(|d| PERIODS.contains(d)).unwrap_or(30);
    let subject = match (everyone, query.user.is_empty()) {
        (false, _) => UsageSubject::Own,
        (true, true) => UsageSubject::Server,
        (true, false) => UsageSubject::User(query.user.clone()),
    };
    let bucket = (!query.bucket.is_empty()).then_some(query.bucket.as_str());
    let report = state
        .store
        .usage_report(&visitor.principal, subject, bucket, days)
        .await?;
    let bucket_choices = report.bucket_names.clone();
    let base = if everyone {
        "/ui/admin/usage"
    } else {
        "/ui/usage"
    };
    let days_text = days.to_string();
    let periods = PERIODS
        .iter()
        .map(|&d| Period {
            days: d,
            href: link(
                base,
                &[
                    ("days", &d.to_string()),
                    ("user", &query.user),
                    ("bucket", &query.bucket),
                ],
            ),
            current: d == days,
        })
        .collect();
    let (users, sorts) = match everyone && query.user.is_empty() {
        true => user_rows(state, visitor, &query.sort, days, &days_text).await?,
        false => (Vec::new(), Vec::new()),
    };
    let heading = match (&report.user, everyone) {
        (Some(name), true) => format!("Usage of {name}"),
        (None, _) => "Usage of the whole server".to_owned(),
        (Some(_), false) => "Your usage".to_owned(),
    };
    let title = heading.clone();
    Ok(render(UsagePage {
        chrome: Chrome::for_visitor(visitor, title, if everyone { "admin" } else { "usage" }),
        heading,
        everyone,
        base,
        user: query.user.clone(),
        days,
        periods,
        bucket: query.bucket.clone(),
        bucket_choices,
        stored: Amount::of(report.totals.bytes_stored),
        objects: report.totals.objects,
        uploaded: Amount::of(report.totals.bytes_in),
        downloaded: Amount::of(report.totals.bytes_out),
        requests: report.totals.requests,
        quota: report.quota.map(|max| QuotaBar {
            used: report.totals.bytes_stored.min(max),
            max: max.max(1),
            high: max / 10 * 9,
            words: format!(
                "{} of {} ({}%)",
                words::size(report.totals.bytes_stored),
                words::size(max),
                report.totals.bytes_stored.saturating_mul(100) / max.max(1)
            ),
        }),
        plots: plots(&report),
        buckets: report
            .buckets
            .iter()
            .map(|b| BucketRow {
                name: b.bucket.clone(),
                objects: b.objects,
                stored: words::size(b.stored),
                uploaded: words::size(b.bytes_in),
                downloaded: words::size(b.bytes_out),
                requests: b.requests,
            })
            .collect(),
        users,
        sorts,
    }))
}

fn plots(report: &UsageReport) -> Vec<Plot> {
    let days: Vec<String> = report.days.iter().map(|d| d.day.clone()).collect();
    let series = |title: &str, values: Vec<Option<i64>>, bytes: bool| {
        let svg = if bytes {
            plot::bars(title, &days, &values, words::size)
        } else {
            plot::bars(title, &days, &values, |n| n.to_string())
        };
        Plot {
            title: title.to_owned(),
            svg,
        }
    };
    vec![
        series(
            "Bytes stored",
            report.days.iter().map(|d| d.stored).collect(),
            true,
        ),
        series(
            "Bytes uploaded per day",
            report.days.iter().map(|d| Some(d.bytes_in)).collect(),
            true,
        ),
        series(
            "Bytes downloaded per day",
            report.days.iter().map(|d| Some(d.bytes_out)).collect(),
            true,
        ),
        series(
            "Requests per day",
            report.days.iter().map(|d| Some(d.requests)).collect(),
            false,
        ),
    ]
}

/// Every user's figures over the period, sorted as asked (most stored
/// first by default), with the links that sort by each column.
async fn user_rows(
    state: &WebState,
    visitor: &Visitor,
    sort: &str,
    days: u32,
    days_text: &str,
) -> Result<(Vec<UserRow>, Vec<SortLink>), ConsoleError> {
    let since = chrono::Utc::now() - chrono::Duration::days(i64::from(days) - 1);
    let since = since.format("%Y-%m-%d").to_string();
    let mut totals = state
        .store
        .usage_by_user(&visitor.principal, Some(&since))
        .await?;
    let sort = match sort {
        "name" | "uploaded" | "downloaded" | "requests" => sort,
        _ => "stored",
    };
    match sort {
        "name" => totals.sort_by(|a, b| a.name.cmp(&b.name)),
        "uploaded" => totals.sort_by_key(|u| std::cmp::Reverse(u.totals.bytes_in)),
        "downloaded" => totals.sort_by_key(|u| std::cmp::Reverse(u.totals.bytes_out)),
        "requests" => totals.sort_by_key(|u| std::cmp::Reverse(u.totals.requests)),
        _ => totals.sort_by_key(|u| std::cmp::Reverse(u.totals.bytes_stored)),
    }
    let rows = totals
        .into_iter()
        .map(|u| (u.name, u.deleted, u.totals))
        .map(|(name, deleted, t)| UserRow {
            // A deleted user has no page of its own.
            href: (!deleted)
                .then(|| link("/ui/admin/usage", &[("user", &name), ("days", days_text)])),
            name,
            objects: t.objects,
            stored: words::size(t.bytes_stored),
            uploaded: words::size(t.bytes_in),
            downloaded: words::size(t.bytes_out),
            requests: t.requests,
        })
        .collect();
    let sorts = [
        ("name", "User"),
        ("stored", "Stored"),
        ("uploaded", "Uploaded"),
        ("downloaded", "Downloaded"),
        ("requests", "Requests"),
    ]
    .into_iter()
    .map(|(key, label)| SortLink {
        label,
        href: link("/ui/admin/usage", &[("sort", key), ("days", days_text)]),
        current: (key == sort).then_some(if key == "name" {
            "ascending"
        } else {
            "descending"
        }),
    })
    .collect();
    Ok((rows, sorts))
}
