//! The journal: what every run that changes something did, one JSON record
//! per line in one file (docs/journal.md). A record that announces a step
//! is written and fsync'ed before the step is taken, and one after it
//! completed, so a run killed at any point (SIGKILL, a reboot) leaves a
//! journal that says what was done and what was not.
//!
//! - [`records`]: the record types (versioned, [`JOURNAL_VERSION`]).
//! - [`Journal`]: the file: append under an exclusive lock, fsync; created 0600.
//! - [`read`]: every record, skipping (and reporting) lines that are not one,
//!   such as a last line cut short by a crash.
//! - [`RunJournal`]: one run's writer, attached to the run's
//!   [`crate::events::EventSink`].
//! - [`history`]: the records of one run folded into what was done and what not.

pub mod history;
pub mod records;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use thiserror::Error;

use crate::events::{ActionOutcome, Event, F5Status, ServerStatus, UserStatus, status_word};
use records::{
    AccountChanged, AccountChanging, ApmKilled, DcConfirmed, PoolDone, ServerDone, ServerMutating,
};
pub use records::{Entry, JOURNAL_VERSION, Record};

#[derive(Debug, Error)]
pub enum JournalError {
    #[error(
        "cannot write the journal {path}: {source}. Fix it (permissions, disk space), give \
         another file with --journal FILE, or run without a journal with --no-journal (the \
         report then says so)"
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the journal {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The journal file, open for appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Opens `path` for appending, creating it (mode 0600) and its directory
    /// (0700) if needed. Fails now, before anything is changed, if it
    /// cannot be written.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let error = |source| JournalError::Write {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(error)?;
        }
        let existed = path.exists();
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // Only at creation: the operator's own mode on an existing file stays.
            options.mode(0o600);
        }
        let file = options.open(path).map_err(error)?;
        if !existed {
            // The new directory entry must survive a crash too.
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                let _ = File::open(dir).and_then(|d| d.sync_all());
            }
        }
        Ok(Journal {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record and fsyncs it before returning. An exclusive lock
    /// keeps two runs' lines apart; a last line left without its newline by
    /// a crash gets one first, so this record stays readable.
    pub fn append(&mut self, run_id: &str, record: Record) -> Result<(), JournalError> {
        let entry = Entry {
            v: JOURNAL_VERSION,
            at: crate::timestamp::rfc3339(SystemTime::now()),
            run_id: run_id.to_string(),
            record,
        };
        let mut line = serde_json::to_vec(&entry).expect("a record serializes");
        line.push(b'\n');
        let error = |source| JournalError::Write {
            path: self.path.clone(),
            source,
        };
        self.file.lock().map_err(error)?;
        let written = (|| {
            if !ends_with_newline(&self.file)? {
                line.insert(0, b'\n');
            }
            self.file.write_all(&line)?;
            self.file.sync_data()
        })();
        let _ = self.file.unlock();
        written.map_err(error)
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Is the file empty or does it end with a newline?
fn ends_with_newline(file: &File) -> std::io::Result<bool> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    let mut last = [0u8; 1];
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(&mut last, len - 1)?;
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        file.seek_read(&mut last, len - 1)?;
    }
    Ok(last[0] == b'\n')
}

/// Everything readable in a journal file.
#[derive(Debug, Default)]
pub struct Contents {
    pub entries: Vec<Entry>,
    /// Lines skipped, in words (line number and why): a line cut short by
    /// a crash, a record of a newer version.
    pub skipped: Vec<String>,
}

/// Reads every record of the journal at `path` (none if it does not exist).
/// A line that is not a record is reported in `skipped`, never fatal.
pub fn read(path: &Path) -> Result<Contents, JournalError> {
    let error = |source| JournalError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Contents::default()),
        Err(e) => return Err(error(e)),
    };
    // A writer holds the exclusive lock only while appending one line.
    file.lock_shared().map_err(error)?;
    let mut contents = Contents::default();
    for (index, line) in BufReader::new(&file).split(b'\n').enumerate() {
        let line = line.map_err(error)?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let number = index + 1;
        match parse(&line) {
            Ok(entry) => contents.entries.push(entry),
            Err(why) => contents
                .skipped
                .push(format!("line {number}: {why}; skipped")),
        }
    }
    let _ = file.unlock();
    Ok(contents)
}

