//! The web console through HTTP as a browser sends it: sign-in redirects,
//! the session cookie's attributes and the page security headers, CSRF
//! refusals on forms and on cookie-authenticated API calls, other people's
//! buckets, uploads by plain form and in parts, share links (working,
//! altered, expired) and signing out.

use std::collections::BTreeMap;

use serde_json::json;

use crate::helpers::*;

/// A browser without scripts: keeps cookies, follows no redirects, and
/// reads the CSRF token off the last page.
#[derive(Clone)]
pub(crate) struct Browser {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) cookies: BTreeMap<String, String>,
    pub(crate) csrf: String,
}

pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: String,
}

impl Browser {
    pub(crate) fn new(app: &TestApp) -> Self {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: app.web_url(""),
            cookies: BTreeMap::new(),
            csrf: String::new(),
        }
    }

    pub(crate) fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(crate) async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let response = request
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("an answer");
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let (pair, _) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || text.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let location = headers
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.text().await.expect("a body");
        if let Some(start) = body.find(r#"name="csrf-token" content=""#) {
            let rest = &body[start + r#"name="csrf-token" content=""#.len()..];
            let token = &rest[..rest.find('"').unwrap()];
            if !token.is_empty() {
                self.csrf = token.to_owned();
            }
        }
        Page {
            status,
            location,
            headers,
            body,
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    /// Posts a form; `csrf` adds the page's token.
    pub(crate) async fn post(&mut self, path: &str, fields: &[(&str, &str)], csrf: bool) -> Page {
        let mut fields: Vec<(&str, &str)> = fields.to_vec();
        let token = self.csrf.clone();
        if csrf {
            fields.push(("csrf", &token));
        }
        let request = self.http.post(format!("{}{path}", self.base)).form(&fields);
        self.send(request).await
    }

    /// Posts the sign-in form, asking to land on `next`: its answer.
    pub(crate) async fn sign_in_form(&mut self, name: &str, password: &str, next: &str) -> Page {
        self.post(
            "/ui/sign-in",
            &[("name", name), ("password", password), ("next", next)],
            false,
        )
        .await
    }

    /// Signs in through the form: the form's answer (a 303 when it worked).
    pub(crate) async fn sign_in(&mut self, name: &str, password: &str) -> Page {
        let page = self.sign_in_form(name, password, "/ui/buckets").await;
        // Load a page, for its CSRF token.
        self.get("/ui/buckets").await;
        page
    }

    /// A GET with this browser's cookies, its body as raw bytes.
    pub(crate) async fn fetch_raw(
        &self,
        path: &str,
        range: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let mut request = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header());
        if let Some(range) = range {
            request = request.header("range", range);
        }
        let response = request.send().await.expect("an answer");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("a body").to_vec();
        (status, headers, body)
    }
}

#[tokio::test]
async fn pages_need_a_session_and_carry_strict_headers() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    let page = browser.get("/").await;
    assert_eq!(page.status, 303);
    let page = browser.get("/ui/buckets?x=1").await;
    assert_eq!(page.status, 303);
    assert_eq!(
        page.location.as_deref(),
        Some("/ui/sign-in?next=%2Fui%2Fbuckets%3Fx%3D1")
    );

    let wrong = browser.sign_in(ROOT_USER, "not-the-password").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("The name or password is wrong."));
    assert!(!browser.cookies.contains_key("cistern_session"));

    let page = browser
        .sign_in_form(ROOT_USER, ROOT_PASSWORD, "/ui/account")
        .await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/ui/account"));
    let cookie = page.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("cistern_session=cs_"), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");

    let page = browser.get("/ui/account").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(ROOT_USER));
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert_eq!(page.headers["referrer-policy"], "same-origin");
    assert_eq!(page.headers["cache-control"], "no-store");
    assert!(!page.body.contains("<script>") && !page.body.contains(" style="));

    // A page elsewhere than this site is no place to return to.
    let mut other = Browser::new(&app);
    let page = other
        .sign_in_form(ROOT_USER, ROOT_PASSWORD, "//evil.example/")
        .await;
    assert_eq!(page.location.as_deref(), Some("/ui/buckets"));

    // Behind a proxy that terminated TLS, the cookie is Secure.
    let mut behind_proxy = Browser::new(&app);
    let request = behind_proxy
        .http
        .post(app.web_url("/ui/sign-in"))
        .header("x-forwarded-proto", "https")
        .form(&[("name", ROOT_USER), ("password", ROOT_PASSWORD)]);
    let page = behind_proxy.send(request).await;
    assert!(
        page.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
    app.stop().await;
}

#[tokio::test]
async fn embedded_files_have_digest_names_and_a_long_cache() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    let page = browser.get("/ui/sign-in").await;
    let start = page.body.find("/ui/assets/app.").expect("stylesheet link");
    let path = &page.body[start..start + page.body[start..].find('"').unwrap()];
    let asset = browser.get(path).await;
    assert_eq!(asset.status, 200);
    assert_eq!(asset.headers["content-type"], "text/css; charset=utf-8");
    assert!(
        asset.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert_eq!(browser.get("/ui/assets/app.css").await.status, 404);
    let missing = browser.get("/ui/no-such-page").await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("There is no such page"));
    app.stop().await;
}

#[tokio::test]
async fn forms_and_cookie_calls_without_the_csrf_token_are_refused() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    browser.sign_in(ROOT_USER, ROOT_PASSWORD).await;

    let refused = browser
        .post("/ui/buckets", &[("name", "forged")], false)
        .await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("did not come from this site"));
    let wrong = browser
        .post(
            "/ui/buckets",
            &[("name", "forged"), ("csrf", "0000")],
            false,
        )
        .await;
    assert_eq!(wrong.status, 403);
    let (status, _) = app.api().get("/buckets/forged", ROOT).await;
    assert_eq!(status, 404, "a refused form creates nothing");

    let made = browser.post("/ui/buckets", &[("name", "made")], true).await;
    assert_eq!(made.status, 303);
    assert_eq!(made.location.as_deref(), Some("/ui/buckets/made"));
    let page = browser.get("/ui/buckets/made").await;
    assert!(page.body.contains("The bucket made is ready"), "the notice");
    let again = browser.get("/ui/buckets/made").await;
    assert!(!again.body.contains("is ready"), "a notice shows once");

    // The JSON API signed in by cookie: reads work, writes need the header.
    let url = app.web_url("/api/v1/buckets/made/objects/a.txt");
    let cookie = browser.cookie_header();
    let put = browser
        .http
        .put(&url)
        .header("cookie", &cookie)
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 403);
    let body: serde_json::Value = put.json().await.unwrap();
    assert_eq!(body["error"]["code"], "csrf_token_missing");
    let put = browser
        .http
        .put(&url)
        .header("cookie", &cookie)
        .header("x-csrf-token", &browser.csrf)
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let get = browser
        .http
        .get(&url)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(get.headers()["content-security-policy"], "sandbox");
    assert_eq!(get.text().await.unwrap(), "hello");
    // Basic callers need no token.
    let (status, _) = app.api().delete("/buckets/made/objects/a.txt", ROOT).await;
    assert_eq!(status, 204);
    app.stop().await;
}

