//! `revoke retry RUN_ID` / `revoke retry --report FILE`: finish what a run
//! left open (docs/operations.md) — DCs not confirmed, servers not `ok`,
//! BIG-IPs not clean — as a new run linked to the old one (`retry_of`),
//! never changing an account again.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::cli::RetryArgs;
use crate::commands::history;
use crate::config::{self, Loaded};
use crate::credentials::{self, Accounts, Environment};
use crate::journal::{JournalChoice, Journaling, Start};
use crate::run::{Ended, Progress};
use revoke_core::directory::change::Change;
use revoke_core::directory::topology::DomainController;
use revoke_core::journal::history::RunHistory;
use revoke_core::journal::records::{AccountRef, DcRef};
use revoke_core::report::ReportBuilder;
use revoke_core::retry::{self, RetryAccount, RetryPlan};
use revoke_core::revocation::RevocationError;
use revoke_winrm::Connector;

/// What the earlier run was and left open, from the journal or a report.
#[derive(Debug)]
struct Earlier {
    run_id: String,
    /// `disable`, `reset`, `enable` or `flush`.
    action: String,
    accounts: Vec<AccountRef>,
    /// Accounts the run did not change: retry cannot help them.
    not_changed: Vec<String>,
    open_dcs: Vec<DcRef>,
    /// `host` or `host:port`, as `--servers` takes them.
    open_servers: Vec<String>,
    open_f5: Vec<String>,
}

impl Earlier {
    fn from_run(run: &RunHistory) -> anyhow::Result<Earlier> {
        let Some(started) = &run.started else {
            bail!(
                "run {} has no run-started record in the journal: revoke cannot tell what it \
                 was meant to do; use `revoke retry --report FILE` with its report",
                run.run_id
            );
        };
        let open = run.open();
        let action = started
            .change
            .clone()
            .unwrap_or_else(|| started.command.clone());
        let action = match action.as_str() {
            "retry" => "flush".to_string(),
            _ => action,
        };
        let open_servers = started
            .targets
            .iter()
            .filter(|t| open.servers.contains(&t.label))
            .map(|t| address(&t.host, t.port))
            .collect();
        Ok(Earlier {
            // A retry of a retry finishes the original run.
            run_id: run.run_id.clone(),
            action,
            accounts: started.accounts.clone(),
            not_changed: open.accounts,
            open_dcs: open.domain_controllers,
            open_servers,
            open_f5: open.f5_devices,
        })
    }

