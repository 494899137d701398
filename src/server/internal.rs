//! The internal API under `/_/`: health, pool metrics, per-child stats, apps.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
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

/// `GET /_/stats`: pool figures and one entry per live child.
pub async fn stats(State(state): State<Arc<AppState>>) -> Json<Value> {
    let mut document = pool_metrics(&state);
    document["workers"] = json!(state.pool.workers());
    Json(document)
}

/// `GET /_/apps`: every app found in the app dirs, with its releases.
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
                .map(|release| json!({"version": release.version, "dir": release.dir}))
                .collect();
            json!({"name": name, "versions": releases})
        })
        .collect();
    Json(json!({"apps": apps}))
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
        "uptimeSeconds": uptime,
        "ephemeralRunning": state.pool.ephemeral_running(),
        "ephemeralQueueDepth": state.pool.ephemeral_waiting(),
    })
}
