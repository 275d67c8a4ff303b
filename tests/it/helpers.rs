//! `spawn_app()` and the clients the tests use: servers on listeners bound
//! to port 0, the S3 client, the one JSON API client ([`ApiClient`]), and
//! the one way to wait for something ([`poll_until`] and its kin).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use cistern::config::{Command, parse_from};
use cistern::startup::Server;
use serde_json::Value;
use tokio::sync::oneshot;

pub const ROOT_USER: &str = "testroot";
pub const ROOT_PASSWORD: &str = "test-root-password";
/// The root admin's name and password, as an [`ApiClient`] caller.
pub const ROOT: (&str, &str) = (ROOT_USER, ROOT_PASSWORD);

pub struct TestApp {
    pub s3_addr: SocketAddr,
    pub web_addr: SocketAddr,
    pub data_dir: tempfile::TempDir,
    pub store: cistern::core::Store,
    pub database_url: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub fn s3_url(&self) -> String {
        format!("http://{}", self.s3_addr)
    }

    pub fn web_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.web_addr)
    }

    pub fn client(&self) -> Client {
        client_for(&self.s3_url(), ROOT_USER, ROOT_PASSWORD, None)
    }

    /// A client of this server's JSON API.
    pub fn api(&self) -> ApiClient {
        ApiClient::at(&self.web_url(""))
    }

    /// Stops the server the way SIGTERM does and waits for it.
    pub async fn stop(self) {
        self.stop_keeping_data().await;
    }

    pub async fn stop_keeping_data(mut self) -> (tempfile::TempDir, Option<String>) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server run");
        }
        (self.data_dir, self.database_url)
    }

    /// Another node on this one's PostgreSQL database, with its own data
    /// directory; `None` on SQLite, which serves a single node.
    pub async fn second_node(&self, extra: &[&str]) -> Option<TestApp> {
        let database_url = self.database_url.clone()?;
        let data_dir = tempfile::tempdir().expect("tempdir");
        Some(spawn_on(data_dir, Some(database_url), extra).await)
    }

    /// Stops the server and starts a new one on the same data.
    pub async fn restart(self) -> TestApp {
        let (data_dir, database_url) = self.stop_keeping_data().await;
        spawn_on(data_dir, database_url, &[]).await
    }
}

/// A fresh PostgreSQL database when the suite runs against PostgreSQL.
pub async fn test_database_url() -> Option<String> {
    let base = std::env::var("CISTERN_TEST_DATABASE_URL").ok()?;
    Some(cistern::testing::fresh_postgres_database(&base).await)
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(extra: &[&str]) -> TestApp {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let database_url = test_database_url().await;
    spawn_on(data_dir, database_url, extra).await
}

/// The settings of a test server: loopback ports (`web_listen` for the
/// web port), `root_user` with the test root password, `extra` flags last.
pub fn serve_args(
    data_dir: &std::path::Path,
    database_url: Option<&str>,
    web_listen: &str,
    root_user: &str,
    extra: &[&str],
) -> cistern::config::ServeArgs {
    let data_dir = data_dir.to_string_lossy();
    let mut argv: Vec<&str> = vec![
        "cistern",
        "serve",
        "--s3-listen",
        "127.0.0.1:0",
        "--web-listen",
        web_listen,
        "--root-user",
        root_user,
        "--root-password",
        ROOT_PASSWORD,
        "--shutdown-grace-secs",
        "5",
        "--data-dir",
        &data_dir,
    ];
    if let Some(url) = database_url {
        argv.extend(["--database-url", url]);
    }
    argv.extend(extra);
    let argv = argv.into_iter().map(str::to_owned).collect();
    let Command::Serve(args) = parse_from(argv).expect("valid test settings").command else {
        unreachable!("a serve command line")
    };
    args
}

pub async fn spawn_on(
    data_dir: tempfile::TempDir,
    database_url: Option<String>,
    extra: &[&str],
) -> TestApp {
    let args = serve_args(
        data_dir.path(),
        database_url.as_deref(),
        "127.0.0.1:0",
        ROOT_USER,
        extra,
    );
    let (s3_listener, web_listener) = (loopback_listener().await, loopback_listener().await);
    let (server, _) = Server::build_on(args, s3_listener, web_listener)
        .await
        .expect("server builds");
    let (stop, stopped) = oneshot::channel::<()>();
    let s3_addr = server.s3_addr();
    let web_addr = server.web_addr();
    let store = server.store().clone();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    TestApp {
        s3_addr,
        web_addr,
        data_dir,
        store,
        database_url,
        stop: Some(stop),
        task: Some(task),
    }
}

#[derive(Debug)]
struct OffsetClock(Duration);

impl aws_smithy_async::time::TimeSource for OffsetClock {
    fn now(&self) -> SystemTime {
        SystemTime::now() - self.0
    }
}

fn client_config(
    endpoint: &str,
    key: &str,
    secret: &str,
    region: &str,
) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(key, secret, None, None, "test"))
        .force_path_style(true)
}

