//! The job on one Exchange server: connect, look at its pools and workers,
//! recycle (or iisreset), and check which workers replaced which.
//!
//! Few round trips: each WinRM command costs at least three (Command,
//! Receive, Signal), so related commands go in one cmd.exe line
//! ([`iis::Batch`]): hostname and both listings in one, every pool's recycle
//! and the first drain check in another, then one `appcmd list wp` per
//! drain poll. With the NTLM handshake, the shell's Create and Delete, and
//! one drain poll, that is 12 HTTP requests per server for a recycle flush
//! (it was 31). A server answers a Receive as soon as the line printed
//! something, so while recycles take time each pool's result comes in a
//! Receive of its own (up to 16 requests): that is what lets every recycle
//! be reported as soon as it happened.
//!
//! Only `hostname`, `appcmd list ...` and `iisreset /status` are sent in a
//! dry run; the mutating commands are sent at most once each
//! ([`Shell::run_mutating`]): when one was sent and no trustworthy answer
//! came back, its actions are reported `unknown` (it may have run).
//!
//! What a server printed is quoted in messages only through [`quoted`],
//! which strips control characters: it ends up on the operator's terminal.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::events::EventSink;
use crate::events::{ActionOutcome, ActionStatus, Event, ServerStatus, Step};
use crate::iis::{
    self, AppPool, Batch, PartOutput, PoolName, PoolState, RemoteCommand, WorkerProcess,
};
use crate::plan::{FlushPlan, Method, Target};
use revoke_winrm::{CommandOutput, Connector, Shell, WinrmError, sanitize};

/// What the job learned so far; survives a timeout of the job's future.
#[derive(Debug, Default)]
pub struct JobState {
    pub computer: Option<String>,
    pub auth: Option<revoke_winrm::Mechanism>,
    /// A mutating command was sent: the job must not be retried blindly.
    pub mutated: bool,
    /// Actions that succeeded (recycled or reset) so far.
    pub succeeded: usize,
    pub failed: usize,
    /// When none of the workers from before the flush was running any more.
    pub old_workers_exited_at: Option<SystemTime>,
    /// Old workers still running at the drain deadline, in words.
    pub draining: Vec<String>,
    /// Actions of a mutating command that was sent and not yet reported:
    /// if the job's time runs out, each is reported `unknown` (it may have run).
    pub unreported: Vec<ActionOutcome>,
}

impl JobState {
    /// The actions still unreported when the job's time ran out, as
    /// `unknown`: their command was sent and may have run.
    pub fn take_unreported(&mut self, timeout: Duration) -> Vec<ActionOutcome> {
        let mut actions = std::mem::take(&mut self.unreported);
        for action in &mut actions {
            action.status = ActionStatus::Unknown;
            action.message = Some(format!(
                "sent, then no answer within {} s (--timeout): it may have run (it is not \
                 sent again: check the server)",
                timeout.as_secs()
            ));
        }
        actions
    }
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
            state.unreported.retain(|a| a.pool != action.pool);
            match action.status {
                ActionStatus::Recycled | ActionStatus::Reset => state.succeeded += 1,
                ActionStatus::Failed | ActionStatus::Unknown => state.failed += 1,
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
        let shell = client.open_shell().await;
        self.state.lock().expect("job state").auth = client.mechanism();
        let shell = shell?;
        let result = self.run_in(&shell).await;
        // The shell would time out on its own; closing is courtesy, not correctness.
        let _ = shell.close().await;
        result
    }

