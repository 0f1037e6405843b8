//! One module per command; what several share is here: the journal a run
//! opens, and the accounts a revocation logs on as. `lab` and `demo` start
//! the simulated estate (the `lab` feature).

#[cfg(feature = "lab")]
pub mod demo;
pub mod disable;
pub mod doctor;
pub mod flush;
pub mod history;
#[cfg(feature = "lab")]
pub mod lab;
pub mod reset;
pub mod retry;
pub mod servers;

use revoke_core::revocation;

use crate::cli;
use crate::config::{self, Loaded};
use crate::credentials::Accounts;
use crate::journal;

/// The run's journal, opened (and created) before any password is asked
/// for: a journal that cannot be written stops the run before anything.
pub fn open_journal(
    args: &cli::JournalArgs,
    dry_run: bool,
    config: &Loaded,
) -> anyhow::Result<journal::Journaling> {
    let choice = config::journal_choice(args.journal.as_deref(), args.no_journal, config)?;
    Ok(journal::Journaling::open(&choice, dry_run)?)
}

/// The accounts `disable` / `reset` log on as: the directory's, WinRM's and,
/// with `[f5]`, the BIG-IPs'.
pub fn plan_accounts(plan: &revocation::RevocationPlan) -> Accounts<'_> {
    Accounts {
        directory: Some(&plan.directory.bind_user),
        winrm: Some(&plan.flush.connection.user),
        f5: plan.f5.as_ref().map(|f5| f5.user.as_str()),
    }
}
