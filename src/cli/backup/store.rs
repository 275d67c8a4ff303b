//! Reaching an S3 store the way other S3 tools do: the endpoint from
//! `--endpoint`, `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`, the key pair
//! from flags, `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` or a profile in
//! `~/.aws/credentials`, and `s3://bucket/prefix` names. The store is
//! `object_store`'s S3 client, with retries short enough that a server
//! that went away is reported within seconds rather than minutes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;

/// Where the store is and who we are to it.
#[derive(Args, Clone, Default)]
pub struct Endpoint {
    /// The S3 endpoint, e.g. `http://127.0.0.1:9000` (default: AWS_ENDPOINT_URL,
    /// then the profile's `endpoint_url`, then AWS itself).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Access key id (default: AWS_ACCESS_KEY_ID, then the profile).
    #[arg(long)]
    pub access_key: Option<String>,
    /// Secret key (default: AWS_SECRET_ACCESS_KEY, then the profile).
    #[arg(long)]
    pub secret_key: Option<String>,
    /// The profile in ~/.aws/credentials and ~/.aws/config (default:
    /// AWS_PROFILE, then `default`).
    #[arg(long)]
    pub profile: Option<String>,
    /// Region to sign for (default: AWS_REGION, then the profile, then
    /// us-east-1).
    #[arg(long)]
    pub region: Option<String>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("endpoint", &self.endpoint)
            .field("access_key", &self.access_key)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

/// A repository's place: an endpoint and `--to s3://bucket/prefix`.
#[derive(Args, Clone, Debug, Default)]
pub struct Target {
    /// The repository, as `s3://bucket/prefix`.
    #[arg(long, env = "CISTERN_BACKUP_TO", value_name = "S3_URL")]
    pub to: Option<String>,
    #[command(flatten)]
    pub endpoint: Endpoint,
}

impl Target {
    /// The repository's bucket and prefix.
    pub fn location(&self) -> anyhow::Result<Location> {
        let to = self
            .to
            .as_deref()
            .context("name the repository with --to s3://bucket/prefix (or CISTERN_BACKUP_TO)")?;
        Location::parse(to)
    }
}

/// The settings every S3 tool reads, once resolved.
#[derive(Clone)]
pub struct Resolved {
    /// `None` for AWS itself.
    pub endpoint: Option<String>,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

/// A bucket and the prefix inside it (no leading or trailing `/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub bucket: String,
    pub prefix: String,
}

impl Location {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url.strip_prefix("s3://").with_context(|| {
            format!("{url:?} is not an S3 location; write it as s3://bucket/prefix")
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            bail!("{url:?} names no bucket; write it as s3://bucket/prefix");
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }

    /// The object name of `name` under the prefix.
    pub fn key(&self, name: &str) -> object_store::path::Path {
        let joined = if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.prefix)
        };
        object_store::path::Path::from_iter(joined.split('/').filter(|s| !s.is_empty()))
    }

    /// The object name of a file's path under the prefix, kept as it is
    /// (a plain copy must not rename `a#b` to `a%23b`).
    pub fn raw_key(&self, name: &str) -> anyhow::Result<object_store::path::Path> {
        let joined = if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.prefix)
        };
        object_store::path::Path::parse(&joined)
            .with_context(|| format!("{name:?} cannot be an object name"))
    }

    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

