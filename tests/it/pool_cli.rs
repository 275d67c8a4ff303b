//! `cistern pool push | watch | process` as a user runs them: the real
//! binary against a running server.

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};

use crate::helpers::*;

/// A pool with one contributor, one listener and one processor: tokens.
async fn pool_with_members(app: &TestApp, pool: &str) -> (String, String, String) {
    let (status, body) = app
        .api()
        .post("/pools", ROOT, json!({"name": pool, "window_secs": 86400}))
        .await;
    assert_eq!(status, 201, "{body}");
    let mut tokens = Vec::new();
    for (name, role) in [
        ("cam", "contributor"),
        ("screen", "listener"),
        ("proc", "processor"),
    ] {
        let (status, body) = app
            .api()
            .post(
                &format!("/pools/{pool}/members"),
                ROOT,
                json!({"name": name, "role": role}),
            )
            .await;
        assert_eq!(status, 201);
        tokens.push(body[0]["token"].as_str().unwrap().to_owned());
    }
    (tokens[0].clone(), tokens[1].clone(), tokens[2].clone())
}

fn cistern(server: &str, pool: &str, token: &str, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_cistern"));
    command
        .arg("pool")
        .args(&args[..1])
        .args(["--server", server, "--pool", pool, "--token", token])
        .args(&args[1..])
        .kill_on_drop(true);
    command
}