#[tokio::test]
async fn other_peoples_buckets_stay_closed() {
    let app = spawn_app().await;
    let api = app.api();
    api.create_user("alice", "alice-password").await;
    api.create_user("bob", "bob-password-1").await;
    let alice = ("alice", "alice-password");
    api.post("/buckets", alice, json!({"name": "alices"})).await;
    api.request(alice, "PUT", "/buckets/alices/objects/diary/secret.txt")
        .body("mine")
        .send()
        .await
        .unwrap();

    let mut bob = Browser::new(&app);
    bob.sign_in("bob", "bob-password-1").await;
    let list = bob.get("/ui/buckets").await;
    assert!(!list.body.contains("alices"));
    for path in [
        "/ui/buckets/alices",
        "/ui/buckets/alices/settings",
        "/ui/buckets/alices/objects/diary/secret.txt",
    ] {
        let page = bob.get(path).await;
        assert!(
            page.status == 403 || page.status == 404,
            "{path}: {}",
            page.status
        );
        assert!(!page.body.contains("mine"));
    }
    let delete = bob
        .post(
            "/ui/buckets/alices/delete-files",
            &[("key", "diary/secret.txt"), ("confirmed", "yes")],
            true,
        )
        .await;
    assert_eq!(delete.status, 403);
    let (status, _) = api
        .get("/buckets/alices/objects/diary/secret.txt", alice)
        .await;
    assert_eq!(status, 200, "still there");

    // Once alice shares it, bob can read but not delete.
    let mut alice_browser = Browser::new(&app);
    alice_browser.sign_in("alice", "alice-password").await;
    let shared = alice_browser
        .post(
            "/ui/buckets/alices/grants",
            &[("user", "bob"), ("level", "read")],
            true,
        )
        .await;
    assert_eq!(shared.status, 303);
    let page = bob.get("/ui/buckets/alices?prefix=diary%2F").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("secret.txt"));
    assert!(
        !page.body.contains("Delete selected"),
        "no write access shown"
    );
    app.stop().await;
}

#[tokio::test]
async fn files_are_browsed_uploaded_renamed_and_deleted() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    browser.sign_in(ROOT_USER, ROOT_PASSWORD).await;
    browser.post("/ui/buckets", &[("name", "docs")], true).await;

    // The plain upload form, as a browser without scripts sends it: the
    // token first, then the folder, then files with relative paths.
    let form = reqwest::multipart::Form::new()
        .text("csrf", browser.csrf.clone())
        .text("prefix", "")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"first".to_vec()).file_name("notes/a.txt"),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"second".to_vec()).file_name("notes/deep/b.md"),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(Vec::new()).file_name(""),
        );
    let request = browser
        .http
        .post(app.web_url("/ui/buckets/docs/upload"))
        .multipart(form);
    let page = browser.send(request).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let page = browser.get(page.location.as_deref().unwrap()).await;
    assert!(page.body.contains("Uploaded 2 files."), "{}", page.body);
    // The bytes count in the uploader's usage although the form answered
    // with a redirect.
    let upload = poll_until("the form upload in the audit log", || async {
        let (_, page) = app
            .api()
            .get("/audit?action=object.upload_form", ROOT)
            .await;
        page["records"].as_array().and_then(|r| r.first().cloned())
    })
    .await;
    assert!(upload["bytes_in"].as_u64().unwrap() >= 11, "{upload}");

    let root = browser.get("/ui/buckets/docs").await;
    assert!(
        root.body
            .contains(r#"href="/ui/buckets/docs?prefix=notes%2F""#)
    );
    let folder = browser.get("/ui/buckets/docs?prefix=notes%2F").await;
    assert!(folder.body.contains(">a.txt<") && folder.body.contains(">deep/<"));

    let object = browser.get("/ui/buckets/docs/objects/notes/a.txt").await;
    assert_eq!(object.status, 200);
    assert!(object.body.contains("first"), "a text preview");
    assert!(object.body.contains(&md5_hex(b"first")), "the ETag");

    // Rename, then delete with a confirmation page in between.
    let renamed = browser
        .post(
            "/ui/buckets/docs/rename",
            &[("key", "notes/a.txt"), ("new_key", "archive/a.txt")],
            true,
        )
        .await;
    assert_eq!(renamed.status, 303);
    let s3 = app.client();
    assert_eq!(get_bytes(&s3, "docs", "archive/a.txt").await, b"first");
    assert!(
        s3.head_object()
            .bucket("docs")
            .key("notes/a.txt")
            .send()
            .await
            .is_err()
    );

    let ask = browser
        .post(
            "/ui/buckets/docs/delete-files",
            &[
                ("key", "archive/a.txt"),
                ("key", "notes/"),
                ("back", "/ui/buckets/docs"),
            ],
            true,
        )
        .await;
    assert_eq!(ask.status, 200);
    assert!(ask.body.contains("Delete 2 files from docs?"));
    assert_eq!(
        get_bytes(&s3, "docs", "archive/a.txt").await,
        b"first",
        "nothing yet"
    );
    let gone = browser
        .post(
            "/ui/buckets/docs/delete-files",
            &[
                ("key", "archive/a.txt"),
                ("key", "notes/"),
                ("back", "/ui/buckets/docs"),
                ("confirmed", "yes"),
            ],
            true,
        )
        .await;
    assert_eq!(gone.status, 303);
    let listed = s3.list_objects_v2().bucket("docs").send().await.unwrap();
    assert_eq!(
        listed.key_count(),
        Some(0),
        "the file and the folder's file"
    );

    // An empty bucket can go; the audit log names the console's actions.
    let deleted = browser.post("/ui/buckets/docs/delete", &[], true).await;
    assert_eq!(deleted.location.as_deref(), Some("/ui/buckets"));
    let audit = poll_until("the console's actions in the audit log", || async {
        let (_, page) = app.api().get("/audit?action=bucket.delete", ROOT).await;
        (page["records"].as_array().map_or(0, Vec::len) > 0).then_some(page)
    })
    .await;
    assert_eq!(audit["records"][0]["bucket"], "docs");
    assert_eq!(audit["records"][0]["actor"], ROOT_USER);
    app.stop().await;
}

