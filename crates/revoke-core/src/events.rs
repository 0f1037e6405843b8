//! What the orchestration core tells the world. It knows nothing of terminals:
//! the progress display, the table and the JSON report all consume these.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::mpsc;

pub use crate::directory::metadata::Evidence;
use crate::journal::{JournalError, RunJournal};
use crate::plan::Method;

#[derive(Debug, Clone)]
pub enum Event {
    RunStarted {
        run_id: String,
        method: Method,
        dry_run: bool,
        servers: Vec<String>,
        /// Server labels per wave (iisreset); one wave with every server for recycle.
        waves: Vec<Vec<String>>,
        started_at: SystemTime,
    },
    ServerStarted {
        server: String,
    },
    StepChanged {
        server: String,
        step: Step,
    },
    ActionFinished {
        server: String,
        action: ActionOutcome,
    },
    ServerFinished {
        server: String,
        outcome: ServerOutcome,
    },
    RunFinished {
        finished_at: SystemTime,
    },
    /// `disable` / `reset`: the directory phase begins (before any flush).
    DirectoryStarted {
        run_id: String,
        change: String,
        dry_run: bool,
        users: Vec<String>,
        started_at: SystemTime,
        /// `--ticket` / `--reason`, for the report.
        ticket: Option<String>,
        reason: Option<String>,
    },
    /// What the directory phase is doing now, in words.
    DirectoryStep {
        what: String,
    },
    UserFinished {
        user: UserOutcome,
    },
    DomainControllerFinished {
        dc: DcOutcome,
    },
    /// The flush did not run, and why.
    FlushSkipped {
        reason: String,
    },
    /// `disable` / `reset` with `[f5]`: the APM session kill begins
    /// (after the convergence gate, alongside the flush).
    F5Started {
        devices: Vec<String>,
        dry_run: bool,
    },
    /// What the job on one BIG-IP is doing now, in words.
    F5Step {
        device: String,
        what: String,
    },
    F5DeviceFinished {
        device: F5Outcome,
    },
    /// An account is about to be written on `dc` (sent with
    /// [`EventSink::emit_durable`]: journaled before the write).
    AccountChanging {
        dn: String,
        sam_account_name: String,
        dc: String,
        /// `disable`, `reset`, `enable`.
        change: String,
        user_account_control: u32,
    },
    /// The first mutating command is about to be sent to a server (sent
    /// with [`EventSink::emit_durable`]: journaled before it is sent).
    ServerMutating {
        server: String,
        method: Method,
        /// The pools to recycle; `*` for iisreset.
        pools: Vec<String>,
        old_pids: Vec<u32>,
    },
}

/// What a server's job is doing right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Queued,
    Connecting,
    Listing,
    Recycling(String),
    Resetting,
    WaitingForIis,
    Verifying,
    /// Old workers still serving the requests they had accepted.
    Draining(Vec<u32>),
    Retrying {
        attempt: u32,
        reason: String,
    },
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Queued => f.write_str("waiting for its wave"),
            Step::Connecting => f.write_str("connecting"),
            Step::Listing => f.write_str("listing pools and workers"),
            Step::Recycling(pool) => write!(f, "recycling {pool}"),
            Step::Resetting => f.write_str("iisreset /noforce"),
            Step::WaitingForIis => f.write_str("waiting for IIS to run again"),
            Step::Verifying => f.write_str("verifying new workers"),
            Step::Draining(pids) => write!(
                f,
                "waiting for old workers to exit: {}",
                pids.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Step::Retrying { attempt, reason } => write!(f, "retry {attempt} after: {reason}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionStatus {
    /// The pool was recycled: a new worker replaced the old one(s).
    Recycled,
    /// `iisreset /noforce` ran and IIS answered as running again.
    Reset,
    /// Dry run: what would be done.
    Planned,
    /// The pool does not exist on this server (a warning, not a failure).
    Absent,
    /// The pool is stopped: it has no worker, so no cached token (a warning).
    Stopped,
    Failed,
    /// The command was sent but no trustworthy answer came back: it may
    /// have run, or not. Counted as a failure; never sent again.
    Unknown,
}

impl ActionStatus {
    /// Neither done nor harmless: the flush is incomplete on this server.
    pub fn is_failure(self) -> bool {
        matches!(self, ActionStatus::Failed | ActionStatus::Unknown)
    }
}

/// The outcome of one action on one server: a pool recycle, or the iisreset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionOutcome {
    /// The pool name, or `*` for iisreset (every pool).
    pub pool: String,
    pub status: ActionStatus,
    pub old_pids: Vec<u32>,
    pub new_pids: Vec<u32>,
    /// Old workers still running when revoke stopped waiting: they keep
    /// their cached tokens until they exit.
    pub draining_pids: Vec<u32>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerStatus {
    Ok,
    Partial,
    Failed,
    Timeout,
    Unreachable,
    Planned,
    /// Flushed, but an old worker was still running at the drain deadline.
    Draining,
    /// The run was interrupted (Ctrl-C) before this server finished.
    Interrupted,
}

impl ServerStatus {
    pub fn is_success(self) -> bool {
        matches!(self, ServerStatus::Ok | ServerStatus::Planned)
    }
}

impl std::fmt::Display for ServerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&status_word(self))
    }
}