    fn from_report(path: &Path) -> anyhow::Result<Earlier> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the report {}", path.display()))?;
        let report: Value = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a revoke JSON report (docs/report.md): write one with --output json",
                path.display()
            )
        })?;
        let text_of = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_string();
        let run_id = text_of(&report, "run_id");
        let action = text_of(&report, "action");
        if run_id.is_empty() || action.is_empty() {
            bail!(
                "{} has no run_id or action: not a revoke JSON report",
                path.display()
            );
        }
        let empty = Vec::new();
        let list = |v: &Value| v.as_array().unwrap_or(&empty).clone();
        let users = list(&report["directory"]["users"]);
        let mut accounts = Vec::new();
        let mut not_changed = Vec::new();
        for user in &users {
            let sam = text_of(user, "sam_account_name");
            if matches!(user["status"].as_str(), Some("failed" | "planned")) {
                not_changed.push(sam);
                continue;
            }
            accounts.push(AccountRef {
                input: text_of(user, "input"),
                dn: text_of(user, "dn"),
                sam_account_name: sam,
                user_principal_name: user["user_principal_name"].as_str().map(str::to_string),
                user_account_control: user["user_account_control_after"]
                    .as_u64()
                    .unwrap_or_default() as u32,
            });
        }
        const HAS_CHANGE: [&str; 5] = [
            "written",
            "replicated",
            "forced",
            "direct-write",
            "not-cached",
        ];
        let open_dcs = if accounts.is_empty() {
            Vec::new()
        } else {
            list(&report["directory"]["domain_controllers"])
                .iter()
                .filter(|dc| !HAS_CHANGE.contains(&dc["status"].as_str().unwrap_or_default()))
                .map(|dc| DcRef {
                    host: text_of(dc, "host"),
                    read_only: dc["read_only"].as_bool().unwrap_or(false),
                })
                .collect()
        };
        let open_servers = list(&report["servers"])
            .iter()
            .filter(|s| s["status"] != "ok")
            .map(|s| text_of(s, "host"))
            .collect();
        let open_f5 = list(&report["f5"])
            .iter()
            .filter(|d| d["status"] != "ok")
            .map(|d| text_of(d, "device"))
            .collect();
        Ok(Earlier {
            run_id,
            action,
            accounts,
            not_changed,
            open_dcs,
            open_servers,
            open_f5,
        })
    }

    fn change(&self) -> anyhow::Result<Option<Change>> {
        Ok(match self.action.as_str() {
            "disable" => Some(Change::Disable),
            "enable" => Some(Change::Enable),
            // must_change only matters to a write, and retry writes nothing.
            "reset" => Some(Change::Reset { must_change: false }),
            "flush" => None,
            other => bail!(
                "run {} was a `{other}`: revoke retry cannot take it up",
                self.run_id
            ),
        })
    }

    fn nothing_open(&self) -> bool {
        self.open_dcs.is_empty() && self.open_servers.is_empty() && self.open_f5.is_empty()
    }

    /// What the retry would do, for the dry run and the refusal of an empty one.
    fn describe(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let names: Vec<&str> = self
            .accounts
            .iter()
            .map(|a| a.sam_account_name.as_str())
            .collect();
        let _ = writeln!(
            out,
            "retry of run {} ({} {})",
            self.run_id,
            self.action,
            names.join(", ")
        );
        if !self.accounts.is_empty() {
            let _ = writeln!(
                out,
                "  re-read {} and stop if changed back since; never written again",
                names.join(", ")
            );
        }
        for dc in &self.open_dcs {
            let _ = writeln!(
                out,
                "  domain controller {}: ask it to replicate and wait until it has the change",
                dc.host
            );
        }
        if !self.open_servers.is_empty() {
            let _ = writeln!(
                out,
                "  flush {} server(s): {}",
                self.open_servers.len(),
                self.open_servers.join(", ")
            );
        }
        if !self.open_f5.is_empty() {
            let _ = writeln!(
                out,
                "  kill the APM sessions on {} BIG-IP(s): {}",
                self.open_f5.len(),
                self.open_f5.join(", ")
            );
        }
        for sam in &self.not_changed {
            let _ = writeln!(
                out,
                "  not retried: {sam} was not changed by that run (retry never changes an \
                 account): run `revoke {} {sam}` again",
                self.action
            );
        }
        out
    }
}

