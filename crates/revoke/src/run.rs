//! Wires the core to its consumers: the progress display and the report
//! builder. Handles Ctrl-C. Each command's run ends in an [`Ended`].

use std::io::IsTerminal;

use crate::cli::{OutputFormat, RunArgs};
use crate::report::{PlainProgress, ProgressDisplay};
use revoke_core::directory::discovery::ExchangeServer;
use revoke_core::events::{Event, EventSink};
use revoke_core::orchestrate;
use revoke_core::plan::FlushPlan;
use revoke_core::report::{ReportBuilder, Reporter, RunReport};
use revoke_core::residual::KerberosPolicy;
use revoke_core::revocation::{self, RevocationError, RevocationPlan};
use revoke_core::secrets::Secrets;
use revoke_winrm::Connector;

use crate::journal::Journaling;
use revoke_core::journal::RunJournal;
use std::sync::Arc;

/// How the run shows itself while it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// indicatif on stderr.
    Animated,
    /// One line per finished server on stderr.
    Lines,
    None,
}

impl Progress {
    /// Animated only on a terminal: human output needs stdout and stderr to be
    /// terminals; JSON goes to stdout, so only stderr matters then.
    pub fn choose(output: OutputFormat, quiet: bool) -> Self {
        let stderr_tty = std::io::stderr().is_terminal();
        let stdout_tty = std::io::stdout().is_terminal();
        match (quiet, output) {
            (true, _) => Progress::None,
            (false, OutputFormat::Human) if stderr_tty && stdout_tty => Progress::Animated,
            (false, OutputFormat::Json) if stderr_tty => Progress::Animated,
            (false, OutputFormat::Human) => Progress::Lines,
            (false, OutputFormat::Json) => Progress::None,
        }
    }
}

/// How a command's run ended; the exit code is decided from it (exit.rs).
pub enum Ended {
    /// Nothing to run: `revoke servers` listed what it found.
    Done,
    /// A guard refused an account: nothing was changed.
    Refused,
    /// `revoke doctor` found a problem (its table says which).
    Problems,
    /// The run happened; its report says how it went.
    Ran(Box<Finished>),
}

pub struct Finished {
    pub report: RunReport,
    pub interrupted: bool,
}

/// `flush` and `servers --check`: every server's job, with progress.
pub async fn flush(
    plan: FlushPlan,
    secrets: Secrets,
    run: &RunArgs,
    mut journaling: Journaling,
) -> anyhow::Result<Ended> {
    if plan.targets.is_empty() {
        return Err(RevocationError::NoServers.into());
    }
    warn_unverified(&plan);
    crate::limits::ensure_open_files(plan.concurrency());
    let connector = Connector::new(plan.connection.clone(), secrets.winrm)?;
    // Before any server is contacted.
    let journal = journaling.start(crate::journal::Start::flush(&plan))?;
    let mut finished = drive(
        |sink| orchestrate::flush_and_finish(plan, connector, sink),
        Progress::choose(run.output, run.quiet),
        ReportBuilder::default(),
        journal.clone(),
    )
    .await;
    crate::journal::finish(&journaling, journal.as_deref(), &mut finished);
    Ok(Ended::Ran(Box::new(finished)))
}

