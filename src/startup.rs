//! Turns settings into a running server: binds both listeners (or takes
//! ones the caller bound, as tests do on port 0), opens the stores, makes
//! sure an admin exists, and runs until a shutdown future resolves.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use hyper_util::service::TowerToHyperService;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::ServeArgs;
use crate::core::audit::{AuditLog, Retention};
use crate::core::sweeper::SweepSettings;
use crate::core::{Store, StoreLocation, StoreSettings};
use crate::s3::CisternS3;
use crate::s3::auth::{BucketPolicy, KeyAuth, NamesCheckedLater};
use crate::s3::cors::Preflight;
use crate::s3::server::S3Front;
use crate::serving::serve;
use crate::web::{ApiSettings, MetricsAccess, WebState, router};

/// A server with its stores open and its listeners bound.
pub struct Server {
    store: Store,
    s3_listener: TcpListener,
    web_listener: TcpListener,
    settings: ServeArgs,
}

/// Root credentials made up on a first start without any configured.
#[derive(Clone)]
pub struct GeneratedRoot {
    pub user: String,
    pub password: String,
}

impl Server {
    /// Binds both listeners, then builds the server on them
    /// ([`Server::build_on`]). Returns the generated root pair when one had
    /// to be made (the caller prints it).
    pub async fn build(settings: ServeArgs) -> anyhow::Result<(Self, Option<GeneratedRoot>)> {
        // Both ports first: a start that cannot serve changes no account.
        let s3_listener = TcpListener::bind(settings.s3_listen)
            .await
            .with_context(|| format!("while binding the S3 port {}", settings.s3_listen))?;
        let web_listener = TcpListener::bind(settings.web_listen)
            .await
            .with_context(|| format!("while binding the web port {}", settings.web_listen))?;
        Self::build_on(settings, s3_listener, web_listener).await
    }

    /// Opens stores and ensures the first admin, to serve on listeners the
    /// caller has bound already (the settings' listen addresses are then
    /// not used): a caller that holds its sockets never has to hope that a
    /// port it let go of is still free.
    pub async fn build_on(
        settings: ServeArgs,
        s3_listener: TcpListener,
        web_listener: TcpListener,
    ) -> anyhow::Result<(Self, Option<GeneratedRoot>)> {
        std::fs::create_dir_all(&settings.data_dir).with_context(|| {
            format!(
                "while creating the data directory {}",
                settings.data_dir.display()
            )
        })?;
        let location = StoreLocation {
            database_url: settings.database_url.as_deref(),
            blob_url: settings.blob_url.as_deref(),
            data_dir: &settings.data_dir,
            database_wait: Duration::from_millis(settings.database_wait_ms.max(1)),
            database_notices: settings.database_notices,
        };
        let store = Store::open(
            location,
            StoreSettings {
                inline_threshold: settings.inline_threshold,
                max_object_size: settings.max_object_size,
                password_checks: settings.password_checks,
                password_queue: Duration::from_millis(settings.password_queue_ms),
                thumbnail_workers: settings.thumbnail_workers,
                ..StoreSettings::default()
            },
        )
        .await
        .context("while opening the metadata and blob stores")?;
        store.follow_other_nodes();
        let generated = ensure_root(&store, &settings).await?;
        Ok((
            Self {
                store,
                s3_listener,
                web_listener,
                settings,
            },
            generated,
        ))
    }

    pub fn s3_addr(&self) -> SocketAddr {
        self.s3_listener
            .local_addr()
            .unwrap_or(self.settings.s3_listen)
    }

    pub fn web_addr(&self) -> SocketAddr {
        self.web_listener
            .local_addr()
            .unwrap_or(self.settings.web_listen)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests
    /// (bounded by the shutdown grace) and commits what is queued.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            store,
            s3_listener,
            web_listener,
            settings,
        } = self;
        let s3_addr = s3_listener.local_addr().unwrap_or(settings.s3_listen);
        let stop = CancellationToken::new();
        let drain = Duration::from_secs(settings.shutdown_grace_secs);

