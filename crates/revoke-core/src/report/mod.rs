//! Consumers of the core's [`Event`]s: the live progress display, and the
//! [`RunReport`] that the final table and the JSON document are rendered from.

mod json;

use std::time::SystemTime;

use serde::Serialize;

use crate::events::{
    ActionOutcome, ActionStatus, DcOutcome, DcStatus, Event, ServerStatus, UserOutcome, UserStatus,
};
use crate::events::{F5Outcome, F5Status};
use crate::plan::Method;
use crate::residual::{self, KerberosPolicy, Residual};
use crate::timestamp;

pub use json::render as render_json;

/// Anything that follows a run as it happens.
pub trait Reporter {
    fn handle(&mut self, event: &Event);
}

/// Version of the JSON document's shape (docs/report.md).
pub const SCHEMA_VERSION: u32 = 1;

/// Everything a run did, per server. Serialized as the JSON report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunReport {
    pub schema_version: u32,
    pub run_id: String,
    pub action: String,
    /// `--ticket`: the change request the run belongs to; null without one.
    pub ticket: Option<String>,
    /// `--reason`: why, in the operator's words; null without one.
    pub reason: Option<String>,
    pub method: Method,
    pub dry_run: bool,
    #[serde(serialize_with = "timestamp::serialize")]
    pub started_at: SystemTime,
    #[serde(serialize_with = "timestamp::serialize_opt")]
    pub finished_at: Option<SystemTime>,
    pub waves: Vec<Vec<String>>,
    pub servers: Vec<ServerReport>,
    pub summary: Summary,
    /// Things worth a look that did not make a server fail, e.g. a pool
    /// absent on every server (likely a misspelled `--pool`).
    pub warnings: Vec<String>,
    /// `disable` / `reset`: the accounts and the domain controllers; null for `flush`.
    pub directory: Option<DirectoryReport>,
    /// Why the flush did not run (e.g. the directory change failed); null if it ran.
    pub flush_skipped: Option<String>,
    /// When the exposure window closed; null in a dry run.
    pub exposure: Option<Exposure>,
    /// `disable` / `reset` with `[f5]`: one entry per BIG-IP; empty otherwise.
    pub f5: Vec<F5Outcome>,
    /// `disable` / `reset`: what no flush closes (Kerberos tickets, cached
    /// logons, certificates) and until when; empty for `flush` and dry runs.
    pub residual: Vec<Residual>,
    /// `disable` / `reset`: the Kerberos lifetimes `residual` was computed
    /// with, and where they came from; null for `flush`.
    pub kerberos_policy: Option<KerberosPolicy>,
    /// The journal this run was recorded in (docs/journal.md); null if it
    /// was not recorded (a dry run, or `--no-journal`).
    pub journal: Option<String>,
    /// The operator turned the journal off (`--no-journal`).
    pub no_journal: bool,
    /// `retry`: the run whose open items this run took up.
    pub retry_of: Option<String>,
}

/// The window in which a credential or token from before the run could
/// still be used: closed once every DC had the change and no worker that
/// cached a token before the flush was left.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Exposure {
    pub closed: bool,
    /// The last of those moments (RFC 3339); null while open.
    #[serde(serialize_with = "timestamp::serialize_opt")]
    pub closed_at: Option<SystemTime>,
    /// From the start of the run until then; null while open.
    pub window_ms: Option<u64>,
}

/// The directory half of a `disable` / `reset` run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DirectoryReport {
    pub users: Vec<UserOutcome>,
    pub domain_controllers: Vec<DcOutcome>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServerReport {
    pub host: String,
    pub computer: Option<String>,
    /// What authenticated revoke to the server: "kerberos", "ntlm", "basic";
    /// null if it was never reached.
    pub auth: Option<revoke_winrm::Mechanism>,
    /// 1-based wave (iisreset); null for recycle.
    pub wave: Option<usize>,
    pub status: ServerStatus,
    pub duration_ms: u64,
    pub attempts: u32,
    pub error: Option<String>,
    /// When no worker from before the flush was left (RFC 3339); null if
    /// one still ran when revoke stopped waiting, or nothing was flushed.
    #[serde(serialize_with = "timestamp::serialize_opt")]
    pub old_workers_exited_at: Option<SystemTime>,
    pub actions: Vec<ActionOutcome>,
}