/// `disable` / `reset`: prepare (read-only), confirm, then write, wait for
/// the DCs and flush, showing progress. `kerberos_policy` dates what the
/// run cannot close (the report's `residual`).
pub async fn revocation(
    plan: RevocationPlan,
    secrets: Secrets,
    yes: bool,
    run: &RunArgs,
    kerberos_policy: KerberosPolicy,
    mut journaling: Journaling,
) -> anyhow::Result<Ended> {
    warn_unverified(&plan.flush);
    if plan.f5.as_ref().is_some_and(|f5| f5.accept_invalid_certs) {
        eprintln!(
            "WARNING: [f5] accept_invalid_certs = true: BIG-IP certificates are NOT checked; \
             anyone on the path can pose as a BIG-IP and capture the F5 password."
        );
    }
    // WinRM's own account; the LDAP bind (secrets.operator) and the BIG-IPs
    // (secrets.f5) take theirs in revocation::prepare.
    let connector = Connector::new(plan.flush.connection.clone(), secrets.winrm.clone())?;
    let prepared = match revocation::prepare(plan, secrets).await {
        Ok(prepared) => prepared,
        Err(error @ RevocationError::Refused(_)) => {
            eprintln!("error: {error}");
            return Ok(Ended::Refused);
        }
        Err(error) => return Err(error.into()),
    };
    if !prepared.dry_run() {
        crate::confirm::confirm(&prepared, yes)?;
    }
    // The servers are known now (they may come from AD).
    crate::limits::ensure_open_files(prepared.concurrency());
    // Durable before anything is changed: if it cannot be written, nothing is.
    let journal = journaling.start(crate::journal::Start::revocation(&prepared))?;
    let mut finished = drive(
        |sink| revocation::execute(prepared, connector, sink),
        Progress::choose(run.output, run.quiet),
        ReportBuilder::with_kerberos_policy(kerberos_policy),
        journal.clone(),
    )
    .await;
    crate::journal::finish(&journaling, journal.as_deref(), &mut finished);
    Ok(Ended::Ran(Box::new(finished)))
}

fn warn_unverified(plan: &FlushPlan) {
    if plan.connection.accept_invalid_certs {
        eprintln!(
            "WARNING: accept_invalid_certs = true: server certificates are NOT checked; \
             anyone on the path can pose as an Exchange server and capture the password."
        );
    }
}

/// Runs a core (anything that emits events into a sink) with the consumers
/// `progress` asks for, until it finishes or Ctrl-C. With `journal`, the
/// core's events are journaled too (docs/journal.md).
pub async fn drive<F>(
    core: impl FnOnce(EventSink) -> F,
    progress: Progress,
    mut builder: ReportBuilder,
    journal: Option<Arc<RunJournal>>,
) -> Finished
where
    F: std::future::Future<Output = ()>,
{
    let mut consumers: Vec<Box<dyn Reporter>> = match progress {
        Progress::Animated => vec![Box::new(ProgressDisplay::new())],
        Progress::Lines => vec![Box::new(PlainProgress::default())],
        Progress::None => vec![],
    };
    let (sink, mut events) = EventSink::channel();
    let sink = match journal {
        Some(journal) => sink.with_journal(journal),
        None => sink,
    };
    // Boxed so it can be dropped on Ctrl-C, which aborts every server's task.
    let mut core = Box::pin(core(sink));
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);

    let mut core_done = false;
    let mut interrupted = false;
    loop {
        tokio::select! {
            _ = &mut core, if !core_done => core_done = true,
            event = events.recv() => match event {
                Some(event) => {
                    builder.handle(&event);
                    consumers.iter_mut().for_each(|c| c.handle(&event));
                }
                None => break,
            },
            _ = &mut interrupt => {
                interrupted = true;
                break;
            }
        }
    }
    if interrupted {
        // Stop every server's task, then keep what they had reported.
        drop(core);
        while let Ok(event) = events.try_recv() {
            builder.handle(&event);
        }
        let finished = Event::RunFinished {
            finished_at: std::time::SystemTime::now(),
        };
        consumers.iter_mut().for_each(|c| c.handle(&finished));
    }
    Finished {
        report: builder.finish().expect("the core always announces the run"),
        interrupted,
    }
}

/// The report of a run on stdout, in the format `run` asks for (with
/// `--detail`, the human report shows every pool of every server).
pub fn print_report(ended: &Ended, run: &RunArgs) {
    let Ended::Ran(finished) = ended else {
        return;
    };
    let report = &finished.report;
    let text = match run.output {
        OutputFormat::Human => crate::report::render_table(report, run.detail),
        OutputFormat::Json => revoke_core::report::render_json(report) + "\n",
    };
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// `revoke servers`: the discovered servers on stdout (`port`: the WinRM
/// port revoke would use for them).
pub fn print_servers(servers: &[ExchangeServer], port: u16, output: OutputFormat) {
    let text = match output {
        OutputFormat::Human => crate::report::servers::render_table(servers, port),
        OutputFormat::Json => crate::report::servers::render_json(servers, port) + "\n",
    };
    print!("{text}");
}