#[tokio::test]
async fn large_files_go_up_in_parts_and_resume() {
    let app = spawn_app().await;
    let api = app.api();
    api.post("/buckets", ROOT, json!({"name": "big"})).await;
    let (status, upload) = api
        .post(
            "/buckets/big/uploads",
            ROOT,
            json!({"key": "v/film.bin", "content_type": "video/mp4"}),
        )
        .await;
    assert_eq!(status, 201, "{upload}");
    let id = upload["upload_id"].as_str().unwrap().to_owned();
    let first = pattern(5 * 1024 * 1024, 1);
    let second = pattern(1000, 2);
    let part = |n: u32, body: Vec<u8>| {
        api.request(
            ROOT,
            "PUT",
            &format!("/buckets/big/uploads/{id}/parts/{n}?key=v%2Ffilm.bin"),
        )
        .body(body)
        .send()
    };
    let one: serde_json::Value = part(1, first.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(one["etag"], md5_hex(&first));
    // A reload later: the stored parts are listed, so only the rest is sent.
    let (_, listed) = api
        .get(
            &format!("/buckets/big/uploads/{id}/parts?key=v%2Ffilm.bin"),
            ROOT,
        )
        .await;
    assert_eq!(
        listed["parts"],
        json!([{"number": 1, "size": first.len(), "etag": md5_hex(&first)}])
    );
    let two: serde_json::Value = part(2, second.clone()).await.unwrap().json().await.unwrap();
    let (status, object) = api
        .post(
            &format!("/buckets/big/uploads/{id}/complete"),
            ROOT,
            json!({"key": "v/film.bin", "parts": [{"number": 1, "etag": one["etag"]}, {"number": 2, "etag": two["etag"]}]}),
        )
        .await;
    assert_eq!(status, 201, "{object}");
    assert!(object["etag"].as_str().unwrap().ends_with("-2"));
    let whole = [first, second].concat();
    assert_eq!(get_bytes(&app.client(), "big", "v/film.bin").await, whole);

    // A part for another key is refused; an abort removes the upload.
    let (_, upload) = api
        .post("/buckets/big/uploads", ROOT, json!({"key": "x"}))
        .await;
    let id = upload["upload_id"].as_str().unwrap();
    let wrong_key = api
        .request(
            ROOT,
            "PUT",
            &format!("/buckets/big/uploads/{id}/parts/1?key=y"),
        )
        .body("data")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_key.status(), 404);
    let (status, _) = api
        .delete(&format!("/buckets/big/uploads/{id}?key=x"), ROOT)
        .await;
    assert_eq!(status, 204);
    let (status, _) = api
        .get(&format!("/buckets/big/uploads/{id}/parts?key=x"), ROOT)
        .await;
    assert_eq!(status, 404);
    app.stop().await;
}

/// The link on the object page after "Create share link".
fn share_link_on(page: &str) -> String {
    let start = page
        .find(r#"id="share-url" value=""#)
        .expect("a share link")
        + r#"id="share-url" value=""#.len();
    page[start..start + page[start..].find('"').unwrap()].replace("&#38;", "&")
}

#[tokio::test]
async fn share_links_open_without_an_account_until_they_expire() {
    let app = spawn_app().await;
    let api = app.api();
    api.post("/buckets", ROOT, json!({"name": "pics"})).await;
    put_bytes(&app.client(), "pics", "cat one.txt", b"meow".to_vec()).await;
    let mut browser = Browser::new(&app);
    browser.sign_in(ROOT_USER, ROOT_PASSWORD).await;
    let made = browser
        .post(
            "/ui/buckets/pics/share",
            &[("key", "cat one.txt"), ("lifetime", "3600")],
            true,
        )
        .await;
    assert_eq!(made.status, 200, "the page itself, with the link");
    assert!(made.body.contains("The share link is ready"));
    let link = share_link_on(&made.body);
    assert!(
        link.starts_with(&app.web_url("/share/pics/cat%20one.txt?by=")),
        "{link}"
    );

    let stranger = reqwest::Client::new();
    let opened = stranger.get(&link).send().await.unwrap();
    assert_eq!(opened.status(), 200);
    assert_eq!(opened.text().await.unwrap(), "meow");
    let ranged = stranger
        .get(&link)
        .header("range", "bytes=1-2")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.text().await.unwrap(), "eo");

    let altered = link.replace("cat%20one.txt", "cat%20two.txt");
    let refused = stranger.get(&altered).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("This link is not valid")
    );

    // The same key signing an expiry that has passed: the expired page.
    let (query_start, _) = link.split_once("&expires=").unwrap();
    let access_key = query_start.rsplit_once("by=").unwrap().1;
    let root = app.store.login(ROOT_USER, ROOT_PASSWORD).await.unwrap();
    let (key, secret) = app.store.share_key(&root, "pics").await.unwrap();
    assert_eq!(key, access_key);
    let past = chrono::Utc::now().timestamp() - 10;
    let signature = cistern::core::presign::share_signature(&secret, "pics", "cat one.txt", past);
    let expired = format!("{query_start}&expires={past}&sig={signature}");
    let answer = stranger.get(&expired).send().await.unwrap();
    assert_eq!(answer.status(), 410);
    assert!(
        answer
            .text()
            .await
            .unwrap()
            .contains("This link has expired")
    );
    app.stop().await;
}

