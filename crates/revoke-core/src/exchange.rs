//! The job on one Exchange server: connect, look at its pools and workers,
//! recycle (or iisreset), and check which workers replaced which.
//!
//! Only `hostname`, `appcmd list ...` and `iisreset /status` are sent in a
//! dry run; the mutating commands are sent at most once each.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::events::EventSink;
use crate::events::{ActionOutcome, ActionStatus, Event, ServerStatus, Step};
use crate::iis::{self, AppPool, PoolState, RemoteCommand, WorkerProcess};
use crate::plan::{FlushPlan, Method, Target};
use revoke_winrm::{CommandOutput, Connector, Shell, WinrmError};

/// What the job learned so far; survives a timeout of the job's future.
#[derive(Debug, Default)]
pub struct JobState {
    pub computer: Option<String>,
    /// A mutating command was sent: the job must not be retried blindly.
    pub mutated: bool,
    /// Actions that succeeded (recycled or reset) so far.
    pub succeeded: usize,
    pub failed: usize,
    /// When none of the workers from before the flush was running any more.
    pub old_workers_exited_at: Option<SystemTime>,
    /// Old workers still running at the drain deadline, in words.
    pub draining: Vec<String>,
}

pub type SharedState = Arc<Mutex<JobState>>;

/// Why a job stopped before finishing.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Winrm(#[from] WinrmError),
    /// A read-only command the job depends on failed on the server.
    #[error("{0}")]
    Command(String),
}

impl JobError {
    pub fn is_transient(&self) -> bool {
        matches!(self, JobError::Winrm(e) if e.is_transient())
    }
    pub fn is_unreachable(&self) -> bool {
        matches!(self, JobError::Winrm(e) if e.is_unreachable())
    }
    /// The server stopped answering (as opposed to answering with an error).
    pub fn is_no_answer(&self) -> bool {
        matches!(self, JobError::Winrm(WinrmError::NoAnswer(_)))
    }
}

/// How often `iisreset /status` is asked while IIS restarts.
const IIS_STATUS_POLL: Duration = Duration::from_millis(500);
/// How often `appcmd list wp` is asked while old workers drain.
const DRAIN_POLL: Duration = Duration::from_millis(250);
/// Stop waiting for old workers this long before the server's timeout, so
/// the report can still say which are draining.
const DRAIN_MARGIN: Duration = Duration::from_secs(3);

pub struct ServerJob<'a> {
    pub plan: &'a FlushPlan,
    pub target: &'a Target,
    pub connector: &'a Connector,
    pub events: &'a EventSink,
    pub state: SharedState,
    /// The server's whole job must end by then (`--timeout`).
    pub deadline: Instant,
}