/// An S3 client; `clock_behind` makes it sign with a clock that is late.
pub fn client_for(
    endpoint: &str,
    key: &str,
    secret: &str,
    clock_behind: Option<Duration>,
) -> Client {
    let mut config = client_config(endpoint, key, secret, "us-east-1");
    if let Some(offset) = clock_behind {
        // The SDK corrects skew by retrying with the server's clock; a
        // single attempt shows what the server said.
        config = config
            .time_source(OffsetClock(offset))
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled());
    }
    Client::from_conf(config.build())
}

/// An S3 client that tries each request once: what the server answered,
/// with no retry of a 503.
pub fn client_trying_once(endpoint: &str, key: &str, secret: &str) -> Client {
    let config = client_config(endpoint, key, secret, "us-east-1")
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled());
    Client::from_conf(config.build())
}

/// The root user's S3 client, signing for `region` and trying once (the
/// SDK would not retry a refusal anyway, but says so plainly).
pub fn client_in_region(app: &TestApp, region: &str) -> Client {
    let config = client_config(&app.s3_url(), ROOT_USER, ROOT_PASSWORD, region)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled());
    Client::from_conf(config.build())
}

/// A request of the root user signed with SigV4 for `region` over its exact
/// body and `headers`, sent raw: for what the SDK would not send.
pub async fn signed_request(
    app: &TestApp,
    method: &str,
    path_and_query: &str,
    region: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> reqwest::Response {
    use aws_sigv4::http_request::{
        PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
    };
    let url = format!("{}{path_and_query}", app.s3_url());
    let identity =
        aws_credential_types::Credentials::new(ROOT_USER, ROOT_PASSWORD, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .expect("signing parameters")
        .into();
    let signable = SignableRequest::new(
        method,
        url.as_str(),
        headers.iter().copied(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .expect("a signable request");
    let (instructions, _) = sign(signable, &params).expect("signed").into_parts();
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
    let mut request = reqwest::Client::new()
        .request(method, &url)
        .body(body.to_owned());
    for (name, value) in headers.iter().copied().chain(instructions.headers()) {
        request = request.header(name, value);
    }
    request.send().await.expect("answer")
}

/// Deterministic test bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

pub async fn body_bytes(output: aws_sdk_s3::operation::get_object::GetObjectOutput) -> Vec<u8> {
    output
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

/// The S3 error code of a failed SDK call.
pub fn error_code<E, R>(result: Result<R, aws_sdk_s3::error::SdkError<E>>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match result {
        Ok(ok) => panic!("expected an error, got {ok:?}"),
        Err(e) => e
            .as_service_error()
            .and_then(|s| s.code())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("no code: {e:?}")),
    }
}

/// The HTTP status of a failed SDK call.
pub fn error_status<E: std::fmt::Debug, R: std::fmt::Debug>(
    result: Result<R, aws_sdk_s3::error::SdkError<E>>,
) -> u16 {
    match result {
        Ok(ok) => panic!("expected an error, got {ok:?}"),
        Err(e) => e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0),
    }
}

pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(data))
}

/// The whole body of an object, which must exist.
pub async fn get_bytes(s3: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let got = s3.get_object().bucket(bucket).key(key).send().await;
    body_bytes(got.unwrap_or_else(|e| panic!("get {bucket}/{key}: {e:?}"))).await
}

/// Stores an object, which must succeed.
pub async fn put_bytes(s3: &Client, bucket: &str, key: &str, data: impl Into<Vec<u8>>) {
    let body = aws_sdk_s3::primitives::ByteStream::from(data.into());
    let put = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body)
        .send()
        .await;
    put.unwrap_or_else(|e| panic!("put {bucket}/{key}: {e:?}"));
}

/// A listener on a loopback port of the system's choosing (port 0): its
/// port is known only from the listener, and stays taken while it lives.
pub async fn loopback_listener() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port")
}

/// A loopback port held by a socket that is bound but not listening: a
/// connection to it is refused for as long as the socket lives, and
/// `listen` on the socket later serves that very port (nothing else can
/// take it in between).
pub fn unserved_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind(([127, 0, 0, 1], 0).into())
        .expect("a loopback port");
    let port = socket.local_addr().expect("its address").port();
    (socket, port)
}

/// Who makes a JSON API call.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    /// A user's name and password, over HTTP Basic.
    Basic(&'a str, &'a str),
    /// A bearer token: a pool member's token or a login session.
    Bearer(&'a str),
    /// No credentials at all.
    Anonymous,
}

