//! Pools: members in bulk, contributions with a receipt per file, groups
//! that seal on time (also across a restart), and the event stream.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

use crate::helpers::*;

/// The start of an ELF header, padded to the length a header has.
const ELF: &[u8] = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0>\0\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";

/// The pool's newest group, as its owner lists it.
async fn newest_group(app: &TestApp, pool: &str) -> String {
    let (_, groups) = app.api().get(&format!("/pools/{pool}/groups"), ROOT).await;
    groups[0]["group"].as_str().unwrap().to_owned()
}

/// A processor's claim on the pool's next sealed group (or on the group
/// that `body` names): the answer's status and body.
async fn claim_group(app: &TestApp, pool: &str, token: &str, body: Value) -> (u16, Value) {
    let path = format!("/pools/{pool}/claims");
    app.api().post(&path, Caller::Bearer(token), body).await
}

/// Seals a group early as `who`: the answer's status and body.
async fn seal<'a>(
    app: &TestApp,
    pool: &str,
    group: &str,
    who: impl Into<Caller<'a>>,
) -> (u16, Value) {
    let path = format!("/pools/{pool}/groups/{group}/seal");
    app.api().post(&path, who, json!({})).await
}

async fn create_pool(app: &TestApp, body: Value) -> Value {
    let (status, pool) = app.api().post("/pools", ROOT, body).await;
    assert_eq!(status, 201, "{pool}");
    pool
}

/// Member tokens by name.
async fn add_members(app: &TestApp, pool: &str, body: Value) -> Vec<(String, String)> {
    add_pool_members(&app.api(), pool, body).await
}

async fn send_batch(
    app: &TestApp,
    pool: &str,
    token: &str,
    files: &[(&str, i64, &[u8])],
) -> Vec<Value> {
    send_pool_files(&app.api(), pool, token, files).await
}

/// Reads the SSE stream until `enough` holds for the events seen.
async fn read_events(
    app: &TestApp,
    query: &str,
    token: &str,
    last_event_id: Option<i64>,
    enough: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut request = app
        .api()
        .request(Caller::Bearer(token), "GET", &format!("/events{query}"));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id.to_string());
    }
    let response = request.send().await.expect("events");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    read_sse(response, |seen| {
        enough(
            &seen
                .iter()
                .map(|(_, data)| data.clone())
                .collect::<Vec<_>>(),
        )
    })
    .await
    .into_iter()
    .map(|(_, data)| data)
    .collect()
}