#[tokio::test]
async fn signing_out_ends_the_session_for_every_page_and_call() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    browser.sign_in(ROOT_USER, ROOT_PASSWORD).await;
    let old_cookie = browser.cookie_header();
    let out = browser.post("/ui/sign-out", &[], true).await;
    assert_eq!(out.location.as_deref(), Some("/ui/sign-in"));
    assert!(!browser.cookies.contains_key("cistern_session"));
    // Someone who kept the old cookie gets nothing.
    let page = browser
        .http
        .get(app.web_url("/ui/buckets"))
        .header("cookie", &old_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303);
    let api = browser
        .http
        .get(app.web_url("/api/v1/buckets"))
        .header("cookie", &old_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn sign_up_follows_the_setting() {
    let closed = spawn_app().await;
    let mut browser = Browser::new(&closed);
    assert_eq!(browser.get("/ui/sign-up").await.status, 404);
    closed.stop().await;

    let open = spawn_app_with(&["--allow-signup"]).await;
    let mut browser = Browser::new(&open);
    let differ = browser
        .post(
            "/ui/sign-up",
            &[
                ("name", "carol"),
                ("password", "carol-password"),
                ("repeat", "other-password"),
            ],
            false,
        )
        .await;
    assert_eq!(differ.status, 400);
    assert!(differ.body.contains("The two passwords differ"));
    let made = browser
        .post(
            "/ui/sign-up",
            &[
                ("name", "carol"),
                ("password", "carol-password"),
                ("repeat", "carol-password"),
            ],
            false,
        )
        .await;
    assert_eq!(made.location.as_deref(), Some("/ui/sign-in"));
    let page = browser.sign_in("carol", "carol-password").await;
    assert_eq!(page.status, 303);
    assert_eq!(browser.get("/ui/buckets").await.status, 200);
    open.stop().await;
}

#[tokio::test]
async fn a_folder_pages_by_cursor_through_every_file_once() {
    let app = spawn_app().await;
    let s3 = app.client();
    s3.create_bucket().bucket("many").send().await.unwrap();
    let names: Vec<String> = (0..450).map(|i| format!("f/{i:04}.txt")).collect();
    futures::future::join_all(
        names
            .iter()
            .map(|key| put_bytes(&s3, "many", key, b"x".to_vec())),
    )
    .await;
    let mut browser = Browser::new(&app);
    browser.sign_in(ROOT_USER, ROOT_PASSWORD).await;
    let mut seen = Vec::new();
    let mut next = Some("/ui/buckets/many?prefix=f%2F".to_owned());
    let mut pages = 0;
    while let Some(url) = next {
        let page = browser
            .get(&url.replace("&amp;", "&").replace("&#38;", "&"))
            .await;
        assert_eq!(page.status, 200);
        pages += 1;
        for part in page.body.split(r#"name="key" value=""#).skip(1) {
            seen.push(part[..part.find('"').unwrap()].to_owned());
        }
        next = page
            .body
            .split(r#"rel="next""#)
            .next()
            .filter(|_| page.body.contains(r#"rel="next""#))
            .and_then(|before| before.rsplit("href=\"").next())
            .map(|href| href[..href.find('"').unwrap()].to_owned());
    }
    assert_eq!(pages, 3, "200 entries a page");
    assert_eq!(seen, names, "every file once, in order");
    // Sizes and dates are sorted within a page, and the page says so when
    // the folder has more than one.
    let sorted = browser.get("/ui/buckets/many?prefix=f%2F&sort=size").await;
    assert!(sorted.body.contains("Sorted by size within this page"));
    let whole = browser
        .get("/ui/buckets/many?prefix=f%2F&sort=size&size=1000")
        .await;
    assert!(
        !whole.body.contains("within this page"),
        "one page is the whole folder"
    );
    app.stop().await;
}

#[tokio::test]
async fn admin_pages_are_for_admins_and_history_is_ones_own() {
    let app = spawn_app().await;
    let api = app.api();
    api.create_user("hana", "hana-password").await;
    api.post("/buckets", ROOT, json!({"name": "roots-bucket"}))
        .await;
    let mut hana = Browser::new(&app);
    hana.sign_in("hana", "hana-password").await;
    hana.post("/ui/buckets", &[("name", "hanas-bucket")], true)
        .await;
    for path in [
        "/ui/admin/users",
        "/ui/admin/users/testroot",
        "/ui/admin/audit",
    ] {
        let page = hana.get(path).await;
        assert_eq!(page.status, 403, "{path}");
        assert!(
            page.body.contains("Sign out"),
            "an error page keeps the navigation"
        );
    }
    let refused = hana
        .post("/ui/admin/users/testroot/disable", &[], true)
        .await;
    assert_eq!(refused.status, 403);

    let history = poll_until("hana's bucket in her history", || {
        let mut page_of = hana.clone();
        async move {
            let page = page_of.get("/ui/history?action=bucket.create").await;
            page.body.contains("hanas-bucket").then_some(page)
        }
    })
    .await;
    assert!(
        !history.body.contains("roots-bucket"),
        "only her own actions"
    );

    let mut root = Browser::new(&app);
    root.sign_in(ROOT_USER, ROOT_PASSWORD).await;
    let audit = root.get("/ui/admin/audit?action=bucket.create").await;
    assert_eq!(audit.status, 200);
    let disabled = root.post("/ui/admin/users/hana/disable", &[], true).await;
    assert_eq!(disabled.status, 303);
    assert_eq!(
        hana.get("/ui/buckets").await.status,
        303,
        "a disabled user is signed out"
    );
    let bad_quota = root
        .post("/ui/admin/users/hana/quota", &[("gib", "lots")], true)
        .await;
    let page = root.get(bad_quota.location.as_deref().unwrap()).await;
    assert!(page.body.contains("Give the quota as a number of GiB"));
    app.stop().await;
}

#[tokio::test]
async fn keys_made_in_the_console_show_their_secret_once() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    browser.sign_in(ROOT_USER, ROOT_PASSWORD).await;
    browser.get("/ui/keys").await;
    let refused = browser
        .post("/ui/keys", &[("read_only", "yes")], false)
        .await;
    assert_eq!(refused.status, 403);
    let made = browser
        .post("/ui/keys", &[("read_only", "yes")], true)
        .await;
    assert_eq!(made.status, 200);
    let secret_start = made
        .body
        .find(r#"id="new-secret" value=""#)
        .expect("the secret")
        + r#"id="new-secret" value=""#.len();
    let secret =
        &made.body[secret_start..secret_start + made.body[secret_start..].find('"').unwrap()];
    assert!(
        made.body
            .contains(&format!("AWS_SECRET_ACCESS_KEY={secret}"))
    );
    let again = browser.get("/ui/keys").await;
    assert!(!again.body.contains(secret), "shown once");
    assert!(again.body.contains(">read<"));
    app.stop().await;
}

#[tokio::test]
async fn abandoned_uploads_expire_and_their_parts_go() {
    let app = spawn_app_with(&["--upload-expiry-secs", "1", "--trash-delay-secs", "1"]).await;
    let s3 = app.client();
    s3.create_bucket().bucket("left").send().await.unwrap();
    let upload = s3
        .create_multipart_upload()
        .bucket("left")
        .key("half.bin")
        .send()
        .await
        .unwrap();
    s3.upload_part()
        .bucket("left")
        .key("half.bin")
        .upload_id(upload.upload_id().unwrap())
        .part_number(1)
        .body(pattern(1 << 20, 3).into())
        .send()
        .await
        .unwrap();
    assert_eq!(
        blob_files(app.data_dir.path()).len(),
        1,
        "the part is stored"
    );
    poll_within(
        std::time::Duration::from_secs(20),
        "the upload to expire",
        || async {
            let listed = s3
                .list_multipart_uploads()
                .bucket("left")
                .send()
                .await
                .unwrap();
            listed.uploads().is_empty().then_some(())
        },
    )
    .await;
    // Its part goes to the trash, and from there off the disk.
    app.store
        .sweep_trash(std::time::Duration::ZERO)
        .await
        .expect("sweep trash");
    assert!(
        blob_files(app.data_dir.path()).is_empty(),
        "the expired upload's part is removed"
    );
    app.stop().await;
}

#[tokio::test]
async fn changing_the_password_ends_the_other_sessions() {
    let app = spawn_app().await;
    app.api().create_user("ivan", "ivan-password-1").await;
    let mut laptop = Browser::new(&app);
    laptop.sign_in("ivan", "ivan-password-1").await;
    let mut phone = Browser::new(&app);
    phone.sign_in("ivan", "ivan-password-1").await;

    let wrong = laptop
        .post(
            "/ui/account/password",
            &[
                ("current", "guess"),
                ("password", "ivan-password-2"),
                ("repeat", "ivan-password-2"),
            ],
            true,
        )
        .await;
    let page = laptop.get(wrong.location.as_deref().unwrap()).await;
    assert!(page.body.contains("The current password is wrong."));
    let changed = laptop
        .post(
            "/ui/account/password",
            &[
                ("current", "ivan-password-1"),
                ("password", "ivan-password-2"),
                ("repeat", "ivan-password-2"),
            ],
            true,
        )
        .await;
    assert_eq!(changed.status, 303);
    assert_eq!(
        laptop.get("/ui/buckets").await.status,
        200,
        "this session stays"
    );
    assert_eq!(
        phone.get("/ui/buckets").await.status,
        303,
        "the other one ended"
    );
    let (status, _) = app.api().get("/buckets", ("ivan", "ivan-password-2")).await;
    assert_eq!(status, 200);

    laptop.post("/ui/sign-out-everywhere", &[], true).await;
    assert_eq!(laptop.get("/ui/buckets").await.status, 303);
    app.stop().await;
}

#[tokio::test]
async fn repeated_wrong_passwords_are_slowed_in_the_console_too() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let page = browser.sign_in(ROOT_USER, "wrong-password").await;
        statuses.push(page.status);
        if page.status == 429 {
            assert!(
                page.body.contains("Too many failed sign-ins"),
                "{}",
                page.body
            );
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    app.stop().await;
}

#[tokio::test]
async fn forms_from_other_sites_are_refused_and_refusals_are_audited_as_such() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    browser.sign_in(ROOT_USER, ROOT_PASSWORD).await;
    // A form another site (or the S3 port) makes the browser post.
    let token = browser.csrf.clone();
    let request = browser
        .http
        .post(app.web_url("/ui/buckets"))
        .header("sec-fetch-site", "same-site")
        .form(&[("name", "planted"), ("csrf", token.as_str())]);
    assert_eq!(browser.send(request).await.status, 403);
    let request = browser
        .http
        .post(app.web_url("/ui/sign-in"))
        .header("origin", "http://elsewhere.example")
        .form(&[("name", ROOT_USER), ("password", ROOT_PASSWORD)]);
    assert_eq!(browser.send(request).await.status, 403);
    let (status, _) = app.api().get("/buckets/planted", ROOT).await;
    assert_eq!(status, 404);

    // A refused action answers with a redirect but is audited as refused.
    let page = browser.post("/ui/buckets", &[("name", "X")], true).await;
    assert_eq!(page.status, 303);
    let record = poll_until("the refused creation in the audit log", || async {
        let (_, page) = app.api().get("/audit?action=bucket.create", ROOT).await;
        page["records"].as_array().and_then(|r| r.first().cloned())
    })
    .await;
    assert_eq!(record["status"], 400, "{record}");
    app.stop().await;
}

#[tokio::test]
async fn the_plain_upload_form_takes_large_files() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    browser.sign_in(ROOT_USER, ROOT_PASSWORD).await;
    browser.post("/ui/buckets", &[("name", "big")], true).await;
    let data = pattern(5 * 1024 * 1024 + 7, 9);
    let form = reqwest::multipart::Form::new()
        .text("csrf", browser.csrf.clone())
        .text("prefix", "")
        .part(
            "file",
            reqwest::multipart::Part::bytes(data.clone()).file_name("five.bin"),
        );
    let request = browser
        .http
        .post(app.web_url("/ui/buckets/big/upload"))
        .multipart(form);
    let page = browser.send(request).await;
    assert_eq!(page.status, 303);
    assert_eq!(get_bytes(&app.client(), "big", "five.bin").await, data);

    // A stale session cookie does not spoil anonymous reads of public buckets.
    let cookie = browser.cookie_header();
    browser
        .post("/ui/buckets/big/public", &[("public", "on")], true)
        .await;
    browser.post("/ui/sign-out", &[], true).await;
    let read = reqwest::Client::new()
        .head(app.web_url("/api/v1/buckets/big/objects/five.bin"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn keys_with_dot_segments_reach_their_own_object() {
    let app = spawn_app().await;
    let api = app.api();
    api.post("/buckets", ROOT, json!({"name": "dots"})).await;
    put_bytes(&app.client(), "dots", "b.txt", b"plain".to_vec()).await;
    // A key a browser would rewrite if it were in a path, stored through
    // the uploads API, which takes keys in the body.
    let dotted = "a/../b.txt";
    let (_, upload) = api
        .post("/buckets/dots/uploads", ROOT, json!({"key": dotted}))
        .await;
    let id = upload["upload_id"].as_str().unwrap();
    let part: serde_json::Value = api
        .request(
            ROOT,
            "PUT",
            &format!("/buckets/dots/uploads/{id}/parts/1?key=a%2F..%2Fb.txt"),
        )
        .body("dotted")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (status, _) = api
        .post(
            &format!("/buckets/dots/uploads/{id}/complete"),
            ROOT,
            json!({"key": dotted, "parts": [{"number": 1, "etag": part["etag"]}]}),
        )
        .await;
    assert_eq!(status, 201);

    let mut browser = Browser::new(&app);
    browser.sign_in(ROOT_USER, ROOT_PASSWORD).await;
    let folder = browser.get("/ui/buckets/dots?prefix=a%2F..%2F").await;
    assert!(
        folder
            .body
            .contains(r#"href="/ui/buckets/dots/object?key=a%2F..%2Fb.txt""#),
        "{}",
        folder.body
    );
    let page = browser
        .get("/ui/buckets/dots/object?key=a%2F..%2Fb.txt")
        .await;
    assert!(page.body.contains("dotted") && !page.body.contains("plain"));
    assert!(
        page.body
            .contains(r#"href="/ui/buckets/dots/file?key=a%2F..%2Fb.txt""#)
    );
    let file = browser
        .get("/ui/buckets/dots/file?key=a%2F..%2Fb.txt")
        .await;
    assert_eq!(file.body, "dotted");
    app.stop().await;
}

#[tokio::test]
async fn stored_html_is_sandboxed_on_both_ports() {
    let app = spawn_app().await;
    let s3 = app.client();
    s3.create_bucket().bucket("site").send().await.unwrap();
    s3.put_object()
        .bucket("site")
        .key("page.html")
        .content_type("text/html")
        .body(b"<script>alert(1)</script>".to_vec().into())
        .send()
        .await
        .unwrap();
    let from_s3 = signed_request(&app, "GET", "/site/page.html", "us-east-1", &[], "").await;
    assert_eq!(from_s3.status(), 200);
    assert_eq!(from_s3.headers()["content-security-policy"], "sandbox");
    assert_eq!(from_s3.headers()["x-content-type-options"], "nosniff");
    let from_api = app
        .api()
        .request(ROOT, "GET", "/buckets/site/objects/page.html")
        .send()
        .await
        .unwrap();
    assert_eq!(from_api.headers()["content-security-policy"], "sandbox");
    app.stop().await;
}

#[tokio::test]
async fn pool_owners_seal_reopen_and_manage_members_from_the_console() {
    let app = spawn_app().await;
    let api = app.api();
    create_sky_pool(&api).await;
    let member = add_pool_members(&api, "sky", json!({"name": "cam", "role": "contributor"})).await;
    let (_, token) = &member[0];
    let now = now_ms();
    send_pool_files(&api, "sky", token, &[("a.png", now, PNG)]).await;
    let (_, groups) = api.get("/pools/sky/groups", ROOT).await;
    let start = groups[0]["group"].as_str().expect("a group").to_owned();
    let mut browser = Browser::new(&app);
    browser.sign_in(ROOT_USER, ROOT_PASSWORD).await;
    let list = browser.get("/ui/pools").await;
    assert!(list.body.contains("1 open"), "{}", list.body);
    let page = browser.get("/ui/pools/sky").await;
    assert!(page.body.contains("Seal now"), "{}", page.body);

    // Seal early, as the owner, through the form.
    let sealed = browser
        .post(
            "/ui/pools/sky/groups",
            &[("group", &start), ("action", "seal")],
            true,
        )
        .await;
    assert_eq!(sealed.status, 303);
    let (_, groups) = api.get("/pools/sky/groups", ROOT).await;
    assert_eq!(groups[0]["state"], "sealed");
    // Without the page's CSRF token nothing happens.
    let forged = browser
        .post(
            "/ui/pools/sky/groups",
            &[("group", &start), ("action", "reopen")],
            false,
        )
        .await;
    assert_eq!(forged.status, 403);

    // Members: many at once with their tokens once, as CSV too.
    let shown = browser
        .post(
            "/ui/pools/sky/members",
            &[("names", "a\nb\n"), ("role", "listener")],
            true,
        )
        .await;
    assert_eq!(shown.status, 200);
    assert!(
        shown.body.contains("name,token\na,") && shown.body.contains("\nb,"),
        "{}",
        shown.body
    );
    let csv = browser
        .post(
            "/ui/pools/sky/members",
            &[("names", "c"), ("role", "listener"), ("csv", "1")],
            true,
        )
        .await;
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(csv.body.starts_with("name,token\nc,"), "{}", csv.body);
    let disabled = browser
        .post("/ui/pools/sky/members/cam", &[("action", "disable")], true)
        .await;
    assert_eq!(disabled.status, 303);
    let (_, members) = api.get("/pools/sky/members", ROOT).await;
    let cam = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "cam")
        .unwrap();
    assert_eq!(cam["disabled"], true, "{cam}");
    let removed = browser
        .post("/ui/pools/sky/members/a", &[("action", "remove")], true)
        .await;
    assert_eq!(removed.status, 303);
    let (_, members) = api.get("/pools/sky/members", ROOT).await;
    assert!(members.as_array().unwrap().iter().all(|m| m["name"] != "a"));

    // Someone else's pool is not theirs to see.
    let mut eve = stranger(&app).await;
    assert_eq!(eve.get("/ui/pools/sky").await.status, 404);
    app.stop().await;
}

/// A processor's publication or a member's download, through the JSON
/// API with the member's token: the status and the body.
async fn as_member(
    api: &ApiClient,
    token: &str,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    let response = api
        .request(Caller::Bearer(token), method, path)
        .body(body)
        .send()
        .await
        .expect("pool call");
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn a_group_page_shows_its_files_processor_result_and_who_fetched_it() {
    let app = spawn_app().await;
    let api = app.api();
    create_sky_pool(&api).await;
    let cam = add_pool_members(&api, "sky", json!({"name": "cam", "role": "contributor"})).await;
    let screen = add_pool_members(&api, "sky", json!({"name": "screen", "role": "listener"})).await;
    let gpu = add_pool_members(&api, "sky", json!({"name": "gpu", "role": "processor"})).await;
    let now = pool_now_ms(3600);
    send_pool_files(
        &api,
        "sky",
        &cam[0].1,
        &[("north.png", now - 5, PNG), ("south.txt", now, b"sea")],
    )
    .await;
    let (_, groups) = api.get("/pools/sky/groups", ROOT).await;
    let group = groups[0]["group"].as_str().expect("a group").to_owned();
    let page_path = format!("/ui/pools/sky/groups/{group}");
    let mut browser = Browser::new(&app);
    browser.sign_in(ROOT_USER, ROOT_PASSWORD).await;
    let pool_page = browser.get("/ui/pools/sky").await;
    assert!(
        pool_page.body.contains(&page_path),
        "the pool page links its groups"
    );

    let open = browser.get(&page_path).await;
    assert_eq!(open.status, 200);
    for shown in [
        "north.png",
        "south.txt",
        "cam",
        "open",
        "Seal now",
        "none yet",
    ] {
        assert!(open.body.contains(shown), "{shown}: {}", open.body);
    }
    // Each file's download link gives its bytes.
    let link = open
        .body
        .split("href=\"")
        .filter_map(|s| s.split('"').next())
        .find(|href| href.contains("south.txt") && href.starts_with("/api/v1/"))
        .expect("a download link")
        .to_owned();
    let download = browser.get(&link).await;
    assert_eq!((download.status, download.body.as_str()), (200, "sea"));

    // Sealed and claimed: the lease holder and its expiry.
    let seal = format!("/pools/sky/groups/{group}/seal");
    assert_eq!(api.post(&seal, ROOT, json!({})).await.0, 204);
    let (status, claim) = api
        .post("/pools/sky/claims", Caller::Bearer(&gpu[0].1), json!({}))
        .await;
    assert_eq!(status, 200, "{claim}");
    let lease = claim["lease_id"].as_str().unwrap();
    let held = browser.get(&page_path).await;
    assert!(held.body.contains("gpu, lease until"), "{}", held.body);

    // Published and fetched by one listener: who has it, and who not yet.
    let put = format!("/pools/sky/groups/{group}/result?lease={lease}");
    let (status, _) = as_member(&api, &gpu[0].1, "PUT", &put, b"the map".to_vec()).await;
    assert_eq!(status, 201);
    let (status, got) = as_member(
        &api,
        &screen[0].1,
        "GET",
        "/pools/sky/results/latest",
        vec![],
    )
    .await;
    assert_eq!((status, got.as_slice()), (200, &b"the map"[..]));
    let done = browser.get(&page_path).await;
    let fetched = done
        .body
        .split("<table class=\"list\" id=\"fetched\">")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .expect("the deliveries table");
    let row_of = |who: &str| {
        fetched
            .split("<tr>")
            .find(|row| row.contains(&format!("<td>{who}</td>")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        !row_of("screen").contains("not yet") && !row_of("screen").is_empty(),
        "{fetched}"
    );
    assert!(row_of("cam").contains("not yet"), "{fetched}");
    assert!(
        !fetched.contains("gpu"),
        "processors are not receivers: {fetched}"
    );
    assert!(done.body.contains("gpu (published)"), "{}", done.body);

    // Not found: a group that does not exist, a stranger's look.
    assert_eq!(
        browser
            .get("/ui/pools/sky/groups/2001-01-01T00:00:00.000Z")
            .await
            .status,
        404
    );
    assert_eq!(
        browser.get("/ui/pools/sky/groups/yesterday").await.status,
        404
    );
    let mut eve = stranger(&app).await;
    assert_eq!(eve.get(&page_path).await.status, 404);
    app.stop().await;
}

#[tokio::test]
async fn a_member_signs_in_with_its_token_and_sees_its_receipts_and_the_latest_result() {
    let app = spawn_app().await;
    let api = app.api();
    create_sky_pool(&api).await;
    let cam = add_pool_members(&api, "sky", json!({"name": "cam", "role": "contributor"})).await;
    let other =
        add_pool_members(&api, "sky", json!({"name": "other", "role": "contributor"})).await;
    let gpu = add_pool_members(&api, "sky", json!({"name": "gpu", "role": "processor"})).await;
    let token = cam[0].1.clone();
    let now = pool_now_ms(3600);
    let receipts = send_pool_files(
        &api,
        "sky",
        &token,
        &[
            ("north.png", now - 5, PNG),
            ("south.txt", now, b"sea"),
            ("tomorrow.txt", now + 86_400_000, b"early"),
        ],
    )
    .await;
    assert_eq!(receipts[2]["status"], "refused", "{receipts:?}");
    send_pool_files(&api, "sky", &other[0].1, &[("theirs.txt", now, b"x")]).await;

    // Not signed in: the form. A wrong token: a clear refusal, no cookie.
    let mut browser = Browser::new(&app);
    let form = browser.get("/ui/member").await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("Member token"), "{}", form.body);
    let wrong = browser
        .post("/ui/member/sign-in", &[("token", "cpm_not-a-token")], false)
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("That member token does not work"));
    assert!(!browser.cookies.contains_key("cistern_member"));

    let signed = browser
        .post("/ui/member/sign-in", &[("token", &token)], false)
        .await;
    assert_eq!(signed.status, 303);
    let audited = poll_until("the member's sign-in is audited", || async {
        let (_, found) = api.get("/audit?action=auth.member_login", ROOT).await;
        let records = found["records"].as_array().cloned().unwrap_or_default();
        (!records.is_empty()).then_some(records)
    })
    .await;
    assert_eq!(audited[0]["actor"], "sky/cam", "{audited:?}");
    let set = signed.headers["set-cookie"].to_str().unwrap();
    for part in [
        "cistern_member=",
        "Path=/ui/member",
        "HttpOnly",
        "SameSite=Strict",
    ] {
        assert!(set.contains(part), "{part}: {set}");
    }
    let page = browser.get("/ui/member").await;
    assert_eq!(page.status, 200);
    for shown in [
        "cam in pool sky",
        "north.png",
        "south.txt",
        "tomorrow.txt",
        "No result published yet",
    ] {
        assert!(page.body.contains(shown), "{shown}: {}", page.body);
    }
    // Receipts: each accepted file's id and hash; not the other member's.
    for receipt in &receipts[..2] {
        let id = receipt["contribution"]["id"].as_str().expect("an id");
        let sha = receipt["contribution"]["sha256"].as_str().expect("a hash");
        assert!(
            page.body.contains(id) && page.body.contains(&sha[..12]),
            "{receipt}"
        );
    }
    assert!(!page.body.contains("theirs.txt"));
    let refusals = page.body.split("id=\"refusals\"").nth(1).expect("refusals");
    assert!(refusals.contains("tomorrow.txt"), "{refusals}");
    // The member cookie is no key to the JSON API.
    let cookie = format!("cistern_member={token}");
    let api_call = reqwest::Client::new()
        .get(app.web_url("/api/v1/pools/sky/contributions"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(api_call.status(), 401);

    // A result: downloaded from the page, and noted as the member's fetch.
    let (_, groups) = api.get("/pools/sky/groups", ROOT).await;
    let group = groups[0]["group"].as_str().unwrap().to_owned();
    let seal = format!("/pools/sky/groups/{group}/seal");
    assert_eq!(api.post(&seal, ROOT, json!({})).await.0, 204);
    let (_, claim) = api
        .post("/pools/sky/claims", Caller::Bearer(&gpu[0].1), json!({}))
        .await;
    let put = format!(
        "/pools/sky/groups/{group}/result?lease={}",
        claim["lease_id"].as_str().unwrap()
    );
    assert_eq!(
        as_member(&api, &gpu[0].1, "PUT", &put, b"the map".to_vec())
            .await
            .0,
        201
    );
    let waiting = browser.get("/ui/member").await;
    assert!(waiting.body.contains("not fetched yet"), "{}", waiting.body);
    let result = browser.get("/ui/member/result").await;
    assert_eq!((result.status, result.body.as_str()), (200, "the map"));
    assert!(
        result.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let (_, deliveries) = api.get("/pools/sky/deliveries", ROOT).await;
    assert_eq!(deliveries["fetched"], json!(["cam"]), "{deliveries}");
    let fetched = browser.get("/ui/member").await;
    assert!(fetched.body.contains(">fetched<"), "{}", fetched.body);

    // The owner sees the same, as the member; others see nothing.
    let mut owner = Browser::new(&app);
    owner.sign_in(ROOT_USER, ROOT_PASSWORD).await;
    let look = owner.get("/ui/pools/sky/members/cam").await;
    assert_eq!(look.status, 200);
    assert!(
        look.body.contains("north.png") && look.body.contains("You are looking as this member")
    );
    assert!(!look.body.contains("theirs.txt"));
    assert_eq!(owner.get("/ui/pools/sky/members/nobody").await.status, 404);
    let mut eve = stranger(&app).await;
    assert_eq!(eve.get("/ui/pools/sky/members/cam").await.status, 404);

    // Signing out needs the page's token, then forgets the cookie.
    let forged = browser.post("/ui/member/sign-out", &[], false).await;
    assert_eq!(forged.status, 403);
    assert!(browser.cookies.contains_key("cistern_member"));
    let out = browser.post("/ui/member/sign-out", &[], true).await;
    assert_eq!(out.status, 303);
    assert!(!browser.cookies.contains_key("cistern_member"));

    // A disabled member's cookie stops working at once.
    browser
        .post("/ui/member/sign-in", &[("token", &token)], false)
        .await;
    assert!(
        browser
            .get("/ui/member")
            .await
            .body
            .contains("cam in pool sky")
    );
    owner.get("/ui/pools/sky").await;
    let disabled = owner
        .post("/ui/pools/sky/members/cam", &[("action", "disable")], true)
        .await;
    assert_eq!(disabled.status, 303);
    let after = browser.get("/ui/member").await;
    assert!(after.body.contains("Member token"), "{}", after.body);
    assert!(!browser.cookies.contains_key("cistern_member"));
    app.stop().await;
}

#[tokio::test]
async fn the_notifications_stream_carries_the_events_of_every_pool_one_owns() {
    let app = spawn_app().await;
    let api = app.api();
    api.create_user("eve", "eve-password-1").await;
    api.create_user("dan", "dan-password-1").await;
    let mut members = BTreeMap::new();
    let root = Caller::Basic(ROOT_USER, ROOT_PASSWORD);
    let eve = Caller::Basic("eve", "eve-password-1");
    for (owner, pool) in [(root, "sky"), (root, "sea"), (eve, "eves")] {
        let (status, body) = api
            .post("/pools", owner, json!({"name": pool, "window_secs": 3600}))
            .await;
        assert_eq!(status, 201, "{body}");
        let (status, added) = api
            .post(
                &format!("/pools/{pool}/members"),
                owner,
                json!({"name": "cam", "role": "contributor"}),
            )
            .await;
        assert_eq!(status, 201, "{added}");
        members.insert(pool, added[0]["token"].as_str().unwrap().to_owned());
    }
    let mut browser = Browser::new(&app);
    browser.sign_in(ROOT_USER, ROOT_PASSWORD).await;
    let open = |browser: &Browser, query: &str, last: Option<i64>| {
        let mut request = browser
            .http
            .get(format!("{}/ui/events{query}", browser.base))
            .header("cookie", browser.cookie_header());
        if let Some(last) = last {
            request = request.header("last-event-id", last.to_string());
        }
        request.send()
    };
    // Pool events only: the stream opens with `ready`, a bare id.
    let pool_events =
        |seen: &[(Option<i64>, serde_json::Value)]| -> Vec<(Option<i64>, serde_json::Value)> {
            seen.iter()
                .filter(|(_, e)| e.is_object())
                .cloned()
                .collect()
        };
    let stream = open(&browser, "", None).await.unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let now = now_ms();
    for pool in ["eves", "sky", "sea"] {
        send_pool_files(
            &api,
            pool,
            &members[pool],
            &[(&format!("{pool}.txt"), now, b"x")],
        )
        .await;
    }
    let seen = read_sse(stream, |events| pool_events(events).len() >= 2).await;
    let ready = seen[0].0.expect("the stream says where it starts");
    assert_eq!(seen[0].1, json!(ready));
    let seen = pool_events(&seen);
    let pools: Vec<&str> = seen
        .iter()
        .map(|(_, e)| e["pool"].as_str().unwrap())
        .collect();
    assert_eq!(pools, ["sky", "sea"], "{seen:?}");
    assert_eq!(seen[0].1["kind"], "contribution.accepted");
    assert_eq!(seen[0].1["data"]["name"], "sky.txt");

    // Resumed after the first: the second comes again, nothing of eve's.
    // From where a quiet stream started: everything since.
    let resumed = read_sse(open(&browser, "", seen[0].0).await.unwrap(), |e| {
        !pool_events(e).is_empty()
    })
    .await;
    assert_eq!(pool_events(&resumed)[0], seen[1]);
    let from_ready = read_sse(open(&browser, "", Some(ready)).await.unwrap(), |e| {
        pool_events(e).len() >= 2
    })
    .await;
    assert_eq!(pool_events(&from_ready), seen);

    // An admin looking at eve's pool follows it too; eve follows her own.
    let with_eves = read_sse(
        open(&browser, "?pool=eves", Some(ready)).await.unwrap(),
        |e| pool_events(e).len() >= 3,
    )
    .await;
    let pools: Vec<String> = pool_events(&with_eves)
        .iter()
        .map(|(_, e)| e["pool"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(pools, ["eves", "sky", "sea"]);

    // Someone with no pool is told not to come back; nobody is sent to
    // sign in; nobody follows a pool that is not theirs to see.
    let mut dan = Browser::new(&app);
    dan.sign_in("dan", "dan-password-1").await;
    assert_eq!(open(&dan, "", None).await.unwrap().status(), 204);
    assert_eq!(open(&dan, "?pool=sky", None).await.unwrap().status(), 404);
    assert_eq!(Browser::new(&app).get("/ui/events").await.status, 303);
    app.stop().await;
}

#[tokio::test]
async fn the_pool_page_lists_members_a_hundred_at_a_time_and_by_name() {
    let app = spawn_app().await;
    let api = app.api();
    create_sky_pool(&api).await;
    let cams = add_pool_members(
        &api,
        "sky",
        json!({"count": 150, "prefix": "cam-", "role": "contributor"}),
    )
    .await;
    add_pool_members(&api, "sky", json!({"name": "screen", "role": "listener"})).await;
    let now = now_ms();
    send_pool_files(
        &api,
        "sky",
        &cams[1].1,
        &[("a.png", now, PNG), ("b.txt", now, b"b")],
    )
    .await;
    let mut browser = Browser::new(&app);
    browser.sign_in(ROOT_USER, ROOT_PASSWORD).await;
    let rows = |page: &Page| -> Vec<String> {
        let table = page.body.split("id=\"members\"").nth(1).unwrap_or_default();
        let table = table.split("</table>").next().unwrap_or_default();
        table
            .split("title=\"See what ")
            .skip(1)
            .map(|row| row.split(' ').next().unwrap_or_default().to_owned())
            .collect()
    };
    let first = browser.get("/ui/pools/sky").await;
    assert!(first.body.contains("Members (151)"), "{}", first.body);
    let names = rows(&first);
    assert_eq!(names.len(), 100);
    let row_of = |page: &Page, name: &str| {
        let from = page
            .body
            .find(&format!("title=\"See what {name} sees\""))
            .unwrap();
        page.body[from..].split("</tr>").next().unwrap().to_owned()
    };
    let busy = row_of(&first, &cams[1].0);
    assert!(
        busy.contains("<td class=\"num\">2</td>") && busy.contains(" UTC"),
        "{busy}"
    );
    assert!(row_of(&first, &cams[2].0).contains("<td class=\"num\">0</td>"));
    assert!(names.windows(2).all(|w| w[0] < w[1]), "by name: {names:?}");
    let next = first
        .body
        .split("href=\"")
        .filter_map(|s| s.split('"').next())
        .find(|href| href.contains("after="))
        .expect("a link to the next members")
        .replace("&#38;", "&");
    let second = browser.get(&next).await;
    assert_eq!(second.status, 200, "{next}");
    let rest = rows(&second);
    assert_eq!(rest.len(), 51, "{next}: {rest:?}");
    assert!(rest[0] > names[99] && rest.contains(&"screen".to_owned()));
    assert!(
        !second.body.contains("Next members"),
        "the last page links no further"
    );
    // Capitals find what the letters do; LIKE's wildcards are no wildcards.
    let found = browser.get("/ui/pools/sky?member=c_m").await;
    assert_eq!(rows(&found), Vec::<String>::new());
    let found = browser.get("/ui/pools/sky?member=CAM-14").await;
    assert_eq!(
        rows(&found),
        (140..150).map(|n| format!("cam-{n}")).collect::<Vec<_>>()
    );
    app.stop().await;
}

/// The pool "sky" with hour-long windows, owned by the root admin.
async fn create_sky_pool(api: &ApiClient) {
    let (status, body) = api
        .post("/pools", ROOT, json!({"name": "sky", "window_secs": 3600}))
        .await;
    assert_eq!(status, 201, "{body}");
}

/// A second user, eve, signed in to the console.
async fn stranger(app: &TestApp) -> Browser {
    app.api().create_user("eve", "eve-password-1").await;
    let mut eve = Browser::new(app);
    eve.sign_in("eve", "eve-password-1").await;
    eve
}
