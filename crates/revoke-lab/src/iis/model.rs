//! The IIS of one simulated server: its application pools, their worker
//! processes (an overlapped recycle starts a new one while the old drains),
//! the iisreset outage, and the requests workers hold. No command-line text
//! here: `command` turns this state into what appcmd and iisreset print.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use revoke_core::iis::{EXCHANGE_POOLS, LEGACY_POOL, PoolState, WorkerProcess};

/// What a late part of the iisreset outage looks like in `iisreset /status`:
/// the last quarter of the window reports "Start Pending".
const START_PENDING_FRACTION: u32 = 4;

#[derive(Debug, Clone)]
pub struct IisSimConfig {
    /// What `hostname` prints, e.g. "EX01".
    pub hostname: String,
    /// Pools present on the server, in `appcmd list apppool` order.
    pub pools: Vec<(String, PoolState)>,
    /// How long `appcmd recycle apppool` takes before it answers.
    pub recycle_time: Duration,
    /// How long an old worker keeps running after a recycle.
    pub drain_time: Duration,
    /// How long `iisreset /noforce` keeps IIS down.
    pub iisreset_downtime: Duration,
    /// Pools whose recycle fails with "Access is denied" (exit code 5).
    pub failing_pools: Vec<String>,
    /// A recycled worker exits as soon as the requests it had accepted are
    /// done (IIS's overlapped recycle), `drain_time` being only the limit.
    /// Off, it lives the whole `drain_time`: the worst case, as if it were
    /// always busy. The lab turns it on with the client front end, whose
    /// requests are what keeps a worker busy.
    pub exit_when_idle: bool,
}

impl IisSimConfig {
    /// An Exchange 2016-style server: the five Exchange pools plus DefaultAppPool, all started.
    ///
    /// Timings are short so a lab run feels real without waiting 90 s for a
    /// drain (Windows' default shutdownTimeLimit).
    pub fn exchange(hostname: &str) -> Self {
        let pools = EXCHANGE_POOLS
            .iter()
            .chain(std::iter::once(&LEGACY_POOL))
            .map(|name| ((*name).to_owned(), PoolState::Started))
            .collect();
        Self {
            hostname: hostname.to_owned(),
            pools,
            recycle_time: Duration::from_millis(300),
            drain_time: Duration::from_secs(2),
            iisreset_downtime: Duration::from_secs(3),
            failing_pools: Vec::new(),
            exit_when_idle: false,
        }
    }
}

/// One simulated server's IIS. Cheap to clone; clones share state.
#[derive(Clone, Debug)]
pub struct IisSim {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: IisSimConfig,
    state: Mutex<State>,
}

/// Everything that changes while the server runs.
#[derive(Debug)]
struct State {
    pools: Vec<(String, PoolState)>,
    /// Workers, including ones already dead or not yet born (pruned lazily).
    workers: Vec<SimWorker>,
    last_pid: u32,
    /// The latest iisreset outage window: IIS is down in `[start, end)`.
    outage: Option<(Instant, Instant)>,
}

#[derive(Debug, Clone)]
struct SimWorker {
    pid: u32,
    pool: String,
    born: Instant,
    /// Set when the worker is recycled (its drain limit), stopped or reset.
    dies: Option<Instant>,
    /// Requests accepted and not finished (see [`IisSim::accept_request`]).
    in_flight: u32,
}

impl SimWorker {
    fn alive_at(&self, now: Instant) -> bool {
        self.born <= now && self.dies.is_none_or(|d| now < d)
    }

    /// Alive and not on its way out: the worker new requests go to.
    fn current_at(&self, now: Instant) -> bool {
        self.born <= now && self.dies.is_none()
    }
}

/// Why a pool cannot take a request (HTTP 503 from HTTP.sys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// An iisreset outage is under way.
    IisDown,
    /// No such pool, or it is stopped.
    PoolNotStarted,
}

/// Why a pool cannot be recycled now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RecycleError {
    /// No pool by that name.
    NotFound,
    /// The pool is stopped, or WAS is (an iisreset is under way).
    NotStarted,
    /// The pool is one of [`IisSimConfig::failing_pools`].
    AccessDenied,
}

