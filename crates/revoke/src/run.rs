//! Wires the orchestration core to its consumers: the progress display and
//! the report builder. Handles Ctrl-C.

use std::io::IsTerminal;

use crate::cli::OutputFormat;
use crate::exit;
use crate::report::{PlainProgress, ProgressDisplay};
use revoke_core::orchestrate::{self, EventSink};
use revoke_core::plan::FlushPlan;
use revoke_core::report::{ReportBuilder, Reporter, RunReport};
use revoke_winrm::Connector;

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

pub struct Finished {
    pub report: RunReport,
    pub interrupted: bool,
}

impl Finished {
    pub fn exit_code(&self) -> u8 {
        let change_failed = self
            .report
            .has_user(revoke_core::events::UserStatus::Failed);
        if self.interrupted {
            exit::INTERRUPTED
        } else if change_failed {
            // The AD change failed, so nothing was flushed.
            exit::NOTHING_ATTEMPTED
        } else if self.report.all_ok() {
            exit::OK
        } else {
            exit::SOME_NOT_OK
        }
    }
}

pub async fn flush(plan: FlushPlan, connector: Connector, progress: Progress) -> Finished {
    drive(|sink| orchestrate::run(plan, connector, sink), progress).await
}

/// Runs a core (anything that emits events into a sink) with the consumers
/// `progress` asks for, until it finishes or Ctrl-C.
pub async fn drive<F>(core: impl FnOnce(EventSink) -> F, progress: Progress) -> Finished
where
    F: std::future::Future<Output = ()>,
{
    let mut consumers: Vec<Box<dyn Reporter>> = match progress {
        Progress::Animated => vec![Box::new(ProgressDisplay::new())],
        Progress::Lines => vec![Box::new(PlainProgress::default())],
        Progress::None => vec![],
    };
    let mut builder = ReportBuilder::default();
    let (sink, mut events) = EventSink::channel();
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
        let finished = revoke_core::events::Event::RunFinished {
            finished_at: std::time::SystemTime::now(),
        };
        consumers.iter_mut().for_each(|c| c.handle(&finished));
    }
    Finished {
        report: builder.finish().expect("the core always announces the run"),
        interrupted,
    }
}

/// Connect, run, print the report; the exit code to end with.
pub async fn execute(plan: FlushPlan, output: OutputFormat, quiet: bool) -> anyhow::Result<u8> {
    let connector = Connector::new(plan.connection.clone())?;
    let finished = flush(plan, connector, Progress::choose(output, quiet)).await;
    print_report(&finished.report, output);
    Ok(finished.exit_code())
}

/// `revoke servers`: the discovered servers on stdout.
pub fn print_servers(targets: &[revoke_core::plan::Target], output: OutputFormat) {
    let text = match output {
        OutputFormat::Human => crate::report::servers::render_table(targets),
        OutputFormat::Json => crate::report::servers::render_json(targets) + "\n",
    };
    print!("{text}");
}

/// Print the report to stdout in the chosen format.
pub fn print_report(report: &RunReport, output: OutputFormat) {
    let text = match output {
        OutputFormat::Human => crate::report::render_table(report),
        OutputFormat::Json => revoke_core::report::render_json(report) + "\n",
    };
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// How a `disable` / `reset` run ended.
pub enum Ended {
    /// A guard refused an account, or the operator did not confirm: nothing changed.
    NotStarted(u8),
    Ran(Box<Finished>),
}

/// Prepare (read-only), confirm, then write, wait for the DCs and flush,
/// showing progress; prints the report.
pub async fn revocation(
    plan: revoke_core::revocation::RevocationPlan,
    yes: bool,
    output: OutputFormat,
    quiet: bool,
) -> anyhow::Result<Ended> {
    use revoke_core::revocation::{self, RevocationError};
    let connector = Connector::new(plan.flush.connection.clone())?;
    let prepared = match revocation::prepare(plan).await {
        Ok(prepared) => prepared,
        Err(error @ RevocationError::Refused(_)) => {
            eprintln!("error: {error}");
            return Ok(Ended::NotStarted(exit::REFUSED));
        }
        Err(error) => return Err(error.into()),
    };
    if !prepared.dry_run() {
        crate::confirm::confirm(&prepared, yes)?;
    }
    let finished = drive(
        |sink| revocation::execute(prepared, connector, sink),
        Progress::choose(output, quiet),
    )
    .await;
    print_report(&finished.report, output);
    Ok(Ended::Ran(Box::new(finished)))
}
