//! Accounts, keys and bucket sharing through the JSON API, and what they
//! allow on the S3 port.

use serde_json::{Value, json};

use crate::helpers::*;

const ALICE: (&str, &str) = ("alice", "alice-password");
const BOB: (&str, &str) = ("bob", "bob-password-1");

async fn with_users() -> (TestApp, ApiClient) {
    let app = spawn_app().await;
    let api = app.api();
    for (name, password) in [ALICE, BOB] {
        let (status, body) = api
            .post("/users", ROOT, json!({"name": name, "password": password}))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    (app, api)
}

#[tokio::test]
async fn users_are_managed_by_admins_and_errors_are_json() {
    let (app, api) = with_users().await;
    let (status, me) = api.get("/auth/me", ALICE).await;
    assert_eq!(
        (status, me["name"].as_str(), me["role"].as_str()),
        (200, Some("alice"), Some("user"))
    );

    let (status, error) = api.get("/users", ALICE).await;
    assert_eq!(status, 403);
    assert_eq!(error["error"]["code"], "access_denied");
    assert!(
        error["error"]["request_id"]
            .as_str()
            .is_some_and(|id| id.len() == 16)
    );

    let (status, _) = api.get("/auth/me", ("alice", "wrong-password")).await;
    assert_eq!(status, 401);
    let (status, error) = api
        .post(
            "/users",
            ROOT,
            json!({"name": "alice", "password": "another-one"}),
        )
        .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (409, Some("user_exists"))
    );
    let (status, error) = api.post("/users", ROOT, json!({"name": "carol"})).await;
    assert_eq!(status, 422);
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("password")),
        "{error}"
    );
    let (status, error) = api
        .post(
            "/users",
            ROOT,
            json!({"name": "x", "password": "long-enough"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("name")),
        "{error}"
    );

    let (status, users) = api.get("/users", ROOT).await;
    assert_eq!(status, 200);
    assert_eq!(users.as_array().map(Vec::len), Some(3));
    let (status, _) = api.delete("/users/bob", ROOT).await;
    assert_eq!(status, 204);
    let (status, _) = api.get("/auth/me", BOB).await;
    assert_eq!(status, 401);
    app.stop().await;
}

#[tokio::test]
async fn other_users_buckets_are_untouchable_until_shared() {
    let (app, api) = with_users().await;
    let (alice_key, alice_secret) = api.new_key(ALICE, json!({})).await;
    let (bob_key, bob_secret) = api.new_key(BOB, json!({})).await;
    let alice = client_for(&app.s3_url(), &alice_key, &alice_secret, None);
    let bob = client_for(&app.s3_url(), &bob_key, &bob_secret, None);

    alice
        .create_bucket()
        .bucket("alice-data")
        .send()
        .await
        .expect("create");
    put_bytes(&alice, "alice-data", "note.txt", b"private".to_vec()).await;

    assert!(
        bob.list_buckets()
            .send()
            .await
            .expect("list")
            .buckets()
            .is_empty()
    );
    assert_eq!(
        error_code(
            bob.get_object()
                .bucket("alice-data")
                .key("note.txt")
                .send()
                .await
        ),
        "AccessDenied"
    );
    assert_eq!(
        error_code(bob.list_objects_v2().bucket("alice-data").send().await),
        "AccessDenied"
    );
    let overwrite = bob
        .put_object()
        .bucket("alice-data")
        .key("note.txt")
        .body(b"mine".to_vec().into())
        .send()
        .await;
    assert_eq!(error_code(overwrite), "AccessDenied");
    assert_eq!(
        error_code(bob.delete_bucket().bucket("alice-data").send().await),
        "AccessDenied"
    );
    let copy_out = bob
        .copy_object()
        .bucket("alice-data")
        .key("x")
        .copy_source("alice-data/note.txt")
        .send()
        .await;
    assert_eq!(error_code(copy_out), "AccessDenied");
    let (status, _) = api.delete("/buckets/alice-data", BOB).await;
    assert_eq!(status, 403);
    assert_eq!(
        get_bytes(&alice, "alice-data", "note.txt").await,
        b"private",
        "nothing changed"
    );

    let (status, _) = api
        .put(
            "/buckets/alice-data/grants/bob",
            ALICE,
            json!({"level": "read"}),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(get_bytes(&bob, "alice-data", "note.txt").await, b"private");
    let still_no = bob
        .put_object()
        .bucket("alice-data")
        .key("b")
        .body(b"x".to_vec().into())
        .send()
        .await;
    assert_eq!(error_code(still_no), "AccessDenied");
    let (status, _) = api
        .put(
            "/buckets/alice-data/grants/bob",
            ALICE,
            json!({"level": "read-write"}),
        )
        .await;
    assert_eq!(status, 204);
    put_bytes(&bob, "alice-data", "from-bob", b"hi".to_vec()).await;
    let (status, _) = api.delete("/buckets/alice-data/grants/bob", ALICE).await;
    assert_eq!(status, 204);
    assert_eq!(
        error_code(
            bob.get_object()
                .bucket("alice-data")
                .key("note.txt")
                .send()
                .await
        ),
        "AccessDenied"
    );

    // Only the owner may share: a grantee cannot hand the bucket on.
    let (status, _) = api
        .put(
            "/buckets/alice-data/public",
            BOB,
            json!({"public_read": true}),
        )
        .await;
    assert_eq!(status, 403);
    app.stop().await;
}

#[tokio::test]
async fn public_read_buckets_serve_anonymous_reads_only() {
    let (app, api) = with_users().await;
    let (key, secret) = api.new_key(ALICE, json!({})).await;
    let alice = client_for(&app.s3_url(), &key, &secret, None);
    alice
        .create_bucket()
        .bucket("site")
        .send()
        .await
        .expect("create");
    put_bytes(&alice, "site", "index.html", b"<h1>hi</h1>".to_vec()).await;
    let url = format!("{}/site/index.html", app.s3_url());
    assert_eq!(reqwest::get(&url).await.expect("get").status(), 403);

    let (status, _) = api
        .put("/buckets/site/public", ALICE, json!({"public_read": true}))
        .await;
    assert_eq!(status, 204);
    let response = reqwest::get(&url).await.expect("get");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("text"), "<h1>hi</h1>");
    let anonymous_put = reqwest::Client::new()
        .put(&url)
        .body("defaced")
        .send()
        .await
        .expect("put");
    assert_eq!(anonymous_put.status(), 403);
    assert_eq!(
        get_bytes(&alice, "site", "index.html").await,
        b"<h1>hi</h1>"
    );
    app.stop().await;
}

