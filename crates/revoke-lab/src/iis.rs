//! A simulated IIS with Exchange's application pools, answering the commands
//! of `crate::iis` with Windows' output text and exit codes.
//!
//! It plays three programs behind cmd.exe, as a WinRM `cmd` shell runs them:
//! `appcmd.exe` (only by its full path: inetsrv is not on PATH), `iisreset.exe`
//! and `hostname.exe`. Anything else gets cmd's "is not recognized" error.
//!
//! Time comes from `tokio::time`, and worker liveness is computed from
//! deadlines (birth, death) rather than by background tasks, so a paused or
//! real clock both give consistent answers and nothing needs cleaning up.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use revoke_core::iis::{EXCHANGE_POOLS, LEGACY_POOL, PoolState, WorkerProcess};

/// Where `%windir%` points on the simulated server.
const WINDIR: &str = r"C:\Windows";

/// Win32 error codes appcmd exits with.
const ERROR_ACCESS_DENIED: i32 = 5;
const ERROR_SERVICE_NOT_ACTIVE: i32 = 1062;
const ERROR_NOT_FOUND: i32 = 1168;

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

/// What a command printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandResult {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
}

impl CommandResult {
    fn ok(stdout: String) -> Self {
        Self {
            stdout,
            stderr: String::new(),
            exit_code: 0,
        }
    }
    /// appcmd reports its errors on stdout, not stderr.
    fn appcmd_error(stdout: String, exit_code: i32) -> Self {
        Self {
            stdout,
            stderr: String::new(),
            exit_code,
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

/// The IIS services as `iisreset /status` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServiceState {
    Running,
    Stopped,
    StartPending,
}

impl ServiceState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Running => "Running",
            Self::Stopped => "Stopped",
            Self::StartPending => "Start Pending",
        }
    }
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

    /// Run a command as cmd.exe would: `program` and `args` as WinRM sent them.
    pub async fn execute(&self, program: &str, args: &[String]) -> CommandResult {
        // cmd.exe sees one line: it expands %VARS% first, then splits it.
        let line = std::iter::once(program)
            .chain(args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        let line = self.expand_env(&line);
        let tokens = tokenize(&line);
        let Some((first, rest)) = tokens.split_first() else {
            // An empty line does nothing and succeeds.
            return CommandResult::ok(String::new());
        };
        let args: Vec<&str> = rest.iter().map(|t| t.value.as_str()).collect();
        match resolve_program(&first.value) {
            Some(Program::Appcmd) => self.appcmd(&args).await,
            Some(Program::IisReset) => self.iisreset(&args).await,
            Some(Program::Hostname) => self.hostname_cmd(&args),
            None => not_recognized(&first.raw),
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
        self.state().services(Instant::now()) == ServiceState::Running
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

    /// Expands `%windir%`, `%SystemRoot%` and `%COMPUTERNAME%` (any case) as
    /// cmd.exe does; an unknown `%NAME%` stays as typed, like on a cmd line.
    fn expand_env(&self, line: &str) -> String {
        let mut out = String::with_capacity(line.len());
        let mut rest = line;
        while let Some(open) = rest.find('%') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let value = after.find('%').and_then(|close| {
                let name = &after[..close];
                let value = if name.eq_ignore_ascii_case("windir")
                    || name.eq_ignore_ascii_case("SystemRoot")
                {
                    WINDIR
                } else if name.eq_ignore_ascii_case("COMPUTERNAME") {
                    self.hostname()
                } else {
                    return None;
                };
                Some((value, close))
            });
            match value {
                Some((value, close)) => {
                    out.push_str(value);
                    rest = &after[close + 1..];
                }
                None => {
                    out.push('%');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// `hostname.exe`.
    fn hostname_cmd(&self, args: &[&str]) -> CommandResult {
        if args.is_empty() {
            return CommandResult::ok(format!("{}\r\n", self.hostname()));
        }
        // hostname.exe refuses to set the name (uncertain detail: stream).
        CommandResult {
            stdout: "sethostname: Use the Network Control Panel Applet to set hostname.\r\n"
                .to_owned(),
            stderr: String::new(),
            exit_code: 1,
        }
    }

    /// `appcmd.exe VERB OBJECT [identifier] [/param:value...]`.
    async fn appcmd(&self, args: &[&str]) -> CommandResult {
        let Some((verb, rest)) = args.split_first() else {
            return appcmd_usage_error("Command not specified.");
        };
        let Some((object, params)) = rest.split_first() else {
            return appcmd_usage_error(&format!(
                "Object type not specified for command \"{verb}\"."
            ));
        };
        let object = object.to_ascii_lowercase();
        let verb = verb.to_ascii_lowercase();
        let params = match AppcmdParams::parse(params) {
            Ok(params) => params,
            Err(result) => return result,
        };
        match (verb.as_str(), object.as_str()) {
            ("list", "apppool" | "apppools") => self.list_apppools(&params),
            ("list", "wp" | "wps") => self.list_wp(&params),
            ("recycle", "apppool" | "apppools") => self.recycle(&params).await,
            (_, "apppool" | "apppools" | "wp" | "wps") => appcmd_usage_error(&format!(
                "Command \"{verb}\" is not supported on object \"{}\".",
                object.trim_end_matches('s').to_ascii_uppercase()
            )),
            _ => appcmd_usage_error(&format!("Object type \"{object}\" is not supported.")),
        }
    }

    /// `appcmd list apppool [NAME | /apppool.name:NAME] [/state:STATE]`.
    fn list_apppools(&self, params: &AppcmdParams) -> CommandResult {
        let state = self.state();
        let identifier = params.identifier("apppool.name");
        if let Some(id) = identifier
            && state.pool(id).is_none()
        {
            return cannot_find_apppool(id);
        }
        let state_filter = params.named("state");
        let mut out = String::new();
        for (name, pool_state) in &state.pools {
            if identifier.is_some_and(|id| !id.eq_ignore_ascii_case(name))
                || state_filter.is_some_and(|s| !s.eq_ignore_ascii_case(pool_state.as_str()))
            {
                continue;
            }
            out.push_str(&format!(
                "APPPOOL \"{name}\" (MgdVersion:v4.0,MgdMode:Integrated,state:{})\r\n",
                pool_state.as_str()
            ));
        }
        CommandResult::ok(out)
    }

    /// `appcmd list wp [/apppool.name:NAME]`. With no live worker, appcmd
    /// prints nothing at all and still exits 0.
    fn list_wp(&self, params: &AppcmdParams) -> CommandResult {
        let pool_filter = params.named("apppool.name");
        let workers = self.state().live_workers(Instant::now());
        let mut out = String::new();
        for w in workers {
            if pool_filter.is_some_and(|p| !p.eq_ignore_ascii_case(&w.pool)) {
                continue;
            }
            out.push_str(&format!(
                "WP \"{}\" (applicationPool:{})\r\n",
                w.pid, w.pool
            ));
        }
        CommandResult::ok(out)
    }

    /// `appcmd recycle apppool /apppool.name:NAME` (or `... apppool NAME`).
    ///
    /// Errors answer at once; a good recycle answers after `recycle_time`,
    /// then (overlapped recycle) the new worker is up and the old ones drain
    /// for `drain_time`.
    async fn recycle(&self, params: &AppcmdParams) -> CommandResult {
        let Some(id) = params.identifier("apppool.name") else {
            return appcmd_usage_error(
                "Must specify the APPPOOL object with identifier or \"APPPOOL.NAME\" parameter.",
            );
        };
        if let Err(result) = self.check_recyclable(&self.state(), id) {
            return result;
        }
        tokio::time::sleep(self.config().recycle_time).await;

        let now = Instant::now();
        let mut state = self.state();
        // Checked again: an iisreset or a pool stop may have happened meanwhile.
        let name = match self.check_recyclable(&state, id) {
            Ok(name) => name,
            Err(result) => return result,
        };
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
        // appcmd names the pool as configured (uncertain detail).
        CommandResult::ok(format!("\"{name}\" successfully recycled\r\n"))
    }

    /// The pool's configured name if `id` can be recycled now, else the
    /// error appcmd would print.
    fn check_recyclable(&self, state: &State, id: &str) -> Result<String, CommandResult> {
        let Some((name, pool_state)) = state.pool(id) else {
            return Err(cannot_find_apppool(id));
        };
        // During an iisreset WAS is stopped: the same "not started" error.
        if *pool_state != PoolState::Started
            || state.services(Instant::now()) != ServiceState::Running
        {
            return Err(CommandResult::appcmd_error(
                "ERROR ( hresult:80070426, message:Command execution failed.\r\n\
                 The service has not been started.\r\n )\r\n"
                    .to_owned(),
                ERROR_SERVICE_NOT_ACTIVE,
            ));
        }
        if self
            .config()
            .failing_pools
            .iter()
            .any(|p| p.eq_ignore_ascii_case(name))
        {
            return Err(CommandResult::appcmd_error(
                "ERROR ( hresult:80070005, message:Command execution failed.\r\n\
                 Access is denied.\r\n )\r\n"
                    .to_owned(),
                ERROR_ACCESS_DENIED,
            ));
        }
        Ok(name.clone())
    }

    /// `iisreset.exe [/noforce] [/restart] [/timeout:N]` or `iisreset /status`.
    async fn iisreset(&self, args: &[&str]) -> CommandResult {
        let lower: Vec<String> = args.iter().map(|a| a.to_ascii_lowercase()).collect();
        if lower == ["/status"] {
            return self.iisreset_status();
        }
        let restart_options = lower
            .iter()
            .all(|a| matches!(a.as_str(), "/noforce" | "/restart") || a.starts_with("/timeout:"));
        if !restart_options {
            // Other iisreset switches (/stop, /start, /reboot...) are not simulated.
            return CommandResult {
                stdout: IISRESET_USAGE.to_owned(),
                stderr: String::new(),
                exit_code: 1,
            };
        }
        self.restart_iis().await
    }

    fn iisreset_status(&self) -> CommandResult {
        let services = self.state().services(Instant::now()).as_str();
        let out = [
            "IIS Admin Service ( IISADMIN )",
            "Windows Process Activation Service ( WAS )",
            "World Wide Web Publishing Service ( W3SVC )",
        ]
        .iter()
        .map(|service| format!("Status for {service} : {services}\r\n"))
        .collect();
        CommandResult::ok(out)
    }

    /// Stops every worker now; one fresh worker per started pool is born when
    /// the outage ends. The command returns once IIS is back up.
    async fn restart_iis(&self) -> CommandResult {
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
        tokio::time::sleep(downtime).await;
        CommandResult::ok(
            "\r\nAttempting stop...\r\nInternet services successfully stopped\r\n\
             Attempting start...\r\nInternet services successfully restarted\r\n"
                .to_owned(),
        )
    }
}

/// The head of iisreset's help text, printed for switches it does not know.
const IISRESET_USAGE: &str = "\r\nIISRESET.EXE (c) Microsoft Corp. 1998-2005\r\n\r\n\
Usage:\r\n\
iisreset [computername]\r\n\r\n\
    /RESTART            Stop and then restart all Internet services.\r\n\
    /START              Start all Internet services.\r\n\
    /STOP               Stop all Internet services.\r\n\
    /REBOOT             Reboot the computer.\r\n\
    /REBOOTONERROR      Reboot the computer if an error occurs when starting,\r\n\
                        stopping, or restarting Internet services.\r\n\
    /NOFORCE            Do not forcefully terminate Internet services if\r\n\
                        attempting to stop them gracefully fails.\r\n\
    /TIMEOUT:val        Specify the timeout value ( in seconds ) to wait for\r\n\
                        a successful stop of Internet services. On expiration\r\n\
                        of this timeout the computer can be rebooted if\r\n\
                        the /REBOOTONERROR parameter is specified.\r\n\
                        The default value is 20s for restart, 60s for stop,\r\n\
                        and 0s for reboot.\r\n\
    /STATUS             Display the status of all Internet services.\r\n\
    /ENABLE             Enable restarting of Internet Services\r\n\
                        on the local system.\r\n\
    /DISABLE            Disable restarting of Internet Services\r\n\
                        on the local system.\r\n";

/// The parameters after `appcmd VERB OBJECT`: an optional positional
/// identifier and `/name:value` pairs.
#[derive(Debug, Default)]
struct AppcmdParams {
    positional: Option<String>,
    named: Vec<(String, String)>,
}

impl AppcmdParams {
    fn parse(args: &[&str]) -> Result<Self, CommandResult> {
        let mut params = Self::default();
        for arg in args {
            if let Some(pair) = arg.strip_prefix(['/', '-']) {
                let (name, value) = pair.split_once(':').unwrap_or((pair, ""));
                params
                    .named
                    .push((name.to_ascii_lowercase(), value.to_owned()));
            } else if params.positional.is_none() {
                params.positional = Some((*arg).to_owned());
            } else {
                return Err(appcmd_usage_error(&format!(
                    "Unexpected parameter \"{arg}\": only one identifier may be given."
                )));
            }
        }
        Ok(params)
    }

    /// The value of `/name:value` (name compared case-insensitively).
    fn named(&self, name: &str) -> Option<&str> {
        self.named
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The object's identifier: positional, else `/key:value`; empty is none.
    fn identifier(&self, key: &str) -> Option<&str> {
        self.positional
            .as_deref()
            .or_else(|| self.named(key))
            .filter(|id| !id.is_empty())
    }
}

fn cannot_find_apppool(id: &str) -> CommandResult {
    CommandResult::appcmd_error(
        format!("ERROR ( message:Cannot find APPPOOL object with identifier \"{id}\". )\r\n"),
        ERROR_NOT_FOUND,
    )
}

/// An appcmd complaint about how it was called (exit code 1).
fn appcmd_usage_error(message: &str) -> CommandResult {
    CommandResult::appcmd_error(format!("ERROR ( message:{message} )\r\n"), 1)
}

/// cmd.exe's answer for a program it cannot find; `typed` is the first token
/// as it appeared on the (expanded) command line, quotes included.
fn not_recognized(typed: &str) -> CommandResult {
    CommandResult {
        stdout: String::new(),
        stderr: format!(
            "'{typed}' is not recognized as an internal or external command,\r\n\
             operable program or batch file.\r\n"
        ),
        exit_code: 1,
    }
}

/// The programs the simulated server has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Program {
    Appcmd,
    IisReset,
    Hostname,
}

/// Finds a program as cmd.exe would: case-insensitively, `.exe` optional,
/// bare names only for what is on PATH (System32, not inetsrv).
fn resolve_program(program: &str) -> Option<Program> {
    let lower = program.to_ascii_lowercase();
    let name = lower.strip_suffix(".exe").unwrap_or(&lower);
    let system32 = r"c:\windows\system32\";
    let in_system32 = |bare: &str| name == bare || name.strip_prefix(system32) == Some(bare);
    if name.strip_prefix(system32) == Some(r"inetsrv\appcmd") {
        Some(Program::Appcmd)
    } else if in_system32("iisreset") {
        Some(Program::IisReset)
    } else if in_system32("hostname") {
        Some(Program::Hostname)
    } else {
        None
    }
}

/// One word of a cmd line: as typed (`raw`) and with its quotes removed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    raw: String,
    value: String,
}

/// Splits a command line on spaces and tabs outside double quotes; quotes
/// group and are removed (`/a:"b c"` is one word `/a:b c`). Backslash escapes
/// are not interpreted: valid input never needs them.
fn tokenize(line: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut current: Option<Token> = None;
    let mut quoted = false;
    for c in line.chars() {
        if !quoted && (c == ' ' || c == '\t') {
            tokens.extend(current.take());
            continue;
        }
        let token = current.get_or_insert_with(|| Token {
            raw: String::new(),
            value: String::new(),
        });
        token.raw.push(c);
        if c == '"' {
            quoted = !quoted;
        } else {
            token.value.push(c);
        }
    }
    tokens.extend(current);
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;
    use revoke_core::iis::{self, PoolName};

    const APPCMD: &str = r"%windir%\system32\inetsrv\appcmd.exe";

    fn s(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| (*a).to_owned()).collect()
    }

    /// A server with instant commands and the given drain and reset times.
    fn sim_with(drain_ms: u64, reset_ms: u64) -> IisSim {
        let mut config = IisSimConfig::exchange("EX01");
        config.recycle_time = Duration::ZERO;
        config.drain_time = Duration::from_millis(drain_ms);
        config.iisreset_downtime = Duration::from_millis(reset_ms);
        config.pools.push(("My Pool".into(), PoolState::Started));
        config
            .pools
            .push(("StoppedPool".into(), PoolState::Stopped));
        config.failing_pools = vec!["MSExchangeOWAAppPool".into()];
        IisSim::new(config)
    }

    fn sim() -> IisSim {
        sim_with(60_000, 60_000)
    }

    async fn run(sim: &IisSim, cmd: &iis::RemoteCommand) -> CommandResult {
        sim.execute(&cmd.program, &cmd.args).await
    }

    fn pool(name: &str) -> PoolName {
        PoolName::parse(name).unwrap()
    }

    #[test]
    fn tokenize_honours_quotes() {
        let values =
            |line: &str| -> Vec<String> { tokenize(line).into_iter().map(|t| t.value).collect() };
        assert_eq!(
            values(r#"appcmd  recycle apppool /apppool.name:"My Pool""#),
            ["appcmd", "recycle", "apppool", "/apppool.name:My Pool"]
        );
        assert_eq!(values("a\tb"), ["a", "b"]);
        assert_eq!(values(r#""C:\x y\z.exe" a"#), [r"C:\x y\z.exe", "a"]);
        assert_eq!(tokenize(r#""C:\x y\z.exe" a"#)[0].raw, r#""C:\x y\z.exe""#);
        assert!(values("   ").is_empty());
    }

    #[test]
    fn resolves_programs_like_cmd() {
        // Receives the program after %VAR% expansion (tested via `execute`).
        for p in [
            r"C:\Windows\system32\inetsrv\appcmd.exe",
            r"c:\windows\SYSTEM32\INETSRV\APPCMD",
        ] {
            assert_eq!(resolve_program(p), Some(Program::Appcmd), "{p}");
        }
        for p in ["appcmd", "appcmd.exe", r"inetsrv\appcmd.exe"] {
            assert_eq!(resolve_program(p), None, "{p}");
        }
        assert_eq!(resolve_program("IISRESET.exe"), Some(Program::IisReset));
        assert_eq!(resolve_program("hostname"), Some(Program::Hostname));
        assert_eq!(
            resolve_program(r"C:\Windows\System32\hostname.exe"),
            Some(Program::Hostname)
        );
        assert_eq!(resolve_program("powershell"), None);
    }

    #[tokio::test]
    async fn env_expansion_variants_reach_appcmd() {
        let sim = sim();
        for program in [
            r"%windir%\system32\inetsrv\appcmd.exe",
            r"%WINDIR%\System32\inetsrv\appcmd",
            r"%SystemRoot%\system32\inetsrv\appcmd.exe",
            r"C:\Windows\system32\inetsrv\appcmd.exe",
            r#""%windir%\system32\inetsrv\appcmd.exe""#,
        ] {
            let r = sim.execute(program, &s(&["list", "wp"])).await;
            assert_eq!(r.exit_code, 0, "{program}: {r:?}");
            assert!(r.stdout.starts_with("WP \""), "{program}: {r:?}");
        }
    }

    #[tokio::test]
    async fn bare_appcmd_is_not_recognized() {
        let r = sim().execute("appcmd", &s(&["list", "wp"])).await;
        assert_eq!(
            r,
            CommandResult {
                stdout: String::new(),
                stderr: "'appcmd' is not recognized as an internal or external command,\r\n\
                         operable program or batch file.\r\n"
                    .into(),
                exit_code: 1,
            }
        );
        let r = sim().execute("Get-WebAppPoolState", &[]).await;
        assert!(
            r.stderr
                .starts_with("'Get-WebAppPoolState' is not recognized")
        );
        // Unknown %VARS% stay as typed, like cmd.exe leaves them.
        let r = sim().execute("%NOPE%\\x.exe", &[]).await;
        assert!(
            r.stderr.starts_with("'%NOPE%\\x.exe' is not recognized"),
            "{r:?}"
        );
        assert_eq!(
            iis::error_message(&r.stdout, &r.stderr),
            "'%NOPE%\\x.exe' is not recognized as an internal or external command, operable program or batch file."
        );
    }

    #[tokio::test]
    async fn hostname_prints_configured_name() {
        let sim = sim();
        for program in ["hostname", "HOSTNAME.EXE"] {
            let r = sim.execute(program, &[]).await;
            assert_eq!(r, CommandResult::ok("EX01\r\n".into()));
        }
        assert_eq!(run(&sim, &iis::hostname()).await.stdout.trim(), "EX01");
        let r = sim.execute("hostname", &s(&["NEW"])).await;
        assert_eq!(r.exit_code, 1);
        // %COMPUTERNAME% expands to the hostname, as cmd.exe does.
        let r = sim.execute("%COMPUTERNAME%", &[]).await;
        assert!(r.stderr.starts_with("'EX01' is not recognized"), "{r:?}");
    }

    #[tokio::test]
    async fn list_apppool_round_trip() {
        let sim = sim();
        let r = run(&sim, &iis::list_apppools()).await;
        assert_eq!(r.exit_code, 0);
        assert!(r.stdout.starts_with(
            "APPPOOL \"MSExchangeSyncAppPool\" (MgdVersion:v4.0,MgdMode:Integrated,state:Started)\r\n"
        ));
        assert!(
            !r.stdout.replace("\r\n", "").contains('\n'),
            "only CRLF line ends"
        );
        let pools = iis::parse_apppools(&r.stdout);
        assert_eq!(pools.len(), 8);
        assert_eq!(pools[5].name, "DefaultAppPool");
        assert_eq!(pools[6].name, "My Pool");
        assert_eq!(pools[7].state, PoolState::Stopped);
        assert!(pools[..7].iter().all(|p| p.state == PoolState::Started));
    }

    #[tokio::test]
    async fn list_apppool_by_identifier_and_state() {
        let sim = sim();
        let r = sim
            .execute(APPCMD, &s(&["list", "apppool", "\"my pool\""]))
            .await;
        assert_eq!(iis::parse_apppools(&r.stdout).len(), 1);
        let r = sim
            .execute(APPCMD, &s(&["list", "apppool", "/state:Stopped"]))
            .await;
        let pools = iis::parse_apppools(&r.stdout);
        assert_eq!(pools.len(), 1);
        assert_eq!(pools[0].name, "StoppedPool");
        let r = sim.execute(APPCMD, &s(&["list", "apppool", "Nope"])).await;
        assert_eq!(r.exit_code, 1168);
    }

    #[tokio::test]
    async fn list_wp_round_trip_initial_state() {
        let sim = sim();
        let r = run(&sim, &iis::list_workers()).await;
        assert_eq!(r.exit_code, 0);
        let workers = iis::parse_workers(&r.stdout);
        assert_eq!(workers, sim.workers());
        // One worker per started pool, none for the stopped one.
        assert_eq!(workers.len(), 7);
        assert!(iis::pids_of(&workers, "StoppedPool").is_empty());
        for w in &workers {
            assert_eq!(w.pid % 4, 0, "{w:?}");
            assert!((1000..100_000).contains(&w.pid), "{w:?}");
        }
        let mut pids: Vec<u32> = workers.iter().map(|w| w.pid).collect();
        pids.sort_unstable();
        pids.dedup();
        assert_eq!(pids.len(), 7, "PIDs are unique");
    }

    #[tokio::test]
    async fn list_wp_with_no_workers_prints_nothing() {
        let mut config = IisSimConfig::exchange("EX02");
        for p in &mut config.pools {
            p.1 = PoolState::Stopped;
        }
        let sim = IisSim::new(config);
        let r = run(&sim, &iis::list_workers()).await;
        assert_eq!(r, CommandResult::ok(String::new()));
    }

    #[tokio::test]
    async fn recycle_overlaps_then_drains() {
        let sim = sim_with(400, 60_000);
        let name = "MSExchangeSyncAppPool";
        let before = iis::pids_of(
            &iis::parse_workers(&run(&sim, &iis::list_workers()).await.stdout),
            name,
        );
        assert_eq!(before.len(), 1);

        let r = run(&sim, &iis::recycle(&pool(name))).await;
        assert_eq!(
            r,
            CommandResult::ok(format!("\"{name}\" successfully recycled\r\n"))
        );

        let during = iis::pids_of(
            &iis::parse_workers(&run(&sim, &iis::list_workers()).await.stdout),
            name,
        );
        assert_eq!(during.len(), 2, "old and new worker overlap: {during:?}");
        assert!(during.contains(&before[0]), "old worker still draining");
        let new_pid = *during.iter().find(|p| **p != before[0]).unwrap();
        assert!(new_pid > before[0]);
        assert_eq!(new_pid % 4, 0);

        tokio::time::sleep(Duration::from_millis(600)).await;
        // Liveness follows deadlines: no background task needed.
        assert_eq!(iis::pids_of(&sim.workers(), name), [new_pid]);
        let after = iis::pids_of(
            &iis::parse_workers(&run(&sim, &iis::list_workers()).await.stdout),
            name,
        );
        assert_eq!(after, [new_pid], "old worker gone after drain");
        // Other pools untouched.
        assert_eq!(sim.workers().len(), 7);
    }

    #[tokio::test]
    async fn recycle_takes_recycle_time() {
        let mut config = IisSimConfig::exchange("EX01");
        config.recycle_time = Duration::from_millis(200);
        let sim = IisSim::new(config);
        let start = Instant::now();
        let r = run(&sim, &iis::recycle(&pool("MSExchangeOWAAppPool"))).await;
        assert_eq!(r.exit_code, 0);
        assert!(start.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn recycle_accepts_quoted_unquoted_and_positional_forms() {
        let sim = sim();
        for args in [
            ["recycle", "apppool", "/apppool.name:\"My Pool\""].as_slice(),
            &["recycle", "apppool", "\"My Pool\""],
            &["RECYCLE", "APPPOOL", "/APPPOOL.NAME:\"my pool\""],
        ] {
            let r = sim.execute(APPCMD, &s(args)).await;
            assert_eq!(
                r,
                CommandResult::ok("\"My Pool\" successfully recycled\r\n".into()),
                "{args:?}"
            );
        }
        for args in [
            ["recycle", "apppool", "/apppool.name:MSExchangeSyncAppPool"].as_slice(),
            &["recycle", "apppool", "MSExchangeSyncAppPool"],
        ] {
            let r = sim.execute(APPCMD, &s(args)).await;
            assert_eq!(r.exit_code, 0, "{args:?}: {r:?}");
        }
        assert_eq!(iis::pids_of(&sim.workers(), "My Pool").len(), 4);
        // Unquoted, a space splits the name: appcmd sees two identifiers.
        let r = sim
            .execute(APPCMD, &s(&["recycle", "apppool", "My", "Pool"]))
            .await;
        assert_ne!(r.exit_code, 0);
    }

    #[tokio::test]
    async fn recycle_unknown_pool_round_trip() {
        let sim = sim();
        let r = run(&sim, &iis::recycle(&pool("NoSuchPool"))).await;
        assert_eq!(r.exit_code, 1168);
        assert_eq!(
            r.stdout,
            "ERROR ( message:Cannot find APPPOOL object with identifier \"NoSuchPool\". )\r\n"
        );
        let msg = iis::error_message(&r.stdout, &r.stderr);
        assert!(msg.starts_with("Cannot find APPPOOL object"), "{msg}");
    }

    #[tokio::test]
    async fn recycle_stopped_pool_fails_not_started() {
        let sim = sim();
        let r = run(&sim, &iis::recycle(&pool("StoppedPool"))).await;
        assert_eq!(r.exit_code, 1062);
        assert_eq!(
            r.stdout,
            "ERROR ( hresult:80070426, message:Command execution failed.\r\nThe service has not been started.\r\n )\r\n"
        );
        assert_eq!(
            iis::error_message(&r.stdout, &r.stderr),
            "Command execution failed. The service has not been started. (hresult 80070426)"
        );
        assert!(sim.workers().iter().all(|w| w.pool != "StoppedPool"));
    }

    #[tokio::test]
    async fn recycle_failing_pool_is_access_denied() {
        let sim = sim();
        let before = sim.workers();
        let r = run(&sim, &iis::recycle(&pool("MSExchangeOWAAppPool"))).await;
        assert_eq!(r.exit_code, 5);
        assert_eq!(
            r.stdout,
            "ERROR ( hresult:80070005, message:Command execution failed.\r\nAccess is denied.\r\n )\r\n"
        );
        let msg = iis::error_message(&r.stdout, &r.stderr);
        assert!(msg.contains("Access is denied"), "{msg}");
        assert!(msg.contains("(hresult 80070005)"), "{msg}");
        assert_eq!(sim.workers(), before, "nothing recycled");
    }

    #[tokio::test]
    async fn recycle_without_identifier_is_an_appcmd_error() {
        let sim = sim();
        for args in [
            ["recycle", "apppool"].as_slice(),
            &["recycle", "apppool", "/apppool.name:"],
            &["recycle", "apppool", "/apppool.name:\"\""],
        ] {
            let r = sim.execute(APPCMD, &s(args)).await;
            assert_eq!(r.exit_code, 1, "{args:?}");
            assert!(r.stdout.starts_with("ERROR ( message:"), "{r:?}");
            assert!(iis::error_message(&r.stdout, &r.stderr).contains("Must specify"));
        }
    }

    #[tokio::test]
    async fn appcmd_unknown_verb_or_object_fails() {
        let sim = sim();
        for args in [
            [].as_slice(),
            &["list"],
            &["delete", "apppool", "X"],
            &["list", "site"],
        ] {
            let r = sim.execute(APPCMD, &s(args)).await;
            assert_eq!(r.exit_code, 1, "{args:?}");
            assert!(r.stdout.starts_with("ERROR ( message:"), "{r:?}");
        }
    }

    #[tokio::test]
    async fn iisreset_status_when_running() {
        let sim = sim();
        let r = run(&sim, &iis::iisreset_status()).await;
        assert_eq!(
            r,
            CommandResult::ok(
                "Status for IIS Admin Service ( IISADMIN ) : Running\r\n\
                 Status for Windows Process Activation Service ( WAS ) : Running\r\n\
                 Status for World Wide Web Publishing Service ( W3SVC ) : Running\r\n"
                    .into()
            )
        );
        assert!(iis::iis_running(&r.stdout));
        assert!(sim.iis_running());
    }

    #[tokio::test]
    async fn iisreset_takes_iis_down_then_brings_fresh_workers() {
        // 2 s outage: "Stopped" for 1.5 s, then "Start Pending"; checks sit
        // well inside each phase so a loaded machine does not flake.
        let sim = sim_with(60_000, 2_000);
        let old: Vec<u32> = sim.workers().iter().map(|w| w.pid).collect();

        let start = Instant::now();
        let reset = tokio::spawn({
            let sim = sim.clone();
            async move { run(&sim, &iis::iisreset()).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;

        // Early in the outage: everything stopped, no workers.
        let status = run(&sim, &iis::iisreset_status()).await;
        assert_eq!(status.exit_code, 0);
        assert!(status.stdout.contains("( W3SVC ) : Stopped"), "{status:?}");
        assert!(!iis::iis_running(&status.stdout));
        let wp = run(&sim, &iis::list_workers()).await;
        assert_eq!(wp, CommandResult::ok(String::new()));
        // Recycling while WAS is down fails.
        let r = run(&sim, &iis::recycle(&pool("MSExchangeSyncAppPool"))).await;
        assert_eq!(r.exit_code, 1062);

        // Late in the outage: Start Pending.
        tokio::time::sleep_until(start + Duration::from_millis(1_750)).await;
        let status = run(&sim, &iis::iisreset_status()).await;
        assert!(status.stdout.contains(": Start Pending"), "{status:?}");
        assert!(!iis::iis_running(&status.stdout));

        let r = reset.await.unwrap();
        assert_eq!(
            r,
            CommandResult::ok(
                "\r\nAttempting stop...\r\nInternet services successfully stopped\r\n\
                 Attempting start...\r\nInternet services successfully restarted\r\n"
                    .into()
            )
        );
        assert!(iis::iis_running(
            &run(&sim, &iis::iisreset_status()).await.stdout
        ));
        let workers = iis::parse_workers(&run(&sim, &iis::list_workers()).await.stdout);
        assert_eq!(workers.len(), 7, "one fresh worker per started pool");
        assert!(
            workers.iter().all(|w| !old.contains(&w.pid)),
            "all PIDs fresh"
        );
    }

    #[tokio::test]
    async fn iisreset_takes_its_downtime_and_accepts_plain_form() {
        let sim = sim_with(60_000, 200);
        let start = Instant::now();
        let r = sim.execute("iisreset", &[]).await;
        assert_eq!(r.exit_code, 0);
        assert!(start.elapsed() >= Duration::from_millis(200));
        assert!(
            r.stdout
                .ends_with("Internet services successfully restarted\r\n")
        );
        let r = sim
            .execute("iisreset.exe", &s(&["/NOFORCE", "/timeout:30"]))
            .await;
        assert_eq!(r.exit_code, 0);
        let r = sim.execute("iisreset", &s(&["/bogus"])).await;
        assert_eq!(r.exit_code, 1);
    }

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

    fn idle_exiting(drain_ms: u64, reset_ms: u64) -> IisSim {
        let mut config = IisSimConfig::exchange("EX01");
        config.recycle_time = Duration::ZERO;
        config.drain_time = Duration::from_millis(drain_ms);
        config.iisreset_downtime = Duration::from_millis(reset_ms);
        config.exit_when_idle = true;
        IisSim::new(config)
    }

    const SYNC: &str = "MSExchangeSyncAppPool";

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
