//! The scheduler: its loops (claim, lease renewal and cancel watch, push reconciliation) and
//! the table of runs this process holds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::Utc;
use ferry_core::port::{FlowRunner, NoRunObserver, PushBackend, RunJob, RunObserver};
use ferry_core::{PoolType, RunId, RunState};
use ferry_store::{Run, Store};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::Config;

/// The executors this process has, by pool type. A run whose pool type has none here is
/// never claimed by this process: it waits for a process that has one.
#[derive(Clone, Default)]
pub struct Executors {
    pub managed: Option<Arc<dyn FlowRunner>>,
    pub push: HashMap<PoolType, Arc<dyn PushBackend>>,
}

impl std::fmt::Debug for Executors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executors")
            .field("managed", &self.managed.is_some())
            .field("push", &self.push.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Executors {
    fn push_types(&self) -> Vec<PoolType> {
        let mut types: Vec<PoolType> = self.push.keys().copied().collect();
        types.sort_by_key(|t| t.as_str());
        types
    }
}

/// A run this process holds the lease of.
pub(crate) struct Held {
    /// The latest known row (state, generation, infrastructure).
    pub run: Run,
    /// The job as the executor sees it (push runs: kept for polling).
    pub job: Option<RunJob>,
    /// Fired when the run must stop here: a cancel request, or the lease was lost.
    pub stop: CancellationToken,
    /// The lease was lost: another scheduler owns the run now; write nothing more.
    pub lost: bool,
    /// A stop request has been sent to the cloud for this run.
    pub cancel_sent: bool,
    /// Polls of this run that failed in a row.
    pub failed_polls: u32,
}

pub(crate) struct Inner {
    pub store: Store,
    pub executors: Executors,
    pub config: Config,
    /// Told of every state change this scheduler makes (the server's metrics).
    pub observer: Arc<dyn RunObserver>,
    held: Mutex<HashMap<RunId, Held>>,
    pub managed_slots: Arc<Semaphore>,
    tasks: Mutex<JoinSet<()>>,
    wake_claim: Notify,
    wake_watch: Notify,
}

impl Inner {
    pub fn held(&self) -> MutexGuard<'_, HashMap<RunId, Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn tasks(&self) -> MutexGuard<'_, JoinSet<()>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks();
        // Reap finished tasks so the set does not grow without bound.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(fut);
    }

    /// Records the latest row of a held run; drops it once it is no longer ours to hold.
    pub fn update_held(&self, run: &Run) {
        let mut held = self.held();
        if run.state.is_owned() && run.lease_owner.as_deref() == Some(&self.config.owner) {
            if let Some(h) = held.get_mut(&run.id) {
                h.run = run.clone();
                if let Some(job) = h.job.as_mut() {
                    job.infrastructure = run.infrastructure.clone();
                }
            }
        } else {
            held.remove(&run.id);
        }
    }

    pub fn release(&self, id: RunId) {
        self.held().remove(&id);
        self.wake_claim.notify_one();
    }

    pub fn is_lost(&self, id: RunId) -> bool {
        self.held().get(&id).is_none_or(|h| h.lost)
    }

    fn count_held(&self, push: bool) -> usize {
        self.held()
            .values()
            .filter(|h| h.run.pool_type.is_push() == push)
            .count()
    }
}

/// A scheduler over one store. Cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("owner", &self.inner.config.owner)
            .finish()
    }
}

/// Controls a started scheduler.
#[derive(Debug)]
pub struct SchedulerHandle {
    scheduler: Scheduler,
    shutdown: CancellationToken,
}

impl SchedulerHandle {
    /// Stops claiming and stops every driver without further writes. Runs still held keep
    /// their leases until they expire; then another scheduler takes them over. This is also
    /// exactly what a crash looks like to the rest of the system, so tests use it as one.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let mut tasks = std::mem::take(&mut *self.scheduler.inner.tasks());
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        self.scheduler.inner.held().clear();
    }

    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }
}

impl Scheduler {
    pub fn new(store: Store, executors: Executors, config: Config) -> Self {
        Self::with_observer(store, executors, config, Arc::new(NoRunObserver))
    }

    /// [`Scheduler::new`], telling `observer` of every run state change it makes.
    pub fn with_observer(
        store: Store,
        executors: Executors,
        config: Config,
        observer: Arc<dyn RunObserver>,
    ) -> Self {
        let managed_slots = Arc::new(Semaphore::new(config.managed_slots.max(1)));
        Self {
            inner: Arc::new(Inner {
                store,
                executors,
                config,
                observer,
                held: Mutex::new(HashMap::new()),
                managed_slots,
                tasks: Mutex::new(JoinSet::new()),
                wake_claim: Notify::new(),
                wake_watch: Notify::new(),
            }),
        }
    }

    pub fn owner(&self) -> &str {
        &self.inner.config.owner
    }

    /// Starts the loops. They run until [`SchedulerHandle::stop`].
    pub fn start(&self) -> SchedulerHandle {
        let shutdown = CancellationToken::new();
        let me = self.clone();
        let token = shutdown.clone();
        self.inner.spawn(async move { me.claim_loop(token).await });
        let me = self.clone();
        let token = shutdown.clone();
        self.inner.spawn(async move { me.watch_loop(token).await });
        if !self.inner.executors.push.is_empty() {
            let me = self.clone();
            let token = shutdown.clone();
            self.inner
                .spawn(async move { me.reconcile_loop(token).await });
        }
        tracing::info!(owner = %self.owner(), executors = ?self.inner.executors, "Scheduler started");
        SchedulerHandle {
            scheduler: self.clone(),
            shutdown,
        }
    }