impl ServerReport {
    /// For a server that did not end `ok` (or `planned`), one line: its
    /// host, status and why, e.g. `ex02 partial: not recycled: MSExchangeOWAAppPool`.
    pub fn problem(&self) -> Option<String> {
        if self.status.is_success() {
            return None;
        }
        let what = self.error.clone().unwrap_or_else(|| {
            let failed: Vec<&str> = self
                .actions
                .iter()
                .filter(|a| a.status.is_failure())
                .map(|a| a.pool.as_str())
                .collect();
            format!("not recycled: {}", failed.join(", "))
        });
        Some(format!("{} {}: {}", self.host, self.status, what))
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub servers: usize,
    pub ok: usize,
    pub partial: usize,
    pub failed: usize,
    pub timeout: usize,
    pub unreachable: usize,
    pub planned: usize,
    pub draining: usize,
    pub interrupted: usize,
    pub pools_recycled: usize,
    pub pools_absent: usize,
    pub pools_stopped: usize,
    pub pools_failed: usize,
}

impl RunReport {
    /// Every server ended ok (or planned, in a dry run), and for `disable` /
    /// `reset` every account changed, every checked DC has the change and
    /// every BIG-IP ended ok (or planned).
    pub fn all_ok(&self) -> bool {
        let directory_ok = self.directory.as_ref().is_none_or(|d| {
            d.users.iter().all(|u| u.status != UserStatus::Failed)
                && d.domain_controllers.iter().all(|dc| !dc.status.is_open())
        });
        directory_ok
            && self.f5.iter().all(|d| d.status.is_success())
            && self.flush_skipped.is_none()
            && (!self.servers.is_empty() || !self.expects_servers())
            && self.servers.iter().all(|s| s.status.is_success())
    }

    /// Must the run have flushed servers to be ok? Not an `enable` (it
    /// flushes nothing), nor a retry whose servers were all done before.
    fn expects_servers(&self) -> bool {
        self.action != "enable" && self.retry_of.is_none()
    }

    /// Was any account changed (or found already disabled)? Those are gated
    /// and flushed even when another account's change failed.
    pub fn has_changed_user(&self) -> bool {
        self.directory.as_ref().is_some_and(|d| {
            d.users.iter().any(|u| {
                matches!(
                    u.status,
                    UserStatus::Disabled
                        | UserStatus::AlreadyDisabled
                        | UserStatus::Reset
                        | UserStatus::Enabled
                        | UserStatus::AlreadyEnabled
                )
            })
        })
    }

    /// Did any account end with this status?
    pub fn has_user(&self, status: UserStatus) -> bool {
        self.directory
            .as_ref()
            .is_some_and(|d| d.users.iter().any(|u| u.status == status))
    }

    /// What is still open, with why: accounts not changed, DCs that may still
    /// let the user in, APM sessions not killed, a flush that did not run,
    /// servers not flushed.
    pub fn open_items(&self) -> Vec<String> {
        let mut open = Vec::new();
        if let Some(directory) = &self.directory {
            for user in directory
                .users
                .iter()
                .filter(|u| u.status == UserStatus::Failed)
            {
                open.push(format!(
                    "account {} not changed: {}",
                    user.sam_account_name,
                    user.message.as_deref().unwrap_or("failed")
                ));
            }
            for dc in &directory.domain_controllers {
                if dc.status.is_open() {
                    open.push(format!(
                        "{} {}: {}",
                        if dc.read_only {
                            "read-only domain controller"
                        } else {
                            "domain controller"
                        },
                        dc.host,
                        dc.message.as_deref().unwrap_or("not converged")
                    ));
                }
            }
        }
        open.extend(self.f5.iter().flat_map(|d| self.f5_open(d)));
        if let Some(reason) = &self.flush_skipped {
            open.push(format!("flush not run: {reason}"));
        }
        open.extend(self.servers.iter().filter_map(ServerReport::problem));
        open
    }

