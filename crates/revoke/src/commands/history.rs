//! `revoke history`: what revoke did, from the journal (docs/journal.md).
//! One line per run, or one run in full: what was done and what was not,
//! also for a run that was killed midway. And `enable`'s question: did
//! revoke disable this account?

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::json;

use crate::cli::{HistoryArgs, OutputFormat};
use crate::config::{self, Loaded};
use crate::journal::JournalChoice;
use crate::run::Ended;
use revoke_core::journal::history::{RunHistory, runs};
use revoke_core::journal::{self, Record};
use revoke_core::revocation::EnableGuard;

/// How many runs the list shows without `--last`.
const DEFAULT_LAST: usize = 20;

pub fn run(args: HistoryArgs) -> anyhow::Result<Ended> {
    let config = Loaded::load(args.config.as_deref())?;
    let JournalChoice::At(path) = config::journal_choice(args.journal.as_deref(), false, &config)?
    else {
        unreachable!("the journal is never off for reading");
    };
    let all = load(&path)?;
    match &args.run_id {
        Some(id) => {
            let run = find(&all, id, &path)?;
            match args.output {
                OutputFormat::Human => print!("{}", story(run)),
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "run": run,
                        "summary": summary(run),
                        "open": run.open(),
                    }))?
                ),
            }
        }
        None => {
            let mut chosen: Vec<&RunHistory> = all
                .iter()
                .filter(|r| args.user.as_deref().is_none_or(|u| r.concerns(u)))
                .collect();
            let last = args.last.unwrap_or(DEFAULT_LAST);
            let skip = chosen.len().saturating_sub(last);
            chosen.drain(..skip);
            match args.output {
                OutputFormat::Human => {
                    if chosen.is_empty() {
                        eprintln!("no runs in the journal {}", path.display());
                    }
                    for run in chosen {
                        println!("{}", line(run));
                    }
                }
                OutputFormat::Json => {
                    let list: Vec<_> = chosen.into_iter().map(list_entry).collect();
                    println!("{}", serde_json::to_string_pretty(&list)?);
                }
            }
        }
    }
    Ok(Ended::Done)
}

/// Every run in the journal at `path`; lines that are not records are
/// said on stderr and skipped.
pub fn load(path: &Path) -> anyhow::Result<Vec<RunHistory>> {
    let contents = journal::read(path)?;
    for skipped in &contents.skipped {
        eprintln!("warning: journal {}: {skipped}", path.display());
    }
    Ok(runs(&contents.entries))
}

/// The run with this id, or the one run whose id starts with it.
pub fn find<'a>(all: &'a [RunHistory], id: &str, path: &Path) -> anyhow::Result<&'a RunHistory> {
    if let Some(run) = all.iter().find(|r| r.run_id == id) {
        return Ok(run);
    }
    let matching: Vec<&RunHistory> = all.iter().filter(|r| r.run_id.starts_with(id)).collect();
    match matching.as_slice() {
        [one] => Ok(one),
        [] => bail!(
            "no run {id} in the journal {}; `revoke history` lists the runs it holds \
             (give --journal FILE if the run was journaled elsewhere)",
            path.display()
        ),
        _ => bail!(
            "{} runs in the journal start with {id}: give more of the run id",
            matching.len()
        ),
    }
}

/// `enable` without `--force`: the accounts whose last change in the
/// journal was revoke disabling them (a later revoke `enable` undoes it).
pub fn enable_guard(choice: &JournalChoice) -> anyhow::Result<EnableGuard> {
    let JournalChoice::At(path) = choice else {
        return Ok(EnableGuard {
            disabled_by_revoke: Vec::new(),
            looked_in: "a journal (--no-journal: none was read)".into(),
        });
    };
    let contents = journal::read(path)
        .with_context(|| "enable reads the journal to check that revoke disabled the account")?;
    for skipped in &contents.skipped {
        eprintln!("warning: journal {}: {skipped}", path.display());
    }
    let mut disabled: Vec<String> = Vec::new();
    for entry in &contents.entries {
        if let Record::AccountChanged(changed) = &entry.record {
            match changed.status.as_str() {
                "disabled" if !disabled.iter().any(|d| d.eq_ignore_ascii_case(&changed.dn)) => {
                    disabled.push(changed.dn.clone());
                }
                "enabled" => disabled.retain(|d| !d.eq_ignore_ascii_case(&changed.dn)),
                _ => {}
            }
        }
    }
    Ok(EnableGuard {
        disabled_by_revoke: disabled,
        looked_in: format!("the journal {}", path.display()),
    })
}