impl ServerJob<'_> {
    fn step(&self, step: Step) {
        self.events.emit(Event::StepChanged {
            server: self.target.label.clone(),
            step,
        });
    }

    fn action(&self, action: ActionOutcome) {
        {
            let mut state = self.state.lock().expect("job state");
            match action.status {
                ActionStatus::Recycled | ActionStatus::Reset => state.succeeded += 1,
                ActionStatus::Failed => state.failed += 1,
                _ => {}
            }
        }
        self.events.emit(Event::ActionFinished {
            server: self.target.label.clone(),
            action,
        });
    }

    /// One attempt at the whole server. The status says how it ended when
    /// nothing went wrong at the transport level.
    pub async fn run(&self) -> Result<ServerStatus, JobError> {
        self.step(Step::Connecting);
        let client = self.connector.client(&self.target.host, self.target.port);
        let shell = client.open_shell().await?;
        let result = self.run_in(&shell).await;
        // The shell would time out on its own; closing is courtesy, not correctness.
        let _ = shell.close().await;
        result
    }

    async fn run_in(&self, shell: &Shell<'_>) -> Result<ServerStatus, JobError> {
        self.step(Step::Listing);
        let computer = run(shell, &iis::hostname())
            .await?
            .stdout
            .trim()
            .to_string();
        self.state.lock().expect("job state").computer = Some(computer);

        let listed = run(shell, &iis::list_apppools()).await?;
        if listed.exit_code != 0 {
            return Err(command_failed("appcmd list apppool", &listed));
        }
        let pools = iis::parse_apppools(&listed.stdout);
        let before = self.list_workers(shell).await?;

        match self.plan.method {
            Method::Recycle => self.recycle(shell, &pools, &before).await?,
            Method::Iisreset => self.iisreset(shell, &before).await?,
        }

        let state = self.state.lock().expect("job state");
        Ok(if self.plan.dry_run {
            ServerStatus::Planned
        } else if state.failed == 0 && !state.draining.is_empty() {
            ServerStatus::Draining
        } else if state.failed == 0 {
            ServerStatus::Ok
        } else if state.succeeded > 0 {
            ServerStatus::Partial
        } else {
            ServerStatus::Failed
        })
    }

    async fn list_workers(&self, shell: &Shell<'_>) -> Result<Vec<WorkerProcess>, JobError> {
        let out = run(shell, &iis::list_workers()).await?;
        if out.exit_code != 0 {
            return Err(command_failed("appcmd list wp", &out));
        }
        Ok(iis::parse_workers(&out.stdout))
    }

    async fn recycle(
        &self,
        shell: &Shell<'_>,
        pools: &[AppPool],
        before: &[WorkerProcess],
    ) -> Result<(), JobError> {
        let mut recycled = Vec::new();
        for pool in self.plan.pools_for(self.target) {
            let old_pids = iis::pids_of(before, pool.as_str());
            let outcome = |status, message: Option<String>| ActionOutcome {
                pool: pool.to_string(),
                status,
                old_pids: old_pids.clone(),
                new_pids: Vec::new(),
                draining_pids: Vec::new(),
                message,
            };
            let found = pools
                .iter()
                .find(|p| p.name.eq_ignore_ascii_case(pool.as_str()));
            let command = iis::recycle(&pool);
            match found {
                None => self.action(outcome(
                    ActionStatus::Absent,
                    Some("no such application pool on this server".into()),
                )),
                Some(p) if p.state == PoolState::Stopped => self.action(outcome(
                    ActionStatus::Stopped,
                    Some("pool is stopped: no worker process holds tokens; not recycled".into()),
                )),
                Some(_) if self.plan.dry_run => self.action(outcome(
                    ActionStatus::Planned,
                    Some(format!("would run: {}", command.command_line())),
                )),
                Some(_) => {
                    self.step(Step::Recycling(pool.to_string()));
                    self.state.lock().expect("job state").mutated = true;
                    let out = run(shell, &command).await?;
                    if out.exit_code == 0 {
                        // Reported now so a later timeout cannot hide it; the
                        // verification below adds the new worker PIDs.
                        self.action(outcome(ActionStatus::Recycled, None));
                        recycled.push((pool.to_string(), old_pids.clone()));
                    } else {
                        self.action(outcome(
                            ActionStatus::Failed,
                            Some(format!(
                                "{} (exit code {})",
                                iis::error_message(&out.stdout, &out.stderr),
                                out.exit_code
                            )),
                        ));
                    }
                }
            }
        }
        if self.plan.dry_run {
            return Ok(());
        }
        self.step(Step::Verifying);
        let after = self.wait_for_old_workers(shell, &recycled).await?;
        for (pool, old_pids) in recycled {
            let running = iis::pids_of(&after, &pool);
            let new_pids: Vec<u32> = running
                .iter()
                .copied()
                .filter(|pid| !old_pids.contains(pid))
                .collect();
            let draining_pids: Vec<u32> = old_pids
                .iter()
                .copied()
                .filter(|pid| running.contains(pid))
                .collect();
            let message = if !draining_pids.is_empty() {
                Some(format!(
                    "old worker(s) {} still running at the drain deadline: they keep their cached tokens until they exit",
                    list(&draining_pids)
                ))
            } else if new_pids.is_empty() {
                Some("no new worker yet: IIS starts one on the next request".to_string())
            } else {
                None
            };
            if !draining_pids.is_empty() {
                self.state
                    .lock()
                    .expect("job state")
                    .draining
                    .push(format!("{pool}: pid {}", list(&draining_pids)));
            }
            self.events.emit(Event::ActionFinished {
                server: self.target.label.clone(),
                action: ActionOutcome {
                    pool,
                    status: ActionStatus::Recycled,
                    old_pids,
                    new_pids,
                    draining_pids,
                    message,
                },
            });
        }
        Ok(())
    }

    /// Polls the workers until none of the recycled pools' old workers runs,
    /// or the drain deadline; returns the last listing. An old worker keeps
    /// serving requests it had accepted (an ActiveSync long poll), with the
    /// tokens it cached, until it exits.
    async fn wait_for_old_workers(
        &self,
        shell: &Shell<'_>,
        recycled: &[(String, Vec<u32>)],
    ) -> Result<Vec<WorkerProcess>, JobError> {
        let margin = DRAIN_MARGIN.min(self.plan.timeout / 4);
        let give_up = (Instant::now() + self.plan.drain_timeout)
            .min(self.deadline.checked_sub(margin).unwrap_or(self.deadline));
        loop {
            let after = self.list_workers(shell).await?;
            let alive: Vec<u32> = recycled
                .iter()
                .flat_map(|(pool, old)| {
                    let running = iis::pids_of(&after, pool);
                    old.iter()
                        .copied()
                        .filter(move |pid| running.contains(pid))
                        .collect::<Vec<_>>()
                })
                .collect();
            if alive.is_empty() {
                self.state.lock().expect("job state").old_workers_exited_at =
                    Some(SystemTime::now());
                return Ok(after);
            }
            if Instant::now() + DRAIN_POLL >= give_up {
                return Ok(after);
            }
            self.step(Step::Draining(alive));
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }

    async fn iisreset(&self, shell: &Shell<'_>, before: &[WorkerProcess]) -> Result<(), JobError> {
        let mut old_pids: Vec<u32> = before.iter().map(|w| w.pid).collect();
        old_pids.sort_unstable();
        let command = iis::iisreset();
        let outcome = |status, new_pids, message| ActionOutcome {
            pool: "*".into(),
            status,
            old_pids: old_pids.clone(),
            new_pids,
            draining_pids: Vec::new(),
            message,
        };
        if self.plan.dry_run {
            self.action(outcome(
                ActionStatus::Planned,
                Vec::new(),
                Some(format!("would run: {}", command.command_line())),
            ));
            return Ok(());
        }
        self.step(Step::Resetting);
        self.state.lock().expect("job state").mutated = true;
        let out = run(shell, &command).await?;
        if out.exit_code != 0 {
            self.action(outcome(
                ActionStatus::Failed,
                Vec::new(),
                Some(format!(
                    "{} (exit code {})",
                    iis::error_message(&out.stdout, &out.stderr),
                    out.exit_code
                )),
            ));
            return Ok(());
        }
        // The next wave may start only once this server serves again.
        self.step(Step::WaitingForIis);
        loop {
            let status = run(shell, &iis::iisreset_status()).await?;
            if status.exit_code == 0 && iis::iis_running(&status.stdout) {
                break;
            }
            tokio::time::sleep(IIS_STATUS_POLL).await;
        }
        self.step(Step::Verifying);
        let after = self.list_workers(shell).await?;
        let mut new_pids: Vec<u32> = after
            .iter()
            .map(|w| w.pid)
            .filter(|pid| !old_pids.contains(pid))
            .collect();
        new_pids.sort_unstable();
        // iisreset stops every worker before IIS runs again.
        if !after.iter().any(|w| old_pids.contains(&w.pid)) {
            self.state.lock().expect("job state").old_workers_exited_at = Some(SystemTime::now());
        }
        self.action(outcome(ActionStatus::Reset, new_pids, None));
        Ok(())
    }
}

fn list(pids: &[u32]) -> String {
    pids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

async fn run(shell: &Shell<'_>, command: &RemoteCommand) -> Result<CommandOutput, WinrmError> {
    shell.run(&command.program, &command.args).await
}

fn command_failed(what: &str, out: &CommandOutput) -> JobError {
    JobError::Command(format!(
        "{what} failed (exit code {}): {}",
        out.exit_code,
        iis::error_message(&out.stdout, &out.stderr)
    ))
}
