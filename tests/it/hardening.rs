//! Hostile and careless clients: slow or silent connections are cut off,
//! oversized bodies are refused before they are read, a refused request's
//! body never bleeds into the next request, failed logins cannot lock a
//! user out, `/metrics` is not for everyone, and the JSON API names what
//! each action was done to.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// One HTTP/1.1 response read off a raw connection.
struct RawResponse {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Reads one response (head and a `content-length` body) from `stream`,
/// keeping bytes past it in `leftover`; `None` if the server closed first.
async fn read_response(stream: &mut TcpStream, leftover: &mut Vec<u8>) -> Option<RawResponse> {
    let deadline = Duration::from_secs(10);
    loop {
        if let Some(end) = leftover.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&leftover[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if leftover.len() >= end + 4 + length {
                let body = leftover[end + 4..end + 4 + length].to_vec();
                leftover.drain(..end + 4 + length);
                let status = head.split(' ').nth(1)?.parse().ok()?;
                return Some(RawResponse { status, head, body });
            }
        }
        let mut chunk = [0u8; 16384];
        let n = tokio::time::timeout(deadline, stream.read(&mut chunk))
            .await
            .expect("the server answers or closes in time")
            .ok()?;
        if n == 0 {
            return None;
        }
        leftover.extend_from_slice(&chunk[..n]);
    }
}

/// Waits until the server closes `stream`, failing after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration, what: &str) -> Duration {
    let started = Instant::now();
    let mut sink = [0u8; 4096];
    loop {
        match tokio::time::timeout(within, stream.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("{what}: the connection was still open after {within:?}"),
        }
    }
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("connect")
}

const SHORT_TIMEOUTS: &[&str] = &[
    "--header-timeout-secs",
    "1",
    "--body-idle-timeout-secs",
    "1",
    "--keep-alive-secs",
    "2",
];

