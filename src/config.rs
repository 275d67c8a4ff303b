//! Settings, in layers: a command-line flag wins over a `CISTERN_*`
//! environment variable, which wins over a key in the TOML file given with
//! `--config`, which wins over the default. Every setting has all four
//! forms; the TOML key is the flag name with `_` for `-`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "cistern",
    version,
    about = "Self-hosted S3-compatible file service"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process; boxing the settings would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum Command {
    /// Run the server: the S3 API on one port; the JSON API, health probes,
    /// version and metrics on the web port.
    Serve(ServeArgs),
    /// Take part in a pool: push files, watch for results, or process groups.
    Pool(crate::cli::pool::PoolArgs),
    /// Ask the server on this machine whether it is ready (exit 0) or not
    /// (exit 1): a container's health check.
    Healthcheck(crate::cli::healthcheck::HealthcheckArgs),
    /// Back up files and folders as a snapshot into any S3 store
    /// (`backup log` lists the runs a Cistern server recorded).
    Backup(crate::cli::backup::BackupArgs),
    /// List the snapshots of a backup repository.
    Snapshots(crate::cli::backup::SnapshotsArgs),
    /// Restore a snapshot into a folder, checking every file's hash.
    Restore(crate::cli::backup::RestoreArgs),
    /// Show what changed between two snapshots.
    Diff(crate::cli::backup::DiffArgs),
    /// Remove snapshots a keep policy lets go, and with --prune the
    /// content no snapshot needs any more.
    Forget(crate::cli::backup::ForgetArgs),
    /// Copy a folder as plain objects under a prefix (like rclone sync).
    Mirror(crate::cli::backup::MirrorArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Clone)]
pub struct ServeArgs {
    /// TOML file with settings (keys as the flag names, `_` for `-`).
    #[arg(long, env = "CISTERN_CONFIG")]
    pub config: Option<PathBuf>,

    /// Directory for the SQLite database and local blobs.
    #[arg(long, env = "CISTERN_DATA_DIR", default_value = "./cistern-data")]
    pub data_dir: PathBuf,

    /// Address of the S3 API.
    #[arg(long, env = "CISTERN_S3_LISTEN", default_value = "127.0.0.1:9000")]
    pub s3_listen: SocketAddr,

    /// Address of the web port (JSON API at /api/v1, health probes, version,
    /// metrics).
    #[arg(long, env = "CISTERN_WEB_LISTEN", default_value = "127.0.0.1:9001")]
    pub web_listen: SocketAddr,

    /// Metadata database; unset means SQLite in the data directory.
    /// Example: postgres://user@host:5432/cistern
    #[arg(long, env = "CISTERN_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Blob store; unset means local disk in the data directory.
    /// Examples: file:///srv/blobs, s3://bucket/prefix (with AWS_* variables).
    #[arg(long, env = "CISTERN_BLOB_URL")]
    pub blob_url: Option<String>,

    /// Name of the first admin; also their S3 access key id.
    #[arg(long, env = "CISTERN_ROOT_USER")]
    pub root_user: Option<String>,

    /// Password of the first admin; also their S3 secret key. If neither root
    /// setting is given on the first start, a pair is generated and printed once.
    #[arg(long, env = "CISTERN_ROOT_PASSWORD", hide_env_values = true)]
    pub root_password: Option<String>,

    /// Region reported to S3 clients and used in signatures.
    #[arg(long, env = "CISTERN_REGION", default_value = "us-east-1")]
    pub region: String,

    /// Let anyone create an account with POST /api/v1/auth/signup (admins
    /// can always create users).
    #[arg(long, env = "CISTERN_ALLOW_SIGNUP")]
    pub allow_signup: bool,

    /// Seconds a login session lasts.
    #[arg(long, env = "CISTERN_SESSION_TTL_SECS", default_value_t = 86400)]
    pub session_ttl_secs: u64,

    /// Record no audit log (for measuring its cost; not for production).
    #[arg(long, env = "CISTERN_DISABLE_AUDIT")]
    pub disable_audit: bool,

    /// Days audit records are kept.
    #[arg(long, env = "CISTERN_AUDIT_RETENTION_DAYS", default_value_t = 90)]
    pub audit_retention_days: u64,

    /// Days the daily usage figures (traffic, requests, bytes stored) are
    /// kept: the usage pages plot up to a year. Default 400, or the audit
    /// retention when that is longer (usage used to follow it).
    #[arg(long, env = "CISTERN_USAGE_RETENTION_DAYS")]
    pub usage_retention_days: Option<u64>,

    /// URL of the S3 port as clients reach it (share links); default
    /// http://<s3-listen>.
    #[arg(long, env = "CISTERN_S3_PUBLIC_URL")]
    pub s3_public_url: Option<String>,

    /// URL of the web port as people reach it (console share links; an
    /// https URL marks the session cookie Secure); default: the address
    /// the browser used.
    #[arg(long, env = "CISTERN_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Log format.
    #[arg(long, env = "CISTERN_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Log filter (tracing `EnvFilter` syntax; `debug` logs every request).
    #[arg(long, env = "CISTERN_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Objects up to this many bytes are stored inline in the metadata row.
    #[arg(long, env = "CISTERN_INLINE_THRESHOLD", default_value_t = 65536)]
    pub inline_threshold: u64,

