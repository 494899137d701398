//! One live child: the shared handle requests use, and the task that owns the
//! process and drives its lifecycle.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::process::Child;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::spawn::signal_group;
use crate::apps::AppRelease;
use crate::config::WorkerConfig;
use crate::ipc::{Connection, ControlEvent, FrameType};
use crate::sync::lock;

/// How long a PING may go unanswered before the child counts as hung.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long WebSocket sessions have to close after being told to go away.
const SESSION_CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How long SIGTERM has to work before SIGKILL.
const SIGTERM_GRACE: Duration = Duration::from_secs(2);

/// Why a child was retired or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// No request for its `ttl`.
    Ttl,
    /// Served `maxRequests`.
    MaxRequests,
    /// Served its one ephemeral request.
    Ephemeral,
    /// Evicted from the LRU to make room.
    Evicted,
    /// The supervisor is shutting down.
    Shutdown,
    /// Asked for by an operator.
    Manual,
    /// Exited or was killed by a signal on its own.
    Crash,
    /// Did not answer a health probe after a request timed out.
    Unresponsive,
    /// An extra child of a scaled-out app went idle.
    Idle,
    /// Broke the IPC protocol.
    ProtocolError,
}

impl ExitReason {
    /// A short lower-case name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::Ttl => "ttl",
            ExitReason::MaxRequests => "max_requests",
            ExitReason::Ephemeral => "ephemeral",
            ExitReason::Evicted => "evicted",
            ExitReason::Shutdown => "shutdown",
            ExitReason::Manual => "manual",
            ExitReason::Crash => "crash",
            ExitReason::Unresponsive => "timeout",
            ExitReason::Idle => "idle",
            ExitReason::ProtocolError => "protocol_error",
        }
    }
}

/// Where a child is in its life (`Creating` is the start-up before a handle exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// READY received, no request yet.
    Ready,
    /// Serving or recently served requests.
    Active,
    /// No request for `idleTimeout`; IDLE was sent.
    Idle,
    /// Taking no new requests; in-flight ones finish, then the child ends.
    Retiring(ExitReason),
    /// The process has exited and was reaped.
    Terminated(ExitReason),
}

impl WorkerState {
    /// A short lower-case name for the internal API.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Ready => "ready",
            WorkerState::Active => "active",
            WorkerState::Idle => "idle",
            WorkerState::Retiring(_) => "retiring",
            WorkerState::Terminated(_) => "terminated",
        }
    }
}

struct Activity {
    state: WorkerState,
    in_flight: usize,
    served: u64,
    last_activity: Instant,
}

/// A live child as requests see it. The owning task holds the process itself.
pub struct Worker {
    /// Supervisor-wide id of this child.
    pub id: u64,
    /// The app release it runs.
    pub release: Arc<AppRelease>,
    /// `name@version`, for logs.
    pub label: String,
    /// The config it was started with.
    pub config: Arc<WorkerConfig>,
    /// The module the child runs, for starting a replacement.
    pub entrypoint: std::path::PathBuf,
    /// The release's slot in the pool, for scaling decisions; empty for ephemeral children.
    slot: Mutex<std::sync::Weak<super::Slot>>,
    /// The OS process id.
    pub pid: u32,
    /// The Bun version the child reported.
    pub bun_version: String,
    /// When READY arrived.
    pub started: Instant,
    connection: Connection,
    /// State and counters that change together; held briefly, never across an await.
    activity: Mutex<Activity>,
    /// Wakes the owning task when the last request ends, a retire is asked for, or a
    /// health probe is wanted.
    wake: Notify,
    /// Set by a request that timed out; the owner answers with a PING.
    health_check_wanted: AtomicBool,
    /// Set while the child waits as a spare; a spare's `ttl` does not run.
    spare: AtomicBool,
    /// Fired when the child is about to end: open WebSocket sessions close with 1001.
    going_away: CancellationToken,
    errors: AtomicU64,
    response_micros: AtomicU64,
    responses: AtomicU64,
    rss: AtomicU64,
}

/// A snapshot of one child for the internal API.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerSnapshot {
    /// Supervisor-wide id.
    pub id: u64,
    /// App name.
    pub app: String,
    /// App version.
    pub version: String,
    /// OS pid.
    pub pid: u32,
    /// State name.
    pub state: &'static str,
    /// Seconds since READY.
    pub age_seconds: f64,
    /// Seconds since the last request began or ended.
    pub idle_seconds: f64,
    /// Requests started.
    pub requests: u64,
    /// Requests in flight.
    pub in_flight: usize,
    /// Requests that failed in the child (handler errors, timeouts).
    pub errors: u64,
    /// Mean time to response head, milliseconds.
    pub avg_response_ms: f64,
    /// Resident set size in bytes, 0 if unknown.
    pub rss_bytes: u64,
}