#[tokio::test]
async fn slow_and_silent_clients_are_cut_off_on_both_ports() {
    let app = spawn_app_with(SHORT_TIMEOUTS).await;
    let s3 = app.client();
    s3.create_bucket()
        .bucket("slow")
        .send()
        .await
        .expect("bucket");
    for addr in [app.s3_addr, app.web_addr] {
        // A connection that never sends a byte.
        let mut silent = connect(addr).await;
        closed_within(
            &mut silent,
            Duration::from_secs(10),
            &format!("silent {addr}"),
        )
        .await;

        // Half a head.
        let mut half = connect(addr).await;
        half.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Wait: ")
            .await
            .expect("write");
        closed_within(&mut half, Duration::from_secs(10), &format!("half {addr}")).await;

        // A body that stops after 3 of 2 GiB.
        let mut stalled = connect(addr).await;
        let path = if addr == app.s3_addr {
            "/slow/big"
        } else {
            "/api/v1/buckets/slow/objects/big"
        };
        stalled
            .write_all(
                format!(
                    "PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\n\
                     Content-Length: 2147483648\r\n\r\nabc",
                    basic(ROOT_USER, ROOT_PASSWORD)
                )
                .as_bytes(),
            )
            .await
            .expect("write");
        closed_within(
            &mut stalled,
            Duration::from_secs(10),
            &format!("stalled {addr}"),
        )
        .await;

        // A kept-alive connection that goes quiet after its answer.
        let mut idle = connect(addr).await;
        idle.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut leftover = Vec::new();
        assert!(read_response(&mut idle, &mut leftover).await.is_some());
        let waited =
            closed_within(&mut idle, Duration::from_secs(10), &format!("idle {addr}")).await;
        assert!(
            waited >= Duration::from_millis(1500),
            "an idle connection gets the keep-alive time, not the header time: {waited:?}"
        );
    }
    assert!(
        s3.head_object()
            .bucket("slow")
            .key("big")
            .send()
            .await
            .is_err(),
        "nothing of the stalled upload is visible"
    );
    app.stop().await;
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

#[tokio::test]
async fn bodies_announced_too_large_are_refused_before_they_are_read() {
    let app = spawn_app_with(&["--max-object-size", "1000000"]).await;
    for (addr, request) in [
        (
            app.web_addr,
            "POST /api/v1/buckets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 2147483648\r\n\r\n",
        ),
        (
            app.web_addr,
            "PUT /api/v1/buckets/b/objects/k HTTP/1.1\r\nHost: x\r\nContent-Length: 1000001\r\n\r\n",
        ),
        (
            app.s3_addr,
            "PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 2147483648\r\n\r\n",
        ),
    ] {
        let mut stream = connect(addr).await;
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut leftover = Vec::new();
        let response = read_response(&mut stream, &mut leftover)
            .await
            .expect("an answer without sending the body");
        assert_eq!(response.status, 413, "{request}");
        let text = String::from_utf8_lossy(&response.body).into_owned();
        assert!(
            text.contains("too_large") || text.contains("EntityTooLarge"),
            "{text}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_refused_body_never_bleeds_into_the_next_request() {
    let app = spawn_app().await;
    let s3 = app.client();
    s3.create_bucket()
        .bucket("private")
        .send()
        .await
        .expect("bucket");
    put_bytes(&s3, "private", "x", b"x".to_vec()).await;
    let mut stream = connect(app.s3_addr).await;
    let mut leftover = Vec::new();
    let body = vec![b'G'; 2000];
    for round in 0..100 {
        // An anonymous PUT is refused before its body is read; half the
        // rounds send the body only after the refusal arrived.
        let head = format!(
            "PUT /private/x HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let follow_up = "GET /private/nothing HTTP/1.1\r\nHost: x\r\n\r\n";
        if round % 2 == 0 {
            let mut all = head.into_bytes();
            all.extend_from_slice(&body);
            all.extend_from_slice(follow_up.as_bytes());
            stream.write_all(&all).await.expect("write");
            let refused = read_response(&mut stream, &mut leftover)
                .await
                .expect("refusal");
            assert_eq!(refused.status, 403, "round {round}");
        } else {
            stream.write_all(head.as_bytes()).await.expect("write");
            let refused = read_response(&mut stream, &mut leftover)
                .await
                .expect("refusal");
            assert_eq!(refused.status, 403, "round {round}");
            let mut rest = body.clone();
            rest.extend_from_slice(follow_up.as_bytes());
            stream.write_all(&rest).await.expect("write");
        }
        let next = read_response(&mut stream, &mut leftover)
            .await
            .unwrap_or_else(|| panic!("round {round}: the connection stays usable"));
        let text = String::from_utf8_lossy(&next.body).into_owned();
        assert_eq!(next.status, 403, "round {round}: {text}");
        assert!(
            text.contains("AccessDenied"),
            "round {round}: the GET's own answer: {text}"
        );
    }
    assert_eq!(get_bytes(&s3, "private", "x").await, b"x");
    app.stop().await;
}

#[tokio::test]
async fn an_empty_body_expecting_continue_gets_a_fresh_connection() {
    let app = spawn_app().await;
    let mut stream = connect(app.web_addr).await;
    stream
        .write_all(
            b"PUT /api/v1/buckets/none/objects/k HTTP/1.1\r\nHost: x\r\n\
              Expect: 100-continue\r\nContent-Length: 0\r\n\r\n",
        )
        .await
        .expect("write");
    let mut leftover = Vec::new();
    let response = read_response(&mut stream, &mut leftover)
        .await
        .expect("answer");
    assert_eq!(response.status, 401);
    assert!(
        response
            .head
            .to_ascii_lowercase()
            .contains("connection: close"),
        "{}",
        response.head
    );
    closed_within(&mut stream, Duration::from_secs(5), "after an empty body").await;
    app.stop().await;
}

async fn login_from(app: &TestApp, local: &str, user: &str, password: &str) -> u16 {
    let client = reqwest::Client::builder()
        .local_address(local.parse::<std::net::IpAddr>().expect("address"))
        .build()
        .expect("client");
    client
        .post(app.web_url("/api/v1/auth/login"))
        .json(&json!({"name": user, "password": password}))
        .send()
        .await
        .expect("login")
        .status()
        .as_u16()
}

#[tokio::test]
async fn failures_from_another_address_never_lock_the_owner_out() {
    let app = spawn_app().await;
    let mut attacker = Vec::new();
    for _ in 0..8 {
        attacker.push(login_from(&app, "127.0.0.2", ROOT_USER, "guessing-wrong").await);
    }
    assert_eq!(&attacker[..5], [401; 5]);
    assert!(
        attacker[5..].iter().all(|s| *s == 429),
        "the failing address is slowed: {attacker:?}"
    );
    // More addresses join until the name counts as under attack.
    for address in ["127.0.0.4", "127.0.0.5", "127.0.0.6"] {
        for _ in 0..5 {
            assert_eq!(login_from(&app, address, ROOT_USER, "guess").await, 401);
        }
    }
    assert_eq!(
        login_from(&app, "127.0.0.1", ROOT_USER, ROOT_PASSWORD).await,
        200,
        "the owner's own address is not"
    );
    assert_eq!(
        login_from(&app, "127.0.0.3", ROOT_USER, "wrong-from-elsewhere").await,
        401,
        "a name under attack answers a new address at once"
    );
    assert_eq!(
        login_from(&app, "127.0.0.3", ROOT_USER, "wrong-again").await,
        429,
        "and slows it from its first failure"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_same_right_password_sent_side_by_side_is_never_throttled() {
    // A client sending HTTP Basic with parallel requests, as the first
    // requests after a start or after the memory of its check lapsed: the
    // throttle counts an attempt as a failure until it succeeds, so these
    // once looked like guessing and answered 429.
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    app.api().create_user("bystander", "a-long-password").await;
    for round in 0..3 {
        let attempts = (0..24).map(|_| {
            http.get(app.web_url("/api/v1/auth/me"))
                .basic_auth(ROOT_USER, Some(ROOT_PASSWORD))
                .send()
        });
        let statuses: Vec<u16> = futures::future::join_all(attempts)
            .await
            .iter()
            .map(|a| a.as_ref().expect("answer").status().as_u16())
            .collect();
        assert!(
            statuses.iter().all(|s| *s == 200),
            "round {round}: {statuses:?}"
        );
        // An account change forgets every remembered check.
        let action = if round % 2 == 0 { "disable" } else { "enable" };
        let changed = http
            .post(app.web_url(&format!("/api/v1/users/bystander/{action}")))
            .basic_auth(ROOT_USER, Some(ROOT_PASSWORD))
            .send()
            .await
            .expect("answer");
        assert!(
            changed.status().is_success(),
            "{action}: {}",
            changed.status()
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn password_checks_wait_in_a_bounded_queue() {
    let app = spawn_app_with(&["--password-checks", "1", "--password-queue-ms", "1"]).await;
    let http = reqwest::Client::new();
    let attempts = (0..16).map(|i| {
        http.get(app.web_url("/api/v1/auth/me"))
            .basic_auth(format!("nobody-{i}"), Some("made-up-password"))
            .send()
    });
    let answers = futures::future::join_all(attempts).await;
    let statuses: Vec<u16> = answers
        .iter()
        .map(|a| a.as_ref().expect("answer").status().as_u16())
        .collect();
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 503),
        "{statuses:?}"
    );
    let busy = answers
        .iter()
        .flatten()
        .find(|a| a.status() == 503)
        .expect("some checks found the queue full");
    assert_eq!(busy.headers()["retry-after"], "1");
    let live = http
        .get(app.web_url("/health/live"))
        .send()
        .await
        .expect("live");
    assert_eq!(live.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn metrics_need_a_credential_unless_made_public() {
    let app = spawn_app_with(&["--metrics-token", "scrape-secret"]).await;
    let http = reqwest::Client::new();
    let url = app.web_url("/metrics");
    let anonymous = http.get(&url).send().await.expect("metrics");
    assert_eq!(anonymous.status(), 401);
    let body: Value = anonymous.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unauthorized");
    let wrong = http.get(&url).bearer_auth("guess").send().await.expect("m");
    assert_eq!(wrong.status(), 401);
    let token = http
        .get(&url)
        .bearer_auth("scrape-secret")
        .send()
        .await
        .expect("m");
    assert_eq!(token.status(), 200);
    assert!(token.text().await.expect("text").contains("cistern_"));
    let admin = http
        .get(&url)
        .basic_auth(ROOT_USER, Some(ROOT_PASSWORD))
        .send()
        .await
        .expect("m");
    assert_eq!(admin.status(), 200);
    let api = app.api();
    api.create_user("plain", "plain-password").await;
    let user = http
        .get(&url)
        .basic_auth("plain", Some("plain-password"))
        .send()
        .await
        .expect("m");
    assert_eq!(user.status(), 403, "users who are not admins are refused");
    app.stop().await;

    let public = spawn_app_with(&["--metrics-public"]).await;
    let open = http
        .get(public.web_url("/metrics"))
        .send()
        .await
        .expect("m");
    assert_eq!(open.status(), 200);
    public.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    let missing = http
        .get(app.web_url("/api/v1/no-such-thing"))
        .send()
        .await
        .expect("404");
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.expect("json");
    assert_eq!(body["error"]["code"], "no_such_route", "{body}");
    let wrong_method = http
        .patch(app.web_url("/api/v1/buckets"))
        .basic_auth(ROOT_USER, Some(ROOT_PASSWORD))
        .send()
        .await
        .expect("405");
    assert_eq!(wrong_method.status(), 405);
    let allow = wrong_method.headers()["allow"]
        .to_str()
        .expect("allow")
        .to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let body: Value = wrong_method.json().await.expect("json");
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    app.stop().await;
}

#[tokio::test]
async fn json_api_actions_are_audited_in_words_with_their_target() {
    let app = spawn_app().await;
    let api = app.api();
    api.create_user("alice", "alice-password").await;
    api.call(ROOT, "POST", "/buckets", Some(json!({"name": "words"})))
        .await
        .expect_status(201);
    api.call(
        ROOT,
        "PUT",
        "/buckets/words/public",
        Some(json!({"public_read": true})),
    )
    .await
    .expect_status(204);
    api.call(
        ROOT,
        "PUT",
        "/users/alice/password",
        Some(json!({"password": "alice-password-2"})),
    )
    .await
    .expect_status(204);
    let put = api
        .request(ROOT, "PUT", "/buckets/words/objects/dir/a.txt")
        .body(vec![7u8; 1234])
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), 201);

    let records = poll_until("the API actions are audited", || async {
        let (_, page) = api
            .call(ROOT, "GET", "/audit?limit=100", None)
            .await
            .into_json();
        let records = page["records"].as_array().cloned().unwrap_or_default();
        let found = ["bucket.set_public", "user.password_change", "object.put"]
            .iter()
            .all(|a| records.iter().any(|r| r["action"] == *a));
        found.then_some(records)
    })
    .await;
    let find = |action: &str| {
        records
            .iter()
            .find(|r| r["action"] == action)
            .cloned()
            .expect("record")
    };
    assert_eq!(find("bucket.set_public")["bucket"], "words");
    assert_eq!(find("user.password_change")["target"], "user:alice");
    let object = find("object.put");
    assert_eq!(object["bucket"], "words");
    assert_eq!(object["key"], "dir/a.txt");

    // Usage from the JSON API counts under the real bucket.
    let app = app.restart().await;
    let api = app.api();
    let (_, usage) = api.call(ROOT, "GET", "/usage", None).await.into_json();
    let words = usage["daily"]
        .as_array()
        .expect("daily")
        .iter()
        .find(|d| d["bucket"] == "words")
        .cloned()
        .unwrap_or_else(|| panic!("a row for the bucket: {usage}"));
    assert!(
        words["bytes_in"].as_i64().expect("bytes") >= 1234,
        "{words}"
    );
    app.stop().await;
}

#[tokio::test]
async fn both_ports_follow_one_set_of_rules_for_public_buckets_and_shares() {
    let app = spawn_app().await;
    let api = app.api();
    api.create_user("bob", "bob-password").await;
    api.call(ROOT, "POST", "/buckets", Some(json!({"name": "open"})))
        .await
        .expect_status(201);
    put_bytes(&app.client(), "open", "hello.txt", b"hello".to_vec()).await;
    let http = reqwest::Client::new();
    let anonymous = || http.get(app.web_url("/api/v1/buckets/open/objects/hello.txt"));
    assert_eq!(anonymous().send().await.expect("get").status(), 401);
    api.call(
        ROOT,
        "PUT",
        "/buckets/open/public",
        Some(json!({"public_read": true})),
    )
    .await
    .expect_status(204);
    let public = anonymous().send().await.expect("get");
    assert_eq!(public.status(), 200);
    assert_eq!(public.bytes().await.expect("body").as_ref(), b"hello");
    let listing = http
        .get(app.web_url("/api/v1/buckets/open/objects"))
        .send()
        .await
        .expect("list");
    assert_eq!(listing.status(), 200);

    api.call(
        ROOT,
        "PUT",
        "/buckets/open/grants/bob",
        Some(json!({"level": "read"})),
    )
    .await
    .expect_status(204);
    let (_, detail) = api
        .call(ROOT, "GET", "/buckets/open", None)
        .await
        .into_json();
    assert_eq!(detail["public_read"], true, "{detail}");
    assert_eq!(detail["grants"], json!([{"user": "bob", "level": "read"}]));
    let (_, seen_by_bob) = api
        .call(("bob", "bob-password"), "GET", "/buckets/open", None)
        .await
        .into_json();
    assert!(seen_by_bob.get("grants").is_none(), "{seen_by_bob}");

    // A share link is signed by a key marked as such, which can be revoked.
    let (_, link) = api
        .call(
            ROOT,
            "POST",
            "/buckets/open/share",
            Some(json!({"key": "hello.txt"})),
        )
        .await
        .into_json();
    let url = link["url"].as_str().expect("url").to_owned();
    assert_eq!(http.get(&url).send().await.expect("link").status(), 200);
    let (_, keys) = api.call(ROOT, "GET", "/keys", None).await.into_json();
    let share_keys: Vec<&Value> = keys
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| k["for_share_links"] == true)
        .collect();
    assert_eq!(share_keys.len(), 1, "{keys}");
    assert_eq!(share_keys[0]["read_only"], true);
    assert_eq!(share_keys[0]["buckets"], json!(["open"]));
    let access_key = share_keys[0]["access_key"].as_str().expect("key");
    api.call(ROOT, "DELETE", &format!("/keys/{access_key}"), None)
        .await
        .expect_status(204);
    assert_eq!(
        http.get(&url).send().await.expect("link").status(),
        403,
        "revoking the key ends its links"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_start_that_cannot_bind_does_not_rename_the_root_user() {
    let app = spawn_app().await;
    let (data_dir, database_url) = app.stop_keeping_data().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to hold");
    let taken_addr = taken.local_addr().expect("addr").to_string();
    let args = serve_args(
        data_dir.path(),
        database_url.as_deref(),
        &taken_addr,
        "renamed-root",
        &[],
    );
    let failed = cistern::startup::Server::build(args).await;
    assert!(failed.is_err(), "the web port is taken");
    drop(taken);

    let url = database_url.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}",
            data_dir.path().join("cistern.db").to_string_lossy()
        )
    });
    sqlx::any::install_default_drivers();
    let mut db = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("open the metadata database");
    let name: String = sqlx::query_scalar("SELECT name FROM users WHERE id = 'root'")
        .fetch_one(&mut db)
        .await
        .expect("the root user");
    assert_eq!(name, ROOT_USER, "the failed start renamed nothing");
    drop(db);
    drop(data_dir);
}
