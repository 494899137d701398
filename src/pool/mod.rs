//! Children and their lifecycle.
//!
//! # Theory of operation
//!
//! Each live child is a [`Worker`]: a shared handle that requests lease, plus one task
//! (`worker::own_child`) that owns the OS process. Requests never talk to that task:
//! a lease is a short, lock-protected update of the handle's counters, and the request
//! then speaks to the child over its multiplexed IPC [`Connection`](crate::ipc::Connection).
//! The owner task wakes on timers (idle, TTL), on the last lease ending, on health
//! probes and on the process exiting, and it alone retires and reaps the child:
//! stop routing → drain in-flight requests (bounded) → TERMINATE (`onTerminate`) →
//! SIGTERM → SIGKILL to the process group → reap.
//!
//! The pool keeps one slot per app release in an LRU bounded by the pool size; a
//! slot holds the release's current child. The first request for a release starts a
//! child while later ones wait on the slot's start lock, so a burst starts one child.
//! A child that refuses leases (retiring after `maxRequests`, TTL, or a crash) is
//! replaced by the next request. Evicting a slot retires its child.
//!
//! Ephemeral apps get a fresh child per request and no slot. A semaphore bounds how
//! many run at once; a bounded count of waiters queue behind it and the rest are
//! refused with 503.
//!
//! States: `Creating` (in [`start::Launcher::start`]) → `Ready` → `Active` ⇄ `Idle` →
//! `Retiring` → `Terminated`.

mod env;
mod output;
#[allow(unsafe_code)]
mod spawn;
mod start;
mod worker;

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lru::LruCache;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use env::InheritedEnv;
pub use start::Launcher;
pub use worker::{ExitReason, Lease, RetireTimings, Worker, WorkerSnapshot, WorkerState};

use crate::apps::AppRelease;
use crate::config::WorkerConfig;
use crate::metrics::Metrics;
use crate::sync::lock;

/// A child could not be started.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StartError {
    /// `bun` could not be run, or the socket not created.
    #[error("{app}: cannot start a child: {detail}")]
    Spawn {
        /// The app.
        app: String,
        /// Why.
        detail: String,
    },
    /// The child exited, reported FATAL or broke the protocol before READY.
    #[error("{app}: child failed to start: {detail}")]
    Failed {
        /// The app.
        app: String,
        /// Why.
        detail: String,
    },
    /// No READY within the start-up timeout.
    #[error("{app}: child sent no READY within {after:?}")]
    Timeout {
        /// The app.
        app: String,
        /// The timeout.
        after: Duration,
    },
    /// `bun install` failed.
    #[error("{app}: bun install failed: {detail}")]
    Install {
        /// The app.
        app: String,
        /// Its output's tail.
        detail: String,
    },
}

/// Why the pool could not lease a child.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PoolError {
    /// Starting a child failed.
    #[error(transparent)]
    Start(#[from] StartError),
    /// Too many ephemeral requests are already waiting.
    #[error("ephemeral queue is full ({0} waiting)")]
    QueueFull(usize),
    /// The supervisor is shutting down.
    #[error("the supervisor is shutting down")]
    ShuttingDown,
}

/// Sizes and limits of the pool.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Most app releases with a live child at once.
    pub pool_size: usize,
    /// Most ephemeral requests running at once.
    pub ephemeral_concurrency: usize,
    /// Most ephemeral requests waiting for a slot.
    pub ephemeral_queue: usize,
    /// Most spare children kept across all apps.
    pub max_spares: usize,
    /// Retire timings.
    pub timings: RetireTimings,
}

/// Pool-wide counters for the internal API.
#[derive(Debug, Default)]
pub struct PoolCounters {
    /// Requests that found a live child.
    pub hits: AtomicU64,
    /// Requests that had to start one.
    pub misses: AtomicU64,
    /// Slots evicted from the LRU.
    pub evictions: AtomicU64,
    /// Children that reached READY.
    pub created: AtomicU64,
    /// Children that failed to start.
    pub failed: AtomicU64,
    /// Children that ended.
    pub retired: AtomicU64,
    /// Responses whose head came back from a child.
    pub responses: AtomicU64,
    /// Their total time to the response head, in microseconds.
    pub response_micros: AtomicU64,
}

