//! `revoke flush`: the caches of the servers given, configured or found in
//! AD, without touching any account.

use revoke_core::revocation;

use super::open_journal;
use crate::cli::{DirectoryArgs, FlushArgs};
use crate::config::{self, Loaded};
use crate::credentials::Accounts;
use crate::credentials::{self, Environment};
use crate::run::{self, Ended};

pub async fn run(args: FlushArgs, environment: &Environment) -> anyhow::Result<Ended> {
    // Plan: everything checkable is checked before asking for a password.
    let config = Loaded::load(args.run.config.as_deref())?;
    let directory = config::directory_settings(&DirectoryArgs::default(), &config)?;
    let mut plan = config::flush_plan(&args.flush, &args.winrm, &config, directory.is_some())?;
    let journaling = open_journal(&args.journal, args.flush.dry_run, &config)?;
    // Servers from AD only when none are given or configured.
    let directory = directory.filter(|_| plan.targets.is_empty());
    let accounts = Accounts {
        directory: directory.as_ref().map(|d| d.bind_user.as_str()),
        winrm: Some(&plan.connection.user),
        f5: None,
    };
    let secrets = credentials::gather(&accounts, environment, args.run.password_stdin, None)?;
    if let Some(directory) = directory {
        plan.targets =
            revocation::discover(&directory, &secrets.operator, plan.default_port).await?;
    }
    let ended = run::flush(plan, secrets, &args.run, journaling).await?;
    run::print_report(&ended, &args.run);
    Ok(ended)
}