    async fn run_in(&self, shell: &Shell<'_>) -> Result<ServerStatus, JobError> {
        self.step(Step::Listing);
        let survey = iis::survey();
        let out = run(shell, &survey.command()).await?;
        let [hostname, apppools, workers] = all_parts(&survey, &out)?;
        let computer = sanitize(&hostname.stdout);
        self.state.lock().expect("job state").computer = Some(computer);
        if apppools.exit_code != 0 {
            return Err(part_failed("appcmd list apppool", &apppools, &out));
        }
        let pools = iis::parse_apppools(&apppools.stdout);
        if workers.exit_code != 0 {
            return Err(part_failed("appcmd list wp", &workers, &out));
        }
        let before = iis::parse_workers(&workers.stdout);

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
        // In the plan's order: what needs no command is reported as is, the
        // rest is recycled, all in one command line.
        let mut actions = Vec::new();
        let mut to_recycle: Vec<PoolName> = Vec::new();
        for pool in self.plan.pools_for(self.target) {
            let old_pids = iis::pids_of(before, pool.as_str());
            let found = pools
                .iter()
                .find(|p| p.name.eq_ignore_ascii_case(pool.as_str()));
            let (status, message) = match found {
                None => (
                    ActionStatus::Absent,
                    Some("no such application pool on this server".to_string()),
                ),
                Some(p) if p.state == PoolState::Stopped => (
                    ActionStatus::Stopped,
                    Some("pool is stopped: no worker process holds tokens; not recycled".into()),
                ),
                Some(_) if self.plan.dry_run => (
                    ActionStatus::Planned,
                    Some(format!("would run: {}", iis::recycle(&pool).command_line())),
                ),
                Some(_) => {
                    actions.push(Pending::Recycle {
                        pool: pool.clone(),
                        old_pids,
                    });
                    to_recycle.push(pool);
                    continue;
                }
            };
            actions.push(Pending::Report(outcome(&pool, status, old_pids, message)));
        }
        let mut report = InOrder {
            job: self,
            actions,
            next: 0,
            recycled: Vec::new(),
        };
        if to_recycle.is_empty() {
            report.flush_reports();
            if !self.plan.dry_run {
                // Nothing recycled: no old worker to wait for.
                self.state.lock().expect("job state").old_workers_exited_at =
                    Some(SystemTime::now());
            }
            return Ok(());
        }

        let batch = iis::recycle_pools(&to_recycle);
        report.flush_reports();
        self.step(Step::Recycling(to_recycle[0].to_string()));
        // Journaled before it is sent; if it cannot be, it is not sent.
        self.events
            .emit_durable(Event::ServerMutating {
                server: self.target.label.clone(),
                method: Method::Recycle,
                pools: to_recycle.iter().map(|p| p.to_string()).collect(),
                old_pids: before.iter().map(|w| w.pid).collect(),
            })
            .map_err(|e| JobError::Command(format!("nothing was sent: {e}")))?;
        {
            let mut state = self.state.lock().expect("job state");
            state.mutated = true;
            state.unreported = to_recycle
                .iter()
                .map(|pool| {
                    outcome(
                        pool,
                        ActionStatus::Unknown,
                        iis::pids_of(before, pool.as_str()),
                        None,
                    )
                })
                .collect();
        }
        let command = batch.command();
        let mut reported = 0;
        // Each pool is reported as soon as its result is in, so a later
        // timeout cannot hide a recycle that happened.
        let sent = shell
            .run_mutating(
                "the recycle line",
                &command.program,
                &command.args,
                |stdout, stderr| {
                    for part in batch.finished(stdout).into_iter().skip(reported) {
                        report.part_done(&part, stderr);
                        reported += 1;
                        if let Some(next) = to_recycle.get(reported) {
                            self.step(Step::Recycling(next.to_string()));
                        }
                    }
                },
            )
            .await;
        let out = match sent {
            Ok(out) => out,
            Err(e) => {
                // Never resent: what was not reported may have run.
                report.interrupted(&e);
                return Err(e.into());
            }
        };
        let parts = batch.finished(&out.stdout);
        for part in parts.iter().skip(reported) {
            report.part_done(part, &out.stderr);
        }
        // A line cut short: the pools it never reported may or may not have
        // been recycled.
        report.cut_short(&out);
        let recycled = std::mem::take(&mut report.recycled);
        drop(report);

        self.step(Step::Verifying);
        let first_check = parts
            .iter()
            .find(|p| p.label == iis::PART_WORKERS && p.exit_code == 0)
            .map(|p| iis::parse_workers(&p.stdout));
        let after = self
            .wait_for_old_workers(shell, &recycled, first_check)
            .await?;
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
    /// `first` is a listing already taken right after the recycles (in the
    /// same command line), used as the first check.
    async fn wait_for_old_workers(
        &self,
        shell: &Shell<'_>,
        recycled: &[(String, Vec<u32>)],
        mut first: Option<Vec<WorkerProcess>>,
    ) -> Result<Vec<WorkerProcess>, JobError> {
        let margin = DRAIN_MARGIN.min(self.plan.timeout / 4);
        let give_up = (Instant::now() + self.plan.drain_timeout)
            .min(self.deadline.checked_sub(margin).unwrap_or(self.deadline));
        loop {
            let after = match first.take() {
                Some(listing) => listing,
                None => self.list_workers(shell).await?,
            };
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
        self.events
            .emit_durable(Event::ServerMutating {
                server: self.target.label.clone(),
                method: Method::Iisreset,
                pools: vec!["*".into()],
                old_pids: old_pids.clone(),
            })
            .map_err(|e| JobError::Command(format!("nothing was sent: {e}")))?;
        {
            let mut state = self.state.lock().expect("job state");
            state.mutated = true;
            state.unreported = vec![outcome(ActionStatus::Unknown, Vec::new(), None)];
        }
        let out = match shell
            .run_mutating(
                "iisreset /noforce",
                &command.program,
                &command.args,
                |_, _| {},
            )
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let (status, message) = interrupted(&e);
                self.action(outcome(status, Vec::new(), Some(message)));
                return Err(e.into());
            }
        };
        if out.exit_code != 0 {
            self.action(outcome(
                ActionStatus::Failed,
                Vec::new(),
                Some(format!(
                    "{} (exit code {})",
                    quoted(&iis::error_message(&out.stdout, &out.stderr)),
                    out.exit_code
                )),
            ));
            return Ok(());
        }
        // The next wave may start only once this server serves again. Each
        // poll also lists the workers, so the last one needs no command more.
        self.step(Step::WaitingForIis);
        let poll = iis::iis_status_and_workers();
        let workers = loop {
            let out = run(shell, &poll.command()).await?;
            let parts = poll.finished(&out.stdout);
            let running = parts.iter().any(|p| {
                p.label == iis::PART_IIS_STATUS && p.exit_code == 0 && iis::iis_running(&p.stdout)
            });
            if running {
                break parts
                    .into_iter()
                    .find(|p| p.label == iis::PART_WORKERS && p.exit_code == 0);
            }
            tokio::time::sleep(IIS_STATUS_POLL).await;
        };
        self.step(Step::Verifying);
        let after = match workers {
            Some(part) => iis::parse_workers(&part.stdout),
            None => self.list_workers(shell).await?,
        };
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

/// An action of [`ServerJob::recycle`] waiting for its turn to be reported.
enum Pending {
    /// Known without a command (absent, stopped, planned).
    Report(ActionOutcome),
    /// Reported once its part of the recycle line has ended.
    Recycle { pool: PoolName, old_pids: Vec<u32> },
}

/// Reports a server's actions in the plan's order, each recycle as soon as
/// its part of the line has ended (the parts end in that order too).
struct InOrder<'j, 'a> {
    job: &'j ServerJob<'a>,
    actions: Vec<Pending>,
    next: usize,
    /// Pools recycled, with their old workers, for the drain check.
    recycled: Vec<(String, Vec<u32>)>,
}

impl InOrder<'_, '_> {
    /// Reports the actions up to the next recycle.
    fn flush_reports(&mut self) {
        while let Some(Pending::Report(action)) = self.actions.get(self.next) {
            self.job.action(action.clone());
            self.next += 1;
        }
    }

    /// One part of the recycle line has ended.
    fn part_done(&mut self, part: &PartOutput, stderr: &str) {
        if part.label == iis::PART_WORKERS {
            return;
        }
        let Some(Pending::Recycle { pool, old_pids }) = self.actions.get(self.next) else {
            return;
        };
        if part.exit_code == 0 {
            // Reported now so a later timeout cannot hide it; the
            // verification adds the new worker PIDs.
            self.job.action(outcome(
                pool,
                ActionStatus::Recycled,
                old_pids.clone(),
                None,
            ));
            self.recycled.push((pool.to_string(), old_pids.clone()));
        } else {
            let message = format!(
                "{} (exit code {})",
                quoted(&iis::error_message(&part.stdout, stderr)),
                part.exit_code
            );
            self.job.action(outcome(
                pool,
                ActionStatus::Failed,
                old_pids.clone(),
                Some(message),
            ));
        }
        self.next += 1;
        self.flush_reports();
    }

    /// The line failed: if it may have reached the server, every pool it
    /// had not reported yet may or may not have been recycled (`unknown`);
    /// else none of them was (`failed`).
    fn interrupted(&mut self, error: &WinrmError) {
        let (status, message) = interrupted(error);
        while self.next < self.actions.len() {
            if let Pending::Recycle { pool, old_pids } = &self.actions[self.next] {
                self.job.action(outcome(
                    pool,
                    status,
                    old_pids.clone(),
                    Some(message.clone()),
                ));
                self.next += 1;
            }
            self.flush_reports();
        }
    }

    /// The line ended: any pool it never reported is failed (it may or may
    /// not have been recycled), and the rest is reported.
    fn cut_short(&mut self, out: &CommandOutput) {
        while self.next < self.actions.len() {
            if let Pending::Recycle { pool, old_pids } = &self.actions[self.next] {
                let message = format!(
                    "no result: the command line ended (exit code {}) before this pool's \
                     result was printed; it may or may not have been recycled{}",
                    out.exit_code,
                    detail(&out.stderr)
                );
                self.job.action(outcome(
                    pool,
                    ActionStatus::Failed,
                    old_pids.clone(),
                    Some(message),
                ));
                self.next += 1;
            }
            self.flush_reports();
        }
    }
}

fn outcome(
    pool: &PoolName,
    status: ActionStatus,
    old_pids: Vec<u32>,
    message: Option<String>,
) -> ActionOutcome {
    ActionOutcome {
        pool: pool.to_string(),
        status,
        old_pids,
        new_pids: Vec::new(),
        draining_pids: Vec::new(),
        message,
    }
}

/// Server output quoted in a message: no control characters.
fn quoted(text: &str) -> String {
    sanitize(text)
}

/// How an action ends whose mutating command failed: `unknown` when it may
/// have reached the server, else `failed` (it was never sent, or the
/// service refused it).
fn interrupted(error: &WinrmError) -> (ActionStatus, String) {
    if error.may_have_run() {
        (ActionStatus::Unknown, error.to_string())
    } else {
        (ActionStatus::Failed, format!("not run: {error}"))
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

/// Every part of a read-only batch, or why not: a line that ended before
/// every part reported is an error the job cannot go on from.
fn all_parts<const N: usize>(
    batch: &Batch,
    out: &CommandOutput,
) -> Result<[PartOutput; N], JobError> {
    let parts = batch.finished(&out.stdout);
    let got = parts.len();
    parts.try_into().map_err(|_| {
        let missing = batch
            .parts()
            .get(got)
            .map_or_else(|| "?".to_string(), |p| p.command.command_line());
        JobError::Command(format!(
            "the server's answer ended before {missing} had reported (exit code {}){}",
            out.exit_code,
            detail(&out.stderr)
        ))
    })
}

/// `": TEXT"` of what stderr said, if anything.
fn detail(stderr: &str) -> String {
    let text = quoted(&iis::error_message("", stderr));
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// One part of a batch a job depends on failed on the server.
fn part_failed(what: &str, part: &PartOutput, out: &CommandOutput) -> JobError {
    JobError::Command(format!(
        "{what} failed (exit code {}): {}",
        part.exit_code,
        quoted(&iis::error_message(&part.stdout, &out.stderr))
    ))
}

fn command_failed(what: &str, out: &CommandOutput) -> JobError {
    JobError::Command(format!(
        "{what} failed (exit code {}): {}",
        out.exit_code,
        quoted(&iis::error_message(&out.stdout, &out.stderr))
    ))
}