impl PoolCounters {
    /// Records one response head's latency.
    pub fn record_response(&self, elapsed: Duration) {
        self.responses.fetch_add(1, Ordering::Relaxed);
        self.response_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Mean time to response head in milliseconds, 0 before the first response.
    pub fn average_response_ms(&self) -> f64 {
        let responses = self.responses.load(Ordering::Relaxed);
        if responses == 0 {
            return 0.0;
        }
        self.response_micros.load(Ordering::Relaxed) as f64 / responses as f64 / 1000.0
    }
}

/// One app release's place in the LRU.
#[derive(Default)]
struct Slot {
    /// The release's children that take requests, oldest first.
    workers: Mutex<Vec<Arc<Worker>>>,
    /// Set while an extra child is being started, so one scale-out runs at a time.
    scaling: std::sync::atomic::AtomicBool,
    /// Held while a child starts, so concurrent requests start only one.
    start_lock: tokio::sync::Mutex<()>,
    /// The last failed start, so requests that queued behind it share its error
    /// instead of each waiting out another start-up.
    last_failure: Mutex<Option<(Instant, PoolError)>>,
}

/// The set of live children and the rules for starting and ending them.
pub struct Pool {
    launcher: Launcher,
    settings: PoolSettings,
    /// Slots by release ([`AppRelease::key`]), least recently used first out.
    slots: Mutex<LruCache<OsString, Arc<Slot>>>,
    /// Every child with an owner task still running.
    live: Mutex<HashMap<u64, Arc<Worker>>>,
    next_id: AtomicU64,
    /// Bounds ephemeral requests running at once.
    ephemeral_slots: Arc<Semaphore>,
    /// Ephemeral requests waiting for a slot.
    ephemeral_waiting: AtomicUsize,
    /// Release dirs whose dependencies were installed.
    installed: tokio::sync::Mutex<HashSet<PathBuf>>,
    /// Tracks owner tasks so shutdown can wait for every child to end.
    owners: TaskTracker,
    /// Fired once at shutdown; owners retire their children.
    shutdown: CancellationToken,
    /// Counters for the internal API.
    pub counters: PoolCounters,
    started: Instant,
    /// READY children kept aside per release dir, handed out instead of a cold start.
    spares: Mutex<HashMap<PathBuf, Vec<Arc<Worker>>>>,
    /// Release dirs whose spares are being started, so one refill runs at a time.
    refilling: Mutex<HashSet<PathBuf>>,
    /// Set once a Bun version mismatch has been logged.
    warned_bun_version: std::sync::atomic::AtomicBool,
    /// Where spawns, exits and start failures are counted.
    metrics: Arc<Metrics>,
}

impl Pool {
    /// A pool that starts children with `launcher`.
    pub fn new(launcher: Launcher, settings: PoolSettings, metrics: Arc<Metrics>) -> Arc<Self> {
        let capacity = NonZeroUsize::new(settings.pool_size.max(1)).unwrap_or(NonZeroUsize::MIN);
        Arc::new(Pool {
            ephemeral_slots: Arc::new(Semaphore::new(settings.ephemeral_concurrency.max(1))),
            launcher,
            settings,
            slots: Mutex::new(LruCache::new(capacity)),
            live: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            ephemeral_waiting: AtomicUsize::new(0),
            installed: tokio::sync::Mutex::new(HashSet::new()),
            owners: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            counters: PoolCounters::default(),
            started: Instant::now(),
            warned_bun_version: std::sync::atomic::AtomicBool::new(false),
            spares: Mutex::new(HashMap::new()),
            refilling: Mutex::new(HashSet::new()),
            metrics,
        })
    }

