//! `revoke servers`: the Exchange servers AD lists, and with `--check` a
//! dry-run flush of them.

use revoke_core::directory::discovery;
use revoke_core::revocation;

use crate::cli::ServersArgs;
use crate::config::{self, Loaded};
use crate::credentials::Accounts;
use crate::credentials::{self, Environment};
use crate::run::{self, Ended};

pub async fn run(args: ServersArgs, environment: &Environment) -> anyhow::Result<Ended> {
    let config = Loaded::load(args.run.config.as_deref())?;
    let directory = config::required_directory(
        &args.directory,
        &config,
        "revoke servers lists the Exchange servers found in AD",
    )?;
    let mut plan = config::flush_plan(&Default::default(), &args.winrm, &config, true)?;
    // WinRM only for --check.
    let accounts = Accounts {
        directory: Some(&directory.bind_user),
        winrm: args.check.then_some(plan.connection.user.as_str()),
        f5: None,
    };
    let secrets = credentials::gather(&accounts, environment, args.run.password_stdin, None)?;
    if !args.check {
        // The list: version, roles and site of each, as AD has them.
        let servers = discovery::list(&directory, &secrets.operator).await?;
        run::print_servers(&servers, plan.default_port, args.run.output);
        return Ok(Ended::Done);
    }
    plan.targets = revocation::discover(&directory, &secrets.operator, plan.default_port).await?;
    // --check: a dry-run flush connects, authenticates and only reads.
    plan.dry_run = true;
    let ended = run::flush(plan, secrets, &args.run, Default::default()).await?;
    run::print_report(&ended, &args.run);
    Ok(ended)
}