    /// What one BIG-IP leaves open: the sessions still alive, per account,
    /// or (not reached, login refused) that none could be killed.
    fn f5_open(&self, device: &F5Outcome) -> Vec<String> {
        if device.status.is_success() {
            return Vec::new();
        }
        let mut accounts: Vec<&str> = Vec::new();
        for session in device.alive() {
            if !accounts.contains(&session.account.as_str()) {
                accounts.push(&session.account);
            }
        }
        if accounts.is_empty() {
            let users: Vec<&str> = self
                .directory
                .iter()
                .flat_map(|d| &d.users)
                .map(|u| u.sam_account_name.as_str())
                .collect();
            let whose = if users.is_empty() {
                String::new()
            } else {
                format!(" of {}", users.join(", "))
            };
            return vec![format!(
                "APM sessions{whose} on {} not killed: {}",
                device.device,
                device.message.as_deref().unwrap_or("failed")
            )];
        }
        accounts
            .into_iter()
            .map(|account| {
                let sessions: Vec<String> = device
                    .alive()
                    .filter(|s| s.account == account)
                    .map(|s| match &s.client_ip {
                        Some(ip) => format!("{} ({ip})", s.id),
                        None => s.id.clone(),
                    })
                    .collect();
                format!(
                    "APM session(s) of {account} still alive on {}: {}",
                    device.device,
                    sessions.join(", ")
                )
            })
            .collect()
    }

    pub fn summarize(&mut self) {
        let mut summary = Summary {
            servers: self.servers.len(),
            ..Summary::default()
        };
        for server in &self.servers {
            match server.status {
                ServerStatus::Ok => summary.ok += 1,
                ServerStatus::Partial => summary.partial += 1,
                ServerStatus::Failed => summary.failed += 1,
                ServerStatus::Timeout => summary.timeout += 1,
                ServerStatus::Unreachable => summary.unreachable += 1,
                ServerStatus::Planned => summary.planned += 1,
                ServerStatus::Interrupted => summary.interrupted += 1,
                ServerStatus::Draining => summary.draining += 1,
            }
            for action in &server.actions {
                match action.status {
                    ActionStatus::Recycled | ActionStatus::Reset => summary.pools_recycled += 1,
                    ActionStatus::Absent => summary.pools_absent += 1,
                    ActionStatus::Stopped => summary.pools_stopped += 1,
                    // It may have run: not done as far as anyone can tell.
                    ActionStatus::Failed | ActionStatus::Unknown => summary.pools_failed += 1,
                    ActionStatus::Planned => {}
                }
            }
        }
        self.summary = summary;
        self.warnings = self.pools_absent_everywhere();
        // An `enable` opens access: there is no exposure window to close.
        self.exposure = (!self.dry_run && self.action != "enable").then(|| self.exposure_window());
        self.residual = self
            .kerberos_policy
            .as_ref()
            .map(|policy| residual::compute(self, policy))
            .unwrap_or_default();
    }

    fn exposure_window(&self) -> Exposure {
        let open = Exposure {
            closed: false,
            closed_at: None,
            window_ms: None,
        };
        if !self.all_ok() {
            return open;
        }
        // Every DC confirmed (an unchecked one is not) and every server's
        // old workers gone; None if any is missing. A read-only DC without
        // the user's password sends the user's logons to a writable DC: it
        // has nothing to confirm.
        let dcs = self
            .directory
            .iter()
            .flat_map(|d| &d.domain_controllers)
            .filter(|dc| dc.status != DcStatus::NotCached)
            .map(|dc| dc.confirmed_at);
        let servers = self.servers.iter().map(|s| s.old_workers_exited_at);
        // And every BIG-IP seen without the accounts' APM sessions.
        let f5 = self.f5.iter().map(|d| d.confirmed_at);
        let moments: Option<Vec<SystemTime>> = dcs.chain(servers).chain(f5).collect();
        let Some(closed_at) = moments.and_then(|m| m.into_iter().max()) else {
            return open;
        };
        let window_ms = closed_at
            .duration_since(self.started_at)
            .ok()
            .map(|d| d.as_millis() as u64);
        Exposure {
            closed: true,
            closed_at: Some(closed_at),
            window_ms,
        }
    }