    /// Leases a child of `release`, starting one if needed with `config` and the
    /// module `entrypoint`.
    pub async fn lease(
        self: &Arc<Self>,
        release: &Arc<AppRelease>,
        config: &Arc<WorkerConfig>,
        entrypoint: &std::path::Path,
    ) -> Result<Lease, PoolError> {
        if self.shutdown.is_cancelled() {
            return Err(PoolError::ShuttingDown);
        }
        let slot = lock(&self.slots).get(release.key()).cloned();
        if let Some(slot) = &slot {
            if let Some((lease, saturated)) = slot.lease() {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                if saturated {
                    self.scale_out(slot, release, entrypoint);
                }
                return Ok(lease);
            }
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        // The miss path lives on the heap: the future of every warm request stays small.
        Box::pin(self.lease_on_miss(slot, release, config.clone(), entrypoint)).await
    }

    /// A lease when no running child could take the request: a spare, or a new child.
    async fn lease_on_miss(
        self: &Arc<Self>,
        slot: Option<Arc<Slot>>,
        release: &Arc<AppRelease>,
        config: Arc<WorkerConfig>,
        entrypoint: &std::path::Path,
    ) -> Result<Lease, PoolError> {
        if config.ephemeral {
            return self.lease_ephemeral(release, config, entrypoint).await;
        }
        let slot = match slot {
            Some(slot) => slot,
            None => self.insert_slot(release.key()),
        };
        let queued_at = Instant::now();
        let _starting = slot.start_lock.lock().await;
        if let Some((lease, _)) = slot.lease() {
            return Ok(lease);
        }
        if let Some((failed_at, error)) = lock(&slot.last_failure).as_ref() {
            if *failed_at >= queued_at {
                return Err(error.clone());
            }
        }
        let spare = self.take_spare(&release.dir);
        self.refill_spares(release, &config, entrypoint);
        let started = match spare {
            Some(spare) => {
                spare.attach(&slot);
                Ok(spare)
            }
            None => {
                self.start_worker(release, config, entrypoint, Arc::downgrade(&slot))
                    .await
            }
        };
        let worker = match started {
            Ok(worker) => worker,
            Err(error) => {
                *lock(&slot.last_failure) = Some((Instant::now(), error.clone()));
                return Err(error);
            }
        };
        let lease = worker.try_lease(None);
        lock(&slot.workers).push(worker);
        lease.ok_or(PoolError::ShuttingDown)
    }

    /// Starts one more child for a release whose children are all saturated, in the
    /// background: the request that noticed goes to the least-loaded child meanwhile.
    fn scale_out(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        release: &Arc<AppRelease>,
        entrypoint: &std::path::Path,
    ) {
        if slot.scaling.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool = self.clone();
        let slot = slot.clone();
        let release = release.clone();
        let entrypoint = entrypoint.to_path_buf();
        tokio::spawn(async move {
            let config = lock(&slot.workers)
                .first()
                .map(|worker| worker.config.clone());
            if let Some(config) = config {
                tracing::debug!(app = %release.label(), "all children saturated; starting another");
                pool.add_worker(&slot, &release, config, &entrypoint).await;
            }
            slot.scaling.store(false, Ordering::Release);
        });
    }

    /// Starts a child into `slot` unless the slot already has its most children.
    async fn add_worker(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        release: &Arc<AppRelease>,
        config: Arc<WorkerConfig>,
        entrypoint: &std::path::Path,
    ) {
        if slot.accepting() >= config.max_instances || self.shutdown.is_cancelled() {
            return;
        }
        match self
            .start_worker(release, config, entrypoint, Arc::downgrade(slot))
            .await
        {
            Ok(worker) => lock(&slot.workers).push(worker),
            Err(error) => {
                tracing::warn!(app = %release.label(), %error, "could not start another child")
            }
        }
    }

    /// A READY spare child of the release, if one is kept.
    fn take_spare(&self, dir: &PathBuf) -> Option<Arc<Worker>> {
        let mut spares = lock(&self.spares);
        let kept = spares.get_mut(dir)?;
        while let Some(spare) = kept.pop() {
            if spare.accepts() {
                spare.set_spare(false);
                return Some(spare);
            }
        }
        None
    }

    fn spare_total(&self) -> usize {
        lock(&self.spares).values().map(Vec::len).sum()
    }

    /// Tops up the release's spares to its `spares` setting in the background, within
    /// the global limit and the pool size.
    pub fn refill_spares(
        self: &Arc<Self>,
        release: &Arc<AppRelease>,
        config: &Arc<WorkerConfig>,
        entrypoint: &std::path::Path,
    ) {
        if config.spares == 0 || self.settings.max_spares == 0 || self.shutdown.is_cancelled() {
            return;
        }
        if !lock(&self.refilling).insert(release.dir.clone()) {
            return;
        }
        let pool = self.clone();
        let release = release.clone();
        let config = config.clone();
        let entrypoint = entrypoint.to_path_buf();
        tokio::spawn(refill(pool, release, config, entrypoint));
    }

    /// Starts the `minInstances` children of a release ahead of any request.
    pub async fn prewarm(
        self: &Arc<Self>,
        release: &Arc<AppRelease>,
        config: &Arc<WorkerConfig>,
        entrypoint: &std::path::Path,
    ) {
        self.refill_spares(release, config, entrypoint);
        if config.ephemeral || config.min_instances == 0 {
            return;
        }
        let slot = self.insert_slot(release.key());
        let _starting = slot.start_lock.lock().await;
        while slot.accepting() < config.min_instances.min(config.max_instances) {
            let before = slot.accepting();
            self.add_worker(&slot, release, config.clone(), entrypoint)
                .await;
            if slot.accepting() == before {
                break;
            }
        }
    }

    async fn lease_ephemeral(
        self: &Arc<Self>,
        release: &Arc<AppRelease>,
        config: Arc<WorkerConfig>,
        entrypoint: &std::path::Path,
    ) -> Result<Lease, PoolError> {
        let permit = match self.ephemeral_slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let waiting = self.ephemeral_waiting.fetch_add(1, Ordering::AcqRel);
                let _waiter = WaitGuard(&self.ephemeral_waiting);
                if waiting >= self.settings.ephemeral_queue {
                    self.metrics.ephemeral_rejected();
                    return Err(PoolError::QueueFull(waiting));
                }
                self.ephemeral_slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| PoolError::ShuttingDown)?
            }
        };
        let worker = match self.take_spare(&release.dir) {
            Some(spare) => spare,
            None => {
                self.start_worker(release, config.clone(), entrypoint, std::sync::Weak::new())
                    .await?
            }
        };
        self.refill_spares(release, &config, entrypoint);
        worker
            .try_lease(Some(permit))
            .ok_or(PoolError::ShuttingDown)
    }

    fn insert_slot(&self, key: &OsStr) -> Arc<Slot> {
        let mut slots = lock(&self.slots);
        if let Some(slot) = slots.get(key) {
            return slot.clone();
        }
        let slot = Arc::new(Slot::default());
        if let Some((evicted_key, evicted)) = slots.push(key.to_owned(), slot.clone()) {
            if evicted_key != key {
                self.counters.evictions.fetch_add(1, Ordering::Relaxed);
                for worker in std::mem::take(&mut *lock(&evicted.workers)) {
                    tracing::debug!(app = %worker.label, pid = worker.pid, "evicting least recently used app");
                    worker.retire(ExitReason::Evicted);
                }
            }
        }
        slot
    }

    async fn start_worker(
        self: &Arc<Self>,
        release: &Arc<AppRelease>,
        config: Arc<WorkerConfig>,
        entrypoint: &std::path::Path,
        slot: std::sync::Weak<Slot>,
    ) -> Result<Arc<Worker>, PoolError> {
        if config.auto_install {
            let mut installed = self.installed.lock().await;
            if !installed.contains(&release.dir) {
                if let Err(error) = self.launcher.install_dependencies(release).await {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    self.metrics.start_failed(&release.name, "install");
                    tracing::error!(%error, "dependency install failed");
                    return Err(error.into());
                }
                installed.insert(release.dir.clone());
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let started = match self.launcher.start(id, release, &config, entrypoint).await {
            Ok(started) => started,
            Err(error) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                let kind = match &error {
                    StartError::Timeout { .. } => "timeout",
                    StartError::Spawn { .. } => "spawn",
                    StartError::Install { .. } => "install",
                    StartError::Failed { .. } => "failed",
                };
                self.metrics.start_failed(&release.name, kind);
                return Err(error.into());
            }
        };
        self.counters.created.fetch_add(1, Ordering::Relaxed);
        self.metrics.spawned(&release.name, started.startup);
        if started.bun_version != crate::bun::PINNED_BUN_VERSION
            && !self.warned_bun_version.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(found = %started.bun_version, pinned = crate::bun::PINNED_BUN_VERSION,
                "children run a Bun version other than the pinned one");
        }
        tracing::info!(app = %release.label(), pid = started.pid, bun = %started.bun_version,
            startup_ms = started.startup.as_secs_f64() * 1000.0, "child ready");
        let worker = Arc::new(Worker::new(
            id,
            release.clone(),
            config,
            started.pid,
            started.bun_version,
            started.connection,
            entrypoint.to_path_buf(),
            slot,
        ));
        lock(&self.live).insert(id, worker.clone());
        let pool = self.clone();
        let owned = worker.clone();
        self.owners.spawn(async move {
            let reason = worker::own_child(
                owned.clone(),
                started.child,
                started.control,
                pool.shutdown.clone(),
                pool.settings.timings,
            )
            .await;
            lock(&pool.live).remove(&owned.id);
            pool.counters.retired.fetch_add(1, Ordering::Relaxed);
            pool.metrics.exited(&owned.release.name, reason.as_str());
            tracing::info!(app = %owned.label, pid = owned.pid, reason = reason.as_str(), "child ended");
            // Keep minInstances running: a child that ended is replaced while its slot
            // is still in the pool.
            let slot = owned.slot();
            let keep = owned.config.min_instances.min(owned.config.max_instances);
            if let Some(slot) = slot {
                if keep > 0 && !pool.shutdown.is_cancelled() && reason != ExitReason::Evicted {
                    tokio::spawn(replenish(pool.clone(), slot, owned.clone(), keep));
                }
            }
        });
        Ok(worker)
    }

    /// Snapshots of every live child, oldest first.
    pub fn workers(&self) -> Vec<WorkerSnapshot> {
        let mut snapshots: Vec<WorkerSnapshot> = lock(&self.live)
            .values()
            .map(|worker| worker.snapshot())
            .collect();
        snapshots.sort_by_key(|snapshot| snapshot.id);
        snapshots
    }

    /// Retires one child by its id; false when no live child has that id.
    pub fn retire_worker(&self, id: u64) -> bool {
        let worker = lock(&self.live).get(&id).cloned();
        match worker {
            Some(worker) => {
                tracing::info!(app = %worker.label, pid = worker.pid, "retiring child on request");
                worker.retire(ExitReason::Manual);
                true
            }
            None => false,
        }
    }

    /// Retires every live child of the app `name` (any version); returns how many.
    pub fn retire_app(&self, name: &str) -> usize {
        let workers: Vec<Arc<Worker>> = lock(&self.live)
            .values()
            .filter(|worker| worker.release.name == name)
            .cloned()
            .collect();
        for worker in &workers {
            tracing::info!(app = %worker.label, pid = worker.pid, "retiring child on request");
            worker.retire(ExitReason::Manual);
        }
        workers.len()
    }

    /// Live children handles.
    pub fn live_workers(&self) -> Vec<Arc<Worker>> {
        lock(&self.live).values().cloned().collect()
    }

    /// Ephemeral requests waiting for a slot.
    pub fn ephemeral_waiting(&self) -> usize {
        self.ephemeral_waiting.load(Ordering::Relaxed)
    }

    /// Ephemeral requests running.
    pub fn ephemeral_running(&self) -> usize {
        self.settings.ephemeral_concurrency.max(1) - self.ephemeral_slots.available_permits()
    }

    /// Time since the pool was made.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The configured most ephemeral requests at once.
    pub fn ephemeral_concurrency(&self) -> usize {
        self.settings.ephemeral_concurrency.max(1)
    }

    /// The configured pool size.
    pub fn pool_size(&self) -> usize {
        self.settings.pool_size
    }

    /// Retires every child and waits until all have exited, or `grace` passes (then
    /// the remaining ones are killed).
    pub async fn shutdown(&self, grace: Duration) {
        self.shutdown.cancel();
        self.ephemeral_slots.close();
        self.owners.close();
        // Open WebSocket sessions get half the grace period, then a 1001 close, so the
        // children can still end cleanly within it.
        let workers = self.live_workers();
        tokio::spawn(async move {
            tokio::time::sleep(grace / 2).await;
            for worker in workers {
                worker.going_away().cancel();
            }
        });
        if tokio::time::timeout(grace, self.owners.wait())
            .await
            .is_err()
        {
            let remaining = self.live_workers();
            tracing::warn!(
                children = remaining.len(),
                "children still running after the grace period; killing them"
            );
            for worker in remaining {
                spawn::signal_group(worker.pid, nix::sys::signal::Signal::SIGKILL);
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), self.owners.wait()).await;
        }
    }
}