impl Worker {
    /// Builds the handle for a child that has just sent READY.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        id: u64,
        release: Arc<AppRelease>,
        config: Arc<WorkerConfig>,
        pid: u32,
        bun_version: String,
        connection: Connection,
        entrypoint: std::path::PathBuf,
        slot: std::sync::Weak<super::Slot>,
    ) -> Self {
        let now = Instant::now();
        Worker {
            id,
            label: release.label(),
            release,
            config,
            entrypoint,
            slot: Mutex::new(slot),
            pid,
            bun_version,
            started: now,
            connection,
            activity: Mutex::new(Activity {
                state: WorkerState::Ready,
                in_flight: 0,
                served: 0,
                last_activity: now,
            }),
            wake: Notify::new(),
            health_check_wanted: AtomicBool::new(false),
            spare: AtomicBool::new(false),
            going_away: CancellationToken::new(),
            errors: AtomicU64::new(0),
            response_micros: AtomicU64::new(0),
            responses: AtomicU64::new(0),
            rss: AtomicU64::new(0),
        }
    }

    /// The connection to the child.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The current state.
    pub fn state(&self) -> WorkerState {
        self.activity().state
    }

    /// Whether the child takes new requests.
    pub fn accepts(&self) -> bool {
        !self.connection.is_closed()
            && matches!(
                self.activity().state,
                WorkerState::Ready | WorkerState::Active | WorkerState::Idle
            )
    }

    /// Requests and sessions in flight.
    pub fn in_flight(&self) -> usize {
        self.activity().in_flight
    }

    /// Marks the child as waiting as a spare, or as taken into service.
    pub(super) fn set_spare(&self, spare: bool) {
        self.spare.store(spare, Ordering::Release);
    }

    /// Makes a spare child part of a release's slot.
    pub(super) fn attach(&self, slot: &Arc<super::Slot>) {
        *lock(&self.slot) = Arc::downgrade(slot);
    }

    /// The release's slot, while it is in the pool.
    pub(super) fn slot(&self) -> Option<Arc<super::Slot>> {
        lock(&self.slot).upgrade()
    }

    /// Takes a request if the child still accepts them; the lease ends it on drop.
    pub fn try_lease(self: &Arc<Self>, permit: Option<OwnedSemaphorePermit>) -> Option<Lease> {
        // A child whose connection just ended is dying; its owner has not noticed yet.
        if self.connection.is_closed() {
            return None;
        }
        let mut activity = self.activity();
        match activity.state {
            WorkerState::Ready | WorkerState::Active | WorkerState::Idle => {}
            WorkerState::Retiring(_) | WorkerState::Terminated(_) => return None,
        }
        activity.in_flight += 1;
        activity.served += 1;
        activity.last_activity = Instant::now();
        activity.state = if self.config.ephemeral {
            WorkerState::Retiring(ExitReason::Ephemeral)
        } else if activity.served >= self.config.max_requests {
            WorkerState::Retiring(ExitReason::MaxRequests)
        } else {
            WorkerState::Active
        };
        drop(activity);
        Some(Lease {
            worker: self.clone(),
            _permit: permit,
        })
    }

    /// Stops routing to the child; it ends once its requests finish.
    pub fn retire(&self, reason: ExitReason) {
        let mut activity = self.activity();
        if matches!(
            activity.state,
            WorkerState::Retiring(_) | WorkerState::Terminated(_)
        ) {
            return;
        }
        activity.state = WorkerState::Retiring(reason);
        drop(activity);
        self.wake.notify_one();
    }

    /// Fires when the child is about to end; long-lived sessions close on it.
    pub fn going_away(&self) -> &CancellationToken {
        &self.going_away
    }

    /// Asks the owner to probe the child, after a request to it timed out.
    pub fn check_health(&self) {
        self.health_check_wanted.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Records a request that failed inside the child.
    pub fn record_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the time a request took to its response head.
    pub fn record_response(&self, elapsed: Duration) {
        self.responses.fetch_add(1, Ordering::Relaxed);
        self.response_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// The figures the internal API shows for this child.
    pub fn snapshot(&self) -> WorkerSnapshot {
        let activity = self.activity();
        let responses = self.responses.load(Ordering::Relaxed);
        WorkerSnapshot {
            id: self.id,
            app: self.release.name.clone(),
            version: self.release.version.clone(),
            pid: self.pid,
            state: activity.state.as_str(),
            age_seconds: self.started.elapsed().as_secs_f64(),
            idle_seconds: activity.last_activity.elapsed().as_secs_f64(),
            requests: activity.served,
            in_flight: activity.in_flight,
            errors: self.errors.load(Ordering::Relaxed),
            avg_response_ms: if responses == 0 {
                0.0
            } else {
                self.response_micros.load(Ordering::Relaxed) as f64 / responses as f64 / 1000.0
            },
            rss_bytes: resident_bytes(self.pid).unwrap_or_else(|| self.rss.load(Ordering::Relaxed)),
        }
    }

    fn activity(&self) -> MutexGuard<'_, Activity> {
        lock(&self.activity)
    }

    fn end_request(&self) {
        let mut activity = self.activity();
        activity.in_flight = activity.in_flight.saturating_sub(1);
        activity.last_activity = Instant::now();
        let drained = activity.in_flight == 0;
        drop(activity);
        if drained {
            self.wake.notify_one();
        }
    }
}