/// One line: when, who, what, outcome.
pub fn line(run: &RunHistory) -> String {
    let started = run.started.as_ref();
    let who = started
        .map(|s| {
            let user = s.operator.local_user.as_deref().unwrap_or("?");
            match &s.operator.bind_user {
                Some(bind) => format!("{user} (as {bind}) on {}", s.host),
                None => format!("{user} on {}", s.host),
            }
        })
        .unwrap_or_else(|| "?".into());
    let what = match run.accounts().as_slice() {
        [] => match started {
            Some(s) => format!("{} servers", s.targets.len()),
            None => String::new(),
        },
        accounts => accounts.join(", "),
    };
    let ticket = started
        .and_then(|s| s.ticket.as_deref())
        .map(|t| format!("  [{t}]"))
        .unwrap_or_default();
    format!(
        "{}  {}  {} {what}  by {who}  {}{ticket}",
        run.first_at,
        run.run_id,
        run.command(),
        outcome(run)
    )
}

/// ok, not ok, interrupted, did not finish.
fn outcome(run: &RunHistory) -> String {
    match &run.finished {
        None => "DID NOT FINISH".into(),
        Some(f) if f.interrupted => format!("interrupted (exit {})", f.exit_code),
        Some(f) if f.exit_code == 0 => "ok (exit 0)".into(),
        Some(f) => format!("NOT OK (exit {}): {} open", f.exit_code, f.open.len()),
    }
}

fn list_entry(run: &RunHistory) -> serde_json::Value {
    let started = run.started.as_ref();
    json!({
        "run_id": run.run_id,
        "started_at": run.first_at,
        "command": run.command(),
        "accounts": run.accounts(),
        "operator": started.map(|s| &s.operator),
        "host": started.map(|s| &s.host),
        "ticket": started.and_then(|s| s.ticket.as_deref()),
        "finished": run.finished.is_some(),
        "exit_code": run.finished.as_ref().map(|f| f.exit_code),
        "summary": summary(run),
    })
}

/// What the run did and did not do, in one sentence, e.g. "alice disabled
/// on dc1; dc2 unconfirmed; 3 of 8 servers flushed; the run did not finish".
pub fn summary(run: &RunHistory) -> String {
    let mut parts = Vec::new();
    let Some(started) = &run.started else {
        return "the run's first record (run-started) is missing".into();
    };
    for account in &started.accounts {
        let changed = run.changed_record(&account.dn);
        let announced = run.changing_record(&account.dn).is_some();
        parts.push(match changed {
            Some(c) if c.status == "failed" => format!("{} NOT changed", c.sam_account_name),
            Some(c) => format!("{} {} on {}", c.sam_account_name, words(&c.status), c.dc),
            None if announced => format!(
                "{} being changed when the run stopped (check it on {})",
                account.sam_account_name,
                started.source_dc.as_deref().unwrap_or("the DC")
            ),
            None => format!("{} not changed", account.sam_account_name),
        });
    }
    let open = run.open();
    for dc in &open.domain_controllers {
        parts.push(format!("{} unconfirmed", dc.host));
    }
    if !started.targets.is_empty() {
        let ok = started.targets.len() - open.servers.len();
        parts.push(format!("{ok} of {} servers flushed", started.targets.len()));
    }
    if !started.f5_devices.is_empty() {
        let ok = started.f5_devices.len() - open.f5_devices.len();
        parts.push(format!(
            "{ok} of {} BIG-IPs clean",
            started.f5_devices.len()
        ));
    }
    parts.push(match &run.finished {
        None => "the run did not finish".into(),
        Some(f) => format!("the run finished (exit {})", f.exit_code),
    });
    parts.join("; ")
}

fn words(status: &str) -> String {
    status.replace('-', " ")
}

