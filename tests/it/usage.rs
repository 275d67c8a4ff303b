//! The usage pages: a person's bytes stored, uploaded and downloaded and
//! requests over the last days, as numbers beside server-drawn SVG plots,
//! and the admins' view of every user and the whole server.

use serde_json::json;

use crate::helpers::*;

/// A page of the console as the holder of `session` sees it.
async fn page(app: &TestApp, session: &str, path: &str) -> (u16, String) {
    let answer = reqwest::Client::new()
        .get(app.web_url(path))
        .header("cookie", format!("cistern_session={session}"))
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.text().await.unwrap())
}

/// The exact number a page states in `<data id="{id}" value="...">`.
fn stated(body: &str, id: &str) -> Option<i64> {
    let prefix = format!("<data id=\"{id}\" value=\"");
    let rest = &body[body.find(&prefix)? + prefix.len()..];
    rest[..rest.find('"')?].parse().ok()
}

#[tokio::test]
async fn the_usage_page_states_the_bytes_its_plots_show() {
    let app = spawn_app().await;
    let s3 = app.client();
    s3.create_bucket().bucket("photos").send().await.unwrap();
    for (key, len) in [("a.jpg", 1000), ("b.jpg", 2000), ("c.jpg", 3000)] {
        put_bytes(&s3, "photos", key, pattern(len, 1)).await;
    }
    for _ in 0..2 {
        get_bytes(&s3, "photos", "b.jpg").await;
    }
    let session = app.api().root_session().await;
    // The bucket's own figures are exact; the totals also count the
    // requests that name no bucket (signing in, these pages).
    let photos = poll_until("the downloads are counted", || async {
        let (status, body) = page(&app, &session, "/ui/usage?days=30&bucket=photos").await;
        (status == 200 && stated(&body, "downloaded") == Some(4000)).then_some(body)
    })
    .await;
    assert_eq!(stated(&photos, "stored"), Some(6000), "{photos}");
    assert_eq!(stated(&photos, "uploaded"), Some(6000));
    assert_eq!(stated(&photos, "requests"), Some(6));
    let (_, body) = page(&app, &session, "/ui/usage").await;
    assert_eq!(stated(&body, "stored"), Some(6000), "{body}");
    assert!(stated(&body, "uploaded").unwrap() >= 6000);
    assert!(stated(&body, "downloaded").unwrap() >= 4000);
    assert_eq!(body.matches("<svg class=\"plot\"").count(), 4);
    // Today's bar of the stored plot says what is stored now.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert!(
        body.contains(&format!("<title>{today}: 5.9 KiB</title>")),
        "{body}"
    );
    // Thirty days, thirty slots; the period can be changed.
    assert!(body.contains("Last 90 days"));
    let (_, year) = page(&app, &session, "/ui/usage?days=365&bucket=photos").await;
    assert_eq!(stated(&year, "uploaded"), Some(6000));
    assert!(year.contains("Uploaded, last 365 days"));
    // One bucket alone.
    s3.create_bucket().bucket("music").send().await.unwrap();
    put_bytes(&s3, "music", "song.ogg", pattern(500, 2)).await;
    let (_, music) = page(&app, &session, "/ui/usage?bucket=music").await;
    assert_eq!(stated(&music, "stored"), Some(500), "{music}");

    // A quota shows as a bar.
    let (status, _) = app
        .api()
        .put(
            &format!("/admin/users/{ROOT_USER}/quota"),
            ROOT,
            json!({"bytes": 65000}),
        )
        .await;
    assert_eq!(status, 204);
    let (_, body) = page(&app, &session, "/ui/usage").await;
    assert!(
        body.contains("<meter id=\"quota\" min=\"0\" max=\"65000\" value=\"6500\""),
        "{body}"
    );

    // Admins see every user, sortable, and the server as a whole.
    app.api().create_user("alice", "alice-password-1").await;
    let (status, admin) = page(&app, &session, "/ui/admin/usage?sort=name").await;
    assert_eq!(status, 200);
    let order = |body: &str| {
        let table = &body[body.find("id=\"users\"").expect("a table of users")..];
        let alice = table.find(">alice</a>").expect("alice is listed");
        let root = table
            .find(&format!(">{ROOT_USER}</a>"))
            .expect("root is listed");
        alice < root
    };
    assert!(order(&admin), "sorted by name");
    assert_eq!(stated(&admin, "stored"), Some(6500));
    let (_, by_stored) = page(&app, &session, "/ui/admin/usage").await;
    assert!(!order(&by_stored), "most stored first");
    let (_, one) = page(&app, &session, "/ui/admin/usage?user=alice").await;
    assert!(one.contains("Usage of alice"));
    assert_eq!(stated(&one, "stored"), Some(0));

    // Others see only their own.
    let (_, login) = app
        .api()
        .post(
            "/auth/login",
            ("alice", "alice-password-1"),
            json!({"name": "alice", "password": "alice-password-1"}),
        )
        .await;
    let alice_session = login["token"].as_str().unwrap().to_owned();
    let (status, _) = page(&app, &alice_session, "/ui/admin/usage").await;
    assert_eq!(status, 403);
    let (_, hers) = page(&app, &alice_session, "/ui/usage").await;
    assert_eq!(stated(&hers, "stored"), Some(0));

    // Alice's account goes; her requests stay counted, under her id, with
    // no link to a page that no longer exists.
    poll_until("alice's requests are counted", || async {
        let (_, all) = app.api().get("/admin/usage", ROOT).await;
        let rows = all.as_array().cloned().unwrap_or_default();
        rows.iter()
            .find(|r| r["user"] == "alice" && r["requests"].as_i64().unwrap_or(0) > 0)
            .map(|_| ())
    })
    .await;
    let (status, _) = app.api().delete("/users/alice", ROOT).await;
    assert_eq!(status, 204);
    let (_, all) = app.api().get("/admin/usage", ROOT).await;
    let gone: Vec<&serde_json::Value> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["deleted"] == true)
        .collect();
    assert_eq!(gone.len(), 1, "{all}");
    assert!(gone[0]["requests"].as_i64().unwrap() > 0);
    let (_, admin) = page(&app, &session, "/ui/admin/usage").await;
    let id = gone[0]["user"].as_str().unwrap();
    assert!(
        admin.contains(&format!("{id} <span class=\"tag\">deleted</span>")),
        "{admin}"
    );
    assert!(!admin.contains(&format!("user={id}")));
    app.stop().await;
}
