//! `revoke`: parse → plan → gather secrets → run → report. Each command's
//! pipeline is in `commands/`; this file parses and dispatches.

mod bulk;
mod cli;
mod commands;
mod config;
mod confirm;
mod credentials;
mod exit;
mod generate;
mod journal;
mod limits;
mod report;
mod run;

use clap::Parser;

use cli::{Cli, Command};
use credentials::Environment;
use exit::Exit;

fn main() -> std::process::ExitCode {
    // First, while revoke is still one thread: the variables are removed.
    let environment = Environment::take();
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
    // `[kerberos]` points KRB5_CONFIG at revoke's own krb5.conf: an
    // environment change, so here, while revoke is still one thread.
    let _krb5_dir = match cli.command.kerberos_config() {
        Some(flag) => match config::kerberos_environment(flag) {
            Ok(dir) => dir,
            Err(error) => {
                eprintln!("error: {error}");
                return Exit::NothingAttempted.into();
            }
        },
        None => None,
    };
    init_logging(cli.verbose);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let ended = runtime.block_on(async {
        match cli.command {
            Command::Disable(args) => commands::disable::run(args, &environment).await,
            Command::Reset(args) => commands::reset::run(args, &environment).await,
            Command::Servers(args) => commands::servers::run(args, &environment).await,
            Command::Flush(args) => commands::flush::run(args, &environment).await,
            Command::Enable(args) => commands::disable::enable(args, &environment).await,
            Command::History(args) => commands::history::run(args),
            Command::Retry(args) => commands::retry::run(args, &environment).await,
            Command::Doctor(args) => commands::doctor::run(args, &environment).await,
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
