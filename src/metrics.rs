//! Prometheus metrics: request counters and latency by app, version and status class,
//! child lifecycle events, limits, proxy errors and WebSocket sessions. Labels are
//! app names, versions, status classes and reasons only, so their number stays bounded
//! by the apps an operator deploys.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::pool::WorkerSnapshot;

/// Latency buckets in seconds, from sub-millisecond to a minute.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
/// Child start-up buckets in seconds.
const START_BUCKETS: &[f64] = &[0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Every metric the supervisor exports.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    spawns: IntCounterVec,
    exits: IntCounterVec,
    start_duration: Histogram,
    start_failures: IntCounterVec,
    ephemeral_rejections: IntCounter,
    body_limit_rejections: IntCounterVec,
    proxy_errors: IntCounterVec,
    websocket_sessions: IntGaugeVec,
    // Gauges filled in from the pool at each scrape.
    workers_by_state: IntGaugeVec,
    in_flight: IntGaugeVec,
    worker_rss: IntGaugeVec,
    ephemeral_waiting: IntGauge,
    ephemeral_running: IntGauge,
}

/// Figures read from the pool when Prometheus scrapes.
pub struct PoolView {
    /// Every live child.
    pub workers: Vec<WorkerSnapshot>,
    /// Ephemeral requests waiting for a slot.
    pub ephemeral_waiting: usize,
    /// Ephemeral requests running.
    pub ephemeral_running: usize,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| unreachable_metric(e));
            let _ = registry.register(Box::new(metric.clone()));
            metric
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntGaugeVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| unreachable_metric(e));
            let _ = registry.register(Box::new(metric.clone()));
            metric
        };
        let requests = counter(
            "buntime_requests_total",
            "Requests answered for apps, by app, version and status class.",
            &["app", "version", "status"],
        );
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "buntime_request_duration_seconds",
                "Time from a request's arrival to its response head, by app, version and status class.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["app", "version", "status"],
        )
        .unwrap_or_else(|e| unreachable_metric(e));
        let _ = registry.register(Box::new(request_duration.clone()));
        let spawns = counter(
            "buntime_worker_spawns_total",
            "Children that reached READY, by app.",
            &["app"],
        );
        let exits = counter(
            "buntime_worker_exits_total",
            "Children that ended, by app and reason (ttl, idle, max_requests, ephemeral, crash, timeout, evicted, shutdown, manual, protocol_error).",
            &["app", "reason"],
        );
        let start_duration = Histogram::with_opts(
            HistogramOpts::new(
                "buntime_worker_start_duration_seconds",
                "Time from spawning a child to its READY.",
            )
            .buckets(START_BUCKETS.to_vec()),
        )
        .unwrap_or_else(|e| unreachable_metric(e));
        let _ = registry.register(Box::new(start_duration.clone()));
        let start_failures = counter(
            "buntime_worker_start_failures_total",
            "Children that failed to start (no READY), by app and kind (timeout, failed, spawn, install).",
            &["app", "kind"],
        );
        let ephemeral_rejections = IntCounter::new(
            "buntime_ephemeral_rejections_total",
            "Ephemeral requests refused with 503 because the queue was full.",
        )
        .unwrap_or_else(|e| unreachable_metric(e));
        let _ = registry.register(Box::new(ephemeral_rejections.clone()));
        let body_limit_rejections = counter(
            "buntime_body_limit_rejections_total",
            "Requests refused with 413 for a body over the app's limit, by app.",
            &["app"],
        );
        let proxy_errors = counter(
            "buntime_proxy_upstream_errors_total",
            "Proxied requests whose target failed, by app and kind (unreachable, timeout, other).",
            &["app", "kind"],
        );
        let websocket_sessions = gauge(
            "buntime_websocket_sessions_open",
            "WebSocket sessions into apps open now, by app.",
            &["app"],
        );
        let workers_by_state = gauge("buntime_workers", "Live children by state.", &["state"]);
        let in_flight = gauge(
            "buntime_requests_in_flight",
            "Requests and sessions in flight in children, by app and version.",
            &["app", "version"],
        );
        let worker_rss = gauge(
            "buntime_worker_resident_memory_bytes",
            "Resident memory of each live child, by app, version and pid.",
            &["app", "version", "pid"],
        );
        let ephemeral_waiting = IntGauge::new(
            "buntime_ephemeral_queue_depth",
            "Ephemeral requests waiting for a slot.",
        )
        .unwrap_or_else(|e| unreachable_metric(e));
        let _ = registry.register(Box::new(ephemeral_waiting.clone()));
        let ephemeral_running =
            IntGauge::new("buntime_ephemeral_running", "Ephemeral requests running.")
                .unwrap_or_else(|e| unreachable_metric(e));
        let _ = registry.register(Box::new(ephemeral_running.clone()));
        let _ = registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        Metrics {
            registry,
            requests,
            request_duration,
            spawns,
            exits,
            start_duration,
            start_failures,
            ephemeral_rejections,
            body_limit_rejections,
            proxy_errors,
            websocket_sessions,
            workers_by_state,
            in_flight,
            worker_rss,
            ephemeral_waiting,
            ephemeral_running,
        }
    }

    /// Records one answered request.
    pub fn request(&self, app: &str, version: &str, status: u16, elapsed: Duration) {
        let class = status_class(status);
        self.requests
            .with_label_values(&[app, version, class])
            .inc();
        self.request_duration
            .with_label_values(&[app, version, class])
            .observe(elapsed.as_secs_f64());
    }

    /// Records a child that reached READY after `startup`.
    pub fn spawned(&self, app: &str, startup: Duration) {
        self.spawns.with_label_values(&[app]).inc();
        self.start_duration.observe(startup.as_secs_f64());
    }

    /// Records a child that ended.
    pub fn exited(&self, app: &str, reason: &str) {
        self.exits.with_label_values(&[app, reason]).inc();
    }

    /// Records a child that failed to start.
    pub fn start_failed(&self, app: &str, kind: &str) {
        self.start_failures.with_label_values(&[app, kind]).inc();
    }

    /// Records an ephemeral request refused for a full queue.
    pub fn ephemeral_rejected(&self) {
        self.ephemeral_rejections.inc();
    }

    /// Records a request refused for its body size.
    pub fn body_rejected(&self, app: &str) {
        self.body_limit_rejections.with_label_values(&[app]).inc();
    }

    /// Records a proxy target failure.
    pub fn proxy_failed(&self, app: &str, kind: &str) {
        self.proxy_errors.with_label_values(&[app, kind]).inc();
    }

    /// Counts a WebSocket session into `app` as open until the guard drops.
    pub fn session_opened(&self, app: &str) -> SessionGuard {
        let gauge = self.websocket_sessions.with_label_values(&[app]);
        gauge.inc();
        SessionGuard { gauge }
    }

    /// The text exposition, with the pool's current figures filled in.
    pub fn render(&self, pool: PoolView) -> String {
        for state in ["ready", "active", "idle", "retiring", "terminated"] {
            let count = pool
                .workers
                .iter()
                .filter(|worker| worker.state == state)
                .count();
            self.workers_by_state
                .with_label_values(&[state])
                .set(count as i64);
        }
        self.in_flight.reset();
        self.worker_rss.reset();
        for worker in &pool.workers {
            self.in_flight
                .with_label_values(&[&worker.app, &worker.version])
                .add(worker.in_flight as i64);
            self.worker_rss
                .with_label_values(&[&worker.app, &worker.version, &worker.pid.to_string()])
                .set(worker.rss_bytes as i64);
        }
        self.ephemeral_waiting.set(pool.ephemeral_waiting as i64);
        self.ephemeral_running.set(pool.ephemeral_running as i64);
        let mut out = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(%error, "cannot encode metrics");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Keeps a WebSocket session counted while it lives.
pub struct SessionGuard {
    gauge: IntGauge,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Metric names and labels above are constants; a failure here is a programming error
/// caught by the tests below, never by input.
fn unreachable_metric(error: prometheus::Error) -> ! {
    panic!("invalid metric definition: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_registers_and_renders_with_help() {
        let metrics = Metrics::new();
        metrics.request("hello", "1.0.0", 200, Duration::from_millis(3));
        metrics.exited("hello", "crash");
        let text = metrics.render(PoolView {
            workers: Vec::new(),
            ephemeral_waiting: 2,
            ephemeral_running: 1,
        });
        assert!(text.contains("# HELP buntime_requests_total"));
        assert!(
            text.contains(r#"buntime_requests_total{app="hello",status="2xx",version="1.0.0"} 1"#)
        );
        assert!(text.contains(r#"buntime_worker_exits_total{app="hello",reason="crash"} 1"#));
        assert!(text.contains("buntime_ephemeral_queue_depth 2"));
        assert!(text.contains("process_resident_memory_bytes"));
    }
}