fn parse(line: &[u8]) -> Result<Entry, String> {
    let value: serde_json::Value = serde_json::from_slice(line).map_err(|e| {
        format!("not a complete JSON record (cut short by a crash while it was written?): {e}")
    })?;
    let version = value.get("v").and_then(serde_json::Value::as_u64);
    if let Some(v) = version
        && v > u64::from(JOURNAL_VERSION)
    {
        return Err(format!(
            "a record of version {v}, newer than this revoke reads ({JOURNAL_VERSION})"
        ));
    }
    serde_json::from_value(value).map_err(|e| format!("not a journal record: {e}"))
}

/// One run's writer: the records of one run id into one journal, shared by
/// every task of the run through its [`crate::events::EventSink`].
#[derive(Debug)]
pub struct RunJournal {
    run_id: String,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    journal: Journal,
    /// Each server's pools as reported so far, for its `server-done`.
    actions: HashMap<String, Vec<ActionOutcome>>,
    /// The DC each account (by DN) was announced to be written on.
    written_on: HashMap<String, String>,
    /// The first "after" record that could not be written: said at the end.
    failure: Option<String>,
}

impl RunJournal {
    pub fn new(journal: Journal, run_id: String) -> Self {
        RunJournal {
            run_id,
            inner: Mutex::new(Inner {
                journal,
                actions: HashMap::new(),
                written_on: HashMap::new(),
                failure: None,
            }),
        }
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn path(&self) -> PathBuf {
        self.lock().journal.path().to_path_buf()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `record` now, durably.
    pub fn write(&self, record: Record) -> Result<(), JournalError> {
        let mut inner = self.lock();
        let result = inner.journal.append(&self.run_id, record);
        if let Err(error) = &result
            && inner.failure.is_none()
        {
            inner.failure = Some(error.to_string());
        }
        result
    }

    /// The first record that could not be written, if any.
    pub fn failure(&self) -> Option<String> {
        self.lock().failure.clone()
    }

    /// The record announcing the step `event` is about to take, if it is one.
    pub fn before(&self, event: &Event) -> Option<Record> {
        match event {
            Event::AccountChanging {
                dn,
                sam_account_name,
                dc,
                change,
                user_account_control,
            } => {
                let mut inner = self.lock();
                inner.written_on.insert(dn.clone(), dc.clone());
                drop(inner);
                Some(Record::AccountChanging(AccountChanging {
                    dn: dn.clone(),
                    sam_account_name: sam_account_name.clone(),
                    dc: dc.clone(),
                    change: change.clone(),
                    user_account_control_before: *user_account_control,
                }))
            }
            Event::ServerMutating {
                server,
                method,
                pools,
                old_pids,
            } => Some(Record::ServerMutating(ServerMutating {
                server: server.clone(),
                method: method.name().to_string(),
                pools: pools.clone(),
                old_pids: old_pids.clone(),
            })),
            _ => None,
        }
    }

    /// Journals what `event` says was done, if anything. A failure is kept
    /// for the end of the run ([`RunJournal::failure`]): the step is done.
    pub fn after(&self, event: &Event) {
        let record = match event {
            // Only after its `account-changing`: a retry reports accounts it
            // did not write, and those are no change of this run.
            Event::UserFinished { user } if user.status != UserStatus::Planned => {
                let Some(dc) = self.lock().written_on.get(&user.dn).cloned() else {
                    return;
                };
                Record::AccountChanged(AccountChanged {
                    dn: user.dn.clone(),
                    sam_account_name: user.sam_account_name.clone(),
                    dc,
                    status: status_word(&user.status),
                    user_account_control_before: user.user_account_control_before,
                    user_account_control_after: user.user_account_control_after,
                    message: user.message.clone(),
                })
            }
            Event::DomainControllerFinished { dc }
                if dc.status != crate::events::DcStatus::Planned =>
            {
                Record::DcConfirmed(DcConfirmed {
                    host: dc.host.clone(),
                    status: status_word(&dc.status),
                    read_only: dc.read_only,
                    has_change: dc.status.has_change(),
                    open: dc.status.is_open(),
                    message: dc.message.clone(),
                })
            }
            Event::ActionFinished { server, action } => {
                let mut inner = self.lock();
                let actions = inner.actions.entry(server.clone()).or_default();
                match actions.iter_mut().find(|a| a.pool == action.pool) {
                    Some(existing) => *existing = action.clone(),
                    None => actions.push(action.clone()),
                }
                return;
            }
            Event::ServerFinished { server, outcome }
                if outcome.status != ServerStatus::Planned =>
            {
                let pools = self
                    .lock()
                    .actions
                    .remove(server)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|a| PoolDone {
                        status: status_word(&a.status),
                        pool: a.pool,
                        old_pids: a.old_pids,
                        new_pids: a.new_pids,
                    })
                    .collect();
                Record::ServerDone(ServerDone {
                    server: server.clone(),
                    status: status_word(&outcome.status),
                    ok: outcome.status == ServerStatus::Ok,
                    pools,
                    error: outcome.error.clone(),
                })
            }
            Event::F5DeviceFinished { device } if device.status != F5Status::Planned => {
                Record::ApmKilled(ApmKilled {
                    device: device.device.clone(),
                    status: status_word(&device.status),
                    ok: device.status == F5Status::Ok,
                    killed: device.killed,
                    alive: device.alive().map(|s| s.id.clone()).collect(),
                    message: device.message.clone(),
                })
            }
            _ => return,
        };
        // Kept in `failure`: the step this record reports has happened.
        let _ = self.write(record);
    }
}

#[cfg(test)]
mod tests {
    use super::records::{RunFinished, RunStarted};
    use super::*;

