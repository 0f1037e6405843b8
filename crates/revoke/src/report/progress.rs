//! Live progress on stderr: an animated display on a terminal, plain lines
//! otherwise.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use revoke_core::events::{Event, status_word};
use revoke_core::f5::{F5Outcome, F5Status};
use revoke_core::report::Reporter;

/// An overall bar plus one live line per running server.
pub struct ProgressDisplay {
    multi: MultiProgress,
    overall: Option<ProgressBar>,
    lines: HashMap<String, ProgressBar>,
    /// The directory phase of `disable` / `reset`: one spinner with its step.
    directory: Option<ProgressBar>,
}

impl Default for ProgressDisplay {
    fn default() -> Self {
        Self::new()
    }
}

impl ProgressDisplay {
    pub fn new() -> Self {
        Self {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(12)),
            overall: None,
            lines: HashMap::new(),
            directory: None,
        }
    }

    fn line(&mut self, server: &str) -> &ProgressBar {
        let multi = &self.multi;
        self.lines.entry(server.to_string()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("  {spinner} {prefix:<24} {msg}")
                    .expect("valid template"),
            );
            bar.set_prefix(server.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        })
    }
}

impl Reporter for ProgressDisplay {
    fn handle(&mut self, event: &Event) {
        match event {
            Event::DirectoryStarted { users, .. } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} directory  {msg}  {elapsed}")
                        .expect("valid template"),
                );
                bar.set_message(format!("resolving {}", users.join(", ")));
                bar.enable_steady_tick(Duration::from_millis(120));
                self.directory = Some(bar);
            }
            Event::DirectoryStep { what } => {
                if let Some(bar) = &self.directory {
                    bar.set_message(what.clone());
                }
            }
            Event::UserFinished { .. }
            | Event::DomainControllerFinished { .. }
            | Event::FlushSkipped { .. } => {
                if let Some(line) = directory_line(event) {
                    let _ = self.multi.println(format!("  {line}"));
                }
            }
            Event::RunStarted {
                servers, dry_run, ..
            } => {
                if let Some(bar) = self.directory.take() {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                let bar = self.multi.add(ProgressBar::new(servers.len() as u64));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix} [{bar:30}] {pos}/{len} servers done  {elapsed}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(if *dry_run { "dry run" } else { "flushing" });
                bar.enable_steady_tick(Duration::from_millis(250));
                self.overall = Some(bar);
            }
            Event::ServerStarted { server } => {
                self.line(server).set_message("starting");
            }
            Event::StepChanged { server, step } => {
                self.line(server).set_message(step.to_string());
            }
            Event::ActionFinished { .. } => {}
            Event::F5Started { devices, .. } => {
                for device in devices {
                    self.line(&f5_key(device)).set_message("starting");
                }
            }
            Event::F5Step { device, what } => {
                self.line(&f5_key(device)).set_message(what.clone());
            }
            Event::F5DeviceFinished { device } => {
                if let Some(bar) = self.lines.remove(&f5_key(&device.device)) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                let _ = self.multi.println(format!("  {}", f5_line(device)));
            }
            Event::ServerFinished { server, outcome } => {
                if let Some(bar) = self.lines.remove(server) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                if !outcome.status.is_success() {
                    let _ = self.multi.println(format!(
                        "  {server}: {} {}",
                        outcome.status,
                        outcome.error.as_deref().unwrap_or("")
                    ));
                }
                if let Some(bar) = &self.overall {
                    bar.inc(1);
                }
            }
            Event::RunFinished { .. } => {
                if let Some(bar) = self.directory.take() {
                    bar.finish_and_clear();
                }
                if let Some(bar) = self.overall.take() {
                    bar.finish_and_clear();
                }
                for (_, bar) in self.lines.drain() {
                    bar.finish_and_clear();
                }
                let _ = self.multi.clear();
            }
        }
    }
}

/// One line per finished server on stderr: for logs and pipes, nothing animated.
#[derive(Default)]
pub struct PlainProgress {
    total: usize,
    done: usize,
}

impl Reporter for PlainProgress {
    fn handle(&mut self, event: &Event) {
        match event {
            Event::RunStarted { servers, .. } => self.total = servers.len(),
            Event::ServerFinished { server, outcome } => {
                self.done += 1;
                let mut stderr = std::io::stderr().lock();
                let _ = writeln!(
                    stderr,
                    "[{}/{}] {server}: {} ({:.1} s){}",
                    self.done,
                    self.total,
                    outcome.status,
                    outcome.duration.as_secs_f64(),
                    outcome
                        .error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                );
            }
            Event::UserFinished { .. }
            | Event::DomainControllerFinished { .. }
            | Event::FlushSkipped { .. } => {
                if let Some(line) = directory_line(event) {
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                }
            }
            Event::F5DeviceFinished { device } => {
                let _ = writeln!(std::io::stderr().lock(), "{}", f5_line(device));
            }
            _ => {}
        }
    }
}

/// The live line of a BIG-IP (apart from the servers' lines).
fn f5_key(device: &str) -> String {
    format!("APM {device}")
}

/// One line for a finished BIG-IP.
fn f5_line(device: &F5Outcome) -> String {
    let what = match device.status {
        F5Status::Ok => format!("ok, {} session(s) killed", device.killed),
        F5Status::Planned => format!("planned, would kill {} session(s)", device.sessions.len()),
        other => status_word(&other),
    };
    let message = match (device.status, &device.message) {
        (F5Status::Failed | F5Status::Interrupted, Some(m)) => format!(": {m}"),
        _ => String::new(),
    };
    format!(
        "APM {}: {what} ({:.1} s){message}",
        device.device,
        device.duration_ms as f64 / 1000.0
    )
}

/// One line for a finished step of the directory phase.
fn directory_line(event: &Event) -> Option<String> {
    let message = |m: &Option<String>| m.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
    match event {
        Event::UserFinished { user } => Some(format!(
            "account {}: {}{}",
            user.sam_account_name,
            status_word(&user.status),
            message(&user.message)
        )),
        Event::DomainControllerFinished { dc } => Some(format!(
            "domain controller {}: {} ({:.1} s){}",
            dc.host,
            status_word(&dc.status),
            dc.elapsed_ms as f64 / 1000.0,
            message(&dc.message)
        )),
        Event::FlushSkipped { reason } => Some(format!("flush not run: {reason}")),
        _ => None,
    }
}