    /// Wakes the claim loop now (a run was just submitted in this process).
    pub fn notify_submitted(&self) {
        self.inner.wake_claim.notify_one();
    }

    /// Wakes the cancel watch now (a cancel was just requested in this process).
    pub fn notify_cancel_requested(&self) {
        self.inner.wake_watch.notify_one();
    }

    /// How many runs this process holds.
    pub fn held_count(&self) -> usize {
        self.inner.held().len()
    }

    /// One claim round: claims due runs of the pool types this process can execute, within
    /// its free slots, and starts a driver for each. Returns how many were claimed.
    pub async fn claim_once(&self) -> Result<usize, ferry_store::Error> {
        let cfg = &self.inner.config;
        let mut claimed = Vec::new();
        if self.inner.executors.managed.is_some() {
            let free = cfg
                .managed_slots
                .saturating_sub(self.inner.count_held(false));
            let limit = free.min(cfg.claim_batch as usize) as u32;
            if limit > 0 {
                claimed.extend(
                    self.claim(&[PoolType::Managed], limit, cfg.managed_memory_mb)
                        .await?,
                );
            }
        }
        let push_types = self.inner.executors.push_types();
        if !push_types.is_empty() {
            let free = cfg.push_slots.saturating_sub(self.inner.count_held(true));
            let limit = free.min(cfg.claim_batch as usize) as u32;
            if limit > 0 {
                claimed.extend(self.claim(&push_types, limit, None).await?);
            }
        }
        let n = claimed.len();
        for run in claimed {
            self.start_driver(run);
        }
        Ok(n)
    }

    async fn claim(
        &self,
        types: &[PoolType],
        limit: u32,
        memory_budget_mb: Option<u64>,
    ) -> Result<Vec<Run>, ferry_store::Error> {
        let now = Utc::now();
        let until = now + self.inner.config.lease_ttl;
        let runs = self
            .inner
            .store
            .runs_claim_within(self.owner(), now, until, limit, types, memory_budget_mb)
            .await?;
        let mut held = self.inner.held();
        for run in &runs {
            held.insert(
                run.id,
                Held {
                    run: run.clone(),
                    job: None,
                    stop: CancellationToken::new(),
                    lost: false,
                    cancel_sent: false,
                    failed_polls: 0,
                },
            );
        }
        Ok(runs)
    }

    fn start_driver(&self, run: Run) {
        let inner = self.inner.clone();
        tracing::debug!(run_id = %run.id, state = %run.state, generation = run.generation, "Run claimed");
        self.inner
            .spawn(async move { crate::drive::drive(inner, run).await });
    }

    async fn claim_loop(self, shutdown: CancellationToken) {
        loop {
            let claimed = match self.claim_once().await {
                Ok(n) => n,
                Err(error) => {
                    tracing::warn!(owner = %self.owner(), error = %error, "Claiming runs failed; will retry");
                    0
                }
            };
            if claimed > 0 {
                // A full batch may mean more are due: go again without waiting.
                tokio::task::yield_now().await;
                if shutdown.is_cancelled() {
                    return;
                }
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.inner.config.poll_interval) => {}
                _ = self.inner.wake_claim.notified() => {}
            }
        }
    }

    /// Renews leases, notices lost ones, and picks up cancel requests made anywhere.
    async fn watch_loop(self, shutdown: CancellationToken) {
        let cfg = self.inner.config.clone();
        let mut last_renew = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(cfg.poll_interval.max(std::time::Duration::from_millis(50)) * 4) => {}
                _ = self.inner.wake_watch.notified() => {}
            }
            if last_renew.elapsed() >= cfg.renew_interval {
                last_renew = tokio::time::Instant::now();
                if let Err(error) = self.renew().await {
                    tracing::warn!(owner = %self.owner(), error = %error, "Renewing leases failed; will retry");
                }
            }
            if let Err(error) = self.pick_up_cancels().await {
                tracing::warn!(owner = %self.owner(), error = %error, "Checking for cancel requests failed");
            }
        }
    }

    async fn renew(&self) -> Result<(), ferry_store::Error> {
        let leases: Vec<(RunId, i64)> = self
            .inner
            .held()
            .iter()
            .map(|(id, h)| (*id, h.run.generation))
            .collect();
        if leases.is_empty() {
            return Ok(());
        }
        let until = Utc::now() + self.inner.config.lease_ttl;
        let lost = self
            .inner
            .store
            .runs_renew_leases(self.owner(), &leases, until)
            .await?;
        let mut held = self.inner.held();
        for id in lost {
            if let Some(mut h) = held.remove(&id) {
                tracing::warn!(run_id = %id, owner = %self.owner(), "Lease lost; another scheduler owns the run now");
                h.lost = true;
                h.stop.cancel();
            }
        }
        Ok(())
    }

    async fn pick_up_cancels(&self) -> Result<(), ferry_store::Error> {
        if self.inner.held().is_empty() {
            return Ok(());
        }
        let owned = self.inner.store.runs_owned(self.owner()).await?;
        let mut held = self.inner.held();
        for run in owned {
            if run.state != RunState::Cancelling {
                continue;
            }
            if let Some(h) = held.get_mut(&run.id) {
                if h.run.generation == run.generation && h.run.state != RunState::Cancelling {
                    tracing::info!(run_id = %run.id, "Cancel requested");
                    h.run.state = RunState::Cancelling;
                    h.stop.cancel();
                }
            }
        }
        Ok(())
    }

    async fn reconcile_loop(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.inner.config.push_poll_interval) => {}
            }
            crate::drive::reconcile_round(&self.inner).await;
        }
    }

    /// One reconciliation round over every pushed run this process holds (for tests).
    pub async fn reconcile_once(&self) {
        crate::drive::reconcile_round(&self.inner).await;
    }
}
