//! The binary's side of the journal (docs/journal.md): where it is, opening
//! it before anything is asked or changed, the `run-started` record (who,
//! from where, with which command line) and the `run-finished` one.

use std::path::PathBuf;
use std::sync::Arc;

use revoke_core::journal::records::{
    AccountRef, DcRef, Operator, RunFinished, RunStarted, TargetRef,
};
use revoke_core::journal::{Journal, JournalError, Record, RunJournal};
use revoke_core::revocation::Prepared;

use crate::exit::Exit;
use crate::run::Finished;

/// Whether and where a run is journaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalChoice {
    At(PathBuf),
    /// `--no-journal`.
    Off,
}

/// `<user state dir>/revoke/journal.jsonl`: `$XDG_STATE_HOME` (else
/// ~/.local/state) on Linux, the local application data directory elsewhere.
pub fn default_path() -> Option<PathBuf> {
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .map(|dir| dir.join("revoke").join("journal.jsonl"))
}

/// How a run is journaled: the open file (None: not journaled) and
/// whether the operator said `--no-journal`.
#[derive(Debug, Default)]
pub struct Journaling {
    pub file: Option<Journal>,
    pub off: bool,
    /// `retry`: the run it takes up.
    pub retry_of: Option<String>,
}

impl Journaling {
    /// Opens the journal for a run (see [`open`]).
    pub fn open(choice: &JournalChoice, dry_run: bool) -> Result<Journaling, JournalError> {
        Ok(Journaling {
            file: open(choice, dry_run)?,
            off: *choice == JournalChoice::Off,
            retry_of: None,
        })
    }

    /// Writes `run-started` if the run is journaled.
    pub fn start(&mut self, start: Start) -> Result<Option<Arc<RunJournal>>, JournalError> {
        self.file
            .take()
            .map(|file| self::start(file, start))
            .transpose()
    }
}

/// Opens the journal a changing run writes to, before a password is asked
/// for or anything contacted: a journal that cannot be written stops the
/// run here. None for `--no-journal` and dry runs (they change nothing).
pub fn open(choice: &JournalChoice, dry_run: bool) -> Result<Option<Journal>, JournalError> {
    match choice {
        JournalChoice::At(path) if !dry_run => Journal::open(path).map(Some),
        _ => Ok(None),
    }
}

/// What the run is about to do, as the first record of the run.
pub struct Start {
    pub command: &'static str,
    pub bind_user: Option<String>,
    pub change: Option<String>,
    pub accounts: Vec<AccountRef>,
    pub source_dc: Option<String>,
    pub domain_controllers: Vec<DcRef>,
    pub targets: Vec<TargetRef>,
    pub f5_devices: Vec<String>,
    pub ticket: Option<String>,
    pub reason: Option<String>,
    pub retry_of: Option<String>,
}

impl Start {
    /// A `flush` of these servers.
    pub fn flush(plan: &revoke_core::plan::FlushPlan) -> Start {
        Start {
            command: "flush",
            bind_user: None,
            change: None,
            accounts: Vec::new(),
            source_dc: None,
            domain_controllers: Vec::new(),
            targets: targets(&plan.targets),
            f5_devices: Vec::new(),
            ticket: None,
            reason: None,
            retry_of: None,
        }
    }

    /// A `disable` / `reset` / `enable` run, once prepared (accounts
    /// resolved, DCs and servers known).
    pub fn revocation(prepared: &Prepared) -> Start {
        Start {
            command: match prepared.change().name() {
                "disable" => "disable",
                "enable" => "enable",
                _ => "reset",
            },
            bind_user: Some(prepared.bind_user().to_string()),
            change: Some(prepared.change().name().to_string()),
            accounts: prepared
                .accounts
                .iter()
                .map(|(input, a)| AccountRef {
                    input: input.clone(),
                    dn: a.dn.clone(),
                    sam_account_name: a.sam.clone(),
                    user_principal_name: a.upn.clone(),
                    user_account_control: a.user_account_control,
                })
                .collect(),
            source_dc: Some(prepared.source_host().to_string()),
            domain_controllers: prepared
                .domain_controllers
                .iter()
                .map(|dc| DcRef {
                    host: dc.host.clone(),
                    read_only: dc.read_only,
                })
                .collect(),
            targets: targets(prepared.targets()),
            f5_devices: prepared.f5_devices(),
            ticket: prepared.ticket().map(str::to_string),
            reason: prepared.reason().map(str::to_string),
            retry_of: None,
        }
    }
}