    /// Largest object or part accepted, in bytes.
    #[arg(long, env = "CISTERN_MAX_OBJECT_SIZE", default_value_t = 5 * 1024 * 1024 * 1024)]
    pub max_object_size: u64,

    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long, env = "CISTERN_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,

    /// Seconds an unreferenced blob must be old before the sweeper removes it;
    /// keep it longer than the slowest upload takes.
    #[arg(long, env = "CISTERN_ORPHAN_GRACE_SECS", default_value_t = 3600)]
    pub orphan_grace_secs: u64,

    /// Seconds between two scans for orphan blobs (one runs at start-up).
    #[arg(long, env = "CISTERN_ORPHAN_SCAN_SECS", default_value_t = 3600)]
    pub orphan_scan_secs: u64,

    /// Seconds a released (overwritten or deleted) blob is kept so that
    /// downloads already under way can finish.
    #[arg(long, env = "CISTERN_TRASH_DELAY_SECS", default_value_t = 900)]
    pub trash_delay_secs: u64,

    /// Seconds an upload in parts (S3 multipart, or the console's large
    /// uploads) may go without a new part; then it is aborted and its
    /// parts are removed.
    #[arg(long, env = "CISTERN_UPLOAD_EXPIRY_SECS", default_value_t = 86400)]
    pub upload_expiry_secs: u64,

    /// Milliseconds before a failed webhook delivery is tried again; the
    /// wait doubles after each failure, up to an hour, for at least 24 hours.
    #[arg(long, env = "CISTERN_WEBHOOK_RETRY_BASE_MS", default_value_t = 1000)]
    pub webhook_retry_base_ms: u64,

    /// Seconds a client has to send a request's headers, from connecting
    /// or from the first byte of a request on a kept-alive connection.
    #[arg(long, env = "CISTERN_HEADER_TIMEOUT_SECS", default_value_t = 15)]
    pub header_timeout_secs: u64,

    /// Seconds a request or response body may pause (the client sends or
    /// reads nothing) before the connection is closed.
    #[arg(long, env = "CISTERN_BODY_IDLE_TIMEOUT_SECS", default_value_t = 30)]
    pub body_idle_timeout_secs: u64,

    /// Seconds a kept-alive connection may wait for its next request.
    #[arg(long, env = "CISTERN_KEEP_ALIVE_SECS", default_value_t = 60)]
    pub keep_alive_secs: u64,

    /// Connections served at once on each port; more are answered 503.
    #[arg(long, env = "CISTERN_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Milliseconds a request waits for a free database connection before
    /// it is refused with 503 (the server is overloaded).
    #[arg(long, env = "CISTERN_DATABASE_WAIT_MS", default_value_t = 3000)]
    pub database_wait_ms: u64,

    /// How nodes sharing a database hear of each other's pool events:
    /// `listen` (PostgreSQL LISTEN/NOTIFY), `poll` (for CockroachDB, or
    /// PostgreSQL behind a pooler in transaction mode), or `auto` (poll on
    /// CockroachDB, listen on PostgreSQL).
    #[arg(long, env = "CISTERN_DATABASE_NOTICES", value_enum, default_value_t = crate::core::NoticeMode::Auto)]
    pub database_notices: crate::core::NoticeMode,

    /// Password checks (argon2id, about 19 MiB each) run at once; 0 means
    /// one per CPU core. More wait in a queue.
    #[arg(long, env = "CISTERN_PASSWORD_CHECKS", default_value_t = 0)]
    pub password_checks: usize,

    /// Gallery thumbnails made at once (each decode may use up to 160 MiB
    /// and one core, at a lower CPU priority than requests); more wait in a
    /// queue of 256.
    #[arg(long, env = "CISTERN_THUMBNAIL_WORKERS", default_value_t = 1,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub thumbnail_workers: usize,

    /// Milliseconds a password check may wait in the queue before its
    /// request is refused with 503 and Retry-After.
    #[arg(long, env = "CISTERN_PASSWORD_QUEUE_MS", default_value_t = 2000)]
    pub password_queue_ms: u64,

    /// Bearer token that Prometheus sends to read /metrics (admins may
    /// also read it with their own credentials).
    #[arg(long, env = "CISTERN_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Serve /metrics to anyone, without a credential.
    #[arg(long, env = "CISTERN_METRICS_PUBLIC")]
    pub metrics_public: bool,

    /// Let webhooks reach loopback, private, link-local and other
    /// non-public addresses (a receiver on this host or network). Off by
    /// default: a pool owner could otherwise make the server call
    /// internal services.
    #[arg(long, env = "CISTERN_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,

    /// Addresses and networks of the load balancers or ingress in front
    /// (comma-separated, such as `10.0.0.0/8`). For connections from them
    /// the client is the right-most untrusted address of X-Forwarded-For,
    /// in the audit log and the login throttle. Unset: nobody is trusted.
    #[arg(long, env = "CISTERN_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
}

