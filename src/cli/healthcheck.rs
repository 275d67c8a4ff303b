//! `cistern healthcheck`: asks a server on this machine whether it is ready
//! (`GET /health/ready` on the web port) and exits 0 if it is, 1 if not. A
//! container's `HEALTHCHECK` runs it, since a slim image has no curl.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct HealthcheckArgs {
    /// The server's web address; by default the one `serve` listens on
    /// (`CISTERN_WEB_LISTEN`), reached over loopback when it listens on
    /// every address.
    #[arg(long)]
    pub url: Option<String>,

    /// The web listen address of the server (as given to `serve`).
    #[arg(long, env = "CISTERN_WEB_LISTEN", default_value = "127.0.0.1:9001")]
    pub web_listen: SocketAddr,

    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 5)]
    pub timeout_secs: u64,
}

impl HealthcheckArgs {
    /// Where to ask: `--url`, or the listen address with an unspecified
    /// IP (0.0.0.0, ::) turned into loopback.
    pub fn ready_url(&self) -> String {
        if let Some(url) = &self.url {
            return format!("{}/health/ready", url.trim_end_matches('/'));
        }
        let mut addr = self.web_listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        format!("http://{addr}/health/ready")
    }
}

/// Runs the check; the exit code is 0 when the server answered 200.
pub async fn run(args: HealthcheckArgs) -> i32 {
    let url = args.ready_url();
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout_secs))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            eprintln!("healthcheck: {e}");
            return 1;
        }
    };
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => 0,
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            eprintln!("healthcheck: {url} answered {status}: {}", body.trim());
            1
        }
        Err(e) => {
            eprintln!("healthcheck: {url}: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(web_listen: &str, url: Option<&str>) -> HealthcheckArgs {
        HealthcheckArgs {
            url: url.map(str::to_owned),
            web_listen: web_listen.parse().unwrap(),
            timeout_secs: 1,
        }
    }

    #[test]
    fn an_unspecified_listen_address_is_asked_over_loopback() {
        assert_eq!(
            args("0.0.0.0:9001", None).ready_url(),
            "http://127.0.0.1:9001/health/ready"
        );
        assert_eq!(
            args("[::]:9101", None).ready_url(),
            "http://[::1]:9101/health/ready"
        );
        assert_eq!(
            args("10.0.0.7:9001", None).ready_url(),
            "http://10.0.0.7:9001/health/ready"
        );
        assert_eq!(
            args("0.0.0.0:9001", Some("http://node-b:9001/")).ready_url(),
            "http://node-b:9001/health/ready"
        );
    }
}
