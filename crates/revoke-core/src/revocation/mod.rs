//! `revoke disable` / `revoke reset`: resolve and guard every account, change
//! it in AD, wait until every writable DC has the change, then flush the
//! Exchange servers with the existing fan-out and, with `[f5]`, kill the
//! accounts' APM sessions at the same time.
//!
//! Two halves, so the operator can confirm in between: [`prepare`] only
//! reads (and refuses, changing nothing); [`execute`] writes and emits
//! [`Event`]s like the flush core. Neither knows about terminals.
//!
//! - [`prepare`]: resolve (through the forest's Global Catalog where there
//!   are several domains), guard, list the DCs and servers; reads only.
//! - [`execute`]: write, gate, flush and kill APM sessions.
//! - `stamp`: the `info` line of `[directory] stamp`.
//! - `outcome`: what each account's report says.
//! - `dry_run`: what a dry run says of each DC.

mod dry_run;
mod execute;
mod outcome;
mod prepare;
mod stamp;

pub use execute::execute;
pub(crate) use execute::flush_and_kill;
pub use prepare::{discover, discover_targets, prepare};
pub use stamp::stamp_line;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use thiserror::Error;

use crate::directory::change::Change;
use crate::directory::convergence::DirectWrite;
use crate::directory::topology::DomainController;
use crate::directory::{Connection, DirectoryError, DirectorySettings, UserAccount};
use crate::f5::{self, F5Client, F5Settings};
use crate::plan::{FlushPlan, Target};
use crate::secrets::Secrets;

/// What a `disable` / `reset` run will do, validated offline. No secrets:
/// those come apart, as [`Secrets`].
#[derive(Debug)]
pub struct RevocationPlan {
    pub change: Change,
    /// As the operator typed them.
    pub users: Vec<String>,
    pub directory: DirectorySettings,
    /// None: `--no-wait-replication`.
    pub replication_timeout: Option<Duration>,
    /// Whether a lagging writable DC may get the change written directly.
    pub direct_write: DirectWrite,
    pub allow_privileged: bool,
    /// Its targets may be empty: then they are discovered in AD.
    pub flush: FlushPlan,
    /// `[f5]`: the BIG-IPs whose APM sessions of the accounts are killed.
    pub f5: Option<F5Settings>,
    /// `--ticket`: the change request this run belongs to (report, journal, stamp).
    pub ticket: Option<String>,
    /// `--reason`: why, in the operator's words (report, journal, stamp).
    pub reason: Option<String>,
    /// `[directory] stamp`: append a line naming the change, the operator,
    /// the ticket and the reason to each account's `info`, in the same modify.
    pub stamp: bool,
    /// `enable` without `--force`: only accounts revoke disabled may be
    /// enabled. None: no such check (other changes, or `--force`).
    pub enable_guard: Option<EnableGuard>,
}

/// Which accounts `enable` may enable without `--force`: those revoke
/// disabled, by the journal.
#[derive(Debug, Clone, Default)]
pub struct EnableGuard {
    /// DNs (any case) whose last change in the journal was revoke disabling them.
    pub disabled_by_revoke: Vec<String>,
    /// Where that was looked up, in words (e.g. the journal's path), for the refusal.
    pub looked_in: String,
}

#[derive(Debug, Error)]
pub enum RevocationError {
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    F5(#[from] f5::F5SetupError),
    /// One or more accounts were refused by a guard: nothing was changed.
    #[error("refused, nothing was changed:\n  {}", .0.join("\n  "))]
    Refused(Vec<String>),
    #[error("nothing was changed:\n  {}", .0.join("\n  "))]
    Unresolved(Vec<String>),
    #[error(
        "no Exchange servers to flush: none configured and none found in AD; \
         give --servers or list them in the config file"
    )]
    NoServers,
}

/// The read-only half's result: what will be changed, where, and flushed.
pub struct Prepared {
    plan: RevocationPlan,
    secrets: Secrets,
    conn: Connection,
    /// `(as typed, account)` in the order given, duplicates removed.
    pub accounts: Vec<(String, UserAccount)>,
    pub domain_controllers: Vec<DomainController>,
    /// Per read-only DC (by host): the accounts (lowercased DNs) whose
    /// passwords it holds; None if its revealed list could not be read.
    revealed: HashMap<String, Option<HashSet<String>>>,
    f5: Option<F5Client>,
    /// `[directory] stamp`: the operator as the `info` line names them
    /// (`LAB\revoke-op`); None without stamping.
    stamped_by: Option<String>,
}

impl Prepared {
    /// The BIG-IPs whose sessions will be killed (none without `[f5]`).
    pub fn f5_devices(&self) -> Vec<String> {
        self.f5
            .iter()
            .flat_map(|c| c.devices())
            .map(|d| d.label.clone())
            .collect()
    }
    pub fn change(&self) -> &Change {
        &self.plan.change
    }
    pub fn servers(&self) -> Vec<String> {
        self.plan
            .flush
            .targets
            .iter()
            .map(|t| t.label.clone())
            .collect()
    }
    pub fn dry_run(&self) -> bool {
        self.plan.flush.dry_run
    }
    /// How many servers the flush will handle at once.
    pub fn concurrency(&self) -> usize {
        self.plan.flush.concurrency()
    }
    /// The DC revoke writes on.
    pub fn source_host(&self) -> &str {
        &self.conn.root_dse.dns_host_name
    }
    /// The Exchange servers the run will flush.
    pub fn targets(&self) -> &[Target] {
        &self.plan.flush.targets
    }
    /// The account revoke binds as.
    pub fn bind_user(&self) -> &str {
        &self.plan.directory.bind_user
    }
    /// Whether this run flushes anything (`enable` does not).
    pub fn flushes(&self) -> bool {
        self.plan.change.flushes()
    }
    pub fn ticket(&self) -> Option<&str> {
        self.plan.ticket.as_deref()
    }
    pub fn reason(&self) -> Option<&str> {
        self.plan.reason.as_deref()
    }
}