#[tokio::test]
async fn members_contribute_files_with_receipts_and_follow_events() {
    let app = spawn_app().await;
    let pool = create_pool(&app, json!({"name": "sky", "window_secs": 3600})).await;
    assert_eq!(pool["bucket"], "pool-sky");
    assert_eq!(pool["grace_secs"], 900, "a quarter of the window");
    assert_eq!(pool["max_file_size"], 64 << 20);

    let cams = add_members(
        &app,
        "sky",
        json!({"count": 3, "prefix": "cam-", "role": "contributor"}),
    )
    .await;
    assert_eq!(
        cams.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
        ["cam-1", "cam-2", "cam-3"]
    );
    let listener = add_members(&app, "sky", json!({"name": "screen", "role": "listener"})).await;
    let csv = app
        .api()
        .request(ROOT, "POST", "/pools/sky/members?format=csv")
        .json(&json!({"count": 2, "prefix": "late-", "role": "listener"}))
        .send()
        .await
        .expect("csv");
    assert_eq!(csv.status(), 201);
    let csv = csv.text().await.unwrap();
    assert!(
        csv.starts_with("name,role,token\nlate-1,listener,cpm_"),
        "{csv}"
    );
    let (status, taken) = app
        .api()
        .post(
            "/pools/sky/members",
            ROOT,
            json!({"name": "cam-1", "role": "listener"}),
        )
        .await;
    assert_eq!(
        (status, taken["error"]["code"].as_str()),
        (409, Some("conflict"))
    );

    let cam1 = &cams[0].1;
    let now = pool_now_ms(3600);
    let receipts = send_batch(
        &app,
        "sky",
        cam1,
        &[
            ("sky.png", now - 1_000, PNG),
            ("tool", now - 1_000, ELF),
            ("nothing.txt", now - 1_000, b""),
            ("later.png", now + 3_600_000, PNG),
            ("old.png", now - 48 * 3_600_000, PNG),
            ("notes.txt", now - 2_000, "plain words".as_bytes()),
        ],
    )
    .await;
    let outcome: Vec<(&str, Option<&str>)> = receipts
        .iter()
        .map(|r| (r["status"].as_str().unwrap(), r["reason"].as_str()))
        .collect();
    assert_eq!(
        outcome,
        [
            ("accepted", None),
            ("refused", Some("forbidden_type")),
            ("refused", Some("empty")),
            ("refused", Some("in_future")),
            ("refused", Some("sealed")),
            ("accepted", None),
        ]
    );
    let first = &receipts[0]["contribution"];
    assert_eq!(first["content_type"], "image/png");
    assert_eq!(first["size"], PNG.len());
    assert_eq!(first["sha256"], hex_sha256(PNG));
    assert_eq!(receipts[5]["contribution"]["content_type"], "text/plain");

    // The same file again (a retry after a lost answer) gets the first receipt.
    let again = send_batch(&app, "sky", cam1, &[("sky.png", now - 1_000, PNG)]).await;
    assert_eq!(again[0]["status"], "duplicate");
    assert_eq!(again[0]["contribution"]["id"], first["id"]);

    // The raw-body form, from another member.
    let raw = app
        .api()
        .request(
            Caller::Bearer(&cams[1].1),
            "POST",
            &format!(
                "/pools/sky/contributions?name=raw.png&timestamp={}",
                rfc3339(now)
            ),
        )
        .body(PNG.to_vec())
        .send()
        .await
        .expect("raw");
    let raw: Value = raw.json().await.unwrap();
    assert_eq!(raw["receipts"][0]["status"], "accepted", "{raw}");

    // Only contributors contribute; a pool's files are in its bucket.
    let refused = app
        .api()
        .request(
            Caller::Bearer(&listener[0].1),
            "POST",
            &format!(
                "/pools/sky/contributions?name=x.png&timestamp={}",
                rfc3339(now)
            ),
        )
        .body(PNG.to_vec())
        .send()
        .await
        .expect("listener");
    assert_eq!(refused.status(), 403);
    let listed = app
        .client()
        .list_objects_v2()
        .bucket("pool-sky")
        .send()
        .await
        .expect("list the pool bucket");
    assert_eq!(
        listed.contents().len(),
        3,
        "two files of cam-1, one of cam-2"
    );
    let key = first["key"].as_str().unwrap();
    assert_eq!(get_bytes(&app.client(), "pool-sky", key).await, PNG);
    // A pool file's ETag is its SHA-256 (no MD5 is computed for it).
    let head = app
        .client()
        .head_object()
        .bucket("pool-sky")
        .key(key)
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.e_tag(),
        Some(format!("\"{}\"", hex_sha256(PNG)).as_str())
    );

    // Members see their own contributions; the owner sees all, with counts.
    let (_, own) = app
        .api()
        .get("/pools/sky/contributions", Caller::Bearer(cam1))
        .await;
    assert_eq!(own["contributions"].as_array().unwrap().len(), 2);
    let (_, all) = app
        .api()
        .get("/pools/sky/contributions?limit=2", ROOT)
        .await;
    assert_eq!(all["contributions"].as_array().unwrap().len(), 2);
    let cursor = all["next_cursor"].as_str().expect("a second page");
    let (_, rest) = app
        .api()
        .get(
            &format!("/pools/sky/contributions?limit=2&cursor={cursor}"),
            ROOT,
        )
        .await;
    assert_eq!(rest["contributions"].as_array().unwrap().len(), 1);
    assert_eq!(rest["contributions"][0]["member"], "cam-2");
    let (_, members) = app.api().get("/pools/sky/members", ROOT).await;
    let count = |name: &str| {
        members
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .map(|m| m["contributions"].as_i64().unwrap())
    };
    assert_eq!(
        (count("cam-1"), count("cam-2"), count("cam-3")),
        (Some(2), Some(1), Some(0))
    );
    let (status, _) = app
        .api()
        .get("/pools/sky/members", Caller::Bearer(cam1))
        .await;
    assert_eq!(status, 403, "members do not manage the pool");

    // One open group holds the three files; sealing it early closes it.
    let (_, groups) = app
        .api()
        .get("/pools/sky/groups", Caller::Bearer(cam1))
        .await;
    let group = groups[0]["group"].as_str().unwrap().to_owned();
    assert_eq!(
        (groups[0]["state"].as_str(), groups[0]["files"].as_i64()),
        (Some("open"), Some(3))
    );
    let (status, _) = seal(&app, "sky", &group, Caller::Bearer(cam1)).await;
    assert_eq!(status, 403, "a contributor cannot seal");
    let (status, body) = seal(&app, "sky", &group, ROOT).await;
    assert_eq!(status, 204, "{body}");
    let late = send_batch(&app, "sky", cam1, &[("late.png", now - 500, PNG)]).await;
    assert_eq!(
        (late[0]["status"].as_str(), late[0]["reason"].as_str()),
        (Some("refused"), Some("sealed"))
    );

    // Events: a member sees its own receipts and the pool's; resuming
    // after an id gives only what followed.
    let events = read_events(&app, "", cam1, None, |seen| {
        seen.iter()
            .filter(|e| e["kind"] == "contribution.refused")
            .count()
            == 5
    })
    .await;
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "contribution.accepted",
            "contribution.refused",
            "contribution.refused",
            "contribution.refused",
            "contribution.refused",
            "contribution.accepted",
            "group.sealed",
            "contribution.refused",
        ],
        "a member hears of its own files, refused ones too, and of the pool"
    );
    assert_eq!(events[1]["data"]["reason"], "forbidden_type");
    assert_eq!(events[7]["data"]["reason"], "sealed");
    assert!(
        events
            .windows(2)
            .all(|w| w[0]["id"].as_i64() < w[1]["id"].as_i64())
    );
    assert_eq!(events[6]["group"], group.as_str());
    let sealed = events[5]["id"].as_i64().unwrap();
    let resumed = read_events(&app, "", cam1, Some(sealed), |seen| !seen.is_empty()).await;
    assert_eq!(resumed[0]["kind"], "group.sealed");
    let owner_view = read_events(
        &app,
        "?pool=sky&after=0",
        &app.api().root_session().await,
        None,
        |seen| seen.len() >= 9,
    )
    .await;
    assert_eq!(owner_view.len(), 9, "the owner also sees cam-2's receipt");

    // A disabled member is refused; a re-keyed one uses its new token only.
    let (status, _) = app
        .api()
        .post("/pools/sky/members/cam-3/disable", ROOT, json!({}))
        .await;
    assert_eq!(status, 204);
    let (status, body) = app
        .api()
        .get("/pools/sky", Caller::Bearer(&cams[2].1))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("account_disabled"))
    );
    let (status, rekeyed) = app
        .api()
        .post("/pools/sky/members/cam-2/rekey", ROOT, json!({}))
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .api()
        .get("/pools/sky", Caller::Bearer(&cams[1].1))
        .await;
    assert_eq!(status, 401, "the old token is dead");
    let (status, _) = app
        .api()
        .get(
            "/pools/sky",
            Caller::Bearer(rekeyed["token"].as_str().expect("a token")),
        )
        .await;
    assert_eq!(status, 200);
    app.stop().await;
}