#[tokio::test]
async fn limited_revoked_and_disabled_keys_are_refused() {
    let (app, api) = with_users().await;
    let (full_key, full_secret) = api.new_key(ALICE, json!({})).await;
    let full = client_for(&app.s3_url(), &full_key, &full_secret, None);
    for bucket in ["one-bucket", "two-bucket"] {
        full.create_bucket()
            .bucket(bucket)
            .send()
            .await
            .expect("create");
    }

    let (ro_key, ro_secret) = api.new_key(ALICE, json!({"read_only": true})).await;
    let read_only = client_for(&app.s3_url(), &ro_key, &ro_secret, None);
    read_only
        .list_objects_v2()
        .bucket("one-bucket")
        .send()
        .await
        .expect("read-only key reads");
    let write = read_only
        .put_object()
        .bucket("one-bucket")
        .key("k")
        .body(b"x".to_vec().into())
        .send()
        .await;
    assert_eq!(error_code(write), "AccessDenied");
    assert_eq!(
        error_code(
            read_only
                .create_bucket()
                .bucket("three-bucket")
                .send()
                .await
        ),
        "AccessDenied"
    );

    let (one_key, one_secret) = api.new_key(ALICE, json!({"buckets": ["one-bucket"]})).await;
    let limited = client_for(&app.s3_url(), &one_key, &one_secret, None);
    put_bytes(&limited, "one-bucket", "k", b"x".to_vec()).await;
    let elsewhere = limited
        .put_object()
        .bucket("two-bucket")
        .key("k")
        .body(b"x".to_vec().into())
        .send()
        .await;
    assert_eq!(error_code(elsewhere), "AccessDenied");
    let names = bucket_names(&limited).await;
    assert_eq!(names, ["one-bucket"]);

    let (status, keys) = api.get("/keys", ALICE).await;
    assert_eq!(status, 200);
    assert_eq!(keys.as_array().map(Vec::len), Some(3));
    assert!(
        keys.as_array()
            .is_some_and(|k| k.iter().all(|k| k.get("secret_key").is_none())),
        "secrets are shown once"
    );

    let (status, _) = api.delete(&format!("/keys/{full_key}"), ALICE).await;
    assert_eq!(status, 204);
    assert_eq!(
        error_code(full.list_buckets().send().await),
        "InvalidAccessKeyId"
    );
    let (status, _) = api.delete(&format!("/keys/{one_key}"), BOB).await;
    assert_eq!(status, 404, "bob cannot revoke alice's key");

    let (status, _) = api.post("/users/alice/disable", ROOT, json!({})).await;
    assert_eq!(status, 204);
    assert_eq!(
        error_code(limited.list_buckets().send().await),
        "InvalidAccessKeyId"
    );
    let (status, error) = api.get("/auth/me", ALICE).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (403, Some("account_disabled"))
    );
    let (status, _) = api.post("/users/alice/enable", ROOT, json!({})).await;
    assert_eq!(status, 204);
    limited.list_buckets().send().await.expect("enabled again");

    let (status, error) = api.delete("/users/alice", ROOT).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (409, Some("user_owns_buckets"))
    );
    app.stop().await;
}

async fn login(api: &ApiClient, who: (&str, &str)) -> (u16, Value) {
    let body = json!({"name": who.0, "password": who.1});
    api.post("/auth/login", Caller::Anonymous, body).await
}