/// A status as the JSON report spells it (`already-disabled`, `direct-write`),
/// for the table and the progress lines.
pub fn status_word<T: Serialize>(status: &T) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// What happened to one account in the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserOutcome {
    /// As the operator typed it.
    pub input: String,
    pub dn: String,
    pub sam_account_name: String,
    pub user_principal_name: Option<String>,
    pub display_name: Option<String>,
    pub status: UserStatus,
    pub user_account_control_before: u32,
    pub user_account_control_after: u32,
    pub flags_before: Vec<String>,
    pub flags_after: Vec<String>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UserStatus {
    Disabled,
    /// It was disabled already; nothing was written, the flush still runs.
    AlreadyDisabled,
    /// The password was rotated twice; the previous one no longer works.
    Reset,
    /// `enable`: ACCOUNTDISABLE was cleared.
    Enabled,
    /// `enable`: it was enabled already; nothing was written.
    AlreadyEnabled,
    /// Dry run: what would be written.
    Planned,
    Failed,
}

/// Whether one DC has the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DcOutcome {
    pub host: String,
    pub status: DcStatus,
    /// A read-only DC: checked, never written.
    pub read_only: bool,
    /// What decided that it has the change (replication metadata, the
    /// attribute's value, or a write revoke made there); None if undecided.
    pub decided_by: Option<Evidence>,
    /// From the end of the write until this DC was seen with the change.
    pub elapsed_ms: u64,
    /// When this DC was seen with the change; None if it was not.
    #[serde(serialize_with = "crate::timestamp::serialize_opt")]
    pub confirmed_at: Option<SystemTime>,
    pub message: Option<String>,
}

