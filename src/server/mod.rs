//! The HTTP front door: routes, the internal API, and graceful shutdown.

mod dashboard;
mod deployments;
mod errors;
mod forward;
mod guard;
mod internal;
mod limits;
mod listener;
pub(crate) mod percent;
mod static_files;
mod websocket;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use errors::RequestError;
pub use forward::{split_app_path, AppPath, RequestIds};
pub use limits::BodyLimits;

use crate::apps::AppCatalog;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::pool::Pool;
use crate::proxy::Proxy;

/// What every request handler shares.
pub struct AppState {
    /// The app dirs and version resolution.
    pub catalog: AppCatalog,
    /// The children.
    pub pool: Arc<Pool>,
    /// Request id generator.
    pub request_ids: RequestIds,
    /// `host:port` used in app URLs when a request has no `Host` header.
    pub listen_host: String,
    /// Request body limits.
    pub body_limits: BodyLimits,
    /// The app served at `/`, if any.
    pub homepage: Option<String>,
    /// Protects the internal API when set.
    pub master_key: Option<String>,
    /// Connection pools for proxy rules.
    pub proxy: Proxy,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Whether each request gets an access log line.
    pub access_log: bool,
    /// False once draining starts; readiness follows it.
    ready: AtomicBool,
}

impl AppState {
    /// Shared state for the handlers.
    pub fn new(
        catalog: AppCatalog,
        pool: Arc<Pool>,
        listen_host: String,
        body_limits: BodyLimits,
        metrics: Arc<Metrics>,
    ) -> Self {
        AppState {
            catalog,
            pool,
            request_ids: RequestIds::new(),
            listen_host,
            body_limits,
            homepage: None,
            master_key: None,
            proxy: Proxy::new(),
            metrics,
            access_log: true,
            ready: AtomicBool::new(true),
        }
    }

    /// Whether the supervisor takes traffic.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

/// The router: internal API under `/_/`, everything else to apps.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/_/health", get(internal::health))
        .route("/_/health/live", get(internal::live))
        .route("/_/health/ready", get(internal::ready))
        .route("/_/metrics", get(internal::metrics))
        .route("/_/stats", get(internal::stats))
        .route("/_/apps", get(internal::apps))
        .merge(deployments::routes())
        .merge(dashboard::routes())
        .route("/_/sse", get(internal::sse))
        .route("/_/metrics/prometheus", get(internal::prometheus))
        .route("/_/plugin-metrics/prometheus", get(internal::prometheus))
        .fallback(forward::forward)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard_internal,
        ))
        .layer(axum::middleware::from_fn(limits::reject_oversized_headers))
        .with_state(state)
}

/// Serves until `stop` fires, then stops accepting, lets in-flight requests finish
/// within `grace`, and retires every child.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    stop: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let draining = CancellationToken::new();
    let server = tokio::spawn(listener::accept_loop(
        listener,
        router(state.clone()),
        state.clone(),
        draining.clone(),
    ));
    let notifier = Notifier::from_env();
    notifier.notify("READY=1");
    let watchdog = notifier.watchdog_interval().map(|interval| {
        let notifier = notifier.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            loop {
                ticks.tick().await;
                notifier.notify("WATCHDOG=1");
            }
        })
    });
    stop.cancelled().await;
    notifier.notify("STOPPING=1");
    let deadline = tokio::time::Instant::now() + grace;
    state.ready.store(false, Ordering::Relaxed);
    tracing::info!(grace = ?grace, "draining: no new connections; waiting for requests in flight");
    draining.cancel();
    if tokio::time::timeout_at(deadline, server).await.is_err() {
        tracing::warn!("requests still in flight at the end of the grace period; closing them");
    }
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    state
        .pool
        .shutdown(remaining.max(Duration::from_secs(1)))
        .await;
    // The watchdog keeps pinging through the drain; it stops with the supervisor.
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    Ok(())
}
