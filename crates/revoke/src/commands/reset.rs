//! `revoke reset`: new passwords, rotated twice, then the same gate and flush
//! as a disable; each new password handed over once, never reported.

use revoke_core::directory::change::Change;
use revoke_core::events::UserStatus;

use super::{open_journal, plan_accounts};
use crate::bulk;
use crate::cli::ResetArgs;
use crate::config::{self, Loaded};
use crate::credentials::{self, Environment};
use crate::credentials::{Destination, NewPassword, NewPasswordsFor, PasswordDir, PasswordFile};
use crate::run::{self, Ended};

pub async fn run(args: ResetArgs, environment: &Environment) -> anyhow::Result<Ended> {
    let shared = &args.revocation;
    let config = Loaded::load(shared.run.config.as_deref())?;
    let change = Change::Reset {
        must_change: args.must_change,
    };
    let from_file = args.from_file.as_deref();
    bulk::check_stdin(
        from_file,
        &[
            (shared.run.password_stdin, "--password-stdin"),
            (args.new_password_stdin, "--new-password-stdin"),
        ],
    )?;
    let users = bulk::account_list(&args.users, from_file)?;
    bulk::check_reset(
        users.len(),
        args.new_password_stdin,
        args.password_file.is_some(),
    )?;
    let plan = config::revocation_plan(change, users.clone(), shared, &config)?;
    let kerberos_policy = config::kerberos_policy(&config)?;
    let journaling = open_journal(&shared.journal, shared.flush.dry_run, &config)?;
    let source = match args.new_password_stdin {
        true => NewPassword::Stdin,
        false => NewPassword::Generate,
    };
    // Where the passwords go is checked (a file or directory created)
    // before anything changes, so a bad path fails first.
    let destination = match (&args.password_file, &args.password_dir) {
        _ if shared.flush.dry_run => Destination::Terminal,
        (Some(path), _) => Destination::File(PasswordFile::create(path)?),
        (None, Some(dir)) => Destination::Dir(PasswordDir::prepare(dir, &users)?),
        (None, None) => Destination::Terminal,
    };
    let secrets = credentials::gather(
        &plan_accounts(&plan),
        environment,
        shared.run.password_stdin,
        Some(NewPasswordsFor {
            source,
            accounts: &users,
        }),
    )?;
    // Kept for the hand-over: the run consumes the secrets.
    let new_passwords = secrets.new_passwords.clone();
    let ended = run::revocation(
        plan,
        secrets,
        shared.change.yes,
        &shared.run,
        kerberos_policy,
        journaling,
    )
    .await;
    if let Ok(ended) = &ended {
        run::print_report(ended, &shared.run);
    }
    // Only the accounts whose reset happened get their password handed over.
    let reset_accounts: Vec<credentials::ResetAccount> = match &ended {
        Ok(Ended::Ran(f)) => f
            .report
            .directory
            .iter()
            .flat_map(|d| &d.users)
            .filter(|u| u.status == UserStatus::Reset)
            .map(|u| credentials::ResetAccount {
                input: u.input.clone(),
                sam: u.sam_account_name.clone(),
            })
            .collect(),
        _ => Vec::new(),
    };
    let generated = source == NewPassword::Generate;
    credentials::hand_over(&new_passwords, &reset_accounts, destination, generated)?;
    ended
}