fn hex_sha256(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

#[tokio::test]
async fn ten_thousand_members_in_one_call() {
    let app = spawn_app().await;
    create_pool(&app, json!({"name": "crowd", "window_secs": 60})).await;
    let started = Instant::now();
    let members = add_members(
        &app,
        "crowd",
        json!({"count": 10000, "prefix": "m", "role": "contributor"}),
    )
    .await;
    eprintln!("10,000 members created in {:?}", started.elapsed());
    assert_eq!(members.len(), 10_000);
    assert_eq!(members[0].0, "m00001");
    let tokens: std::collections::HashSet<&str> = members.iter().map(|m| m.1.as_str()).collect();
    assert_eq!(tokens.len(), 10_000, "every token differs");
    let (status, _) = app
        .api()
        .get("/pools/crowd", Caller::Bearer(&members[9_999].1))
        .await;
    assert_eq!(status, 200, "the last token works");
    app.stop().await;
}

#[tokio::test]
async fn groups_seal_on_time_even_across_a_restart() {
    let app = spawn_app().await;
    // The file goes into the previous one-minute window, whose grace ends
    // two seconds from now.
    let now = now_ms();
    let current_start = now - now.rem_euclid(60_000);
    let grace_secs = (now - current_start) / 1000 + 2;
    create_pool(
        &app,
        json!({"name": "late", "window_secs": 60, "grace_secs": grace_secs}),
    )
    .await;
    let cam = add_members(&app, "late", json!({"name": "cam", "role": "contributor"})).await;
    let receipts = send_batch(
        &app,
        "late",
        &cam[0].1,
        &[("a.png", current_start - 1_000, PNG)],
    )
    .await;
    assert_eq!(receipts[0]["status"], "accepted", "{receipts:?}");
    let seal_at = chrono::DateTime::parse_from_rfc3339(
        app.api().get("/pools/late/groups", ROOT).await.1[0]["seals_at"]
            .as_str()
            .unwrap(),
    )
    .unwrap()
    .timestamp_millis();

    // Down before the group's time comes, up again after it passed.
    let (data_dir, database_url) = app.stop_keeping_data().await;
    let wait = (seal_at - now_ms()).max(0) as u64 + 200;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let app = spawn_on(data_dir, database_url, &[]).await;
    poll_within(
        Duration::from_secs(10),
        "sealed after the restart",
        || async {
            let (_, groups) = app.api().get("/pools/late/groups", ROOT).await;
            if groups[0]["state"] == "sealed" {
                Ok(())
            } else {
                Err(groups)
            }
        },
    )
    .await;
    let events = read_events(&app, "", &cam[0].1, None, |seen| seen.len() >= 2).await;
    assert_eq!(events[1]["kind"], "group.sealed");
    // Claimable after the restart as well.
    let processor = add_members(&app, "late", json!({"name": "proc", "role": "processor"})).await;
    let (status, claim) = claim_group(&app, "late", &processor[0].1, json!({})).await;
    assert_eq!(status, 200, "{claim}");
    assert_eq!(claim["manifest"]["files"].as_array().unwrap().len(), 1);
    app.stop().await;
}

/// Raw download: status, ETag, body.
async fn fetch(
    app: &TestApp,
    path: &str,
    token: &str,
    etag: Option<&str>,
) -> (u16, String, Vec<u8>) {
    let mut request = reqwest::Client::new()
        .get(app.web_url(path))
        .bearer_auth(token);
    if let Some(etag) = etag {
        request = request.header("if-none-match", etag);
    }
    let response = request.send().await.expect("download");
    let status = response.status().as_u16();
    let etag = response
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, etag, response.bytes().await.unwrap().to_vec())
}