impl<'a> From<(&'a str, &'a str)> for Caller<'a> {
    fn from((name, password): (&'a str, &'a str)) -> Self {
        Caller::Basic(name, password)
    }
}

/// The JSON API client of the tests: a request to a path under `/api/v1`
/// as a [`Caller`], and the status and JSON body of its answer.
pub struct ApiClient {
    pub http: reqwest::Client,
    /// `http://host:port/api/v1`.
    pub base: String,
}

/// The answer to an [`ApiClient`] call.
pub struct ApiAnswer {
    pub status: u16,
    pub body: Value,
}

impl ApiAnswer {
    pub fn expect_status(self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.body);
        self.body
    }

    pub fn into_json(self) -> (u16, Value) {
        (self.status, self.body)
    }
}

impl ApiClient {
    /// A client of the JSON API of the server whose web port answers at
    /// `web_url` (`http://host:port`).
    pub fn at(web_url: &str) -> Self {
        ApiClient {
            http: reqwest::Client::new(),
            base: format!("{}/api/v1", web_url.trim_end_matches('/')),
        }
    }

    /// A request to `path` (under `/api/v1`) with the caller's credentials,
    /// for what a JSON body does not carry (raw bodies, headers, streams).
    pub fn request<'a>(
        &self,
        who: impl Into<Caller<'a>>,
        method: &str,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let request = self.http.request(method, format!("{}{path}", self.base));
        match who.into() {
            Caller::Basic(name, password) => request.basic_auth(name, Some(password)),
            Caller::Bearer(token) => request.bearer_auth(token),
            Caller::Anonymous => request,
        }
    }

    pub async fn call<'a>(
        &self,
        who: impl Into<Caller<'a>>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> ApiAnswer {
        let mut request = self.request(who, method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("an answer");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        // Not JSON (an empty 204, say): `Null`.
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        ApiAnswer { status, body }
    }

    pub async fn get<'a>(&self, path: &str, who: impl Into<Caller<'a>>) -> (u16, Value) {
        self.call(who, "GET", path, None).await.into_json()
    }

    pub async fn delete<'a>(&self, path: &str, who: impl Into<Caller<'a>>) -> (u16, Value) {
        self.call(who, "DELETE", path, None).await.into_json()
    }

    pub async fn post<'a>(
        &self,
        path: &str,
        who: impl Into<Caller<'a>>,
        body: Value,
    ) -> (u16, Value) {
        self.call(who, "POST", path, Some(body)).await.into_json()
    }

    pub async fn put<'a>(
        &self,
        path: &str,
        who: impl Into<Caller<'a>>,
        body: Value,
    ) -> (u16, Value) {
        self.call(who, "PUT", path, Some(body)).await.into_json()
    }

    /// Creates a user as the root admin.
    pub async fn create_user(&self, name: &str, password: &str) {
        self.call(
            ROOT,
            "POST",
            "/users",
            Some(serde_json::json!({"name": name, "password": password})),
        )
        .await
        .expect_status(201);
    }

    /// A new access key of `who` (with `body`'s limits): key and secret.
    pub async fn new_key(&self, who: (&str, &str), body: Value) -> (String, String) {
        let key = self.call(who, "POST", "/keys", Some(body)).await;
        let key = key.expect_status(201);
        (
            key["access_key"].as_str().expect("key").to_owned(),
            key["secret_key"].as_str().expect("secret").to_owned(),
        )
    }

    /// A login session of the root admin: its bearer token.
    pub async fn root_session(&self) -> String {
        let (_, session) = self
            .post(
                "/auth/login",
                ROOT,
                serde_json::json!({"name": ROOT_USER, "password": ROOT_PASSWORD}),
            )
            .await;
        session["token"].as_str().expect("token").to_owned()
    }
}

/// What a check found while polling: the value waited for, or what it saw
/// instead (told when time runs out).
pub trait Polled<T> {
    fn found(self) -> Result<T, String>;
}

impl<T> Polled<T> for Option<T> {
    fn found(self) -> Result<T, String> {
        self.ok_or_else(String::new)
    }
}

