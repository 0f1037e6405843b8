//! `revoke`: parse → plan → gather secrets → run → report.

mod cli;
#[cfg(feature = "lab")]
mod commands;
mod config;
mod confirm;
mod credentials;
mod exit;
mod generate;
mod limits;
mod report;
mod run;

use clap::Parser;

use cli::{Cli, Command, DirectoryArgs, DisableArgs, FlushArgs, ResetArgs, ServersArgs};
use config::Loaded;
use credentials::{NewPassword, PasswordFile};
use exit::Exit;
use revoke_core::directory::change::Change;
use revoke_core::events::UserStatus;
use revoke_core::revocation;
use run::Ended;

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(usage) => {
            // --help and --version print to stdout and succeed; a usage
            // error is exit 1 like any other run that attempted nothing.
            let _ = usage.print();
            return match usage.use_stderr() {
                true => Exit::NothingAttempted,
                false => Exit::Ok,
            }
            .into();
        }
    };
    init_logging(cli.verbose);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let ended = runtime.block_on(async {
        match cli.command {
            Command::Disable(args) => disable(args).await,
            Command::Reset(args) => reset(args).await,
            Command::Servers(args) => servers(args).await,
            Command::Flush(args) => flush(args).await,
            Command::Completions { shell } => generate::completions(shell),
            Command::Man { dir } => generate::man(&dir),
            #[cfg(feature = "lab")]
            Command::Lab(args) => commands::lab::run(args).await,
            #[cfg(feature = "lab")]
            Command::Demo(args) => commands::demo::run(args).await,
        }
    });
    match ended {
        Ok(ended) => Exit::from(&ended),
        Err(error) => {
            eprintln!("error: {error:#}");
            Exit::NothingAttempted
        }
    }
    .into()
}

async fn flush(args: FlushArgs) -> anyhow::Result<Ended> {
    // Plan: everything checkable is checked before asking for a password.
    let config = Loaded::load(args.run.config.as_deref())?;
    let directory = config::directory_settings(&DirectoryArgs::default(), &config)?;
    let mut plan = config::flush_plan(&args.flush, &args.winrm, &config, directory.is_some())?;
    let secrets = credentials::gather(&plan.connection.user, args.run.password_stdin, None)?;
    // Servers from AD only when none are given or configured.
    if let Some(directory) = directory.filter(|_| plan.targets.is_empty()) {
        plan.targets =
            revocation::discover(&directory, &secrets.operator, plan.default_port).await?;
    }
    let ended = run::flush(plan, secrets, &args.run).await?;
    run::print_report(&ended, &args.run);
    Ok(ended)
}

async fn disable(args: DisableArgs) -> anyhow::Result<Ended> {
    let shared = &args.revocation;
    let config = Loaded::load(shared.run.config.as_deref())?;
    let plan = config::revocation_plan(Change::Disable, args.users, shared, &config)?;
    let secrets = credentials::gather(&plan.directory.bind_user, shared.run.password_stdin, None)?;
    let ended = run::revocation(plan, secrets, shared.change.yes, &shared.run).await?;
    run::print_report(&ended, &shared.run);
    Ok(ended)
}

async fn reset(args: ResetArgs) -> anyhow::Result<Ended> {
    let shared = &args.revocation;
    let config = Loaded::load(shared.run.config.as_deref())?;
    let change = Change::Reset {
        must_change: args.must_change,
    };
    let plan = config::revocation_plan(change, vec![args.account.clone()], shared, &config)?;
    let source = match args.new_password_stdin {
        true => NewPassword::Stdin,
        false => NewPassword::Generate,
    };
    let secrets = credentials::gather(
        &plan.directory.bind_user,
        shared.run.password_stdin,
        Some(source),
    )?;
    let new_password = secrets.new_password.clone().expect("asked for above");
    // Created before anything changes, so a bad path fails first.
    let file = match (&args.password_file, shared.flush.dry_run) {
        (Some(path), false) => Some(PasswordFile::create(path)?),
        _ => None,
    };
    let ended = run::revocation(plan, secrets, shared.change.yes, &shared.run).await;
    if let Ok(ended) = &ended {
        run::print_report(ended, &shared.run);
    }
    let reset_done = matches!(&ended, Ok(Ended::Ran(f)) if f.report.has_user(UserStatus::Reset));
    let generated = source == NewPassword::Generate;
    credentials::hand_over(&new_password, file, reset_done, generated, &args.account)?;
    ended
}

async fn servers(args: ServersArgs) -> anyhow::Result<Ended> {
    let config = Loaded::load(args.run.config.as_deref())?;
    let directory = config::required_directory(
        &args.directory,
        &config,
        "revoke servers lists the Exchange servers found in AD",
    )?;
    let mut plan = config::flush_plan(&Default::default(), &args.winrm, &config, true)?;
    let secrets = credentials::gather(&directory.bind_user, args.run.password_stdin, None)?;
    plan.targets = revocation::discover(&directory, &secrets.operator, plan.default_port).await?;
    if !args.check {
        run::print_servers(&plan.targets, args.run.output);
        return Ok(Ended::Done);
    }
    // --check: a dry-run flush connects, authenticates and only reads.
    plan.dry_run = true;
    let ended = run::flush(plan, secrets, &args.run).await?;
    run::print_report(&ended, &args.run);
    Ok(ended)
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