/// A request being served by one worker process; dropping it ends the
/// request. A recycled worker with `exit_when_idle` exits when its last one ends.
#[derive(Debug)]
pub struct RequestGuard {
    sim: IisSim,
    pid: u32,
}

impl RequestGuard {
    /// The worker serving this request.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// False once the worker has exited (drain limit passed, pool stopped,
    /// iisreset): the request dies with it.
    pub fn worker_alive(&self) -> bool {
        self.sim.worker_alive(self.pid)
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.sim.finish_request(self.pid);
    }
}

/// The IIS services (IISADMIN, WAS, W3SVC), all in the same state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ServiceState {
    Running,
    Stopped,
    StartPending,
}

impl State {
    /// A fresh Windows-looking PID: 4-5 digits, a multiple of 4, increasing,
    /// with random gaps as other processes come and go.
    fn next_pid(&mut self) -> u32 {
        let gap = 4 * (1 + random_u32() % 8);
        self.last_pid += gap;
        self.last_pid
    }

    fn spawn(&mut self, pool: &str, born: Instant) -> u32 {
        let pid = self.next_pid();
        self.workers.push(SimWorker {
            pid,
            pool: pool.to_owned(),
            born,
            dies: None,
            in_flight: 0,
        });
        pid
    }

    /// Drops workers whose death is in the past, then lists the live ones.
    fn live_workers(&mut self, now: Instant) -> Vec<WorkerProcess> {
        self.prune(now);
        self.workers
            .iter()
            .filter(|w| w.alive_at(now))
            .map(|w| WorkerProcess {
                pid: w.pid,
                pool: w.pool.clone(),
            })
            .collect()
    }

    /// Forgets workers whose death is in the past.
    fn prune(&mut self, now: Instant) {
        self.workers.retain(|w| w.dies.is_none_or(|d| now < d));
    }

    fn services(&self, now: Instant) -> ServiceState {
        match self.outage {
            Some((start, end)) if start <= now && now < end => {
                let pending_from = end - (end - start) / START_PENDING_FRACTION;
                if now >= pending_from {
                    ServiceState::StartPending
                } else {
                    ServiceState::Stopped
                }
            }
            _ => ServiceState::Running,
        }
    }

    /// The configured pool `name` (IIS pool names are case-insensitive).
    fn pool(&self, name: &str) -> Option<&(String, PoolState)> {
        self.pools
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
    }
}

/// A random u32, or 0 if the OS cannot give one (the PIDs stay valid).
fn random_u32() -> u32 {
    getrandom::u32().unwrap_or(0)
}

impl IisSim {
    pub fn new(config: IisSimConfig) -> Self {
        let now = Instant::now();
        let mut state = State {
            pools: config.pools.clone(),
            workers: Vec::new(),
            // 4000..=9996: differs between simulators, so nothing can rely on
            // two servers sharing PIDs.
            last_pid: 4 * (1000 + random_u32() % 1500),
            outage: None,
        };
        for (name, pool_state) in &config.pools {
            if *pool_state == PoolState::Started {
                state.spawn(name, now);
            }
        }
        Self {
            shared: Arc::new(Shared {
                config,
                state: Mutex::new(state),
            }),
        }
    }

    /// The worker processes alive now.
    pub fn workers(&self) -> Vec<WorkerProcess> {
        self.state().live_workers(Instant::now())
    }

    /// What `hostname` prints.
    pub fn hostname(&self) -> &str {
        &self.shared.config.hostname
    }

    /// True unless an iisreset outage is under way.
    pub fn iis_running(&self) -> bool {
        self.services() == ServiceState::Running
    }

    /// The state of the IIS services now.
    pub(super) fn services(&self) -> ServiceState {
        self.state().services(Instant::now())
    }

    /// Every configured pool and its state, in `appcmd list apppool` order.
    pub(super) fn pools(&self) -> Vec<(String, PoolState)> {
        self.state().pools.clone()
    }