async fn run(mut command: tokio::process::Command) -> Output {
    let output = command.output().await.expect("run cistern");
    eprintln!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn write(dir: &Path, name: &str, data: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path.to_string_lossy().into_owned()
}

/// A pool's newest group: its state and attempts.
async fn group_now(app: &TestApp, pool: &str) -> (Value, Value) {
    let group = newest_group(app, pool).await;
    (group["state"].clone(), group["attempts"].clone())
}

async fn newest_group(app: &TestApp, pool: &str) -> Value {
    let (_, groups) = app.api().get(&format!("/pools/{pool}/groups"), ROOT).await;
    groups[0].clone()
}

async fn seal_current_group(app: &TestApp, pool: &str) {
    let group = newest_group(app, pool).await["group"]
        .as_str()
        .expect("a group")
        .to_owned();
    let (status, _) = app
        .api()
        .post(
            &format!("/pools/{pool}/groups/{group}/seal"),
            ROOT,
            json!({}),
        )
        .await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn push_through_a_spool_process_with_a_command_and_watch_results_arrive() {
    let app = spawn_app().await;
    let server = app.web_url("");
    let server = server.trim_end_matches('/');
    let (cam, screen, processor) = pool_with_members(&app, "demo").await;
    let work = tempfile::tempdir().unwrap();
    let spool = work.path().join("spool");
    let a = write(work.path(), "a.txt", b"first ");
    let b = write(work.path(), "b.txt", b"second");

    // The server is unreachable (its port refuses connections): the files
    // wait in the spool.
    let (_held, port) = unserved_port();
    let down = format!("http://127.0.0.1:{port}");
    let mut push = cistern(
        &down,
        "demo",
        &cam,
        &[
            "push",
            "--spool",
            spool.to_str().unwrap(),
            "--give-up-secs",
            "2",
        ],
    );
    push.args([&a, &b]);
    let output = run(push).await;
    assert_eq!(output.status.code(), Some(75), "gave up, files kept");
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        4,
        "two files, two entries"
    );

    // The next run finds the server and empties the spool.
    let output = run(cistern(
        server,
        "demo",
        &cam,
        &["push", "--spool", spool.to_str().unwrap()],
    ))
    .await;
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.matches("accepted ").count(), 2, "{stdout}");
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);

    // A listener watches; the processor turns the sealed group into a result.
    let out = work.path().join("out");
    let mut watch = cistern(
        server,
        "demo",
        &screen,
        &["watch", "--out", out.to_str().unwrap(), "--count", "1"],
    );
    let watcher = watch
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("watch");
    seal_current_group(&app, "demo").await;
    let output = run(cistern(
        server,
        "demo",
        &processor,
        &[
            "process",
            "--count",
            "1",
            "--poll-secs",
            "1",
            "--exec",
            "cat {input}/files/* > {output}",
        ],
    ))
    .await;
    assert!(output.status.success());
    let watched = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        watcher.wait_with_output(),
    )
    .await
    .expect("the watcher gets the result in time")
    .expect("watch");
    assert!(watched.status.success());
    let mut result = std::fs::read(out.join("latest")).expect("latest result");
    result.sort_unstable();
    let mut expected = b"first second".to_vec();
    expected.sort_unstable();
    assert_eq!(result, expected, "both files went through the command");

    // A failing command is reported with its exit status and stderr; the
    // group goes back to the pool, and the exit code says the work failed.
    let (cam2, _, processor2) = pool_with_members(&app, "broken").await;
    let c = write(work.path(), "c.txt", b"x");
    let mut push = cistern(server, "broken", &cam2, &["push"]);
    push.arg(&c);
    assert!(run(push).await.status.success());
    seal_current_group(&app, "broken").await;
    let failing = |extra: &'static [&'static str]| {
        let mut process = cistern(
            server,
            "broken",
            &processor2,
            &[
                "process",
                "--count",
                "1",
                "--exec",
                "echo 'cannot read input' >&2; exit 3",
            ],
        );
        process.args(extra);
        process
    };
    let output = run(failing(&[])).await;
    assert_eq!(output.status.code(), Some(1), "the work failed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("back in the pool"), "{stderr}");
    assert_eq!(group_now(&app, "broken").await, (json!("sealed"), json!(1)));

    // The command's "do not retry" status fails the group at once.
    let output = run(failing(&["--final-exit-code", "3"])).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(group_now(&app, "broken").await, (json!("failed"), json!(2)));
    let token = app.api().root_session().await;
    let events = app
        .api()
        .request(Caller::Bearer(&token), "GET", "/events?pool=broken")
        .send()
        .await
        .unwrap();
    let mut stream = futures::StreamExt::boxed(events.bytes_stream());
    let mut text = String::new();
    while !text.contains("group.failed") {
        let chunk = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            futures::StreamExt::next(&mut stream),
        )
        .await
        .expect("events")
        .unwrap()
        .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains(r#""failure_reported":true"#), "{text}");
    assert!(text.contains("exit status: 3"), "{text}");
    assert!(text.contains("cannot read input"), "{text}");
    assert!(text.contains(r#""final":true"#), "{text}");
    app.stop().await;
}

/// Waits for a command to end by itself; its output.
async fn ends_within(child: tokio::process::Child, secs: u64) -> Output {
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(secs),
        child.wait_with_output(),
    )
    .await
    .expect("the command ends in time")
    .expect("output");
    eprintln!("stderr:\n{}", String::from_utf8_lossy(&output.stderr));
    output
}

#[tokio::test]
async fn watch_and_process_stop_with_a_clear_message_when_the_member_is_refused() {
    let app = spawn_app().await;
    let server = app.web_url("");
    let server = server.trim_end_matches('/');
    let (cam, screen, _) = pool_with_members(&app, "cut").await;
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let watching = |token: &str| {
        cistern(
            server,
            "cut",
            token,
            &["watch", "--out", out.to_str().unwrap()],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("watch")
    };

    // Disabled while watching (or before it connects: the same answer).
    let watcher = watching(&screen);
    let (status, _) = app
        .api()
        .post("/pools/cut/members/screen/disable", ROOT, json!({}))
        .await;
    assert_eq!(status, 204);
    let output = ends_within(watcher, 30).await;
    assert_eq!(output.status.code(), Some(77));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("error: this member was disabled by the pool owner; watch stops"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("error:").count(), 1, "one line: {stderr}");

    // Re-keyed: the old token is refused.
    let (status, _) = app
        .api()
        .post("/pools/cut/members/cam/rekey", ROOT, json!({}))
        .await;
    assert_eq!(status, 200);
    let output = ends_within(watching(&cam), 30).await;
    assert_eq!(output.status.code(), Some(77));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("new token"), "{stderr}");

    // A member that may not claim is told so by process too.
    let output = run(cistern(
        server,
        "cut",
        &screen,
        &["process", "--exec", "true"],
    ))
    .await;
    assert_eq!(output.status.code(), Some(77));
    app.stop().await;
}