impl<T, E: std::fmt::Display> Polled<T> for Result<T, E> {
    fn found(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// Runs `check` every 25 ms until it finds what it waits for; `Err` with
/// what it last saw once `within` has passed.
pub async fn poll_for<T, R, F, Fut>(within: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = R>,
    R: Polled<T>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let seen = match check().await.found() {
            Ok(found) => return Ok(found),
            Err(seen) => seen,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(seen);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Polls `check` until it finds what it waits for, failing after `within`
/// with `what` and what the check last saw.
pub async fn poll_within<T, R, F, Fut>(within: Duration, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = R>,
    R: Polled<T>,
{
    match poll_for(within, check).await {
        Ok(found) => found,
        Err(seen) if seen.is_empty() => panic!("timed out waiting until {what}"),
        Err(seen) => panic!("timed out waiting until {what}: {seen}"),
    }
}

/// Polls `check` until it finds what it waits for, failing after 15 s.
pub async fn poll_until<T, R, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = R>,
    R: Polled<T>,
{
    poll_within(Duration::from_secs(15), what, check).await
}

/// The smallest PNG: a file every pool accepts.
pub const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\0\0\0\0:~\x9bU";

/// A time as pools read it: RFC 3339 with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A "now" for stamping pool files that a test means to share one window of
/// `window_secs`: the clock, or a minute into the current window while the
/// clock is nearer its start than that. Files stamped a moment before the
/// clock's now otherwise fall into the previous window when a run passes a
/// window boundary (a CI run at 07:00:00 split a batch in two). A minute
/// ahead is well inside the five minutes of client clock drift a pool
/// accepts.
pub fn pool_now_ms(window_secs: i64) -> i64 {
    let now = now_ms();
    let window_start = now - now.rem_euclid(window_secs * 1000);
    now.max(window_start + 60_000)
}

/// Sends files with their timestamps to a pool as a member (one request):
/// the receipts.
pub async fn send_pool_files(
    api: &ApiClient,
    pool: &str,
    token: &str,
    files: &[(&str, i64, &[u8])],
) -> Vec<Value> {
    let mut form = reqwest::multipart::Form::new();
    for (name, time_ms, data) in files {
        form = form.text("timestamp", rfc3339(*time_ms)).part(
            "file",
            reqwest::multipart::Part::bytes(data.to_vec()).file_name(name.to_string()),
        );
    }
    let response = api
        .request(
            Caller::Bearer(token),
            "POST",
            &format!("/pools/{pool}/contributions"),
        )
        .multipart(form)
        .send()
        .await
        .expect("contribute");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    body["receipts"].as_array().expect("receipts").clone()
}

/// Adds pool members as the root admin (one, or many by count and prefix):
/// each member's name and token.
pub async fn add_pool_members(api: &ApiClient, pool: &str, body: Value) -> Vec<(String, String)> {
    let (status, created) = api
        .post(&format!("/pools/{pool}/members"), ROOT, body)
        .await;
    assert_eq!(status, 201, "{created}");
    created
        .as_array()
        .expect("list")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_owned(),
                m["token"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// An s3s-fs process: a real S3 server of another make, for the blob store
/// of the cluster tests and as a backup target. `CISTERN_TEST_S3S_FS`
/// names its binary.
pub struct S3sFs {
    child: std::process::Child,
    pub addr: SocketAddr,
    /// s3s-fs keeps each bucket as a folder here, each object as a file.
    pub root: std::path::PathBuf,
}

impl S3sFs {
    pub const KEY: &str = "blobkey";
    pub const SECRET: &str = "blob-secret-123";

    pub async fn start(root: &std::path::Path) -> S3sFs {
        let binary = std::env::var("CISTERN_TEST_S3S_FS")
            .expect("CISTERN_TEST_S3S_FS names the s3s-fs binary");
        std::fs::create_dir_all(root).expect("the s3s-fs root");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a loopback port")
            .port();
        let child = std::process::Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", Self::KEY, "--secret-key", Self::SECRET])
            .arg(root)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let server = S3sFs {
            child,
            addr,
            root: root.to_path_buf(),
        };
        poll_within(Duration::from_secs(20), "s3s-fs listens", || async {
            tokio::net::TcpStream::connect(addr).await.ok()
        })
        .await;
        server
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a Server-Sent Events answer until `enough` holds for the events
/// seen (each one's id, when it has one, and data), for at most 10 s.
pub async fn read_sse(
    response: reqwest::Response,
    enough: impl Fn(&[(Option<i64>, Value)]) -> bool,
) -> Vec<(Option<i64>, Value)> {
    use futures::StreamExt;
    let mut stream = response.bytes_stream();
    let mut text = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !enough(&events) {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("the events arrive in time")
            .expect("the stream stays open")
            .expect("chunk");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let id = block.lines().find_map(|l| l.strip_prefix("id: "));
            if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                let data = serde_json::from_str(data).expect("event json");
                events.push((id.and_then(|id| id.parse().ok()), data));
            }
        }
    }
    events
}

/// The blob files a server keeps on local disk under its data directory.
pub fn blob_files(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for shard in std::fs::read_dir(root.join("blobs")).expect("blobs dir") {
        for entry in std::fs::read_dir(shard.expect("shard").path()).expect("shard dir") {
            found.push(entry.expect("entry").path());
        }
    }
    found
}

/// The names of the buckets an S3 client lists.
pub async fn bucket_names(client: &Client) -> Vec<String> {
    client
        .list_buckets()
        .send()
        .await
        .expect("list buckets")
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_owned))
        .collect()
}
