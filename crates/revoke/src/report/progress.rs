//! Live progress on stderr: an animated display on a terminal, plain lines
//! otherwise.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use revoke_core::events::{Event, ServerStatus, status_word};
use revoke_core::f5::{F5Outcome, F5Status};
use revoke_core::report::Reporter;

/// At most this many running servers are named, the longest-running first.
const SLOWEST: usize = 5;

/// The widest server name in the lines of the slowest servers.
const MAX_NAME_WIDTH: usize = 40;

/// A longer step (a retry's reason) is cut to this many characters.
const MAX_STEP_WIDTH: usize = 90;

/// One overall bar with the count of servers per state, and a few lines
/// naming the servers that have been running longest, with their current
/// step: as readable for 500 servers as for 5. A server that does not end
/// ok gets a line above the bars when it finishes.
pub struct ProgressDisplay {
    multi: MultiProgress,
    overall: Option<ProgressBar>,
    /// What the bar shows; its lines of the slowest servers read it when
    /// drawn, so their times run on between events.
    board: Arc<Mutex<Board>>,
    /// The BIG-IPs (a few): one live line each.
    devices: HashMap<String, ProgressBar>,
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
            board: Arc::default(),
            devices: HashMap::new(),
            directory: None,
        }
    }

    fn board(&self) -> MutexGuard<'_, Board> {
        self.board.lock().expect("progress board")
    }

    /// The counts on the overall bar. The board is not locked while the
    /// bar is touched: drawing it locks the board.
    fn refresh(&self) {
        let counts = self.board().counts();
        if let Some(overall) = &self.overall {
            overall.set_message(counts);
        }
    }

    fn device(&mut self, device: &str) -> &ProgressBar {
        let multi = &self.multi;
        self.devices.entry(device.to_string()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("  {spinner} APM {prefix:<24} {msg}")
                    .expect("valid template"),
            );
            bar.set_prefix(device.to_string());
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
                self.board().start(servers);
                // The slowest servers' lines belong to the bar, so they are
                // drawn at the same instant and their times agree.
                let board = Arc::clone(&self.board);
                let slowest = move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                    for line in board.lock().expect("progress board").slow_lines() {
                        let _ = write!(w, "\n{line}");
                    }
                };
                let bar = self.multi.add(ProgressBar::new(servers.len() as u64));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix} [{bar:30}] {pos}/{len} done  {msg}  {elapsed}{slowest}",
                    )
                    .expect("valid template")
                    .progress_chars("=> ")
                    .with_key("slowest", slowest),
                );
                bar.set_prefix(if *dry_run { "dry run" } else { "flushing" });
                bar.enable_steady_tick(Duration::from_millis(250));
                self.overall = Some(bar);
                self.refresh();
            }
            Event::ServerStarted { server } => {
                self.board().started(server);
                self.refresh();
            }
            Event::StepChanged { server, step } => {
                // A step before the server started (waiting for its wave)
                // changes nothing: it counts as waiting.
                self.board().step(server, step.to_string());
            }
            Event::ActionFinished { .. }
            | Event::AccountChanging { .. }
            | Event::ServerMutating { .. } => {}
            Event::F5Started { devices, .. } => {
                for device in devices {
                    self.device(device).set_message("starting");
                }
            }
            Event::F5Step { device, what } => {
                self.device(device).set_message(what.clone());
            }
            Event::F5DeviceFinished { device } => {
                if let Some(bar) = self.devices.remove(&device.device) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                let _ = self.multi.println(format!("  {}", f5_line(device)));
            }
            Event::ServerFinished { server, outcome } => {
                self.board().finished(server, outcome.status);
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
                self.refresh();
            }
            Event::RunFinished { .. } => {
                if let Some(bar) = self.directory.take() {
                    bar.finish_and_clear();
                }
                if let Some(bar) = self.overall.take() {
                    bar.finish_and_clear();
                }
                for (_, bar) in self.devices.drain() {
                    bar.finish_and_clear();
                }
                let _ = self.multi.clear();
            }
        }
    }
}