    /// Changes a pool's state, as an administrator would in IIS Manager (for
    /// tests and demos). Stopping kills its workers; starting spawns one.
    /// Returns false if there is no such pool.
    pub fn set_pool_state(&self, pool: &str, new_state: PoolState) -> bool {
        let now = Instant::now();
        let mut state = self.state();
        let Some(index) = state
            .pools
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(pool))
        else {
            return false;
        };
        let name = state.pools[index].0.clone();
        let was = std::mem::replace(&mut state.pools[index].1, new_state);
        match (was == PoolState::Started, new_state == PoolState::Started) {
            (true, false) => {
                for w in state.workers.iter_mut().filter(|w| w.pool == name) {
                    w.dies = Some(w.dies.map_or(now, |d| d.min(now)));
                }
            }
            (false, true) => {
                state.spawn(&name, now);
            }
            _ => {}
        }
        true
    }

    /// The pool's current worker accepts a request, as HTTP.sys hands it
    /// over: never a recycled (draining) worker. IIS starts a worker on
    /// demand if the pool has none.
    pub fn accept_request(&self, pool: &str) -> Result<RequestGuard, Unavailable> {
        let now = Instant::now();
        let mut state = self.state();
        if state.services(now) != ServiceState::Running {
            return Err(Unavailable::IisDown);
        }
        let name = match state.pool(pool) {
            Some((name, PoolState::Started)) => name.clone(),
            _ => return Err(Unavailable::PoolNotStarted),
        };
        state.prune(now);
        let pid = match state
            .workers
            .iter()
            .filter(|w| w.pool == name && w.current_at(now))
            .max_by_key(|w| w.born)
        {
            Some(w) => w.pid,
            None => state.spawn(&name, now),
        };
        if let Some(w) = state.workers.iter_mut().find(|w| w.pid == pid) {
            w.in_flight += 1;
        }
        Ok(RequestGuard {
            sim: self.clone(),
            pid,
        })
    }

    /// Is worker `pid` running now?
    pub fn worker_alive(&self, pid: u32) -> bool {
        let now = Instant::now();
        self.state()
            .workers
            .iter()
            .any(|w| w.pid == pid && w.alive_at(now))
    }

    fn finish_request(&self, pid: u32) {
        let now = Instant::now();
        let exit_when_idle = self.config().exit_when_idle;
        let mut state = self.state();
        if let Some(w) = state.workers.iter_mut().find(|w| w.pid == pid) {
            w.in_flight = w.in_flight.saturating_sub(1);
            // A draining worker with nothing left to do exits.
            if exit_when_idle && w.in_flight == 0 && w.dies.is_some() {
                w.dies = w.dies.map(|d| d.min(now));
            }
        }
    }

    /// Recycles pool `id` (any case); returns its name as configured.
    ///
    /// Errors answer at once; a good recycle answers after `recycle_time`,
    /// then (overlapped recycle) the new worker is up and the old ones drain
    /// for `drain_time`.
    pub(super) async fn recycle(&self, id: &str) -> Result<String, RecycleError> {
        self.check_recyclable(&self.state(), id)?;
        if self.recycle_waits() {
            tokio::time::sleep(self.config().recycle_time).await;
        }

        let now = Instant::now();
        let mut state = self.state();
        // Checked again: an iisreset or a pool stop may have happened meanwhile.
        let name = self.check_recyclable(&state, id)?;
        let drained_at = now + self.config().drain_time;
        let exit_when_idle = self.config().exit_when_idle;
        for w in state
            .workers
            .iter_mut()
            .filter(|w| w.pool == name && w.alive_at(now))
        {
            // Idle, it has nothing to finish: it exits at once.
            let exits = if exit_when_idle && w.in_flight == 0 {
                now
            } else {
                drained_at
            };
            w.dies = Some(w.dies.map_or(exits, |d| d.min(exits)));
        }
        state.spawn(&name, now);
        Ok(name)
    }

    /// Whether a good recycle takes time before it answers (with no recycle
    /// time it answers at once, without yielding to anything else).
    pub(super) fn recycle_waits(&self) -> bool {
        !self.config().recycle_time.is_zero()
    }

    /// Whether an iisreset takes time before it answers.
    pub(super) fn restart_waits(&self) -> bool {
        !self.config().iisreset_downtime.is_zero()
    }

    /// The pool's configured name if `id` can be recycled now.
    fn check_recyclable(&self, state: &State, id: &str) -> Result<String, RecycleError> {
        let Some((name, pool_state)) = state.pool(id) else {
            return Err(RecycleError::NotFound);
        };
        // During an iisreset WAS is stopped: the same "not started" error.
        if *pool_state != PoolState::Started
            || state.services(Instant::now()) != ServiceState::Running
        {
            return Err(RecycleError::NotStarted);
        }
        if self
            .config()
            .failing_pools
            .iter()
            .any(|p| p.eq_ignore_ascii_case(name))
        {
            return Err(RecycleError::AccessDenied);
        }
        Ok(name.clone())
    }

    /// An iisreset: stops every worker now; one fresh worker per started
    /// pool is born when the outage ends. Returns once IIS is back up.
    pub(super) async fn restart(&self) {
        let downtime = self.config().iisreset_downtime;
        {
            let now = Instant::now();
            let back_up = now + downtime;
            let mut state = self.state();
            // Workers waiting for an earlier reset to end are superseded.
            state.workers.retain(|w| w.born <= now);
            for w in &mut state.workers {
                w.dies = Some(w.dies.map_or(now, |d| d.min(now)));
            }
            state.outage = Some((now, back_up));
            let started: Vec<String> = state
                .pools
                .iter()
                .filter(|(_, s)| *s == PoolState::Started)
                .map(|(n, _)| n.clone())
                .collect();
            for name in &started {
                state.spawn(name, back_up);
            }
        }
        if !downtime.is_zero() {
            tokio::time::sleep(downtime).await;
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take the whole lab down with it.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn config(&self) -> &IisSimConfig {
        &self.shared.config
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use revoke_core::iis;

    #[tokio::test]
    async fn clones_share_state_and_run_concurrently() {
        let sim = sim_with(60_000, 60_000);
        let mut config = IisSimConfig::exchange("EX01");
        config.recycle_time = Duration::from_millis(150);
        let slow = IisSim::new(config);
        let start = Instant::now();
        let tasks: Vec<_> = iis::EXCHANGE_POOLS
            .iter()
            .map(|name| {
                let slow = slow.clone();
                let cmd = iis::recycle(&pool(name));
                tokio::spawn(async move { run(&slow, &cmd).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().exit_code, 0);
        }
        // Five 150 ms recycles ran side by side, not one after another.
        assert!(start.elapsed() < Duration::from_millis(600));
        assert_eq!(slow.workers().len(), 11, "6 old draining + 5 new");

        let clone = sim.clone();
        run(&clone, &iis::recycle(&pool("My Pool"))).await;
        assert_eq!(iis::pids_of(&sim.workers(), "My Pool").len(), 2);
    }

    #[tokio::test]
    async fn set_pool_state_stops_and_starts_workers() {
        let sim = sim();
        assert!(sim.set_pool_state("my pool", PoolState::Stopped));
        assert!(iis::pids_of(&sim.workers(), "My Pool").is_empty());
        let r = run(&sim, &iis::recycle(&pool("My Pool"))).await;
        assert_eq!(r.exit_code, 1062);
        assert!(sim.set_pool_state("My Pool", PoolState::Started));
        assert_eq!(iis::pids_of(&sim.workers(), "My Pool").len(), 1);
        assert!(!sim.set_pool_state("Nope", PoolState::Started));
    }

    #[tokio::test]
    async fn simulators_do_not_share_state() {
        let a = sim();
        let b = sim();
        run(&a, &iis::recycle(&pool("My Pool"))).await;
        assert_eq!(iis::pids_of(&b.workers(), "My Pool").len(), 1);
    }

    #[tokio::test]
    async fn requests_go_to_the_current_worker_never_a_draining_one() {
        let sim = idle_exiting(60_000, 60_000);
        let old = sim.accept_request(SYNC).unwrap();
        assert_eq!(iis::pids_of(&sim.workers(), SYNC), [old.pid()]);
        assert_eq!(
            sim.accept_request("mSeXchangesyncapppool").unwrap().pid(),
            old.pid(),
            "pool names are case-insensitive"
        );
        run(&sim, &iis::recycle(&pool(SYNC))).await;
        let new = sim.accept_request(SYNC).unwrap();
        assert_ne!(new.pid(), old.pid());
        // The old worker still serves the request it had accepted.
        assert!(old.worker_alive());
        assert_eq!(iis::pids_of(&sim.workers(), SYNC).len(), 2);
        drop(old);
        // Nothing left to finish: it exits at once, long before its drain limit.
        assert_eq!(iis::pids_of(&sim.workers(), SYNC), [new.pid()]);
        assert_eq!(
            sim.accept_request("NoSuchPool").unwrap_err(),
            Unavailable::PoolNotStarted
        );
    }

    #[tokio::test]
    async fn an_idle_worker_exits_at_the_recycle_a_busy_one_at_the_drain_limit() {
        let sim = idle_exiting(300, 60_000);
        let idle_pid = iis::pids_of(&sim.workers(), "MSExchangeOWAAppPool")[0];
        let busy = sim.accept_request(SYNC).unwrap();
        run(&sim, &iis::recycle(&pool("MSExchangeOWAAppPool"))).await;
        run(&sim, &iis::recycle(&pool(SYNC))).await;
        assert!(!sim.worker_alive(idle_pid));
        assert!(busy.worker_alive());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!busy.worker_alive(), "killed at the drain limit");
        drop(busy);
        assert_eq!(sim.workers().len(), 6);
    }

    #[tokio::test]
    async fn without_exit_when_idle_an_old_worker_lives_its_drain_time() {
        let sim = sim_with(60_000, 60_000);
        let old = iis::pids_of(&sim.workers(), SYNC)[0];
        run(&sim, &iis::recycle(&pool(SYNC))).await;
        assert!(sim.worker_alive(old));
    }

    #[tokio::test]
    async fn iisreset_refuses_requests_and_kills_the_ones_in_flight() {
        let sim = idle_exiting(60_000, 300);
        let held = sim.accept_request(SYNC).unwrap();
        let reset = tokio::spawn({
            let sim = sim.clone();
            async move { run(&sim, &iis::iisreset()).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!held.worker_alive());
        assert_eq!(sim.accept_request(SYNC).unwrap_err(), Unavailable::IisDown);
        assert_eq!(reset.await.unwrap().exit_code, 0);
        let fresh = sim.accept_request(SYNC).unwrap();
        assert_ne!(fresh.pid(), held.pid());
    }

    #[tokio::test]
    async fn a_stopped_pool_takes_no_request_and_a_started_one_gets_a_worker() {
        let sim = sim();
        assert!(sim.set_pool_state("My Pool", PoolState::Stopped));
        assert_eq!(
            sim.accept_request("My Pool").unwrap_err(),
            Unavailable::PoolNotStarted
        );
        assert_eq!(
            sim.accept_request("StoppedPool").unwrap_err(),
            Unavailable::PoolNotStarted
        );
        assert!(sim.set_pool_state("My Pool", PoolState::Started));
        let r = sim.accept_request("My Pool").unwrap();
        assert_eq!(iis::pids_of(&sim.workers(), "My Pool"), [r.pid()]);
    }

    #[test]
    fn exchange_config_has_the_six_pools() {
        let config = IisSimConfig::exchange("EX09");
        assert_eq!(config.hostname, "EX09");
        let names: Vec<&str> = config.pools.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(&names[..5], iis::EXCHANGE_POOLS);
        assert_eq!(names[5], "DefaultAppPool");
        assert!(config.pools.iter().all(|(_, s)| *s == PoolState::Started));
        assert!(config.failing_pools.is_empty());
        assert!(!config.exit_when_idle);
    }
}
