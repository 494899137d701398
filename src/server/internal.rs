//! The internal API under `/_/`: health, pool metrics, per-child stats, apps.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use std::convert::Infallible;
use std::time::Duration;

use crate::apps::Entrypoint;
use crate::metrics::PoolView;
use http::StatusCode;
use serde_json::{json, Value};

use super::AppState;

/// `GET /_/health`: liveness plus readiness in one document.
pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    let ready = state.is_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"status": if ready {"ok"} else {"draining"}, "ready": ready})),
    )
        .into_response()
}

/// `GET /_/health/live`: the process answers.
pub async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /_/health/ready`: started and not draining.
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if state.is_ready() {
        Json(json!({"status": "ready"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining"})),
        )
            .into_response()
    }
}

/// `GET /_/metrics`: pool-wide figures.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(pool_metrics(&state))
}

/// `GET /_/metrics/prometheus`: the Prometheus text exposition.
pub async fn prometheus(State(state): State<Arc<AppState>>) -> Response {
    let text = state.metrics.render(PoolView {
        workers: state.pool.workers(),
        ephemeral_waiting: state.pool.ephemeral_waiting(),
        ephemeral_running: state.pool.ephemeral_running(),
    });
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `GET /_/stats`: pool figures and one entry per live child.
pub async fn stats(State(state): State<Arc<AppState>>) -> Json<Value> {
    let mut document = pool_metrics(&state);
    document["workers"] = json!(state.pool.workers());
    Json(document)
}

/// `GET /_/apps`: every app found in the app dirs, with its releases and how each
/// is served (its entrypoint, or why it cannot be).
pub async fn apps(State(state): State<Arc<AppState>>) -> Json<Value> {
    let apps: Vec<Value> = state
        .catalog
        .app_names()
        .into_iter()
        .map(|name| {
            let releases: Vec<Value> = state
                .catalog
                .releases_of(&name)
                .into_iter()
                .map(|release| {
                    let mut entry = json!({"version": release.version, "dir": release.dir});
                    match state.catalog.setup(&release) {
                        Ok(setup) => {
                            let (kind, path) = match &setup.entrypoint {
                                Entrypoint::Module(path) => ("module", path),
                                Entrypoint::Static(path) => ("static", path),
                            };
                            entry["entrypoint"] = json!(path);
                            entry["kind"] = json!(kind);
                        }
                        Err(error) => entry["error"] = json!(error.to_string()),
                    }
                    entry
                })
                .collect();
            json!({"name": name, "versions": releases})
        })
        .collect();
    Json(json!({"apps": apps}))
}

/// `GET /_/sse`: the stats document as a Server-Sent Event once a second.
pub async fn sse(
    State(state): State<Arc<AppState>>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let ticks = IntervalStream::new(Duration::from_secs(1));
    // The stream ends when draining starts, so an open dashboard does not hold up a
    // shutdown; the page reconnects to wherever it is served next.
    let draining = state.clone();
    let stream = ticks
        .take_while(move |_| std::future::ready(draining.is_ready()))
        .map(move |_| {
            let mut document = pool_metrics(&state);
            document["workers"] = json!(state.pool.workers());
            Ok(Event::default().event("stats").data(document.to_string()))
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Ticks at once and then every `period`, as a stream.
struct IntervalStream {
    interval: tokio::time::Interval,
}

impl IntervalStream {
    fn new(period: Duration) -> Self {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        IntervalStream { interval }
    }
}

impl futures_util::Stream for IntervalStream {
    type Item = ();

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<()>> {
        self.interval.poll_tick(cx).map(|_| Some(()))
    }
}

fn pool_metrics(state: &AppState) -> Value {
    let counters = &state.pool.counters;
    let hits = counters.hits.load(Ordering::Relaxed);
    let misses = counters.misses.load(Ordering::Relaxed);
    let total = hits + misses;
    let workers = state.pool.workers();
    let requests: u64 = workers.iter().map(|worker| worker.requests).sum();
    let uptime = state.pool.uptime().as_secs_f64();
    json!({
        "activeWorkers": workers.len(),
        "poolSize": state.pool.pool_size(),
        "hits": hits,
        "misses": misses,
        "hitRate": if total == 0 { 0.0 } else { hits as f64 / total as f64 },
        "evictions": counters.evictions.load(Ordering::Relaxed),
        "workersCreated": counters.created.load(Ordering::Relaxed),
        "workersFailed": counters.failed.load(Ordering::Relaxed),
        "workersRetired": counters.retired.load(Ordering::Relaxed),
        "totalRequests": total,
        "requestsPerSecond": if uptime > 0.0 { total as f64 / uptime } else { 0.0 },
        "liveWorkerRequests": requests,
        "averageResponseMs": counters.average_response_ms(),
        "uptimeSeconds": uptime,
        "ephemeralConcurrency": state.pool.ephemeral_concurrency(),
        "ephemeralRunning": state.pool.ephemeral_running(),
        "ephemeralQueueDepth": state.pool.ephemeral_waiting(),
    })
}