    fn pools_absent_everywhere(&self) -> Vec<String> {
        let mut pools: Vec<&str> = Vec::new();
        for action in self.servers.iter().flat_map(|s| &s.actions) {
            if action.pool != "*" && !pools.contains(&action.pool.as_str()) {
                pools.push(&action.pool);
            }
        }
        pools
            .into_iter()
            .filter(|pool| {
                self.servers
                    .iter()
                    .flat_map(|s| &s.actions)
                    .filter(|a| a.pool == *pool)
                    .all(|a| a.status == ActionStatus::Absent)
            })
            .map(|pool| {
                format!(
                    "application pool {pool} exists on none of the servers that answered, \
                     so nothing was recycled for it (misspelled --pool?)"
                )
            })
            .collect()
    }
}

impl RunReport {
    fn new(
        run_id: &str,
        action: &str,
        dry_run: bool,
        started_at: SystemTime,
        directory: Option<DirectoryReport>,
    ) -> Self {
        RunReport {
            schema_version: SCHEMA_VERSION,
            run_id: run_id.to_string(),
            action: action.to_string(),
            ticket: None,
            reason: None,
            method: Method::Recycle,
            dry_run,
            started_at,
            finished_at: None,
            waves: Vec::new(),
            servers: Vec::new(),
            summary: Summary::default(),
            warnings: Vec::new(),
            directory,
            flush_skipped: None,
            exposure: None,
            f5: Vec::new(),
            residual: Vec::new(),
            kerberos_policy: None,
            journal: None,
            no_journal: false,
            retry_of: None,
        }
    }
}

/// Plain words for the failed actions of a server, if any.
fn failed_actions(server: &ServerReport) -> Option<String> {
    let failed: Vec<String> = server
        .actions
        .iter()
        .filter(|a| a.status.is_failure())
        .map(|a| {
            let what = if a.pool == "*" {
                "iisreset failed".to_string()
            } else {
                format!("not recycled: {}", a.pool)
            };
            match &a.message {
                Some(message) => format!("{what}: {message}"),
                None => what,
            }
        })
        .collect();
    (!failed.is_empty()).then(|| failed.join("; "))
}

/// Builds the [`RunReport`] from events.
#[derive(Debug, Default)]
pub struct ReportBuilder {
    report: Option<RunReport>,
    finished: std::collections::HashSet<String>,
    /// For `disable` / `reset` reports (`residual`); Windows' defaults
    /// unless the config gives the domain's own.
    kerberos_policy: KerberosPolicy,
}

impl ReportBuilder {
    /// A builder whose `disable` / `reset` reports compute `residual` with
    /// this policy (the default builder uses Windows' defaults).
    pub fn with_kerberos_policy(policy: KerberosPolicy) -> Self {
        ReportBuilder {
            kerberos_policy: policy,
            ..ReportBuilder::default()
        }
    }

    /// The report; servers that never finished are marked interrupted.
    pub fn finish(self) -> Option<RunReport> {
        let mut report = self.report?;
        if report.finished_at.is_none() {
            report.finished_at = Some(SystemTime::now());
        }
        for server in &mut report.servers {
            if !self.finished.contains(&server.host) {
                server.status = ServerStatus::Interrupted;
                server.error = Some("the run was interrupted before this server finished".into());
            } else if !server.status.is_success() && server.error.is_none() {
                // Not ok because of failed actions: say which (docs/report.md).
                server.error = failed_actions(server);
            }
        }
        report.summarize();
        Some(report)
    }

    fn directory(&mut self) -> Option<&mut DirectoryReport> {
        self.report.as_mut()?.directory.as_mut()
    }