        let audit = if settings.disable_audit {
            AuditLog::disabled()
        } else {
            AuditLog::start(
                store.clone(),
                Retention {
                    audit: days(settings.audit_retention_days),
                    usage: days(
                        settings
                            .usage_retention_days
                            .unwrap_or(settings.audit_retention_days.max(400)),
                    ),
                },
            )
        };
        let mut builder = S3ServiceBuilder::new(CisternS3 {
            store: store.clone(),
            region: settings.region.clone(),
        });
        builder.set_auth(KeyAuth {
            store: store.clone(),
        });
        builder.set_access(BucketPolicy {
            store: store.clone(),
        });
        builder.set_validation(NamesCheckedLater);
        builder.set_route(Preflight {
            store: store.clone(),
        });
        let s3_service = S3Front {
            inner: builder.build(),
            audit: audit.clone(),
            max_object_size: settings.max_object_size,
            region: settings.region.clone(),
        };
        let web_service = TowerToHyperService::new(router(WebState {
            store: store.clone(),
            metrics: crate::telemetry::metrics(),
            audit: audit.clone(),
            stopping: stop.clone(),
            api: ApiSettings {
                allow_signup: settings.allow_signup,
                session_ttl: Duration::from_secs(settings.session_ttl_secs),
                s3_public_url: settings
                    .s3_public_url
                    .clone()
                    .unwrap_or_else(|| format!("http://{}", s3_addr)),
                region: settings.region.clone(),
                public_url: settings
                    .public_url
                    .as_ref()
                    .map(|u| u.trim_end_matches('/').to_owned()),
                max_object_size: settings.max_object_size,
                metrics_access: match (&settings.metrics_token, settings.metrics_public) {
                    (_, true) => MetricsAccess::Public,
                    (Some(token), false) => MetricsAccess::Token(token.clone()),
                    (None, false) => MetricsAccess::AdminsOnly,
                },
            },
        }));

        let limits = settings.connection_limits();
        let proxies = crate::serving::TrustedProxies::parse(
            settings.trusted_proxies.as_deref().unwrap_or_default(),
        )
        .map_err(|e| anyhow::anyhow!("--trusted-proxies: {e}"))?;
        let s3_task = tokio::spawn(serve(
            s3_listener,
            s3_service,
            stop.clone().cancelled_owned(),
            drain,
            limits,
            proxies.clone(),
        ));
        let web_task = tokio::spawn(serve(
            web_listener,
            web_service,
            stop.clone().cancelled_owned(),
            drain,
            limits,
            proxies,
        ));
        let sweeper_store = store.clone();
        let sweep_settings = SweepSettings {
            trash_delay: Duration::from_secs(settings.trash_delay_secs),
            orphan_grace: Duration::from_secs(settings.orphan_grace_secs),
            orphan_interval: Duration::from_secs(settings.orphan_scan_secs.max(1)),
            upload_expiry: Duration::from_secs(settings.upload_expiry_secs.max(1)),
        };
        let sweeper = tokio::spawn({
            let stop = stop.clone();
            async move {
                sweeper_store
                    .run_sweeper(sweep_settings, stop.cancelled_owned())
                    .await
            }
        });
        let sealer = tokio::spawn({
            let stop = stop.clone();
            let store = store.clone();
            async move { stop.run_until_cancelled(store.run_sealer()).await }
        });

        let event_hub = tokio::spawn({
            let stop = stop.clone();
            let store = store.clone();
            async move { stop.run_until_cancelled(store.run_event_hub()).await }
        });
        let webhooks = tokio::spawn({
            let stop = stop.clone();
            let store = store.clone();
            let settings = crate::core::webhooks::WebhookSettings {
                retry_base: Duration::from_millis(settings.webhook_retry_base_ms.max(1)),
                allow_private: settings.webhook_allow_private,
            };
            async move { stop.run_until_cancelled(store.run_webhooks(settings)).await }
        });

        shutdown.await;
        tracing::info!("shutting down: no new connections, finishing requests in flight");
        stop.cancel();
        let _ = s3_task.await;
        let _ = web_task.await;
        let _ = sweeper.await;
        let _ = sealer.await;
        let _ = webhooks.await;
        let _ = event_hub.await;
        // Requests are done: commit their audit records, then the rest.
        audit.flush().await;
        store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

async fn ensure_root(store: &Store, settings: &ServeArgs) -> anyhow::Result<Option<GeneratedRoot>> {
    match (&settings.root_user, &settings.root_password) {
        (Some(user), Some(password)) => {
            anyhow::ensure!(
                user.len() >= 3,
                "CISTERN_ROOT_USER must be at least 3 characters"
            );
            anyhow::ensure!(
                password.len() >= 8,
                "CISTERN_ROOT_PASSWORD must be at least 8 characters"
            );
            store
                .ensure_admin(user, password)
                .await
                .context("while creating the root user")?;
            Ok(None)
        }
        (None, None) => {
            if store.user_count().await? > 0 {
                return Ok(None);
            }
            let generated = GeneratedRoot {
                user: format!("admin-{}", &hex::encode(rand::random::<[u8; 4]>())),
                password: base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(rand::random::<[u8; 30]>()),
            };
            store
                .ensure_admin(&generated.user, &generated.password)
                .await
                .context("while creating the root user")?;
            Ok(Some(generated))
        }
        _ => anyhow::bail!("set both CISTERN_ROOT_USER and CISTERN_ROOT_PASSWORD, or neither"),
    }
}

fn days(days: u64) -> Duration {
    Duration::from_secs(days.saturating_mul(86_400))
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