/// One request's hold on a child; dropping it ends the request.
pub struct Lease {
    worker: Arc<Worker>,
    /// Holds an ephemeral concurrency slot for the life of the request.
    _permit: Option<OwnedSemaphorePermit>,
}

impl Lease {
    /// The child serving the request.
    pub fn worker(&self) -> &Arc<Worker> {
        &self.worker
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.worker.end_request();
    }
}

/// Timing rules for ending children, from the runtime settings.
#[derive(Debug, Clone, Copy)]
pub struct RetireTimings {
    /// Longest wait for in-flight requests when retiring.
    pub drain: Duration,
    /// Longest wait for the child to exit after TERMINATE.
    pub terminate: Duration,
}

/// Owns the child process: drives idle, TTL and health rules, then retires and reaps
/// it. Returns why it ended.
pub(super) async fn own_child(
    worker: Arc<Worker>,
    mut child: Child,
    mut control: mpsc::UnboundedReceiver<ControlEvent>,
    shutdown: CancellationToken,
    timings: RetireTimings,
) -> ExitReason {
    let config = worker.config.clone();
    let mut ping_deadline: Option<Instant> = None;
    let mut nonce: u64 = 0;
    let reason = loop {
        let (state, in_flight, last) = {
            let activity = worker.activity();
            (activity.state, activity.in_flight, activity.last_activity)
        };
        if let WorkerState::Retiring(reason) = state {
            break reason;
        }
        let idle_at =
            (in_flight == 0 && state != WorkerState::Idle).then(|| last + config.idle_timeout);
        let waiting_as_spare = worker.spare.load(Ordering::Acquire);
        let ttl_at = (in_flight == 0 && !config.ttl.is_zero() && !waiting_as_spare)
            .then(|| last + config.ttl);
        tokio::select! {
            status = child.wait() => {
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                tracing::warn!(app = %worker.label, pid = worker.pid, %status, in_flight,
                    "child exited unexpectedly; its requests in flight fail with 502");
                return finish(&worker, ExitReason::Crash);
            }
            event = control.recv() => match event {
                Some(ControlEvent::Closed(Some(error))) => {
                    tracing::error!(app = %worker.label, pid = worker.pid, %error,
                        "protocol error from child; killing it");
                    return kill_and_reap(&worker, &mut child, ExitReason::ProtocolError).await;
                }
                Some(ControlEvent::Closed(None)) | None => {
                    // The child closed its end; it is exiting or about to.
                    if tokio::time::timeout(SIGTERM_GRACE, child.wait()).await.is_err() {
                        tracing::warn!(app = %worker.label, pid = worker.pid,
                            "child closed its connection but did not exit; killing it");
                        return kill_and_reap(&worker, &mut child, ExitReason::Crash).await;
                    }
                    tracing::warn!(app = %worker.label, pid = worker.pid, in_flight,
                        "child exited unexpectedly; its requests in flight fail with 502");
                    return finish(&worker, ExitReason::Crash);
                }
                Some(ControlEvent::Pong(_)) => ping_deadline = None,
                Some(ControlEvent::Stats(stats)) => {
                    if let Some(rss) = stats.get("rss").and_then(|v| v.as_u64()) {
                        worker.rss.store(rss, Ordering::Relaxed);
                    }
                }
                Some(other) => tracing::debug!(app = %worker.label, pid = worker.pid, ?other, "control event"),
            },
            _ = worker.wake.notified() => {
                if worker.health_check_wanted.swap(false, Ordering::Relaxed) && ping_deadline.is_none() {
                    nonce += 1;
                    worker.connection.send_control(FrameType::Ping, &nonce.to_le_bytes());
                    ping_deadline = Some(Instant::now() + HEALTH_TIMEOUT);
                }
            }
            _ = sleep_opt(idle_at) => {
                let mut activity = worker.activity();
                if activity.in_flight == 0 && activity.last_activity + config.idle_timeout <= Instant::now()
                    && matches!(activity.state, WorkerState::Ready | WorkerState::Active) {
                    activity.state = WorkerState::Idle;
                    drop(activity);
                    tracing::debug!(app = %worker.label, pid = worker.pid, "child idle");
                    worker.connection.send_control(FrameType::Idle, &[]);
                    // An extra child of a scaled-out app is not kept once it is idle.
                    if worker.slot().is_some_and(|slot| slot.is_surplus(&worker)) {
                        worker.retire(ExitReason::Idle);
                    }
                }
            }
            _ = sleep_opt(ttl_at) => {
                let mut activity = worker.activity();
                if activity.in_flight == 0 && activity.last_activity + config.ttl <= Instant::now()
                    && !matches!(activity.state, WorkerState::Retiring(_)) {
                    activity.state = WorkerState::Retiring(ExitReason::Ttl);
                }
            }
            _ = sleep_opt(ping_deadline) => {
                tracing::warn!(app = %worker.label, pid = worker.pid,
                    "child did not answer a health probe after a request timed out; killing it");
                return kill_and_reap(&worker, &mut child, ExitReason::Unresponsive).await;
            }
            _ = shutdown.cancelled() => worker.retire(ExitReason::Shutdown),
        }
    };
    retire(&worker, &mut child, &mut control, reason, timings).await
}