/// Starts spares for a release until it has its `spares`, the global limit or the
/// pool size is reached, or a start fails.
fn refill(
    pool: Arc<Pool>,
    release: Arc<AppRelease>,
    config: Arc<WorkerConfig>,
    entrypoint: PathBuf,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        loop {
            let kept = lock(&pool.spares)
                .get(&release.dir)
                .map(|spares| spares.iter().filter(|spare| spare.accepts()).count())
                .unwrap_or(0);
            let room = pool.spare_total() < pool.settings.max_spares
                && lock(&pool.live).len() < pool.settings.pool_size + pool.settings.max_spares;
            if kept >= config.spares || !room || pool.shutdown.is_cancelled() {
                break;
            }
            match pool
                .start_worker(
                    &release,
                    config.clone(),
                    &entrypoint,
                    std::sync::Weak::new(),
                )
                .await
            {
                Ok(spare) => {
                    spare.set_spare(true);
                    lock(&pool.spares)
                        .entry(release.dir.clone())
                        .or_default()
                        .push(spare)
                }
                Err(error) => {
                    tracing::warn!(app = %release.label(), %error, "could not start a spare child");
                    break;
                }
            }
        }
        lock(&pool.refilling).remove(&release.dir);
    })
}

/// Starts a replacement child when a slot fell below its `minInstances`. Boxed so
/// the start-up future does not contain itself.
fn replenish(
    pool: Arc<Pool>,
    slot: Arc<Slot>,
    ended: Arc<Worker>,
    keep: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        if slot.accepting() < keep {
            pool.add_worker(
                &slot,
                &ended.release,
                ended.config.clone(),
                &ended.entrypoint,
            )
            .await;
        }
    })
}

