//! `revoke`: parse → plan → run → report.

use std::process::ExitCode;

use clap::Parser;

use revoke::cli::{Cli, Command, FlushArgs};
use revoke::{config, credentials, exit, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Flush(args) => flush(args).await,
            Command::Lab(args) => revoke::lab::command::run(args).await,
            Command::Demo(args) => revoke::demo::run(args).await,
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
    let file = config::load(args.config.as_deref())?;
    let mut plan = config::flush_plan(&args, file)?;
    plan.connection.password = credentials::password(&plan.connection.user, args.password_stdin)?;
    if plan.connection.accept_invalid_certs {
        eprintln!(
            "WARNING: accept_invalid_certs = true: server certificates are NOT checked; \
             anyone on the path can pose as an Exchange server and capture the password."
        );
    }
    // Run, then report.
    run::execute(plan, args.output, args.quiet).await
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
