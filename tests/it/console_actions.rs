//! Console actions the other console tests leave out, each checked by what
//! it changed (through the JSON API, S3 or another session), not only by
//! the page it answered with: a bucket's settings (public read on and off,
//! sharing with a user and revoking it), refusing to delete a bucket that
//! holds files, new folders, the folder's name filter, downloads, the
//! history's bucket and date filters, an admin's user actions (disable and
//! enable, password reset, delete with purge) and view of other people's
//! files, keys limited to one bucket, the Secure cookie behind an https
//! public URL, signing out everywhere, and a pool's reopen, enable and
//! re-key forms and the webhook attempts on its page.

use serde_json::json;

use crate::console::Browser;
use crate::helpers::*;

/// The keys a folder page lists (its selection checkboxes), in order.
fn listed_keys(page: &str) -> Vec<String> {
    page.split(r#"name="key" value=""#)
        .skip(1)
        .map(|part| part[..part.find('"').unwrap()].to_owned())
        .collect()
}

/// The value of the read-only field with this id (a secret shown once).
fn field_value(page: &str, id: &str) -> String {
    let marker = format!(r#"id="{id}" value=""#);
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {id} on the page: {page}"))
        + marker.len();
    page[start..start + page[start..].find('"').unwrap()].to_owned()
}

/// An anonymous GET (no credentials at all): the status and the body.
async fn anonymous_get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("an answer");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
}

/// A JSON API read of an object as `who`: the status and the body.
async fn read_object(api: &ApiClient, who: (&str, &str), path: &str) -> (u16, String) {
    let response = api
        .request(who, "GET", path)
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
}

/// Stores an object through the JSON API as `who`, which must work.
async fn api_put(api: &ApiClient, who: (&str, &str), path: &str, body: &'static str) {
    let put = api
        .request(who, "PUT", path)
        .body(body)
        .send()
        .await
        .expect("an answer");
    assert_eq!(put.status(), 201, "{path}");
}

/// Creates a bucket through the JSON API as `who`, which must work.
async fn api_bucket(api: &ApiClient, who: (&str, &str), name: &str) {
    let (status, body) = api.post("/buckets", who, json!({"name": name})).await;
    assert_eq!(status, 201, "{body}");
}

/// A pool with hour-long windows, owned by the root admin.
async fn create_pool(api: &ApiClient, name: &str) {
    let (status, body) = api
        .post("/pools", ROOT, json!({"name": name, "window_secs": 3600}))
        .await;
    assert_eq!(status, 201, "{body}");
}

const ALICE: (&str, &str) = ("alice", "alice-password");
const BOB: (&str, &str) = ("bob", "bob-password-1");

#[tokio::test]
async fn making_a_bucket_public_then_private_in_its_settings_opens_then_closes_anonymous_reads() {
    let app = spawn_app().await;
    let api = app.api();
    api.create_user(ALICE.0, ALICE.1).await;
    api_bucket(&api, ALICE, "site").await;
    api_put(
        &api,
        ALICE,
        "/buckets/site/objects/index.html",
        "<h1>hi</h1>",
    )
    .await;
    let url = format!("{}/site/index.html", app.s3_url());
    assert_eq!(anonymous_get(&url).await.0, 403, "private at first");

    let mut browser = Browser::new(&app);
    browser.sign_in(ALICE.0, ALICE.1).await;
    let settings = browser.get("/ui/buckets/site/settings").await;
    assert_eq!(settings.status, 200);
    assert!(settings.body.contains("Make public"), "{}", settings.body);

    let public = browser
        .post("/ui/buckets/site/public", &[("public", "on")], true)
        .await;
    assert_eq!(public.status, 303);
    assert_eq!(
        public.location.as_deref(),
        Some("/ui/buckets/site/settings")
    );
    let (_, detail) = api.get("/buckets/site", ALICE).await;
    assert_eq!(detail["public_read"], true, "{detail}");
    assert_eq!(anonymous_get(&url).await, (200, "<h1>hi</h1>".to_owned()));
    let page = browser.get("/ui/buckets/site/settings").await;
    assert!(
        page.body.contains("site is now public") && page.body.contains("Make private"),
        "{}",
        page.body
    );

    let private = browser
        .post("/ui/buckets/site/public", &[("public", "off")], true)
        .await;
    assert_eq!(private.status, 303);
    let (_, detail) = api.get("/buckets/site", ALICE).await;
    assert_eq!(detail["public_read"], false, "{detail}");
    assert_eq!(anonymous_get(&url).await.0, 403, "private again");
    let page = browser.get("/ui/buckets/site/settings").await;
    assert!(page.body.contains("site is now private."), "{}", page.body);
    app.stop().await;
}

#[tokio::test]
async fn sharing_a_bucket_in_its_settings_then_revoking_it_gives_then_takes_another_users_access() {
    let app = spawn_app().await;
    let api = app.api();
    api.create_user(ALICE.0, ALICE.1).await;
    api.create_user(BOB.0, BOB.1).await;
    api_bucket(&api, ALICE, "album").await;
    api_put(&api, ALICE, "/buckets/album/objects/cat.txt", "meow").await;
    let cat = "/buckets/album/objects/cat.txt";
    assert_eq!(read_object(&api, BOB, cat).await.0, 403, "not shared yet");

    let mut browser = Browser::new(&app);
    browser.sign_in(ALICE.0, ALICE.1).await;
    let shared = browser
        .post(
            "/ui/buckets/album/grants",
            &[("user", "bob"), ("level", "read")],
            true,
        )
        .await;
    assert_eq!(shared.status, 303);
    assert_eq!(
        shared.location.as_deref(),
        Some("/ui/buckets/album/settings")
    );
    let (_, detail) = api.get("/buckets/album", ALICE).await;
    assert_eq!(
        detail["grants"],
        json!([{"user": "bob", "level": "read"}]),
        "{detail}"
    );
    assert_eq!(read_object(&api, BOB, cat).await, (200, "meow".to_owned()));
    let write = api
        .request(BOB, "PUT", "/buckets/album/objects/bobs.txt")
        .body("mine")
        .send()
        .await
        .expect("an answer");
    assert_eq!(write.status(), 403, "read, not write");
    let settings = browser.get("/ui/buckets/album/settings").await;
    assert!(
        settings.body.contains("Stop sharing with bob"),
        "{}",
        settings.body
    );

    let revoked = browser
        .post("/ui/buckets/album/grants/revoke", &[("user", "bob")], true)
        .await;
    assert_eq!(revoked.status, 303);
    let (_, detail) = api.get("/buckets/album", ALICE).await;
    assert_eq!(detail["grants"], json!([]), "{detail}");
    assert_eq!(read_object(&api, BOB, cat).await.0, 403, "revoked");
    let settings = browser.get("/ui/buckets/album/settings").await;
    assert!(
        settings
            .body
            .contains("album is no longer shared with bob."),
        "{}",
        settings.body
    );
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_bucket_that_holds_files_is_refused_with_the_reason_and_keeps_everything() {
    let app = spawn_app().await;
    let s3 = app.client();
    s3.create_bucket().bucket("full").send().await.unwrap();
    put_bytes(&s3, "full", "keep.txt", b"kept".to_vec()).await;
    let mut browser = Browser::new(&app);
    browser.sign_in(ROOT_USER, ROOT_PASSWORD).await;

    let refused = browser.post("/ui/buckets/full/delete", &[], true).await;
    assert_eq!(refused.status, 303);
    assert_eq!(
        refused.location.as_deref(),
        Some("/ui/buckets/full/settings")
    );
    let page = browser.get("/ui/buckets/full/settings").await;
    assert_eq!(page.status, 200);
    // The sentence of `words::for_error(&CoreError::BucketNotEmpty)`.
    assert!(
        page.body
            .contains("The bucket still holds files, or uploads in parts")
            && page
                .body
                .contains("Delete the files first, then the bucket."),
        "{}",
        page.body
    );
    assert!(page.body.contains("flash problem"), "shown as a problem");

    let (status, _) = app.api().get("/buckets/full", ROOT).await;
    assert_eq!(status, 200, "the bucket stays");
    assert_eq!(get_bytes(&s3, "full", "keep.txt").await, b"kept");
    // Audited with the status the JSON API would answer.
    let record = poll_until("the refused deletion in the audit log", || async {
        let (_, page) = app.api().get("/audit?action=bucket.delete", ROOT).await;
        page["records"].as_array().and_then(|r| r.first().cloned())
    })
    .await;
    assert_eq!(record["status"], 409, "{record}");
    assert_eq!(record["bucket"], "full", "{record}");
    app.stop().await;
}

#[tokio::test]
async fn a_folder_made_in_the_console_is_listed_in_its_parent_and_opens_empty() {
    let app = spawn_app().await;
    let (status, body) = app
        .api()
        .post("/buckets", ROOT, json!({"name": "docs"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let mut browser = Browser::new(&app);
    browser.sign_in(ROOT_USER, ROOT_PASSWORD).await;

    let made = browser
        .post(
            "/ui/buckets/docs/folders",
            &[("prefix", ""), ("name", "reports")],
            true,
        )
        .await;
    assert_eq!(made.status, 303);
    assert_eq!(
        made.location.as_deref(),
        Some("/ui/buckets/docs?prefix=reports%2F")
    );
    let marker = app
        .client()
        .head_object()
        .bucket("docs")
        .key("reports/")
        .send()
        .await
        .expect("the folder's empty object");
    assert_eq!(marker.content_length(), Some(0));
    let inside = browser.get("/ui/buckets/docs?prefix=reports%2F").await;
    assert_eq!(inside.status, 200);
    assert!(
        inside.body.contains("The folder reports is ready.")
            && inside.body.contains("This folder is empty."),
        "{}",
        inside.body
    );
    let root = browser.get("/ui/buckets/docs").await;
    assert!(
        root.body.contains(
            r#"<a href="/ui/buckets/docs?prefix=reports%2F" class="folder">reports/</a>"#
        ),
        "{}",
        root.body
    );
    assert_eq!(listed_keys(&root.body), ["reports/"]);

    // A folder made inside that one lands under it.
    let nested = browser
        .post(
            "/ui/buckets/docs/folders",
            &[("prefix", "reports/"), ("name", "2026")],
            true,
        )
        .await;
    assert_eq!(
        nested.location.as_deref(),
        Some("/ui/buckets/docs?prefix=reports%2F2026%2F")
    );
    let inside = browser.get("/ui/buckets/docs?prefix=reports%2F").await;
    assert!(
        inside.body.contains(
            r#"<a href="/ui/buckets/docs?prefix=reports%2F2026%2F" class="folder">2026/</a>"#
        ),
        "{}",
        inside.body
    );
    assert_eq!(listed_keys(&inside.body), ["reports/2026/"]);
    app.stop().await;
}

#[tokio::test]
async fn the_folder_filter_lists_only_the_names_in_the_folder_that_start_with_it() {
    let app = spawn_app().await;
    let s3 = app.client();
    s3.create_bucket().bucket("logs").send().await.unwrap();
    for key in [
        "app/2025-12.txt",
        "app/2026-01.txt",
        "app/2026-02.txt",
        "app/2026-03/day.txt",
        "app/notes.txt",
        "2026-root.txt",
    ] {
        put_bytes(&s3, "logs", key, b"x".to_vec()).await;
    }
    let mut browser = Browser::new(&app);
    browser.sign_in(ROOT_USER, ROOT_PASSWORD).await;

    let all = browser.get("/ui/buckets/logs?prefix=app%2F").await;
    assert_eq!(
        listed_keys(&all.body),
        [
            "app/2026-03/",
            "app/2025-12.txt",
            "app/2026-01.txt",
            "app/2026-02.txt",
            "app/notes.txt",
        ]
    );
    let filtered = browser
        .get("/ui/buckets/logs?prefix=app%2F&filter=2026-")
        .await;
    assert_eq!(filtered.status, 200);
    assert_eq!(
        listed_keys(&filtered.body),
        ["app/2026-03/", "app/2026-01.txt", "app/2026-02.txt"],
        "folders and files of this folder that start with 2026-, nothing else"
    );
    // At the top the same filter finds only what is at the top.
    let top = browser.get("/ui/buckets/logs?filter=2026-").await;
    assert_eq!(listed_keys(&top.body), ["2026-root.txt"]);
    let none = browser
        .get("/ui/buckets/logs?prefix=app%2F&filter=1999")
        .await;
    assert!(listed_keys(&none.body).is_empty());
    assert!(
        none.body.contains("Nothing here starts with “1999”."),
        "{}",
        none.body
    );
    app.stop().await;
}

#[tokio::test]
async fn downloads_from_the_console_give_the_exact_bytes_under_the_files_name() {
    let app = spawn_app().await;
    let s3 = app.client();
    s3.create_bucket().bucket("files").send().await.unwrap();
    let data = pattern(70_000, 7);
    put_bytes(&s3, "files", "bin/data.bin", data.clone()).await;
    let mut browser = Browser::new(&app);
    browser.sign_in(ROOT_USER, ROOT_PASSWORD).await;

    // The object page's Download link, and the console's own file route.
    let page = browser.get("/ui/buckets/files/objects/bin/data.bin").await;
    assert_eq!(page.status, 200);
    let link = r#"href="/api/v1/buckets/files/objects/bin/data.bin" download="data.bin""#;
    assert!(page.body.contains(link), "{}", page.body);
    for path in [
        "/api/v1/buckets/files/objects/bin/data.bin",
        "/ui/buckets/files/file?key=bin%2Fdata.bin",
    ] {
        let (status, headers, body) = browser.fetch_raw(path, None).await;
        assert_eq!(status, 200, "{path}");
        assert!(body == data, "{path}: not the stored bytes");
        // RFC 5987 lets the dot be sent escaped.
        let disposition = headers["content-disposition"]
            .to_str()
            .unwrap()
            .replace("%2E", ".");
        assert!(
            disposition.contains("filename*=UTF-8''data.bin"),
            "{path}: {disposition}"
        );
    }
    let (status, _, part) = browser
        .fetch_raw(
            "/ui/buckets/files/file?key=bin%2Fdata.bin",
            Some("bytes=100-199"),
        )
        .await;
    assert_eq!(status, 206);
    assert_eq!(part, &data[100..200]);

    // Nobody signed in gets the sign-in page, not the bytes.
    let mut nobody = Browser::new(&app);
    let refused = nobody
        .get("/ui/buckets/files/file?key=bin%2Fdata.bin")
        .await;
    assert_eq!(refused.status, 303);
    assert!(
        refused
            .location
            .as_deref()
            .is_some_and(|l| l.starts_with("/ui/sign-in")),
        "{:?}",
        refused.location
    );
    app.stop().await;
}

#[tokio::test]
async fn history_filtered_by_bucket_or_dates_leaves_out_the_other_records() {
    let app = spawn_app().await;
    let api = app.api();
    let hana = ("hana", "hana-password");
    api.create_user(hana.0, hana.1).await;
    let mut browser = Browser::new(&app);
    browser.sign_in(hana.0, hana.1).await;
    for name in ["alpha-logs", "beta-logs"] {
        let made = browser.post("/ui/buckets", &[("name", name)], true).await;
        assert_eq!(made.status, 303);
        // Shows (and so clears) the notice that names the bucket.
        browser.get(made.location.as_deref().unwrap()).await;
    }
    poll_until("both creations in hana's history", || {
        let mut page_of = browser.clone();
        async move {
            let page = page_of.get("/ui/history?action=bucket.create").await;
            (page.body.contains("<td>alpha-logs</td>") && page.body.contains("<td>beta-logs</td>"))
                .then_some(())
        }
    })
    .await;

    let by_bucket = browser.get("/ui/history?bucket=alpha-logs").await;
    assert_eq!(by_bucket.status, 200);
    assert!(
        by_bucket.body.contains("<td>alpha-logs</td>"),
        "{}",
        by_bucket.body
    );
    assert!(
        !by_bucket.body.contains("<td>beta-logs"),
        "another bucket's records: {}",
        by_bucket.body
    );

    // The day the bucket was made, as the JSON API records it: a range
    // holding that day shows it, ranges before or after it do not.
    let (_, found) = api
        .get("/audit?action=bucket.create&bucket=alpha-logs", hana)
        .await;
    let made_ms = found["records"][0]["time_ms"]
        .as_i64()
        .unwrap_or_else(|| panic!("a record: {found}"));
    let day = chrono::DateTime::from_timestamp_millis(made_ms)
        .unwrap()
        .date_naive();
    let (before, after) = (day.pred_opt().unwrap(), day.succ_opt().unwrap());
    let within = browser
        .get(&format!(
            "/ui/history?bucket=alpha-logs&from={day}&to={day}"
        ))
        .await;
    assert_eq!(within.status, 200);
    assert!(
        within.body.contains("<td>alpha-logs</td>"),
        "{}",
        within.body
    );
    for range in [
        format!("from={after}"),
        format!("to={before}"),
        format!("from={after}&to={after}"),
    ] {
        let outside = browser
            .get(&format!("/ui/history?bucket=alpha-logs&{range}"))
            .await;
        assert_eq!(outside.status, 200, "{range}");
        assert!(
            !outside.body.contains("<td>alpha-logs</td>")
                && outside.body.contains("Nothing recorded matches."),
            "{range}: {}",
            outside.body
        );
    }
    let bad = browser.get("/ui/history?from=yesterday").await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body.contains("The from date is not a date"),
        "{}",
        bad.body
    );
    app.stop().await;
}

#[tokio::test]
async fn a_user_disabled_by_an_admin_cannot_sign_in_until_enabled_again() {
    let app = spawn_app().await;
    let api = app.api();
    let hana = ("hana", "hana-password");
    api.create_user(hana.0, hana.1).await;
    // Signed in once before, so the password is one the server remembers.
    let mut before = Browser::new(&app);
    assert_eq!(before.sign_in(hana.0, hana.1).await.status, 303);
    let mut root = Browser::new(&app);
    root.sign_in(ROOT_USER, ROOT_PASSWORD).await;

    let disabled = root.post("/ui/admin/users/hana/disable", &[], true).await;
    assert_eq!(disabled.status, 303);
    assert_eq!(disabled.location.as_deref(), Some("/ui/admin/users/hana"));
    let page = root.get("/ui/admin/users/hana").await;
    assert!(
        page.body.contains("hana is disabled.") && page.body.contains("Enable hana"),
        "{}",
        page.body
    );
    let mut browser = Browser::new(&app);
    let refused = browser.sign_in(hana.0, hana.1).await;
    assert_eq!(refused.status, 403);
    assert!(
        refused.body.contains("This account is disabled."),
        "{}",
        refused.body
    );
    assert!(!browser.cookies.contains_key("cistern_session"));
    assert_eq!(api.get("/auth/me", hana).await.0, 403);

    let enabled = root.post("/ui/admin/users/hana/enable", &[], true).await;
    assert_eq!(enabled.status, 303);
    let signed = browser.sign_in(hana.0, hana.1).await;
    assert_eq!(signed.status, 303);
    assert!(browser.cookies.contains_key("cistern_session"));
    assert_eq!(browser.get("/ui/buckets").await.status, 200);
    assert_eq!(api.get("/auth/me", hana).await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn a_password_reset_by_an_admin_lets_the_new_password_in_and_not_the_old_one() {
    let app = spawn_app().await;
    let api = app.api();
    api.create_user("hana", "hana-password").await;
    let mut hana = Browser::new(&app);
    assert_eq!(hana.sign_in("hana", "hana-password").await.status, 303);
    let mut root = Browser::new(&app);
    root.sign_in(ROOT_USER, ROOT_PASSWORD).await;

    let reset = root
        .post(
            "/ui/admin/users/hana/password",
            &[("password", "hana-password-2")],
            true,
        )
        .await;
    assert_eq!(reset.status, 303);
    let page = root.get(reset.location.as_deref().unwrap()).await;
    assert!(
        page.body.contains("The password of hana is reset"),
        "{}",
        page.body
    );
    assert_eq!(
        hana.get("/ui/buckets").await.status,
        303,
        "her session ended"
    );
    assert_eq!(
        root.get("/ui/admin/users").await.status,
        200,
        "the admin's stays"
    );

    let mut again = Browser::new(&app);
    let old = again.sign_in("hana", "hana-password").await;
    assert_eq!(old.status, 401, "{}", old.body);
    assert!(!again.cookies.contains_key("cistern_session"));
    assert_eq!(again.sign_in("hana", "hana-password-2").await.status, 303);
    assert_eq!(again.get("/ui/buckets").await.status, 200);
    assert_eq!(api.get("/auth/me", ("hana", "hana-password")).await.0, 401);
    assert_eq!(
        api.get("/auth/me", ("hana", "hana-password-2")).await.0,
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_user_with_purge_removes_their_buckets_and_without_it_is_refused() {
    let app = spawn_app().await;
    let api = app.api();
    let ulla = ("ulla", "ulla-password");
    api.create_user(ulla.0, ulla.1).await;
    api_bucket(&api, ulla, "ullas-things").await;
    api_put(&api, ulla, "/buckets/ullas-things/objects/a.txt", "a").await;
    let mut root = Browser::new(&app);
    root.sign_in(ROOT_USER, ROOT_PASSWORD).await;

    // Without purge: refused, as she still owns a bucket.
    let kept = root.post("/ui/admin/users/ulla/delete", &[], true).await;
    assert_eq!(kept.status, 303);
    assert_eq!(kept.location.as_deref(), Some("/ui/admin/users/ulla"));
    let page = root.get("/ui/admin/users/ulla").await;
    assert!(
        page.body.contains("That user still owns buckets."),
        "{}",
        page.body
    );
    assert_eq!(api.get("/auth/me", ulla).await.0, 200, "still there");

    let gone = root
        .post("/ui/admin/users/ulla/delete", &[("purge", "yes")], true)
        .await;
    assert_eq!(gone.status, 303);
    assert_eq!(gone.location.as_deref(), Some("/ui/admin/users"));
    let (status, _) = api.get("/buckets/ullas-things", ROOT).await;
    assert_eq!(status, 404, "her bucket went with her");
    assert_eq!(
        error_code(
            app.client()
                .list_objects_v2()
                .bucket("ullas-things")
                .send()
                .await
        ),
        "NoSuchBucket"
    );
    let (_, users) = api.get("/users", ROOT).await;
    assert!(
        users
            .as_array()
            .expect("a list")
            .iter()
            .all(|u| u["name"] != "ulla"),
        "{users}"
    );
    assert_eq!(api.get("/auth/me", ulla).await.0, 401);
    app.stop().await;
}

#[tokio::test]
async fn an_admin_opens_another_users_bucket_and_file_pages() {
    let app = spawn_app().await;
    let api = app.api();
    let hana = ("hana", "hana-password");
    api.create_user(hana.0, hana.1).await;
    api_bucket(&api, hana, "hanas-files").await;
    api_put(
        &api,
        hana,
        "/buckets/hanas-files/objects/notes/plan.txt",
        "the plan",
    )
    .await;
    let mut root = Browser::new(&app);
    root.sign_in(ROOT_USER, ROOT_PASSWORD).await;

    let user = root.get("/ui/admin/users/hana").await;
    assert!(
        user.body
            .contains(r#"<a href="/ui/buckets/hanas-files">hanas-files</a>"#),
        "{}",
        user.body
    );
    let bucket = root.get("/ui/buckets/hanas-files").await;
    assert_eq!(bucket.status, 200);
    assert!(
        bucket
            .body
            .contains(r#"href="/ui/buckets/hanas-files?prefix=notes%2F""#),
        "{}",
        bucket.body
    );
    let folder = root.get("/ui/buckets/hanas-files?prefix=notes%2F").await;
    assert_eq!(folder.status, 200);
    assert_eq!(listed_keys(&folder.body), ["notes/plan.txt"]);
    let object = root
        .get("/ui/buckets/hanas-files/objects/notes/plan.txt")
        .await;
    assert_eq!(object.status, 200);
    assert!(
        object.body.contains("<h1>plan.txt</h1>") && object.body.contains("the plan"),
        "{}",
        object.body
    );
    app.stop().await;
}

#[tokio::test]
async fn a_key_limited_to_one_bucket_in_the_console_is_refused_on_another() {
    let app = spawn_app().await;
    let api = app.api();
    let kai = ("kai", "kai-password-1");
    api.create_user(kai.0, kai.1).await;
    for name in ["one-place", "two-place"] {
        api_bucket(&api, kai, name).await;
    }
    api_put(&api, kai, "/buckets/two-place/objects/seed.txt", "seed").await;
    let mut browser = Browser::new(&app);
    browser.sign_in(kai.0, kai.1).await;
    let keys = browser.get("/ui/keys").await;
    assert!(
        keys.body.contains(r#"name="bucket" value="one-place""#),
        "the form offers the bucket: {}",
        keys.body
    );

    let made = browser
        .post("/ui/keys", &[("bucket", "one-place")], true)
        .await;
    assert_eq!(made.status, 200);
    assert!(made.body.contains("<td>one-place</td>"), "{}", made.body);
    let access_key = field_value(&made.body, "new-access-key");
    let secret = field_value(&made.body, "new-secret");
    let limited = client_for(&app.s3_url(), &access_key, &secret, None);

    put_bytes(&limited, "one-place", "k.txt", b"ok".to_vec()).await;
    assert_eq!(get_bytes(&limited, "one-place", "k.txt").await, b"ok");
    let read = limited
        .get_object()
        .bucket("two-place")
        .key("seed.txt")
        .send()
        .await;
    assert_eq!(error_code(read), "AccessDenied");
    let listed = limited.list_objects_v2().bucket("two-place").send().await;
    assert_eq!(error_status(listed), 403);
    let write = limited
        .put_object()
        .bucket("two-place")
        .key("planted.txt")
        .body(b"x".to_vec().into())
        .send()
        .await;
    assert_eq!(error_code(write), "AccessDenied");
    let names = bucket_names(&limited).await;
    assert_eq!(names, ["one-place"]);
    // The refusal is the key's limit: kai herself reads the bucket.
    assert_eq!(
        read_object(&api, kai, "/buckets/two-place/objects/seed.txt").await,
        (200, "seed".to_owned())
    );
    let (status, _) = api.get("/buckets/two-place/objects/planted.txt", kai).await;
    assert_eq!(status, 404, "nothing was written");
    app.stop().await;
}

#[tokio::test]
async fn with_an_https_public_url_the_session_cookie_is_secure() {
    let app = spawn_app_with(&["--public-url", "https://files.example.com"]).await;
    let mut browser = Browser::new(&app);
    let page = browser
        .sign_in_form(ROOT_USER, ROOT_PASSWORD, "/ui/account")
        .await;
    assert_eq!(page.status, 303);
    let cookie = page.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("cistern_session=cs_"), "{cookie}");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));

    // Clearing it on sign-out is Secure too, or a browser would ignore it.
    assert_eq!(browser.get("/ui/account").await.status, 200);
    let out = browser.post("/ui/sign-out", &[], true).await;
    assert_eq!(out.status, 303);
    let cleared = out
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("cistern_session="))
        .expect("the session cookie is cleared");
    assert!(
        cleared.contains("Max-Age=0") && cleared.contains("; Secure"),
        "{cleared}"
    );
    app.stop().await;
}

#[tokio::test]
async fn signing_out_everywhere_ends_the_users_other_live_sessions() {
    let app = spawn_app().await;
    let api = app.api();
    let ivan = ("ivan", "ivan-password-1");
    api.create_user(ivan.0, ivan.1).await;
    api.create_user("olga", "olga-password-1").await;
    let mut laptop = Browser::new(&app);
    laptop.sign_in(ivan.0, ivan.1).await;
    let mut phone = Browser::new(&app);
    phone.sign_in(ivan.0, ivan.1).await;
    let mut olga = Browser::new(&app);
    olga.sign_in("olga", "olga-password-1").await;
    let (status, session) = api
        .post(
            "/auth/login",
            Caller::Anonymous,
            json!({"name": ivan.0, "password": ivan.1}),
        )
        .await;
    assert_eq!(status, 200, "{session}");
    let token = session["token"].as_str().expect("a token").to_owned();
    assert_eq!(phone.get("/ui/buckets").await.status, 200);
    assert_eq!(api.get("/buckets", Caller::Bearer(&token)).await.0, 200);

    let out = laptop.post("/ui/sign-out-everywhere", &[], true).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location.as_deref(), Some("/ui/sign-in"));
    assert!(!laptop.cookies.contains_key("cistern_session"));

    let page = phone.get("/ui/buckets").await;
    assert_eq!(page.status, 303, "the phone's session ended");
    assert_eq!(
        page.location.as_deref(),
        Some("/ui/sign-in?next=%2Fui%2Fbuckets")
    );
    assert_eq!(
        api.get("/buckets", Caller::Bearer(&token)).await.0,
        401,
        "and the API session"
    );
    assert_eq!(
        olga.get("/ui/buckets").await.status,
        200,
        "another user's session stays"
    );
    // The password still works: only the sessions ended.
    let mut again = Browser::new(&app);
    assert_eq!(again.sign_in(ivan.0, ivan.1).await.status, 303);
    app.stop().await;
}

#[tokio::test]
async fn a_failed_group_is_reopened_from_the_pool_page_and_can_be_claimed_again() {
    let app = spawn_app().await;
    let api = app.api();
    create_pool(&api, "lab").await;
    let cam = add_pool_members(&api, "lab", json!({"name": "cam", "role": "contributor"})).await;
    let gpu = add_pool_members(&api, "lab", json!({"name": "gpu", "role": "processor"})).await;
    send_pool_files(&api, "lab", &cam[0].1, &[("a.png", now_ms(), PNG)]).await;
    let (_, groups) = api.get("/pools/lab/groups", ROOT).await;
    let group = groups[0]["group"].as_str().expect("a group").to_owned();
    let (status, _) = api
        .post(&format!("/pools/lab/groups/{group}/seal"), ROOT, json!({}))
        .await;
    assert_eq!(status, 204);
    // The processor reports a final failure: the group fails at once.
    let processor = Caller::Bearer(&gpu[0].1);
    let (status, claim) = api.post("/pools/lab/claims", processor, json!({})).await;
    assert_eq!(status, 200, "{claim}");
    let (status, failed) = api
        .post(
            &format!("/pools/lab/groups/{group}/fail"),
            processor,
            json!({"lease_id": claim["lease_id"], "reason": "exit status 65: not an image", "final": true}),
        )
        .await;
    assert_eq!(
        (status, failed["state"].as_str()),
        (200, Some("failed")),
        "{failed}"
    );
    let (status, _) = api.post("/pools/lab/claims", processor, json!({})).await;
    assert_eq!(status, 204, "a failed group is not claimed");

    let mut browser = Browser::new(&app);
    browser.sign_in(ROOT_USER, ROOT_PASSWORD).await;
    let page = browser.get("/ui/pools/lab").await;
    let reopen_form = format!(
        r#"<input type="hidden" name="group" value="{group}"><button name="action" value="reopen">Reopen</button>"#
    );
    assert!(page.body.contains(&reopen_form), "{}", page.body);

    let reopened = browser
        .post(
            "/ui/pools/lab/groups",
            &[("group", group.as_str()), ("action", "reopen")],
            true,
        )
        .await;
    assert_eq!(reopened.status, 303);
    assert_eq!(reopened.location.as_deref(), Some("/ui/pools/lab"));
    let (_, groups) = api.get("/pools/lab/groups", ROOT).await;
    assert_eq!(groups[0]["state"], "sealed", "{groups}");
    let (status, again) = api.post("/pools/lab/claims", processor, json!({})).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["group"]["attempts"], 1, "fresh attempts: {again}");
    let page = browser.get("/ui/pools/lab").await;
    assert!(
        !page.body.contains(r#"value="reopen""#),
        "nothing left to reopen: {}",
        page.body
    );
    app.stop().await;
}

#[tokio::test]
async fn a_disabled_member_enabled_from_the_pool_page_is_let_in_again() {
    let app = spawn_app().await;
    let api = app.api();
    create_pool(&api, "sky").await;
    let cam = add_pool_members(&api, "sky", json!({"name": "cam", "role": "contributor"})).await;
    let token = cam[0].1.clone();
    let (status, _) = api
        .post("/pools/sky/members/cam/disable", ROOT, json!({}))
        .await;
    assert_eq!(status, 204);
    let (status, body) = api.get("/pools/sky", Caller::Bearer(&token)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("account_disabled"))
    );

    let mut browser = Browser::new(&app);
    browser.sign_in(ROOT_USER, ROOT_PASSWORD).await;
    let page = browser.get("/ui/pools/sky").await;
    assert!(
        page.body
            .contains(r#"<button name="action" value="enable">Enable</button>"#),
        "{}",
        page.body
    );
    let enabled = browser
        .post("/ui/pools/sky/members/cam", &[("action", "enable")], true)
        .await;
    assert_eq!(enabled.status, 303);
    assert_eq!(enabled.location.as_deref(), Some("/ui/pools/sky"));
    let (_, members) = api.get("/pools/sky/members", ROOT).await;
    let member = members
        .as_array()
        .expect("a list")
        .iter()
        .find(|m| m["name"] == "cam")
        .expect("cam")
        .clone();
    assert_eq!(member["disabled"], false, "{member}");
    assert_eq!(api.get("/pools/sky", Caller::Bearer(&token)).await.0, 200);
    let receipts = send_pool_files(&api, "sky", &token, &[("b.png", now_ms(), PNG)]).await;
    assert_eq!(receipts[0]["status"], "accepted", "{receipts:?}");
    app.stop().await;
}

#[tokio::test]
async fn rekeying_a_member_from_the_pool_page_shows_a_new_token_once_and_retires_the_old() {
    let app = spawn_app().await;
    let api = app.api();
    create_pool(&api, "sky").await;
    let cam = add_pool_members(&api, "sky", json!({"name": "cam", "role": "contributor"})).await;
    let old = cam[0].1.clone();
    assert_eq!(api.get("/pools/sky", Caller::Bearer(&old)).await.0, 200);

    let mut browser = Browser::new(&app);
    browser.sign_in(ROOT_USER, ROOT_PASSWORD).await;
    let rekeyed = browser
        .post("/ui/pools/sky/members/cam", &[("action", "rekey")], true)
        .await;
    assert_eq!(rekeyed.status, 200, "the page itself, with the token");
    let shown = rekeyed
        .body
        .split(r#"id="new-tokens""#)
        .nth(1)
        .unwrap_or_else(|| panic!("the new token: {}", rekeyed.body));
    let new = shown
        .lines()
        .find_map(|line| line.strip_prefix("cam,"))
        .expect("cam's new token")
        .to_owned();
    assert!(new.starts_with("cpm_") && new != old, "{new}");

    let (status, _) = api.get("/pools/sky", Caller::Bearer(&old)).await;
    assert_eq!(status, 401, "the old token is dead");
    assert_eq!(api.get("/pools/sky", Caller::Bearer(&new)).await.0, 200);
    let again = browser.get("/ui/pools/sky").await;
    assert_eq!(again.status, 200);
    assert!(!again.body.contains(&new), "the token is shown once");
    app.stop().await;
}

#[tokio::test]
async fn the_pool_page_shows_its_webhook_and_a_refused_attempt_with_the_next_try() {
    // An hour between tries: the one failed attempt stays the newest.
    let app = spawn_app_with(&[
        "--webhook-retry-base-ms",
        "3600000",
        "--webhook-allow-private",
    ])
    .await;
    let api = app.api();
    // A port held but not listening: every connection is refused.
    let (_socket, port) = unserved_port();
    let hook = format!("http://127.0.0.1:{port}/hook");
    let (status, body) = api
        .post(
            "/pools",
            ROOT,
            json!({"name": "hooked", "window_secs": 3600, "webhook_url": hook.as_str(), "webhook_secret": "s3cret-value"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let cam = add_pool_members(
        &api,
        "hooked",
        json!({"name": "cam", "role": "contributor"}),
    )
    .await;
    send_pool_files(&api, "hooked", &cam[0].1, &[("a.png", now_ms(), PNG)]).await;
    let attempt = poll_until("a failed attempt is recorded", || async {
        let (_, attempts) = api.get("/pools/hooked/webhook/attempts", ROOT).await;
        attempts.as_array().and_then(|a| a.first().cloned())
    })
    .await;
    assert_eq!(attempt["delivered"], false, "{attempt}");
    assert!(attempt["status"].is_null(), "{attempt}");
    let next = attempt["next_try"]
        .as_str()
        .unwrap_or_else(|| panic!("a next try: {attempt}"));
    let next_ms = chrono::DateTime::parse_from_rfc3339(next)
        .expect("RFC 3339")
        .timestamp_millis();
    // As the console writes times.
    let next_words = chrono::DateTime::from_timestamp_millis(next_ms)
        .unwrap()
        .format("%Y-%m-%d %H:%M UTC")
        .to_string();

    let mut browser = Browser::new(&app);
    browser.sign_in(ROOT_USER, ROOT_PASSWORD).await;
    let page = browser.get("/ui/pools/hooked").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains(&format!("Events go to <code>{hook}</code>")),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("s3cret-value"),
        "the secret is not shown"
    );
    let newest = page
        .body
        .split("Recent webhook attempts")
        .nth(1)
        .and_then(|table| table.split("<tbody>").nth(1))
        .and_then(|rows| rows.split("</tr>").next())
        .unwrap_or_else(|| panic!("the attempts table: {}", page.body));
    assert!(
        newest.contains(&format!("<td class=\"num\">{}</td>", attempt["event_id"])),
        "{newest}"
    );
    assert!(
        newest.contains("<td class=\"num\">1</td><td>failed: "),
        "the first attempt, failed: {newest}"
    );
    assert!(
        newest.ends_with(&format!("<td class=\"nowrap\">{next_words}</td>")),
        "the next try, {next_words}: {newest}"
    );
    app.stop().await;
}