/// `host` or `host:port` (`[v6]:port`), as `--servers` reads it.
fn address(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

pub async fn run(mut args: RetryArgs, environment: &Environment) -> anyhow::Result<Ended> {
    let config = Loaded::load(args.revocation.run.config.as_deref())?;
    let shared = &args.revocation;
    if shared.flush.servers.is_some() {
        bail!("revoke retry takes its servers from the run it retries; leave out --servers");
    }
    let choice = config::journal_choice(
        shared.journal.journal.as_deref(),
        shared.journal.no_journal,
        &config,
    )?;
    let earlier = match (&args.run_id, &args.report) {
        (_, Some(file)) => Earlier::from_report(file)?,
        (Some(id), None) => {
            let JournalChoice::At(path) = &choice else {
                bail!(
                    "revoke retry RUN_ID reads the run from the journal, and --no-journal \
                     turns it off: give the run's report with --report FILE instead"
                );
            };
            let all = history::load(path)?;
            Earlier::from_run(history::find(&all, id, path)?)?
        }
        (None, None) => bail!("give the run to retry: revoke retry RUN_ID, or --report FILE"),
    };
    let change = earlier.change()?;
    // The retry's own --ticket / --reason ([policy] require_ticket applies).
    let labels = config::labels(&shared.change, &config)?;
    if earlier.nothing_open() {
        if earlier.not_changed.is_empty() {
            eprintln!(
                "run {} left nothing open: every DC confirmed, every server flushed, every \
                 BIG-IP clean",
                earlier.run_id
            );
            return Ok(Ended::Done);
        }
        bail!("nothing retry can do:\n{}", earlier.describe());
    }
    if shared.flush.dry_run {
        print!("{}", earlier.describe());
        return Ok(Ended::Done);
    }
    if !earlier.not_changed.is_empty() {
        eprint!("{}", earlier.describe());
    }

    // The plan: the open servers through the ordinary flush settings.
    args.revocation.flush.servers = Some(earlier.open_servers.clone());
    let shared = &args.revocation;
    let has_accounts = change.is_some() && !earlier.accounts.is_empty();
    let directory = match has_accounts {
        true => Some(config::required_directory(
            &shared.change.directory,
            &config,
            "revoke retry re-reads the accounts in the directory",
        )?),
        false => None,
    };
    let flush = config::flush_plan(&shared.flush, &shared.winrm, &config, false)?;
    let f5 = match earlier.open_f5.is_empty() {
        true => None,
        false => {
            let Some(mut settings) = config::f5_settings(&config)? else {
                bail!(
                    "run {} left BIG-IPs open ({}), but the config has no [f5] section",
                    earlier.run_id,
                    earlier.open_f5.join(", ")
                );
            };
            settings
                .devices
                .retain(|d| earlier.open_f5.contains(&d.label));
            Some(settings)
        }
    };
    let replication_timeout = match shared.change.no_wait_replication {
        true => None,
        false => Some(config::replication_timeout(
            shared.change.replication_timeout,
            &config,
        )?),
    };
    let plan = RetryPlan {
        retry_of: earlier.run_id.clone(),
        change,
        accounts: earlier
            .accounts
            .iter()
            .map(|a| RetryAccount {
                input: a.input.clone(),
                dn: a.dn.clone(),
                sam: a.sam_account_name.clone(),
                upn: a.user_principal_name.clone(),
            })
            .collect(),
        directory,
        domain_controllers: earlier
            .open_dcs
            .iter()
            .map(|dc| DomainController {
                read_only: dc.read_only,
                ..DomainController::configured(&dc.host)
            })
            .collect(),
        replication_timeout,
        flush,
        f5,
        ticket: labels.ticket.clone(),
        reason: labels.reason.clone(),
    };
    let mut journaling = Journaling::open(&choice, false)?;
    journaling.retry_of = Some(earlier.run_id.clone());
    let accounts = Accounts {
        directory: plan.directory.as_ref().map(|d| d.bind_user.as_str()),
        winrm: (!plan.flush.targets.is_empty()).then_some(plan.flush.connection.user.as_str()),
        f5: plan.f5.as_ref().map(|f5| f5.user.as_str()),
    };
    let secrets = credentials::gather(&accounts, environment, shared.run.password_stdin, None)?;
    let connector = Connector::new(plan.flush.connection.clone(), secrets.winrm.clone())?;
    let prepared = match retry::prepare(plan, secrets).await {
        Ok(prepared) => prepared,
        Err(error @ RevocationError::Refused(_)) => {
            eprintln!("error: {error}");
            return Ok(Ended::Refused);
        }
        Err(error) => return Err(error.into()),
    };
    crate::limits::ensure_open_files(prepared.plan().flush.concurrency());
    let start = Start {
        command: "retry",
        bind_user: prepared
            .plan()
            .directory
            .as_ref()
            .map(|d| d.bind_user.clone()),
        change: change.map(|c| c.name().to_string()),
        accounts: earlier.accounts.clone(),
        source_dc: prepared.source_host().map(str::to_string),
        domain_controllers: earlier.open_dcs.clone(),
        targets: crate::journal::targets(&prepared.plan().flush.targets),
        f5_devices: earlier.open_f5.clone(),
        ticket: labels.ticket,
        reason: labels.reason,
        retry_of: Some(earlier.run_id.clone()),
    };
    // Durable before anything is done.
    let journal = journaling.start(start)?;
    let mut finished = crate::run::drive(
        |sink| retry::execute(prepared, connector, sink),
        Progress::choose(shared.run.output, shared.run.quiet),
        ReportBuilder::default(),
        journal.clone(),
    )
    .await;
    finished.report.retry_of = Some(earlier.run_id.clone());
    // The report's verdict depends on retry_of (no servers may be fine).
    finished.report.summarize();
    crate::journal::finish(&journaling, journal.as_deref(), &mut finished);
    let ended = Ended::Ran(Box::new(finished));
    crate::run::print_report(&ended, &shared.run);
    Ok(ended)
}