/// The whole run: what was done, what was not, and what to do next.
pub fn story(run: &RunHistory) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "run {}  {}", run.run_id, run.command());
    let Some(started) = &run.started else {
        let _ = writeln!(
            out,
            "  its run-started record is missing (the journal was cut?); records from {} to {}",
            run.first_at, run.last_at
        );
        return out;
    };
    let _ = writeln!(out, "  started  {}", run.first_at);
    let _ = writeln!(
        out,
        "  by       {}{} on {}",
        started.operator.local_user.as_deref().unwrap_or("?"),
        started
            .operator
            .bind_user
            .as_deref()
            .map(|b| format!(" (bound as {b})"))
            .unwrap_or_default(),
        started.host
    );
    let _ = writeln!(out, "  command  revoke {}", started.args.join(" "));
    if let Some(ticket) = &started.ticket {
        let _ = writeln!(out, "  ticket   {ticket}");
    }
    if let Some(reason) = &started.reason {
        let _ = writeln!(out, "  reason   {reason}");
    }
    if let Some(of) = &started.retry_of {
        let _ = writeln!(out, "  retry of {of}");
    }
    if !started.accounts.is_empty() {
        let _ = writeln!(out, "accounts");
        for account in &started.accounts {
            let changed = run.changed_record(&account.dn);
            let announced = run.changing_record(&account.dn);
            let what = match (changed, announced) {
                (Some(c), _) => format!(
                    "{} on {} (userAccountControl {} -> {}){}",
                    words(&c.status),
                    c.dc,
                    c.user_account_control_before,
                    c.user_account_control_after,
                    c.message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ),
                (None, Some(a)) => format!(
                    "the {} was being written on {} when the run stopped: no result was \
                     recorded, so check the account there",
                    a.change, a.dc
                ),
                (None, None) if started.retry_of.is_some() => {
                    "changed by the earlier run; not written again".into()
                }
                (None, None) => "not changed".into(),
            };
            let _ = writeln!(out, "  {}  {what}", account.sam_account_name);
        }
    }
    if !started.domain_controllers.is_empty() {
        let _ = writeln!(out, "domain controllers");
        let open = run.open();
        for dc in &started.domain_controllers {
            let is_open = open
                .domain_controllers
                .iter()
                .any(|o| o.host.eq_ignore_ascii_case(&dc.host));
            let seen = run
                .domain_controllers
                .iter()
                .find(|d| d.host.eq_ignore_ascii_case(&dc.host));
            let what = match seen {
                Some(d) if d.has_change => format!("confirmed ({})", d.status),
                Some(d) => format!(
                    "NOT confirmed ({}){}",
                    d.status,
                    d.message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ),
                None if !is_open => "has the change (written here)".into(),
                None => "NOT confirmed (no result recorded)".into(),
            };
            let _ = writeln!(out, "  {}  {what}", dc.host);
        }
    }
    if !started.targets.is_empty() {
        let open = run.open();
        let _ = writeln!(
            out,
            "servers  {} of {} flushed",
            started.targets.len() - open.servers.len(),
            started.targets.len()
        );
        for target in &started.targets {
            let done = run.servers.iter().find(|s| s.server == target.label);
            let sent = run.mutating.iter().find(|m| m.server == target.label);
            let what = match (done, sent) {
                (Some(d), _) => {
                    let pools: Vec<String> = d
                        .pools
                        .iter()
                        .map(|p| format!("{} {}", p.pool, p.status))
                        .collect();
                    format!(
                        "{}{}{}",
                        d.status,
                        if pools.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", pools.join(", "))
                        },
                        d.error
                            .as_deref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    )
                }
                (None, Some(m)) => format!(
                    "{} of {} was sent, no result recorded",
                    m.method,
                    m.pools.join(", ")
                ),
                (None, None) => "not flushed (nothing was sent)".into(),
            };
            let _ = writeln!(out, "  {}  {what}", target.label);
        }
    }
    if !started.f5_devices.is_empty() {
        let _ = writeln!(out, "BIG-IPs");
        for device in &started.f5_devices {
            let what = match run.apm.iter().find(|a| &a.device == device) {
                Some(a) if a.ok => format!("clean, {} session(s) killed", a.killed),
                Some(a) => format!(
                    "NOT clean{}",
                    a.message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ),
                None => "not done (no result recorded)".into(),
            };
            let _ = writeln!(out, "  {device}  {what}");
        }
    }
    match &run.finished {
        Some(f) => {
            let _ = writeln!(
                out,
                "finished {}  exit {}{}",
                run.last_at,
                f.exit_code,
                match (&f.exposure_closed_at, f.exposure_closed) {
                    (Some(at), true) => format!(", exposure closed at {at}"),
                    _ => String::new(),
                }
            );
        }
        None => {
            let _ = writeln!(
                out,
                "the run did not finish: no run-finished record (killed, crashed or the \
                 machine stopped); last record at {}",
                run.last_at
            );
        }
    }
    let _ = writeln!(out, "summary  {}", summary(run));
    if run.open().retryable() {
        let _ = writeln!(
            out,
            "to finish what is open: revoke retry {} (never changes an account again)",
            run.run_id
        );
    }
    out
}