async fn put_result(
    app: &TestApp,
    group: &str,
    token: &str,
    lease: &str,
    data: Vec<u8>,
) -> (u16, Value) {
    let response = app
        .api()
        .request(
            Caller::Bearer(token),
            "PUT",
            &format!("/pools/lab/groups/{group}/result?lease={lease}"),
        )
        .body(data)
        .send()
        .await
        .expect("result");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_processor_claims_a_group_and_every_member_receives_the_result() {
    let app = spawn_app().await;
    create_pool(&app, json!({"name": "lab", "window_secs": 3600})).await;
    let cams = add_members(
        &app,
        "lab",
        json!({"count": 2, "prefix": "cam-", "role": "contributor"}),
    )
    .await;
    let screen = add_members(&app, "lab", json!({"name": "screen", "role": "listener"})).await;
    let procs = add_members(
        &app,
        "lab",
        json!({"count": 2, "prefix": "proc-", "role": "processor"}),
    )
    .await;
    let (p1, p2) = (&procs[0].1, &procs[1].1);
    let now = pool_now_ms(3600);
    let big = pattern(300_000, 7);
    send_batch(
        &app,
        "lab",
        &cams[0].1,
        &[("a.png", now - 10, PNG), ("b.bin", now - 5, &big)],
    )
    .await;
    send_batch(&app, "lab", &cams[1].1, &[("c.txt", now, b"see")]).await;

    let (status, _) = claim_group(&app, "lab", p1, json!({})).await;
    assert_eq!(status, 204, "nothing is sealed yet");
    let (status, _) = claim_group(&app, "lab", &cams[0].1, json!({})).await;
    assert_eq!(status, 403, "contributors do not claim");
    let group = newest_group(&app, "lab").await;
    let (status, _) = seal(&app, "lab", &group, Caller::Bearer(p1)).await;
    assert_eq!(status, 204, "a processor may seal early");

    let (status, claim) = claim_group(&app, "lab", p1, json!({})).await;
    assert_eq!(status, 200, "{claim}");
    assert_eq!(claim["group"]["state"], "processing");
    assert_eq!(claim["group"]["attempts"], 1);
    let lease = claim["lease_id"].as_str().unwrap().to_owned();
    let files = claim["manifest"]["files"].as_array().unwrap().clone();
    assert_eq!(files.len(), 3);
    assert_eq!(
        files
            .iter()
            .map(|f| f["member"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["cam-1", "cam-1", "cam-2"]
    );
    let (status, _) = claim_group(&app, "lab", p2, json!({})).await;
    assert_eq!(status, 204, "the group is taken");
    let (status, _) = claim_group(&app, "lab", p2, json!({"group": group})).await;
    assert_eq!(status, 409, "two processors never hold the same group");

    // One file at a time, or the whole group as a tar.
    let (status, _, bytes) = fetch(&app, files[1]["url"].as_str().unwrap(), p1, None).await;
    assert_eq!((status, bytes.len()), (200, big.len()));
    assert_eq!(hex_sha256(&bytes), files[1]["sha256"].as_str().unwrap());
    let (status, _, tar_bytes) = fetch(
        &app,
        &format!("/api/v1/pools/lab/groups/{group}/archive"),
        p1,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let mut archive = tar::Archive::new(std::io::Cursor::new(tar_bytes));
    let mut entries = std::collections::BTreeMap::new();
    for entry in archive.entries().expect("a tar") {
        let mut entry = entry.expect("entry");
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        entries.insert(path, data);
    }
    let manifest: Value = serde_json::from_slice(&entries["manifest.json"]).unwrap();
    assert_eq!(manifest["files"].as_array().unwrap().len(), 3);
    for f in &files {
        let data = &entries[f["archive_path"].as_str().unwrap()];
        assert_eq!(hex_sha256(data), f["sha256"].as_str().unwrap());
    }
    let (status, _, _) = fetch(
        &app,
        &format!("/api/v1/pools/lab/groups/{group}/archive"),
        &screen[0].1,
        None,
    )
    .await;
    assert_eq!(status, 403, "listeners do not read the group's files");

    // The lease is renewed by its holder only.
    let renew = format!("/pools/lab/groups/{group}/lease");
    let (status, _) = app
        .api()
        .post(&renew, Caller::Bearer(p1), json!({"lease_id": "not-it"}))
        .await;
    assert_eq!(status, 409);
    let (status, renewed) = app
        .api()
        .post(
            &renew,
            Caller::Bearer(p1),
            json!({"lease_id": lease, "lease_secs": 600}),
        )
        .await;
    assert_eq!(status, 200, "{renewed}");

    let latest = "/api/v1/pools/lab/results/latest";
    let (status, _, _) = fetch(&app, latest, &screen[0].1, None).await;
    assert_eq!(status, 404, "nothing published yet");
    let result = pattern(10 << 20, 3);
    let (status, published) = put_result(&app, &group, p1, &lease, result.clone()).await;
    assert_eq!(status, 201, "{published}");
    assert_eq!(published["state"], "published");
    let (status, _) = put_result(&app, &group, p1, &lease, b"again".to_vec()).await;
    assert_eq!(status, 409, "the lease ended with the publication");

    // Every member hears of it and fetches it; ETags answer "anything newer?".
    let events = read_events(&app, "", &screen[0].1, None, |seen| {
        seen.iter().any(|e| e["kind"] == "group.published")
    })
    .await;
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["group.sealed", "group.claimed", "group.published"],
        "a listener sees pool events only"
    );
    assert_eq!(events[2]["data"]["sha256"], hex_sha256(&result));
    let (status, etag, bytes) = fetch(&app, latest, &screen[0].1, None).await;
    assert_eq!(status, 200);
    assert!(bytes == result, "the result arrives whole");
    let (status, _, _) = fetch(&app, latest, &screen[0].1, Some(&etag)).await;
    assert_eq!(status, 304);
    let (_, deliveries) = app.api().get("/pools/lab/deliveries", ROOT).await;
    assert_eq!(deliveries["group"], group.as_str());
    assert_eq!(deliveries["fetched"], json!(["screen"]));
    assert_eq!(deliveries["missing"], json!(["cam-1", "cam-2"]));
    let (status, _, _) = fetch(
        &app,
        &format!("/api/v1/pools/lab/groups/{group}/result"),
        &cams[0].1,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (_, deliveries) = app.api().get("/pools/lab/deliveries", ROOT).await;
    assert_eq!(deliveries["missing"], json!(["cam-2"]));
    assert_eq!(
        body_bytes(
            app.client()
                .get_object()
                .bucket("pool-lab")
                .key(format!("results/{group}/result"))
                .send()
                .await
                .unwrap()
        )
        .await
        .len(),
        result.len(),
        "the result is in the pool's bucket too"
    );
    app.stop().await;
}

async fn wait_for_state(app: &TestApp, state: &str) -> Value {
    let what = format!("the group becomes {state}");
    poll_within(Duration::from_secs(10), &what, || async {
        let (_, groups) = app.api().get("/pools/lab/groups", ROOT).await;
        if groups[0]["state"] == state {
            Ok(groups[0].clone())
        } else {
            Err(groups)
        }
    })
    .await
}

/// The pool "lab" with a contributor and two processors, and its one group
/// sealed: the processors' tokens and the group.
async fn sealed_lab_group(app: &TestApp) -> (String, String, String) {
    create_pool(app, json!({"name": "lab", "window_secs": 3600})).await;
    let cam = add_members(app, "lab", json!({"name": "cam", "role": "contributor"})).await;
    let procs = add_members(
        app,
        "lab",
        json!({"count": 2, "prefix": "proc-", "role": "processor"}),
    )
    .await;
    send_batch(app, "lab", &cam[0].1, &[("a.png", now_ms(), PNG)]).await;
    let group = newest_group(app, "lab").await;
    let (status, _) = seal(app, "lab", &group, ROOT).await;
    assert_eq!(status, 204);
    (procs[0].1.clone(), procs[1].1.clone(), group)
}

#[tokio::test]
async fn lapsed_leases_return_the_group_and_three_lapses_fail_it() {
    let app = spawn_app().await;
    let (p1, p2, group) = sealed_lab_group(&app).await;

    // proc-1 dies mid-work: its lease lapses, proc-2 takes over, and
    // proc-1's late result is refused.
    let (_, first) = claim_group(&app, "lab", &p1, json!({"lease_secs": 1})).await;
    let sealed = wait_for_state(&app, "sealed").await;
    assert_eq!(sealed["attempts"], 1);
    let (status, second) = claim_group(&app, "lab", &p2, json!({"lease_secs": 1})).await;
    assert_eq!(
        (status, second["group"]["attempts"].as_i64()),
        (200, Some(2))
    );
    let (status, _) = put_result(
        &app,
        &group,
        &p1,
        first["lease_id"].as_str().unwrap(),
        b"late".to_vec(),
    )
    .await;
    assert_eq!(status, 409);
    wait_for_state(&app, "sealed").await;
    let (status, _) = claim_group(&app, "lab", &p2, json!({"lease_secs": 1})).await;
    assert_eq!(status, 200);
    let failed = wait_for_state(&app, "failed").await;
    assert_eq!(failed["attempts"], 3);

    // The owner reopens it with fresh attempts.
    let (status, _) = app
        .api()
        .post(
            &format!("/pools/lab/groups/{group}/reopen"),
            ROOT,
            json!({}),
        )
        .await;
    assert_eq!(status, 204);
    let (_, claim) = claim_group(&app, "lab", &p1, json!({})).await;
    assert_eq!(
        claim["group"]["attempts"], 1,
        "a reopened group has fresh attempts"
    );
    let events = read_events(
        &app,
        "?pool=lab",
        &app.api().root_session().await,
        None,
        |seen| seen.iter().any(|e| e["kind"] == "group.failed"),
    )
    .await;
    let lapses: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "group.sealed" && e["data"]["lease_lapsed"] == true)
        .collect();
    assert_eq!(lapses.len(), 2, "{events:?}");
    let failed = events.iter().find(|e| e["kind"] == "group.failed").unwrap();
    assert_eq!(failed["data"]["reason"], "3 attempts lapsed");
    app.stop().await;
}

/// A report, as `cistern pool process` sends it; answers the group.
async fn report_failure(
    app: &TestApp,
    group: &str,
    token: &str,
    lease: &Value,
    mut body: Value,
) -> (u16, Value) {
    body["lease_id"] = lease.clone();
    app.api()
        .post(
            &format!("/pools/lab/groups/{group}/fail"),
            Caller::Bearer(token),
            body,
        )
        .await
}

/// A report the server takes: the group's state and attempts after it.
async fn reported(
    app: &TestApp,
    group: &str,
    token: &str,
    lease: &Value,
    body: Value,
) -> (String, i64) {
    let (status, now) = report_failure(app, group, token, lease, body).await;
    assert_eq!(status, 200, "{now}");
    (
        now["state"].as_str().unwrap().to_owned(),
        now["attempts"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn a_failure_report_is_one_attempt_and_a_final_one_fails_the_group_at_once() {
    let app = spawn_app().await;
    let (p1, p2, group) = sealed_lab_group(&app).await;
    let (p1, p2) = (&p1, &p2);
    let screen = add_members(&app, "lab", json!({"name": "screen", "role": "listener"})).await;

    // Attempt 1: proc-1 reports a failure; the group is sealed again and
    // its lease is over.
    let (_, first) = claim_group(&app, "lab", p1, json!({})).await;
    let lease = &first["lease_id"];
    let now = reported(
        &app,
        &group,
        p1,
        lease,
        json!({"reason": "exit status 1: flaky"}),
    )
    .await;
    assert_eq!(now, ("sealed".to_owned(), 1));
    let (status, _) = report_failure(&app, &group, p1, lease, json!({"reason": "again"})).await;
    assert_eq!(status, 409, "one report per attempt");
    let (status, _) = app
        .api()
        .post(
            &format!("/pools/lab/groups/{group}/lease"),
            Caller::Bearer(p1),
            json!({"lease_id": lease}),
        )
        .await;
    assert_eq!(status, 409, "the report released the lease");
    let (status, _) = put_result(&app, &group, p1, lease.as_str().unwrap(), b"late".to_vec()).await;
    assert_eq!(status, 409);

    // Attempt 2: another processor takes it, and its lease lapses.
    let (status, second) = claim_group(&app, "lab", p2, json!({"lease_secs": 1})).await;
    assert_eq!(
        (status, second["group"]["attempts"].as_i64()),
        (200, Some(2)),
        "{second}"
    );
    let sealed = wait_for_state(&app, "sealed").await;
    assert_eq!(sealed["attempts"], 2);

    // Attempt 3: a report after a lapse is the last attempt.
    let (_, third) = claim_group(&app, "lab", p1, json!({})).await;
    assert_eq!(third["group"]["attempts"], 3);
    let now = reported(
        &app,
        &group,
        p1,
        &third["lease_id"],
        json!({"reason": "exit status 1: flaky again"}),
    )
    .await;
    assert_eq!(now, ("failed".to_owned(), 3));
    let (status, _) = claim_group(&app, "lab", p2, json!({})).await;
    assert_eq!(status, 204, "a failed group is not claimed");

    // Reopened: a final report fails it at its first attempt.
    app.api()
        .post(
            &format!("/pools/lab/groups/{group}/reopen"),
            ROOT,
            json!({}),
        )
        .await;
    let (_, fourth) = claim_group(&app, "lab", p2, json!({})).await;
    let now = reported(
        &app,
        &group,
        p2,
        &fourth["lease_id"],
        json!({"reason": "exit status 65: not an image", "final": true}),
    )
    .await;
    assert_eq!(now, ("failed".to_owned(), 1));

    // Every member hears of each end, with the processor's reason.
    let events = read_events(&app, "", &screen[0].1, None, |seen| {
        seen.iter().filter(|e| e["kind"] == "group.failed").count() == 2
    })
    .await;
    let ends: Vec<(&str, &Value)> = events
        .iter()
        .filter(|e| e["kind"] != "group.claimed")
        .map(|e| (e["kind"].as_str().unwrap(), &e["data"]))
        .collect();
    assert_eq!(ends.len(), 6, "{ends:?}");
    assert_eq!(ends[0].0, "group.sealed", "sealed by the owner");
    assert_eq!(
        ends[1],
        (
            "group.sealed",
            &json!({"failure_reported": true, "reason": "exit status 1: flaky", "attempts": 1})
        )
    );
    assert_eq!(
        ends[2],
        (
            "group.sealed",
            &json!({"lease_lapsed": true, "attempts": 2})
        )
    );
    assert_eq!(
        ends[3],
        (
            "group.failed",
            &json!({"reason": "exit status 1: flaky again", "attempts": 3, "final": false})
        )
    );
    assert_eq!(ends[4], ("group.sealed", &json!({"reopened": true})));
    assert_eq!(
        ends[5],
        (
            "group.failed",
            &json!({"reason": "exit status 65: not an image", "attempts": 1, "final": true})
        )
    );
    app.stop().await;
}

/// What a webhook receiver got: (signature header, body).
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A receiver on `listener` that answers each call at once.
fn webhook_receiver(listener: tokio::net::TcpListener, received: Received) {
    slow_webhook_receiver(listener, received, Duration::ZERO);
}

/// A receiver on `listener` that takes `delay` to answer each call.
fn slow_webhook_receiver(listener: tokio::net::TcpListener, received: Received, delay: Duration) {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: String| async move {
                let signature = headers
                    .get("x-cistern-signature")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                received.lock().unwrap().push((signature, body));
                tokio::time::sleep(delay).await;
                axum::http::StatusCode::NO_CONTENT
            },
        ),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
}

async fn attempts(app: &TestApp) -> Vec<Value> {
    app.api()
        .get("/pools/hooked/webhook/attempts", ROOT)
        .await
        .1
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn webhooks_get_every_event_signed_after_the_receiver_was_down() {
    let app = spawn_app_with(&["--webhook-retry-base-ms", "50", "--webhook-allow-private"]).await;
    // The receiver's port, held but refusing connections until it listens.
    let (socket, port) = unserved_port();
    create_pool(
        &app,
        json!({"name": "hooked", "window_secs": 3600, "webhook_url": format!("http://127.0.0.1:{port}/hook"), "webhook_secret": "s3cret"}),
    )
    .await;
    let cam = add_members(
        &app,
        "hooked",
        json!({"name": "cam", "role": "contributor"}),
    )
    .await;
    send_batch(&app, "hooked", &cam[0].1, &[("a.png", now_ms(), PNG)]).await;
    let group = newest_group(&app, "hooked").await;
    seal(&app, "hooked", &group, ROOT).await;

    // Nothing listens yet: attempts fail and are recorded.
    let what = "attempts are made and recorded";
    poll_within(Duration::from_secs(10), what, || async {
        (attempts(&app).await.len() >= 3).then_some(())
    })
    .await;
    let failed = attempts(&app).await;
    assert!(
        failed
            .iter()
            .all(|a| a["delivered"] == false && a["status"].is_null())
    );
    // The newest attempt says when the next one comes; older ones do not.
    let at = |a: &Value, field: &str| {
        chrono::DateTime::parse_from_rfc3339(a[field].as_str().unwrap_or_default())
            .map(|t| t.timestamp_millis())
    };
    let next = at(&failed[0], "next_try").expect("the newest attempt has a next try");
    assert!(next > at(&failed[0], "time").unwrap(), "{:?}", failed[0]);
    assert!(failed[1..].iter().all(|a| a.get("next_try").is_none()));

    // The receiver comes up: every event arrives, in order, signed.
    let received = Received::default();
    webhook_receiver(socket.listen(64).expect("listen"), received.clone());
    poll_within(Duration::from_secs(20), "both events delivered", || async {
        if received.lock().unwrap().len() >= 2 {
            return Ok(());
        }
        Err(format!("{:?}", attempts(&app).await))
    })
    .await;
    let got = received.lock().unwrap().clone();
    let bodies: Vec<Value> = got
        .iter()
        .map(|(_, b)| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(bodies[0]["kind"], "contribution.accepted");
    assert_eq!(bodies[1]["kind"], "group.sealed");
    for (signature, body) in &got {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(body.as_bytes());
        assert_eq!(
            signature,
            &format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        );
    }
    let all = attempts(&app).await;
    let first_event = bodies[0]["id"].as_i64().unwrap();
    let tries: Vec<(i64, bool)> = all
        .iter()
        .rev()
        .filter(|a| a["event_id"] == first_event)
        .map(|a| {
            (
                a["attempt"].as_i64().unwrap(),
                a["delivered"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(
        tries.len() >= 2 && tries.last() == Some(&(tries.len() as i64, true)),
        "{tries:?}"
    );
    assert!(tries[..tries.len() - 1].iter().all(|t| !t.1));
    assert!(
        all[0].get("next_try").is_none(),
        "nothing is waiting once every event is delivered: {:?}",
        all[0]
    );
    app.stop().await;
}

#[tokio::test]
async fn webhooks_do_not_reach_private_addresses_unless_allowed() {
    let app = spawn_app_with(&["--webhook-retry-base-ms", "50"]).await;
    let listener = loopback_listener().await;
    let port = listener.local_addr().expect("address").port();
    let received = Received::default();
    webhook_receiver(listener, received.clone());
    // An address, and a name that resolves to loopback only.
    for (pool, host) in [("direct", "127.0.0.1"), ("named", "localhost")] {
        create_pool(
            &app,
            json!({"name": pool, "window_secs": 3600, "webhook_url": format!("http://{host}:{port}/hook")}),
        )
        .await;
        let cam = add_members(&app, pool, json!({"name": "cam", "role": "contributor"})).await;
        send_batch(&app, pool, &cam[0].1, &[("a.png", now_ms(), PNG)]).await;
    }
    for (pool, why) in [
        ("direct", "127.0.0.1 is not a public address"),
        ("named", "localhost has no public address"),
    ] {
        let path = format!("/pools/{pool}/webhook/attempts");
        let tried = poll_within(Duration::from_secs(10), "attempts are recorded", || async {
            let (_, tried) = app.api().get(&path, ROOT).await;
            if tried.as_array().is_some_and(|a| a.len() >= 2) {
                Ok(tried)
            } else {
                Err(tried)
            }
        })
        .await;
        for attempt in tried.as_array().unwrap() {
            assert_eq!(attempt["delivered"], false);
            let error = attempt["error"].as_str().unwrap();
            assert!(error.contains(why), "{pool}: {error}");
            assert!(error.contains("--webhook-allow-private"), "{error}");
        }
    }
    assert!(
        received.lock().unwrap().is_empty(),
        "nothing reached the receiver"
    );
    app.stop().await;
}

async fn websocket(
    app: &TestApp,
    token: &str,
    last_event_id: Option<i64>,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = app.web_url("/api/v1/events").replace("http://", "ws://");
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    if let Some(id) = last_event_id {
        request
            .headers_mut()
            .insert("last-event-id", id.to_string().parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .expect("websocket")
        .0
}

async fn next_event(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("an event in time")
            .expect("open")
            .expect("message");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[tokio::test]
async fn events_also_come_over_a_websocket_and_resume() {
    let app = spawn_app().await;
    create_pool(&app, json!({"name": "ws", "window_secs": 3600})).await;
    let cam = add_members(&app, "ws", json!({"name": "cam", "role": "contributor"})).await;
    send_batch(&app, "ws", &cam[0].1, &[("a.png", now_ms(), PNG)]).await;
    let mut socket = websocket(&app, &cam[0].1, None).await;
    let first = next_event(&mut socket).await;
    assert_eq!(first["kind"], "contribution.accepted");
    let group = newest_group(&app, "ws").await;
    seal(&app, "ws", &group, ROOT).await;
    assert_eq!(
        next_event(&mut socket).await["kind"],
        "group.sealed",
        "live events arrive"
    );
    drop(socket);
    let mut resumed = websocket(&app, &cam[0].1, first["id"].as_i64()).await;
    assert_eq!(
        next_event(&mut resumed).await["kind"],
        "group.sealed",
        "resumed after the first"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_member_disabled_mid_stream_hears_no_more_and_sends_no_more() {
    let app = spawn_app().await;
    create_pool(&app, json!({"name": "cut", "window_secs": 3600})).await;
    let cam = add_members(&app, "cut", json!({"name": "cam", "role": "contributor"})).await;
    let response = app
        .api()
        .request(Caller::Bearer(&cam[0].1), "GET", "/events")
        .send()
        .await
        .expect("events");
    let mut stream = response.bytes_stream();
    send_batch(&app, "cut", &cam[0].1, &[("a.png", now_ms(), PNG)]).await;
    let (status, _) = app
        .api()
        .post("/pools/cut/members/cam/disable", ROOT, json!({}))
        .await;
    assert_eq!(status, 204);
    // The stream delivers what came before and then ends.
    let mut text = String::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream ends once the member is disabled");
    assert!(text.contains("contribution.accepted"), "{text}");
    assert!(text.contains("event: member.disabled"), "told why: {text}");
    // The owner sees the change among the pool's events.
    let owner = app.api().root_session().await;
    let seen = read_events(&app, "?pool=cut", &owner, None, |events| {
        events.iter().any(|e| e["kind"] == "member.disabled")
    })
    .await;
    let change = seen
        .iter()
        .find(|e| e["kind"] == "member.disabled")
        .unwrap();
    assert_eq!(change["data"]["member"], "cam");
    let response = app
        .api()
        .request(
            Caller::Bearer(&cam[0].1),
            "POST",
            &format!(
                "/pools/cut/contributions?name=b.png&timestamp={}",
                rfc3339(now_ms())
            ),
        )
        .body(PNG.to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 403);
    let (_, mine) = app.api().get("/pools/cut/contributions", ROOT).await;
    assert_eq!(
        mine["contributions"].as_array().unwrap().len(),
        1,
        "nothing more was stored"
    );
    app.stop().await;
}

#[tokio::test]
async fn retention_forgets_finished_groups_with_their_files_and_events() {
    let app = spawn_app().await;
    create_pool(
        &app,
        json!({"name": "old", "window_secs": 3600, "retention_days": 1}),
    )
    .await;
    let cam = add_members(&app, "old", json!({"name": "cam", "role": "contributor"})).await;
    let processor = add_members(&app, "old", json!({"name": "proc", "role": "processor"})).await;
    send_batch(
        &app,
        "old",
        &cam[0].1,
        &[("a.png", now_ms(), PNG), ("b.txt", now_ms(), b"words")],
    )
    .await;
    let group = newest_group(&app, "old").await;
    seal(&app, "old", &group, ROOT).await;
    let (_, claim) = claim_group(&app, "old", &processor[0].1, json!({})).await;
    let response = app
        .api()
        .request(
            Caller::Bearer(&processor[0].1),
            "PUT",
            &format!(
                "/pools/old/groups/{group}/result?lease={}",
                claim["lease_id"].as_str().unwrap()
            ),
        )
        .body(b"result".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let pool = app.store.pool_by_name("old").await.unwrap();
    let objects = |s3: aws_sdk_s3::Client| async move {
        s3.list_objects_v2()
            .bucket("pool-old")
            .send()
            .await
            .unwrap()
            .key_count()
            .unwrap_or(0)
    };

    // Younger than the cutoff: kept.
    app.store
        .forget_groups_before(&pool, now_ms() - 86_400_000)
        .await
        .unwrap();
    assert_eq!(objects(app.client()).await, 3, "two files and the result");
    // The server's own pass uses each pool's retention (1 day here): kept.
    app.store.expire_pool_data().await;
    assert_eq!(objects(app.client()).await, 3);

    // Older than the cutoff: the group, its files, result and events go.
    app.store
        .forget_groups_before(&pool, now_ms() + 1_000)
        .await
        .unwrap();
    assert_eq!(objects(app.client()).await, 0);
    let (_, groups) = app.api().get("/pools/old/groups", ROOT).await;
    assert_eq!(groups, json!([]));
    let (_, contributions) = app.api().get("/pools/old/contributions", ROOT).await;
    assert_eq!(contributions["contributions"], json!([]));
    assert!(
        app.store
            .pool_event_page(&pool, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_rekeyed_member_stream_ends_even_while_events_flow() {
    let app = spawn_app().await;
    create_pool(&app, json!({"name": "busy", "window_secs": 3600})).await;
    let cams = add_members(
        &app,
        "busy",
        json!({"count": 2, "prefix": "cam-", "role": "contributor"}),
    )
    .await;
    let response = app
        .api()
        .request(Caller::Bearer(&cams[0].1), "GET", "/events")
        .send()
        .await
        .expect("events");
    let mut stream = response.bytes_stream();
    let (status, _) = app
        .api()
        .post("/pools/busy/members/cam-1/rekey", ROOT, json!({}))
        .await;
    assert_eq!(status, 200);
    // Another member keeps the pool busy while the old token's stream runs.
    let busy = {
        let (api, token) = (app.api(), cams[1].1.clone());
        tokio::spawn(async move {
            for i in 0..200 {
                let path = format!(
                    "/pools/busy/contributions?name=f{i}.txt&timestamp={}",
                    rfc3339(now_ms())
                );
                let _ = api
                    .request(Caller::Bearer(&token), "POST", &path)
                    .body("words")
                    .send()
                    .await;
            }
        })
    };
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = stream.next().await {
            chunk.expect("chunk");
        }
    })
    .await;
    busy.abort();
    assert!(ended.is_ok(), "the stream of the old token ends");
    app.stop().await;
}

#[tokio::test]
async fn nodes_sharing_a_database_never_both_claim_a_group() {
    let node_a = spawn_app().await;
    // Only a shared PostgreSQL has several nodes; SQLite has one.
    let Some(node_b) = node_a.second_node(&[]).await else {
        node_a.stop().await;
        return;
    };
    for round in 0..8 {
        let pool = format!("shared{round}");
        create_pool(&node_a, json!({"name": pool, "window_secs": 3600})).await;
        let cam = add_members(
            &node_a,
            &pool,
            json!({"name": "cam", "role": "contributor"}),
        )
        .await;
        let workers = add_members(
            &node_a,
            &pool,
            json!({"count": 2, "prefix": "worker", "role": "processor"}),
        )
        .await;
        send_batch(&node_a, &pool, &cam[0].1, &[("a.png", now_ms(), PNG)]).await;
        let group = newest_group(&node_a, &pool).await;
        assert_eq!(seal(&node_a, &pool, &group, ROOT).await.0, 204);
        let (on_a, on_b) = tokio::join!(
            claim_group(&node_a, &pool, &workers[0].1, json!({})),
            claim_group(&node_b, &pool, &workers[1].1, json!({})),
        );
        let won: Vec<&(u16, Value)> = [&on_a, &on_b]
            .into_iter()
            .filter(|(status, _)| *status == 200)
            .collect();
        assert_eq!(
            won.len(),
            1,
            "round {round}: one claim wins: {on_a:?} {on_b:?}"
        );
        let lost = if on_a.0 == 200 { &on_b } else { &on_a };
        assert_eq!(
            lost.0, 204,
            "round {round}: the other finds nothing to claim"
        );
        let (_, group_now) = node_b
            .api()
            .get(&format!("/pools/{pool}/groups"), ROOT)
            .await;
        assert_eq!(group_now[0]["state"], "processing");
        assert_eq!(
            group_now[0]["attempts"], 1,
            "round {round}: one attempt counted"
        );
    }
    node_b.stop().await;
    node_a.stop().await;
}

#[tokio::test]
async fn nodes_sharing_a_database_take_turns_at_a_webhook() {
    let flags = ["--webhook-retry-base-ms", "50", "--webhook-allow-private"];
    let node_a = spawn_app_with(&flags).await;
    let Some(node_b) = node_a.second_node(&flags).await else {
        node_a.stop().await;
        return;
    };
    let listener = loopback_listener().await;
    let port = listener.local_addr().expect("address").port();
    let received = Received::default();
    // Slow enough that the other node would look while a call is under way.
    slow_webhook_receiver(listener, received.clone(), Duration::from_millis(1500));
    create_pool(
        &node_a,
        json!({"name": "hooked", "window_secs": 3600, "webhook_url": format!("http://127.0.0.1:{port}/hook")}),
    )
    .await;
    let cam = add_members(
        &node_a,
        "hooked",
        json!({"name": "cam", "role": "contributor"}),
    )
    .await;
    // Events written through both nodes.
    for (i, node) in [&node_a, &node_b, &node_a, &node_b].into_iter().enumerate() {
        send_batch(
            node,
            "hooked",
            &cam[0].1,
            &[(&format!("{i}.png"), now_ms(), PNG)],
        )
        .await;
    }
    let delivered = || -> Vec<Value> {
        let received = received.lock().unwrap();
        let bodies = received.iter().map(|(_, body)| serde_json::from_str(body));
        bodies.collect::<Result<_, _>>().unwrap()
    };
    poll_within(Duration::from_secs(20), "every event delivered", || async {
        (delivered().len() >= 4).then_some(())
    })
    .await;
    // A node that wrongly delivers an event again does so while that event
    // is still the webhook's next one, and the webhook moves past an event
    // only once it is recorded delivered: a repeat reaches the receiver
    // before any later event. So a later event, once it arrives, shows that
    // no repeat came.
    send_batch(
        &node_b,
        "hooked",
        &cam[0].1,
        &[("later.png", now_ms(), PNG)],
    )
    .await;
    let events = poll_within(
        Duration::from_secs(20),
        "the later event delivered",
        || async {
            let events = delivered();
            if events.iter().any(|e| e["data"]["name"] == "later.png") {
                Ok(events)
            } else {
                Err(format!("{} events so far", events.len()))
            }
        },
    )
    .await;
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 5, "each event once: {ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
    node_b.stop().await;
    node_a.stop().await;
}

#[tokio::test]
async fn member_traffic_counts_in_the_owners_usage_on_the_pool_bucket() {
    let app = spawn_app().await;
    create_pool(&app, json!({"name": "billed", "window_secs": 3600})).await;
    let cam = add_members(
        &app,
        "billed",
        json!({"name": "cam", "role": "contributor"}),
    )
    .await;
    // Streamed, so the request announces no length.
    let mut file = PNG.to_vec();
    file.resize(200_000, 7);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        file.chunks(50_000).map(|c| Ok(c.to_vec())).collect();
    let response = app
        .api()
        .request(
            Caller::Bearer(&cam[0].1),
            "POST",
            &format!(
                "/pools/billed/contributions?name=big.png&timestamp={}",
                rfc3339(now_ms())
            ),
        )
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["receipts"][0]["status"], "accepted", "{body}");

    // Stopping flushes the audit queue.
    let app = app.restart().await;
    let (_, usage) = app.api().get("/usage", ROOT).await;
    let pool_rows: Vec<&Value> = usage["daily"]
        .as_array()
        .expect("daily")
        .iter()
        .filter(|d| d["bucket"] == "pool-billed")
        .collect();
    assert_eq!(pool_rows.len(), 1, "{usage}");
    assert_eq!(pool_rows[0]["bytes_in"], 200_000);
    assert_eq!(pool_rows[0]["requests"], 1);
    let (_, audit) = app.api().get("/audit?actor=billed/cam", ROOT).await;
    assert!(audit.to_string().contains("contribution.send"), "{audit}");
    app.stop().await;
}

#[tokio::test]
async fn a_batch_sent_again_after_its_answer_was_lost_is_not_stored_twice() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app().await;
    create_pool(&app, json!({"name": "flaky", "window_secs": 3600})).await;
    let cam = add_members(&app, "flaky", json!({"name": "cam", "role": "contributor"})).await;
    let now = pool_now_ms(3600);
    let pictures: Vec<(String, i64, Vec<u8>)> = (0..3)
        .map(|i| {
            let mut data = PNG.to_vec();
            data.push(i as u8);
            (format!("p{i}.png"), now - 1000 * i, data)
        })
        .collect();
    // The batch goes out over a raw connection whose answer never arrives:
    // the client hangs up once the server has stored the files.
    let boundary = "cistern-test-boundary";
    let mut body = Vec::new();
    for (name, time_ms, data) in &pictures {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\ncontent-disposition: form-data; name=\"timestamp\"\r\n\r\n{}\r\n\
                 --{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
                 content-type: application/octet-stream\r\n\r\n",
                rfc3339(*time_ms)
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let head = format!(
        "POST /api/v1/pools/flaky/contributions HTTP/1.1\r\nhost: cistern\r\n\
         authorization: Bearer {}\r\ncontent-type: multipart/form-data; boundary={boundary}\r\n\
         content-length: {}\r\n\r\n",
        cam[0].1,
        body.len()
    );
    let mut socket = tokio::net::TcpStream::connect(app.web_addr).await.unwrap();
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&body).await.unwrap();
    let first = poll_within(Duration::from_secs(10), "the batch is stored", || async {
        let (_, listed) = app.api().get("/pools/flaky/contributions", ROOT).await;
        if listed["contributions"].as_array().unwrap().len() == 3 {
            Ok(listed)
        } else {
            Err(listed)
        }
    })
    .await;
    drop(socket);

    // The client sends the whole batch again: the first receipts come back.
    let files: Vec<(&str, i64, &[u8])> = pictures
        .iter()
        .map(|(n, t, d)| (n.as_str(), *t, d.as_slice()))
        .collect();
    let again = send_batch(&app, "flaky", &cam[0].1, &files).await;
    let mut first_ids: Vec<&str> = first["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let mut again_ids: Vec<&str> = again
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "duplicate", "{r}");
            r["contribution"]["id"].as_str().unwrap()
        })
        .collect();
    first_ids.sort_unstable();
    again_ids.sort_unstable();
    assert_eq!(first_ids, again_ids);
    let (_, listed) = app.api().get("/pools/flaky/contributions", ROOT).await;
    assert_eq!(listed["contributions"].as_array().unwrap().len(), 3);
    let (_, groups) = app.api().get("/pools/flaky/groups", ROOT).await;
    assert_eq!(groups[0]["files"], 3, "no second copy counted");
    app.stop().await;
}