impl ServeArgs {
    pub fn connection_limits(&self) -> crate::serving::ConnectionLimits {
        use std::time::Duration;
        crate::serving::ConnectionLimits {
            header_timeout: Duration::from_secs(self.header_timeout_secs.max(1)),
            body_idle_timeout: Duration::from_secs(self.body_idle_timeout_secs.max(1)),
            keep_alive_idle: Duration::from_secs(self.keep_alive_secs.max(1)),
            max_connections: self.max_connections.max(1),
        }
    }
}

impl std::fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeArgs")
            .field("config", &self.config)
            .field("data_dir", &self.data_dir)
            .field("s3_listen", &self.s3_listen)
            .field("web_listen", &self.web_listen)
            .field("database_url", &self.database_url.as_ref().map(|_| "<set>"))
            .field("blob_url", &self.blob_url)
            .field("root_user", &self.root_user)
            .field(
                "root_password",
                &self.root_password.as_ref().map(|_| "<hidden>"),
            )
            .field("region", &self.region)
            .field("log_format", &self.log_format)
            .field("inline_threshold", &self.inline_threshold)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "<hidden>"),
            )
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {source}")]
    Toml {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("config file {path}: unknown setting `{key}`")]
    UnknownKey { path: PathBuf, key: String },
    #[error("config file {path}: setting `{key}` must be a string, number or boolean")]
    BadValue { path: PathBuf, key: String },
    #[error(transparent)]
    Clap(#[from] clap::Error),
}

/// Parses the command line (and the TOML file it names) into a [`Cli`].
pub fn parse_from(argv: Vec<String>) -> Result<Cli, ConfigError> {
    let matches = Cli::command().try_get_matches_from(&argv)?;
    let Some(("serve", serve)) = matches.subcommand() else {
        return Ok(Cli::from_arg_matches(&matches)?);
    };
    let Some(path) = serve.get_one::<PathBuf>("config").cloned() else {
        return Ok(Cli::from_arg_matches(&matches)?);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let table: toml::Table = text.parse().map_err(|source| ConfigError::Toml {
        path: path.clone(),
        source,
    })?;
    // File values fill in only what neither a flag nor the environment set:
    // they are appended as flags for settings still at their default.
    let mut argv = argv;
    let known: Vec<String> = serve.ids().map(|id| id.as_str().to_owned()).collect();
    for (key, value) in table {
        if key == "config" || !known.contains(&key) {
            return Err(ConfigError::UnknownKey { path, key });
        }
        let from_default = matches!(
            serve.value_source(&key),
            None | Some(ValueSource::DefaultValue)
        );
        if !from_default {
            continue;
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            // Switches take no value: present means on.
            toml::Value::Boolean(true) => {
                argv.push(format!("--{}", key.replace('_', "-")));
                continue;
            }
            toml::Value::Boolean(false) => continue,
            _ => return Err(ConfigError::BadValue { path, key }),
        };
        argv.push(format!("--{}={text}", key.replace('_', "-")));
    }
    let matches = Cli::command().try_get_matches_from(&argv)?;
    Ok(Cli::from_arg_matches(&matches)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(argv: &[&str]) -> ServeArgs {
        let argv = argv.iter().map(|s| s.to_string()).collect();
        match parse_from(argv).expect("parses").command {
            Command::Serve(args) => args,
            _ => panic!("not a serve command"),
        }
    }

    #[test]
    fn defaults_match_the_documentation() {
        let args = serve(&["cistern", "serve"]);
        assert_eq!(args.s3_listen.to_string(), "127.0.0.1:9000");
        assert_eq!(args.web_listen.to_string(), "127.0.0.1:9001");
        assert_eq!(args.region, "us-east-1");
        assert_eq!(args.data_dir, PathBuf::from("./cistern-data"));
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cistern.toml");
        std::fs::write(
            &path,
            "region = \"eu-west-1\"\ns3_listen = \"127.0.0.1:7000\"\ninline_threshold = 10\n",
        )
        .expect("write");
        let args = serve(&[
            "cistern",
            "serve",
            "--config",
            path.to_str().unwrap(),
            "--region",
            "ap-south-1",
        ]);
        assert_eq!(args.region, "ap-south-1");
        assert_eq!(args.s3_listen.to_string(), "127.0.0.1:7000");
        assert_eq!(args.inline_threshold, 10);
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cistern.toml");
        std::fs::write(&path, "no_such_setting = 1\n").expect("write");
        let argv = ["cistern", "serve", "--config", path.to_str().unwrap()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(matches!(
            parse_from(argv),
            Err(ConfigError::UnknownKey { .. })
        ));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let args = serve(&[
            "cistern",
            "serve",
            "--root-password",
            "hunter2hunter2",
            "--metrics-token",
            "prometheus-secret",
        ]);
        let shown = format!("{args:?}");
        assert!(!shown.contains("hunter2"));
        assert!(!shown.contains("prometheus-secret"));
    }
}