#[tokio::test]
async fn sessions_end_on_logout_and_on_password_change() {
    let (app, api) = with_users().await;
    let (status, first) = login(&api, ALICE).await;
    assert_eq!(status, 200, "{first}");
    let first = first["token"].as_str().expect("token").to_owned();
    let second = login(&api, ALICE).await.1["token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(
        api.call(Caller::Bearer(&first), "GET", "/auth/me", None)
            .await
            .status,
        200
    );

    let change = Some(json!({"password": "alice-new-password"}));
    assert_eq!(
        api.call(
            Caller::Bearer(&first),
            "PUT",
            "/users/alice/password",
            change
        )
        .await
        .status,
        204
    );
    assert_eq!(
        api.call(Caller::Bearer(&first), "GET", "/auth/me", None)
            .await
            .status,
        200,
        "the caller's session stays"
    );
    assert_eq!(
        api.call(Caller::Bearer(&second), "GET", "/auth/me", None)
            .await
            .status,
        401,
        "other sessions end"
    );
    assert_eq!(
        api.get("/auth/me", ALICE).await.0,
        401,
        "the old password is gone"
    );

    assert_eq!(
        api.call(Caller::Bearer(&first), "POST", "/auth/logout", None)
            .await
            .status,
        204
    );
    assert_eq!(
        api.call(Caller::Bearer(&first), "GET", "/auth/me", None)
            .await
            .status,
        401
    );
    assert_eq!(
        api.call(Caller::Bearer("cs_forged"), "GET", "/auth/me", None)
            .await
            .status,
        401
    );
    app.stop().await;
}

#[tokio::test]
async fn failed_logins_slow_down_and_signup_is_off_by_default() {
    let (app, api) = with_users().await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(login(&api, ("bob", "not-his-password")).await.0);
    }
    assert_eq!(
        &statuses[..5],
        [401; 5],
        "the first failures are answered at once"
    );
    assert!(statuses[5..].contains(&429), "{statuses:?}");
    let response = api
        .request(Caller::Anonymous, "POST", "/auth/login")
        .json(&json!({"name": "bob", "password": BOB.1}))
        .send()
        .await
        .expect("login");
    assert_eq!(
        response.status(),
        429,
        "the right password from the address that failed waits its turn"
    );
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("header")
        .parse()
        .expect("secs");
    assert!((1..=60).contains(&retry), "the wait is bounded: {retry}");
    assert_eq!(
        login(&api, ALICE).await.0,
        200,
        "other names from the same address are not slowed by a few failures"
    );

    let signup = api
        .request(Caller::Anonymous, "POST", "/auth/signup")
        .json(&json!({"name": "mallory", "password": "mallory-pass"}))
        .send()
        .await
        .expect("signup");
    assert_eq!(signup.status(), 403);
    app.stop().await;

    let app = spawn_app_with(&["--allow-signup"]).await;
    let api = app.api();
    let signup = api
        .request(Caller::Anonymous, "POST", "/auth/signup")
        .json(&json!({"name": "mallory", "password": "mallory-pass"}))
        .send()
        .await
        .expect("signup");
    assert_eq!(signup.status(), 201);
    let (status, me) = api.get("/auth/me", ("mallory", "mallory-pass")).await;
    assert_eq!((status, me["role"].as_str()), (200, Some("user")));
    app.stop().await;
}

/// Two nodes on one PostgreSQL database: a key revoked and a user disabled
/// through one node are refused by the other well before its credential
/// cache would expire (5 s). SQLite serves a single node, so this runs in
/// the suite's PostgreSQL pass (`CISTERN_TEST_DATABASE_URL`).
#[tokio::test]
async fn revocations_reach_other_nodes_at_once() {
    let (node_a, api) = with_users().await;
    let Some(node_b) = node_a.second_node(&[]).await else {
        node_a.stop().await;
        return;
    };
    let (key, secret) = api.new_key(ALICE, json!({})).await;
    let on_b = client_for(&node_b.s3_url(), &key, &secret, None);
    // Served once, so node B has the key cached.
    on_b.list_buckets()
        .send()
        .await
        .expect("key works on node B");
    let (status, _) = api.delete(&format!("/keys/{key}"), ALICE).await;
    assert_eq!(status, 204);
    refused_within(&on_b, 2, "node B refuses the revoked key within 2 s").await;

    let (key, secret) = api.new_key(BOB, json!({})).await;
    let on_b = client_for(&node_b.s3_url(), &key, &secret, None);
    on_b.list_buckets()
        .send()
        .await
        .expect("key works on node B");
    let (status, _) = api.post("/users/bob/disable", ROOT, json!({})).await;
    assert_eq!(status, 204);
    refused_within(&on_b, 2, "node B refuses the disabled user within 2 s").await;
    node_b.stop().await;
    node_a.stop().await;
}

/// Polls until `s3` is refused, failing with `what` after `secs`.
async fn refused_within(s3: &aws_sdk_s3::Client, secs: u64, what: &str) {
    poll_within(std::time::Duration::from_secs(secs), what, || async {
        s3.list_buckets().send().await.is_err().then_some(())
    })
    .await;
}
