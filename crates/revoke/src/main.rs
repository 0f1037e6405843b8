//! `revoke`: parse → plan → run → report.

use std::process::ExitCode;

use clap::Parser;

mod cli;
#[cfg(feature = "lab")]
mod commands;
mod config;
mod confirm;
mod credentials;
mod exit;
mod report;
mod run;

use cli::{Cli, Command, DirectoryArgs, DisableArgs, FlushArgs, ResetArgs, ServersArgs};
use config::Loaded;
use credentials::PasswordFile;
use revoke_core::directory::change::Change;
use revoke_core::directory::password;
use revoke_core::events::UserStatus;
use revoke_core::revocation;
use run::Ended;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Disable(args) => disable(args).await,
            Command::Reset(args) => reset(args).await,
            Command::Servers(args) => servers(args).await,
            Command::Flush(args) => flush(args).await,
            #[cfg(feature = "lab")]
            Command::Lab(args) => commands::lab::run(args).await,
            #[cfg(feature = "lab")]
            Command::Demo(args) => commands::demo::run(args).await,
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(exit::NOTHING_ATTEMPTED)
        }
    }
}

async fn flush(args: FlushArgs) -> anyhow::Result<u8> {
    // Plan: everything checkable is checked before asking for a password.
    let loaded = Loaded::from(config::load(args.config.as_deref())?);
    let directory = config::directory_settings(&DirectoryArgs::default(), &loaded)?;
    let mut plan = config::flush_plan(&args, &loaded, directory.is_some())?;
    // Servers from AD only when none are given or configured.
    let directory = directory.filter(|_| plan.targets.is_empty());
    let password = credentials::password(&plan.connection.user, args.password_stdin)?;
    if let Some(mut directory) = directory {
        directory.password = password.clone();
        plan.targets = revocation::discover(&directory, plan.default_port).await?;
        if plan.targets.is_empty() {
            return Err(revocation::RevocationError::NoServers.into());
        }
    }
    plan.connection.password = password;
    warn_if_unverified(plan.connection.accept_invalid_certs);
    // Run, then report.
    run::execute(plan, args.output, args.quiet).await
}

async fn disable(args: DisableArgs) -> anyhow::Result<u8> {
    let loaded = Loaded::from(config::load(args.flush.config.as_deref())?);
    let plan = config::revocation_plan(
        Change::Disable,
        args.users,
        &args.change,
        &args.flush,
        &loaded,
    )?;
    let plan = with_operator_password(plan, args.flush.password_stdin)?;
    Ok(
        match run::revocation(plan, args.change.yes, args.flush.output, args.flush.quiet).await? {
            Ended::NotStarted(code) => code,
            Ended::Ran(finished) => finished.exit_code(),
        },
    )
}

async fn reset(args: ResetArgs) -> anyhow::Result<u8> {
    let loaded = Loaded::from(config::load(args.flush.config.as_deref())?);
    // The new password is filled in below, once the plan is known to be valid.
    let change = |password| Change::Reset {
        password,
        must_change: args.must_change,
    };
    let mut plan = config::revocation_plan(
        change(revoke_core::Password::new(String::new())),
        vec![args.account.clone()],
        &args.change,
        &args.flush,
        &loaded,
    )?;
    plan = with_operator_password(plan, args.flush.password_stdin)?;
    let new_password = if args.new_password_stdin {
        credentials::new_password_from_stdin()?
    } else {
        password::generate()
    };
    plan.change = change(new_password.clone());
    // Created before anything changes, so a bad path fails first.
    let file = match (&args.password_file, args.flush.dry_run) {
        (Some(path), false) => Some(PasswordFile::create(path)?),
        _ => None,
    };
    let ended = run::revocation(plan, args.change.yes, args.flush.output, args.flush.quiet).await;
    let reset_done = matches!(&ended, Ok(Ended::Ran(f)) if f.report.has_user(UserStatus::Reset));
    credentials::hand_over(
        &new_password,
        file,
        reset_done,
        !args.new_password_stdin,
        &args.account,
    )?;
    Ok(match ended? {
        Ended::NotStarted(code) => code,
        Ended::Ran(finished) => finished.exit_code(),
    })
}

async fn servers(args: ServersArgs) -> anyhow::Result<u8> {
    let loaded = Loaded::from(config::load(args.flush.config.as_deref())?);
    let mut directory = config::directory_settings(&args.directory, &loaded)?.ok_or_else(|| {
        anyhow::anyhow!(
            "revoke servers lists the Exchange servers found in AD: give --directory ldaps://dc1.corp.example.com \
             or set url in the [directory] section of the config file"
        )
    })?;
    let mut plan = config::flush_plan(&args.flush, &loaded, true)?;
    let password = credentials::password(&directory.bind_user, args.flush.password_stdin)?;
    directory.password = password.clone();
    plan.targets = revocation::discover(&directory, plan.default_port).await?;
    if !args.check {
        run::print_servers(&plan.targets, args.flush.output);
        return Ok(exit::OK);
    }
    if plan.targets.is_empty() {
        return Err(config::no_servers().into());
    }
    // --check: a dry-run flush connects, authenticates and only reads.
    plan.dry_run = true;
    plan.connection.password = password;
    warn_if_unverified(plan.connection.accept_invalid_certs);
    run::execute(plan, args.flush.output, args.flush.quiet).await
}

/// One password for the operator: the LDAP bind and WinRM; and for the
/// BIG-IPs too, unless `$REVOKE_F5_PASSWORD` gives theirs.
fn with_operator_password(
    mut plan: revocation::RevocationPlan,
    from_stdin: bool,
) -> anyhow::Result<revocation::RevocationPlan> {
    let password = credentials::password(&plan.directory.bind_user, from_stdin)?;
    plan.directory.password = password.clone();
    if let Some(f5) = plan.f5.as_mut() {
        f5.password = credentials::f5_password(&password);
        if f5.accept_invalid_certs {
            eprintln!(
                "WARNING: [f5] accept_invalid_certs = true: BIG-IP certificates are NOT checked; \
                 anyone on the path can pose as a BIG-IP and capture the F5 password."
            );
        }
    }
    plan.flush.connection.password = password;
    warn_if_unverified(plan.flush.connection.accept_invalid_certs);
    Ok(plan)
}

fn warn_if_unverified(accept_invalid_certs: bool) {
    if accept_invalid_certs {
        eprintln!(
            "WARNING: accept_invalid_certs = true: server certificates are NOT checked; \
             anyone on the path can pose as an Exchange server and capture the password."
        );
    }
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