pub fn targets(targets: &[revoke_core::plan::Target]) -> Vec<TargetRef> {
    targets
        .iter()
        .map(|t| TargetRef {
            label: t.label.clone(),
            host: t.host.clone(),
            port: t.port,
        })
        .collect()
}

/// Who runs revoke on this machine: `$USER` (or its kin); where no variable
/// says (cron, a service, `env -i`), the account of the process's user id.
fn local_user() -> Option<String> {
    let named = ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()));
    #[cfg(unix)]
    let named = named.or_else(|| {
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let name = passwd.lines().find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            (fields.nth(1)? == uid.to_string()).then(|| name.to_string())
        });
        Some(name.unwrap_or_else(|| format!("uid {uid}")))
    });
    named
}

/// Writes `run-started` (fsync'ed) for a new run id and returns the run's
/// writer. Nothing has been changed yet: an error stops the run.
pub fn start(journal: Journal, start: Start) -> Result<Arc<RunJournal>, JournalError> {
    let run = RunJournal::new(journal, uuid::Uuid::new_v4().to_string());
    run.write(Record::RunStarted(Box::new(RunStarted {
        command: start.command.to_string(),
        args: command_line(std::env::args().skip(1)),
        operator: Operator {
            local_user: local_user(),
            bind_user: start.bind_user,
        },
        host: hostname(),
        change: start.change,
        accounts: start.accounts,
        source_dc: start.source_dc,
        domain_controllers: start.domain_controllers,
        targets: start.targets,
        f5_devices: start.f5_devices,
        ticket: start.ticket,
        reason: start.reason,
        retry_of: start.retry_of,
    })))?;
    Ok(Arc::new(run))
}

/// `run-finished`, and the report's `journal`. A record that could not be
/// written during the run is said on stderr: the journal is incomplete.
pub fn finish(journaling: &Journaling, journal: Option<&RunJournal>, finished: &mut Finished) {
    finished.report.no_journal = journaling.off;
    let Some(journal) = journal else {
        return;
    };
    finished.report.journal = Some(journal.path().display().to_string());
    let exposure = finished.report.exposure.as_ref();
    let written = journal.write(Record::RunFinished(RunFinished {
        exit_code: Exit::of_finished(finished).code(),
        interrupted: finished.interrupted,
        exposure_closed: exposure.is_some_and(|e| e.closed),
        exposure_closed_at: exposure
            .and_then(|e| e.closed_at)
            .map(revoke_core::timestamp::rfc3339),
        window_ms: exposure.and_then(|e| e.window_ms),
        open: finished.report.open_items(),
    }));
    if written.is_err()
        && let Some(failure) = journal.failure()
    {
        eprintln!("WARNING: the journal is incomplete: {failure}");
    }
}

/// The command line without any secret: revoke takes none on it, but a
/// value given to a `--…password` flag is masked all the same (flags that
/// name a file or read stdin are kept).
fn command_line(args: impl Iterator<Item = String>) -> Vec<String> {
    const KEPT: [&str; 4] = [
        "--password-stdin",
        "--new-password-stdin",
        "--password-file",
        "--password-dir",
    ];
    let mut out = Vec::new();
    let mut mask_next = false;
    for arg in args {
        if mask_next {
            out.push("***".to_string());
            mask_next = false;
            continue;
        }
        let flag = arg.split('=').next().unwrap_or_default();
        let secret = arg.starts_with("--") && flag.contains("password") && !KEPT.contains(&flag);
        match (secret, arg.contains('=')) {
            (true, true) => out.push(format!("{flag}=***")),
            (true, false) => {
                out.push(arg);
                mask_next = true;
            }
            (false, _) => out.push(arg),
        }
    }
    out
}

fn hostname() -> String {
    #[cfg(unix)]
    {
        let mut buffer = [0u8; 256];
        // SAFETY: the buffer is valid for its whole length, which is passed.
        let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
        if rc == 0 {
            let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
            return String::from_utf8_lossy(&buffer[..end]).into_owned();
        }
    }
    std::env::var("COMPUTERNAME").unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::command_line;

    #[test]
    fn a_password_flag_value_is_masked_and_file_flags_are_kept() {
        let args = [
            "lab",
            "--admin-password",
            "s3cret",
            "--x-password=hunter2",
            "--password-file",
            "/tmp/pw",
            "--password-stdin",
        ]
        .map(String::from);
        let line = command_line(args.into_iter()).join(" ");
        assert!(
            !line.contains("s3cret") && !line.contains("hunter2"),
            "{line}"
        );
        assert!(
            line.contains("--password-file /tmp/pw --password-stdin"),
            "{line}"
        );
    }
}