impl Slot {
    /// Leases the least-loaded child that takes requests, dropping ended ones from
    /// the list. Also says whether every child is now at its target concurrency while
    /// there is room for another.
    fn lease(&self) -> Option<(Lease, bool)> {
        let mut workers = lock(&self.workers);
        // The common case, one child and no scaling: a lease it grants is all we need.
        if let [only] = workers.as_slice() {
            if only.config.max_instances == 1 {
                if let Some(lease) = only.try_lease(None) {
                    return Some((lease, false));
                }
            }
        }
        workers.retain(|worker| worker.accepts());
        let config = workers.first()?.config.clone();
        let least = workers
            .iter()
            .min_by_key(|worker| worker.in_flight())?
            .clone();
        let lease = least.try_lease(None)?;
        let saturated = workers.len() < config.max_instances
            && workers
                .iter()
                .all(|worker| worker.in_flight() >= config.target_concurrency);
        Some((lease, saturated))
    }

    /// Children that take requests.
    fn accepting(&self) -> usize {
        lock(&self.workers)
            .iter()
            .filter(|worker| worker.accepts())
            .count()
    }

    /// Whether `worker` is an extra child beyond what the app keeps when quiet: more
    /// than `max(minInstances, 1)` children, and not one of the oldest that many.
    fn is_surplus(&self, worker: &Worker) -> bool {
        let workers = lock(&self.workers);
        let keep = worker.config.min_instances.max(1);
        let accepting: Vec<&Arc<Worker>> = workers.iter().filter(|w| w.accepts()).collect();
        accepting.len() > keep && !accepting.iter().take(keep).any(|w| w.id == worker.id)
    }
}

struct WaitGuard<'a>(&'a AtomicUsize);

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