    fn server(&mut self, host: &str) -> Option<&mut ServerReport> {
        self.report
            .as_mut()?
            .servers
            .iter_mut()
            .find(|s| s.host == host)
    }
}

impl Reporter for ReportBuilder {
    fn handle(&mut self, event: &Event) {
        match event {
            Event::RunStarted {
                run_id,
                method,
                dry_run,
                servers,
                waves,
                started_at,
            } => {
                let wave_of = |host: &String| {
                    (*method == Method::Iisreset)
                        .then(|| waves.iter().position(|w| w.contains(host)).map(|i| i + 1))
                        .flatten()
                };
                // After a directory phase the run is already announced: the
                // flush fills in its servers.
                let mut report = self.report.take().unwrap_or_else(|| {
                    RunReport::new(run_id, "flush", *dry_run, *started_at, None)
                });
                report.method = *method;
                report.waves = if *method == Method::Iisreset {
                    waves.clone()
                } else {
                    Vec::new()
                };
                report.servers = servers
                    .iter()
                    .map(|host| ServerReport {
                        host: host.clone(),
                        computer: None,
                        auth: None,
                        wave: wave_of(host),
                        // Until the server finishes; see finish().
                        status: ServerStatus::Interrupted,
                        duration_ms: 0,
                        attempts: 0,
                        error: None,
                        old_workers_exited_at: None,
                        actions: Vec::new(),
                    })
                    .collect();
                self.report = Some(report);
            }
            Event::DirectoryStarted {
                run_id,
                change,
                dry_run,
                started_at,
                ticket,
                reason,
                ..
            } => {
                let mut report = RunReport::new(
                    run_id,
                    change,
                    *dry_run,
                    *started_at,
                    Some(DirectoryReport {
                        users: Vec::new(),
                        domain_controllers: Vec::new(),
                    }),
                );
                report.ticket = ticket.clone();
                report.reason = reason.clone();
                // What an `enable` leaves is access, not residual exposure.
                if change != "enable" {
                    report.kerberos_policy = Some(self.kerberos_policy.clone());
                }
                self.report = Some(report);
            }
            Event::UserFinished { user } => {
                if let Some(d) = self.directory() {
                    d.users.retain(|u| u.dn != user.dn);
                    d.users.push(user.clone());
                }
            }
            Event::DomainControllerFinished { dc } => {
                if let Some(d) = self.directory() {
                    match d.domain_controllers.iter_mut().find(|x| x.host == dc.host) {
                        Some(existing) => *existing = dc.clone(),
                        None => d.domain_controllers.push(dc.clone()),
                    }
                }
            }
            Event::FlushSkipped { reason } => {
                if let Some(report) = self.report.as_mut() {
                    report.flush_skipped = Some(reason.clone());
                }
            }
            Event::F5Started { devices, .. } => {
                if let Some(report) = self.report.as_mut() {
                    for device in devices {
                        if !report.f5.iter().any(|d| &d.device == device) {
                            // Until the device finishes.
                            report.f5.push(F5Outcome {
                                device: device.clone(),
                                status: F5Status::Interrupted,
                                killed: 0,
                                sessions: Vec::new(),
                                duration_ms: 0,
                                confirmed_at: None,
                                message: Some(
                                    "the run was interrupted before this device finished".into(),
                                ),
                            });
                        }
                    }
                }
            }
            Event::F5DeviceFinished { device } => {
                if let Some(report) = self.report.as_mut() {
                    match report.f5.iter_mut().find(|d| d.device == device.device) {
                        Some(existing) => *existing = device.clone(),
                        None => report.f5.push(device.clone()),
                    }
                }
            }
            Event::ActionFinished { server, action } => {
                if let Some(s) = self.server(server) {
                    // A later outcome for the same pool supersedes the earlier
                    // one (verification adds the new worker PIDs).
                    match s.actions.iter_mut().find(|a| a.pool == action.pool) {
                        Some(existing) => *existing = action.clone(),
                        None => s.actions.push(action.clone()),
                    }
                }
            }
            Event::ServerFinished { server, outcome } => {
                self.finished.insert(server.clone());
                if let Some(s) = self.server(server) {
                    s.status = outcome.status;
                    s.duration_ms = outcome.duration.as_millis() as u64;
                    s.attempts = outcome.attempts;
                    s.error = outcome.error.clone();
                    s.computer = outcome.computer.clone();
                    s.auth = outcome.auth;
                    s.old_workers_exited_at = outcome.old_workers_exited_at;
                }
            }
            Event::RunFinished { finished_at } => {
                if let Some(report) = self.report.as_mut() {
                    report.finished_at = Some(*finished_at);
                }
            }
            Event::ServerStarted { .. }
            | Event::StepChanged { .. }
            | Event::DirectoryStep { .. }
            | Event::F5Step { .. }
            | Event::AccountChanging { .. }
            | Event::ServerMutating { .. } => {}
        }
    }
}