/// Drain, TERMINATE, SIGTERM, SIGKILL, reap.
async fn retire(
    worker: &Arc<Worker>,
    child: &mut Child,
    control: &mut mpsc::UnboundedReceiver<ControlEvent>,
    reason: ExitReason,
    timings: RetireTimings,
) -> ExitReason {
    tracing::debug!(app = %worker.label, pid = worker.pid, reason = reason.as_str(), "retiring child");
    let drain_deadline = Instant::now() + timings.drain;
    let mut deadline = drain_deadline;
    loop {
        if worker.activity().in_flight == 0 {
            break;
        }
        tokio::select! {
            _ = worker.wake.notified() => {}
            _ = worker.going_away.cancelled(), if deadline == drain_deadline => {
                // Sessions were told to close early (supervisor shutdown): give them a moment.
                deadline = Instant::now() + SESSION_CLOSE_GRACE;
            }
            _ = sleep_until(deadline) => {
                if deadline == drain_deadline {
                    // Long-lived sessions close with 1001 now; they get a moment to do so.
                    worker.going_away.cancel();
                    deadline = Instant::now() + SESSION_CLOSE_GRACE;
                    continue;
                }
                tracing::warn!(app = %worker.label, pid = worker.pid, in_flight = worker.activity().in_flight,
                    "requests still in flight after the drain deadline; ending the child anyway");
                break;
            }
            _ = child.wait() => return finish(worker, reason),
            // Keep the control channel drained so the reader never holds stale events.
            _ = control.recv() => {}
        }
    }
    worker.going_away.cancel();
    worker.connection.send_control(FrameType::Terminate, &[]);
    if tokio::time::timeout(timings.terminate, child.wait())
        .await
        .is_ok()
    {
        return finish(worker, reason);
    }
    tracing::warn!(app = %worker.label, pid = worker.pid, "child ignored TERMINATE; sending SIGTERM");
    signal_group(worker.pid, Signal::SIGTERM);
    if tokio::time::timeout(SIGTERM_GRACE, child.wait())
        .await
        .is_ok()
    {
        return finish(worker, reason);
    }
    tracing::warn!(app = %worker.label, pid = worker.pid, "child ignored SIGTERM; sending SIGKILL");
    kill_and_reap(worker, child, reason).await
}

async fn kill_and_reap(worker: &Arc<Worker>, child: &mut Child, reason: ExitReason) -> ExitReason {
    // Routing stops before the signal: a request that arrives while the kill and the
    // reap are under way goes to another child, not to this one's closing socket.
    worker.retire(reason);
    signal_group(worker.pid, Signal::SIGKILL);
    let _ = child.wait().await;
    finish(worker, reason)
}

/// Marks the child ended and sweeps anything left in its process group.
fn finish(worker: &Arc<Worker>, reason: ExitReason) -> ExitReason {
    // The group id cannot be reused while members remain, so this reaches only ours.
    signal_group(worker.pid, Signal::SIGKILL);
    worker.activity().state = WorkerState::Terminated(reason);
    reason
}

/// The resident set size of a process, read from `/proc`.
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

async fn sleep_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