impl DcOutcome {
    /// An outcome decided now: a converged status is confirmed at this instant.
    pub fn now(host: &str, status: DcStatus, elapsed: Duration, message: Option<String>) -> Self {
        DcOutcome {
            host: host.to_string(),
            status,
            read_only: false,
            decided_by: None,
            elapsed_ms: elapsed.as_millis() as u64,
            confirmed_at: status.has_change().then(SystemTime::now),
            message,
        }
    }

    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    pub fn decided_by(mut self, evidence: Option<Evidence>) -> Self {
        self.decided_by = evidence;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DcStatus {
    /// The change was written here first.
    Written,
    /// It arrived by replication, by itself.
    Replicated,
    /// It arrived after revoke asked this DC to pull the object
    /// (`replicateSingleObject`).
    Forced,
    /// It did not arrive in time, so revoke wrote the same change here.
    DirectWrite,
    /// A writable DC that may still let the user in.
    NotConverged,
    /// A read-only DC that holds the user's password and may still log the
    /// user on with its old copy of the account.
    RodcNotConverged,
    /// A read-only DC that holds no copy of the user's password: it sends
    /// the user's logons to a writable DC, which has the change. Low risk.
    NotCached,
    /// Not checked: --no-wait-replication.
    Unchecked,
    /// Dry run: the DC's current view.
    Planned,
}

impl DcStatus {
    /// This DC was seen with the change.
    pub fn has_change(self) -> bool {
        matches!(
            self,
            DcStatus::Written | DcStatus::Replicated | DcStatus::Forced | DcStatus::DirectWrite
        )
    }

    /// This DC may still let the user in: the run is not done.
    pub fn is_open(self) -> bool {
        matches!(self, DcStatus::NotConverged | DcStatus::RodcNotConverged)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOutcome {
    pub status: ServerStatus,
    pub duration: Duration,
    /// In plain words, for anything not ok.
    pub error: Option<String>,
    /// What the server calls itself (`hostname`), once known.
    pub computer: Option<String>,
    /// What authenticated revoke to it (Kerberos, NTLM, Basic), once known.
    pub auth: Option<revoke_winrm::Mechanism>,
    pub attempts: u32,
    /// When no worker that was running before the flush was left (the
    /// tokens cached before the change are gone); None if one still runs.
    pub old_workers_exited_at: Option<SystemTime>,
}

// --- F5 BIG-IP APM ---

/// One session of the account, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApmSession {
    pub id: String,
    /// As the BIG-IP logged it (`logonUser`).
    pub user: String,
    pub client_ip: Option<String>,
    /// The account it belongs to (sAMAccountName).
    pub account: String,
    pub status: SessionStatus,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionStatus {
    /// Deleted, and no longer listed.
    Killed,
    /// Gone before revoke deleted it (the BIG-IP answered 404).
    Gone,
    /// Still listed after revoke tried to delete it: it may still let the user in.
    Alive,
    /// Deleted, but the device could not be listed again to confirm.
    Unverified,
    /// Dry run: would be deleted.
    Planned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum F5Status {
    /// Every session of the account is gone (or there was none).
    Ok,
    /// Not reached, login refused, or a session may still be alive.
    Failed,
    /// Dry run: listed, nothing deleted.
    Planned,
    /// The run was interrupted before this device finished.
    Interrupted,
}

impl F5Status {
    pub fn is_success(self) -> bool {
        matches!(self, F5Status::Ok | F5Status::Planned)
    }
}

/// What happened on one BIG-IP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct F5Outcome {
    pub device: String,
    pub status: F5Status,
    /// Sessions deleted and confirmed gone.
    pub killed: usize,
    /// The account's sessions found on the device.
    pub sessions: Vec<ApmSession>,
    pub duration_ms: u64,
    /// When the device was seen without any session of the accounts;
    /// None unless `ok`.
    #[serde(serialize_with = "crate::timestamp::serialize_opt")]
    pub confirmed_at: Option<SystemTime>,
    /// Plain words for anything not ok, e.g. "login refused (HTTP 401)".
    pub message: Option<String>,
}

impl F5Outcome {
    /// The sessions that may still let the user in.
    pub fn alive(&self) -> impl Iterator<Item = &ApmSession> {
        self.sessions
            .iter()
            .filter(|s| matches!(s.status, SessionStatus::Alive | SessionStatus::Unverified))
    }
}

/// Where the core sends its events. Cheap to clone.
///
/// With a journal attached ([`EventSink::with_journal`]), what an event
/// reports as done is also journaled ([`EventSink::emit`]), and a step that
/// changes something is announced with [`EventSink::emit_durable`] first.
#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::UnboundedSender<Event>,
    run_id: Arc<str>,
    journal: Option<Arc<RunJournal>>,
}

impl EventSink {
    /// A sink for a new run (a fresh run id) and the receiving end.
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sink = EventSink {
            tx,
            run_id: uuid::Uuid::new_v4().to_string().into(),
            journal: None,
        };
        (sink, rx)
    }

    /// This sink journals into `journal`, and the run takes its run id.
    pub fn with_journal(mut self, journal: Arc<RunJournal>) -> Self {
        self.run_id = journal.run_id().into();
        self.journal = Some(journal);
        self
    }

    /// The run's id: in the report, and in every journal record.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn emit(&self, event: Event) {
        if let Some(journal) = &self.journal {
            journal.after(&event);
        }
        // A consumer that went away (interrupted run) is not the core's problem.
        let _ = self.tx.send(event);
    }

    /// For an event that announces a change: journals it and fsyncs before
    /// returning. On an error the caller must not take the step: a change
    /// the journal cannot record is not made. Without a journal, only emits.
    pub fn emit_durable(&self, event: Event) -> Result<(), JournalError> {
        if let Some(journal) = &self.journal
            && let Some(record) = journal.before(&event)
        {
            journal.write(record)?;
        }
        let _ = self.tx.send(event);
        Ok(())
    }
}
