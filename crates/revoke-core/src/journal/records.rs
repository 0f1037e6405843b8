//! The journal's records: one JSON object per line, versioned like the
//! report (docs/journal.md). Never a password: a record holds names, DNs,
//! userAccountControl values, pools and PIDs.

use serde::{Deserialize, Serialize};

/// Version of the records' shape. A reader skips (and reports) a line of a
/// newer version instead of guessing what its fields mean.
pub const JOURNAL_VERSION: u32 = 1;

/// One line of the journal: when, which run, and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// [`JOURNAL_VERSION`] when written.
    pub v: u32,
    /// RFC 3339, UTC, milliseconds.
    pub at: String,
    pub run_id: String,
    #[serde(flatten)]
    pub record: Record,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Record {
    /// Written (and fsync'ed) before anything of the run is changed.
    RunStarted(Box<RunStarted>),
    /// Before an account is written on a DC.
    AccountChanging(AccountChanging),
    /// After the write: what the account is now (or why it was not changed).
    AccountChanged(AccountChanged),
    /// How one DC ended in the convergence gate (confirmed or not).
    DcConfirmed(DcConfirmed),
    /// Before the first mutating command is sent to a server.
    ServerMutating(ServerMutating),
    /// How one server's flush ended.
    ServerDone(ServerDone),
    /// How one BIG-IP's APM session kill ended.
    ApmKilled(ApmKilled),
    /// The run's end: its exit code and whether the exposure window closed.
    RunFinished(RunFinished),
}

impl Record {
    pub fn kind(&self) -> &'static str {
        match self {
            Record::RunStarted(_) => "run-started",
            Record::AccountChanging(_) => "account-changing",
            Record::AccountChanged(_) => "account-changed",
            Record::DcConfirmed(_) => "dc-confirmed",
            Record::ServerMutating(_) => "server-mutating",
            Record::ServerDone(_) => "server-done",
            Record::ApmKilled(_) => "apm-killed",
            Record::RunFinished(_) => "run-finished",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunStarted {
    /// `disable`, `reset`, `enable`, `flush`, `retry`.
    pub command: String,
    /// The command line after the program name. revoke takes no secret on
    /// its command line; any `--…password VALUE` is masked all the same.
    pub args: Vec<String>,
    /// Who ran it: the local user and the directory account revoke bound as.
    pub operator: Operator,
    /// The machine it ran on.
    pub host: String,
    /// `disable` / `reset` / `enable`: the change (`disable`, `reset`, `enable`).
    pub change: Option<String>,
    pub accounts: Vec<AccountRef>,
    /// The DC the change is written on.
    pub source_dc: Option<String>,
    pub domain_controllers: Vec<DcRef>,
    /// The Exchange servers to flush (as the report names them).
    pub targets: Vec<TargetRef>,
    /// BIG-IPs whose APM sessions are killed.
    pub f5_devices: Vec<String>,
    pub ticket: Option<String>,
    pub reason: Option<String>,
    /// `retry`: the run it finishes.
    pub retry_of: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Operator {
    /// `$USER` (else `$LOGNAME`, `$USERNAME`) of the process.
    pub local_user: Option<String>,
    /// The account of the LDAP bind.
    pub bind_user: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRef {
    /// As the operator typed it.
    pub input: String,
    pub dn: String,
    pub sam_account_name: String,
    pub user_principal_name: Option<String>,
    /// userAccountControl when the run resolved it.
    pub user_account_control: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcRef {
    pub host: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRef {
    /// As the report names the server.
    pub label: String,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountChanging {
    pub dn: String,
    pub sam_account_name: String,
    /// The DC written on.
    pub dc: String,
    /// `disable`, `reset`, `enable`.
    pub change: String,
    pub user_account_control_before: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountChanged {
    pub dn: String,
    pub sam_account_name: String,
    pub dc: String,
    /// As in the report: `disabled`, `already-disabled`, `reset`, `enabled`,
    /// `already-enabled`, `failed`.
    pub status: String,
    pub user_account_control_before: u32,
    pub user_account_control_after: u32,
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcConfirmed {
    pub host: String,
    /// As in the report: `written`, `replicated`, `forced`, `direct-write`,
    /// `not-converged`, `rodc-not-converged`, `not-cached`, `unchecked`.
    pub status: String,
    pub read_only: bool,
    /// The DC was seen with the change.
    pub has_change: bool,
    /// The DC may still let the user in.
    pub open: bool,
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerMutating {
    pub server: String,
    /// `recycle` or `iisreset`.
    pub method: String,
    /// The pools about to be recycled (`*` for iisreset).
    pub pools: Vec<String>,
    /// The worker processes running before.
    pub old_pids: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerDone {
    pub server: String,
    /// As in the report: `ok`, `partial`, `failed`, `timeout`,
    /// `unreachable`, `draining`, `interrupted`.
    pub status: String,
    pub ok: bool,
    pub pools: Vec<PoolDone>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolDone {
    pub pool: String,
    pub status: String,
    pub old_pids: Vec<u32>,
    pub new_pids: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApmKilled {
    pub device: String,
    /// `ok` (no session of the accounts left) or `failed`.
    pub status: String,
    pub ok: bool,
    pub killed: usize,
    /// Session ids still alive (or not confirmed gone).
    pub alive: Vec<String>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFinished {
    /// revoke's exit code (README): 0 ok, 2 something not ok, 130 interrupted, ...
    pub exit_code: u8,
    pub interrupted: bool,
    pub exposure_closed: bool,
    pub exposure_closed_at: Option<String>,
    pub window_ms: Option<u64>,
    /// What the run left open, in words (the report's open items).
    pub open: Vec<String>,
}