/// What the animated display shows about the servers.
#[derive(Debug, Default)]
struct Board {
    total: usize,
    /// Started and not finished, in the order they started: the first
    /// ones have been running longest.
    running: Vec<Running>,
    /// Finished servers per status, in [`STATUS_ORDER`].
    finished: [usize; STATUS_ORDER.len()],
    /// How wide the server names are in the lines.
    width: usize,
}

#[derive(Debug)]
struct Running {
    server: String,
    since: Instant,
    step: String,
}

/// The order the counts are shown in.
const STATUS_ORDER: [ServerStatus; 8] = [
    ServerStatus::Ok,
    ServerStatus::Planned,
    ServerStatus::Draining,
    ServerStatus::Partial,
    ServerStatus::Failed,
    ServerStatus::Timeout,
    ServerStatus::Unreachable,
    ServerStatus::Interrupted,
];

impl Board {
    fn start(&mut self, servers: &[String]) {
        self.total = servers.len();
        self.width = servers
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(0)
            .min(MAX_NAME_WIDTH);
    }

    fn started(&mut self, server: &str) {
        self.running.push(Running {
            server: server.to_string(),
            since: Instant::now(),
            step: "starting".to_string(),
        });
    }

    fn step(&mut self, server: &str, step: String) {
        if let Some(running) = self.running.iter_mut().find(|r| r.server == server) {
            running.step = step;
        }
    }

    fn finished(&mut self, server: &str, status: ServerStatus) {
        self.running.retain(|r| r.server != server);
        if let Some(i) = STATUS_ORDER.iter().position(|s| *s == status) {
            self.finished[i] += 1;
        }
    }

    /// `142 ok, 3 failed, 55 running, 20 waiting`: finished per status,
    /// then running, then not started yet (`--parallel`, iisreset waves).
    fn counts(&self) -> String {
        let done: usize = self.finished.iter().sum();
        let running = self.running.len();
        let waiting = self.total.saturating_sub(done + running);
        let mut parts: Vec<String> = STATUS_ORDER
            .iter()
            .zip(self.finished)
            .filter(|(_, n)| *n > 0)
            .map(|(status, n)| format!("{n} {status}"))
            .collect();
        for (n, what) in [(running, "running"), (waiting, "waiting")] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        parts.join(", ")
    }

    /// A line for each of the [`SLOWEST`] longest-running servers: how
    /// long it has been running, its name and its current step.
    fn slow_lines(&self) -> Vec<String> {
        let width = self.width;
        self.running
            .iter()
            .take(SLOWEST)
            .map(|running| {
                let mut step = running.step.clone();
                if let Some((cut, _)) = step.char_indices().nth(MAX_STEP_WIDTH) {
                    step.truncate(cut);
                    step.push('…');
                }
                format!(
                    "  {:>7}  {:width$}  {step}",
                    format!("{:.1} s", running.since.elapsed().as_secs_f64()),
                    running.server,
                )
            })
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_board_counts_every_state_and_names_the_longest_running() {
        let servers: Vec<String> = (1..=200)
            .map(|i| format!("ex{i:03}.corp.example.com"))
            .collect();
        let mut board = Board::default();
        board.start(&servers);
        assert_eq!(board.counts(), "200 waiting");
        for server in &servers[..150] {
            board.started(server);
        }
        // Waiting for its wave is not running.
        board.step(&servers[160], "waiting for its wave".into());
        board.step(&servers[2], "recycling MSExchangeOWAAppPool".into());
        for server in &servers[5..147] {
            board.finished(server, ServerStatus::Ok);
        }
        for server in &servers[147..150] {
            board.finished(server, ServerStatus::Failed);
        }
        assert_eq!(board.counts(), "142 ok, 3 failed, 5 running, 50 waiting");
        let lines = board.slow_lines();
        assert_eq!(lines.len(), 5, "{lines:#?}");
        assert!(
            lines[0].contains("ex001.corp.example.com  starting"),
            "{lines:#?}"
        );
        assert!(
            lines[2].ends_with("ex003.corp.example.com  recycling MSExchangeOWAAppPool"),
            "{lines:#?}"
        );
        assert!(lines.iter().all(|l| l.starts_with("    0.")), "{lines:#?}");
    }
}