impl Endpoint {
    /// Flags first, then the environment, then the profile files.
    pub fn resolve(&self) -> anyhow::Result<Resolved> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let profile = self
            .profile
            .clone()
            .or_else(|| env("AWS_PROFILE"))
            .unwrap_or_else(|| "default".to_owned());
        let files = ProfileFiles::read(&profile)?;
        let endpoint = self
            .endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .or_else(|| files.get("endpoint_url"));
        let access_key = self
            .access_key
            .clone()
            .or_else(|| env("AWS_ACCESS_KEY_ID"))
            .or_else(|| files.get("aws_access_key_id"));
        let secret_key = self
            .secret_key
            .clone()
            .or_else(|| env("AWS_SECRET_ACCESS_KEY"))
            .or_else(|| files.get("aws_secret_access_key"));
        let (Some(access_key), Some(secret_key)) = (access_key, secret_key) else {
            bail!(
                "no S3 key pair: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                 pass --access-key and --secret-key, or name a profile of ~/.aws/credentials"
            );
        };
        let region = self
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .or_else(|| files.get("region"))
            .unwrap_or_else(|| "us-east-1".to_owned());
        Ok(Resolved {
            endpoint: endpoint.map(|e| e.trim_end_matches('/').to_owned()),
            access_key,
            secret_key,
            region,
        })
    }
}

impl Resolved {
    /// A client for one bucket.
    pub fn store(&self, bucket: &str) -> anyhow::Result<Arc<dyn ObjectStore>> {
        let retry = object_store::RetryConfig {
            max_retries: 4,
            retry_timeout: Duration::from_secs(20),
            backoff: object_store::BackoffConfig::default(),
        };
        let options = object_store::ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(300))
            .with_allow_http(true);
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_access_key_id(&self.access_key)
            .with_secret_access_key(&self.secret_key)
            .with_region(&self.region)
            .with_retry(retry)
            .with_client_options(options)
            // The store checks each body against its SHA-256 checksum, so
            // bytes damaged on the way are refused rather than kept under
            // a name they do not hash to; signing the body as well would
            // hash it a second time for nothing.
            .with_unsigned_payload(true)
            .with_checksum_algorithm(object_store::aws::Checksum::SHA256);
        if let Some(endpoint) = &self.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        Ok(Arc::new(builder.build().with_context(|| {
            format!("cannot set up an S3 client for bucket {bucket:?}")
        })?))
    }
}

/// The named profile of `~/.aws/credentials` and `~/.aws/config` (the
/// files AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE name instead).
struct ProfileFiles(HashMap<String, String>);

impl ProfileFiles {
    fn read(profile: &str) -> anyhow::Result<Self> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let path_of = |var: &str, default: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
        };
        let mut values = HashMap::new();
        // The config file names sections `[profile x]`, except `[default]`.
        let sections = [
            (
                path_of("AWS_CONFIG_FILE", "config"),
                format!("profile {profile}"),
            ),
            (path_of("AWS_CONFIG_FILE", "config"), profile.to_owned()),
            (
                path_of("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
                profile.to_owned(),
            ),
        ];
        for (path, section) in sections {
            let Some(path) = path else { continue };
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
            };
            values.extend(section_values(&text, &section));
        }
        Ok(Self(values))
    }

    fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
}

/// `key = value` lines of one `[section]` of an INI file.
fn section_values(text: &str, wanted: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut values = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == wanted;
        } else if inside && let Some((key, value)) = line.split_once('=') {
            values.push((key.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    values
}

/// Is this failure the object being absent (rather than the store failing)?
pub fn is_missing(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_name_bucket_and_prefix() {
        let l = Location::parse("s3://photos/backups/laptop/").unwrap();
        assert_eq!(l.bucket, "photos");
        assert_eq!(l.prefix, "backups/laptop");
        assert_eq!(l.key("data/ab").as_ref(), "backups/laptop/data/ab");
        assert_eq!(Location::parse("s3://photos").unwrap().prefix, "");
        assert!(Location::parse("photos/x").is_err());
        assert!(Location::parse("s3:///x").is_err());
    }

    #[test]
    fn profile_sections_are_read_alone() {
        let text = "[default]\naws_access_key_id = A\n[profile nas]\nregion=eu\n# c\nendpoint_url = http://nas:9000\n";
        assert_eq!(
            section_values(text, "profile nas"),
            vec![
                ("region".to_owned(), "eu".to_owned()),
                ("endpoint_url".to_owned(), "http://nas:9000".to_owned())
            ]
        );
    }
}
