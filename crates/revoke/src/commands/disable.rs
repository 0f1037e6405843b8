//! `revoke disable` and its undo, `revoke enable`.

use revoke_core::directory::change::Change;

use super::{open_journal, plan_accounts};
use crate::cli::{DisableArgs, EnableArgs};
use crate::config::{self, Loaded};
use crate::credentials::Accounts;
use crate::credentials::{self, Environment};
use crate::run::{self, Ended};
use crate::{bulk, journal};

pub async fn run(args: DisableArgs, environment: &Environment) -> anyhow::Result<Ended> {
    let shared = &args.revocation;
    let from_file = args.from_file.as_deref();
    bulk::check_stdin(
        from_file,
        &[(shared.run.password_stdin, "--password-stdin")],
    )?;
    let users = bulk::account_list(&args.users, from_file)?;
    let config = Loaded::load(shared.run.config.as_deref())?;
    let plan = config::revocation_plan(Change::Disable, users, shared, &config)?;
    let kerberos_policy = config::kerberos_policy(&config)?;
    let journaling = open_journal(&shared.journal, shared.flush.dry_run, &config)?;
    let secrets = credentials::gather(
        &plan_accounts(&plan),
        environment,
        shared.run.password_stdin,
        None,
    )?;
    let ended = run::revocation(
        plan,
        secrets,
        shared.change.yes,
        &shared.run,
        kerberos_policy,
        journaling,
    )
    .await?;
    run::print_report(&ended, &shared.run);
    Ok(ended)
}

/// `enable`: the undo of a mistaken disable. Only accounts the journal shows
/// revoke disabled, unless `--force`; nothing is flushed.
pub async fn enable(args: EnableArgs, environment: &Environment) -> anyhow::Result<Ended> {
    let config = Loaded::load(args.run.config.as_deref())?;
    let mut plan = config::enable_plan(args.users, &args.change, args.dry_run, &config)?;
    let choice = config::journal_choice(
        args.journal.journal.as_deref(),
        args.journal.no_journal,
        &config,
    )?;
    if !args.force {
        plan.enable_guard = Some(super::history::enable_guard(&choice)?);
    }
    let journaling = journal::Journaling::open(&choice, args.dry_run)?;
    let accounts = Accounts {
        directory: Some(&plan.directory.bind_user),
        winrm: None,
        f5: None,
    };
    let secrets = credentials::gather(&accounts, environment, args.run.password_stdin, None)?;
    let ended = run::revocation(
        plan,
        secrets,
        args.change.yes,
        &args.run,
        Default::default(),
        journaling,
    )
    .await?;
    run::print_report(&ended, &args.run);
    Ok(ended)
}