    fn finished(code: u8) -> Record {
        Record::RunFinished(RunFinished {
            exit_code: code,
            interrupted: false,
            exposure_closed: true,
            exposure_closed_at: None,
            window_ms: Some(5),
            open: Vec::new(),
        })
    }

    #[test]
    fn records_are_appended_one_per_line_and_read_back() {
        let dir = tempdir();
        let path = dir.join("sub").join("journal.jsonl");
        let mut journal = Journal::open(&path).unwrap();
        journal
            .append(
                "r1",
                Record::RunStarted(Box::new(RunStarted {
                    command: "disable".into(),
                    ..RunStarted::default()
                })),
            )
            .unwrap();
        journal.append("r1", finished(0)).unwrap();
        let contents = read(&path).unwrap();
        assert_eq!(contents.entries.len(), 2);
        assert!(contents.skipped.is_empty());
        assert_eq!(contents.entries[1].record, finished(0));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(
            text.lines()
                .next()
                .unwrap()
                .contains("\"type\":\"run-started\"")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_truncated_last_line_is_skipped_and_the_next_record_stays_readable() {
        let dir = tempdir();
        let path = dir.join("journal.jsonl");
        let mut journal = Journal::open(&path).unwrap();
        journal.append("r1", finished(0)).unwrap();
        drop(journal);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"v\":1,\"at\":\"2026-").unwrap();
        drop(file);
        let contents = read(&path).unwrap();
        assert_eq!(contents.entries.len(), 1);
        assert_eq!(contents.skipped.len(), 1, "{:?}", contents.skipped);
        assert!(contents.skipped[0].starts_with("line 2:"));
        let mut journal = Journal::open(&path).unwrap();
        journal.append("r2", finished(2)).unwrap();
        let contents = read(&path).unwrap();
        assert_eq!(contents.entries.len(), 2, "{:?}", contents.skipped);
        assert_eq!(contents.entries[1].run_id, "r2");
    }

    #[test]
    fn a_newer_record_version_is_skipped_with_why() {
        let dir = tempdir();
        let path = dir.join("journal.jsonl");
        std::fs::write(
            &path,
            "{\"v\":99,\"at\":\"x\",\"run_id\":\"r\",\"type\":\"run-finished\"}\n",
        )
        .unwrap();
        let contents = read(&path).unwrap();
        assert!(contents.entries.is_empty());
        assert!(
            contents.skipped[0].contains("version 99"),
            "{:?}",
            contents.skipped
        );
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("revoke-journal-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
