//! The writing half: the change, the convergence gate, then the flush and
//! the APM session kill.

use super::Prepared;
use super::dry_run::{dry_run_view, what_the_gate_will_do};
use super::outcome::{changed, failed_outcome, planned, verb};
use super::stamp::stamp_line;
use std::time::{Duration, Instant, SystemTime};

use crate::directory::change::apply_stamped;
use crate::directory::convergence::{Check, Gate, Written, converge};
use crate::directory::metadata;
use crate::directory::topology::{self, DomainController};
use crate::directory::{DirectoryError, UserAccount};
use crate::events::{DcOutcome, DcStatus, Event, EventSink};
use crate::f5::{self, F5Client, SessionOwner};
use crate::orchestrate;
use crate::plan::FlushPlan;
use revoke_winrm::Connector;

/// Writes the change, waits for the DCs, flushes (and kills the APM
/// sessions alongside). Emits events throughout.
pub async fn execute(prepared: Prepared, connector: Connector, events: EventSink) {
    let Prepared {
        plan,
        secrets,
        mut conn,
        accounts,
        domain_controllers,
        revealed,
        f5,
        stamped_by,
    } = prepared;
    events.emit(Event::DirectoryStarted {
        run_id: events.run_id().to_string(),
        change: plan.change.name().to_string(),
        dry_run: plan.flush.dry_run,
        users: accounts.iter().map(|(_, a)| a.sam.clone()).collect(),
        started_at: SystemTime::now(),
        ticket: plan.ticket.clone(),
        reason: plan.reason.clone(),
    });
    let source = conn.root_dse.clone();
    let is_source = |dc: &DomainController| topology::is_connected_dc(&conn, dc);
    let (source_dcs, other_dcs): (Vec<DomainController>, Vec<DomainController>) =
        domain_controllers.iter().cloned().partition(is_source);
    let source_host = source_dcs
        .first()
        .map(|dc| dc.host.clone())
        .unwrap_or_else(|| source.dns_host_name.clone());
    // Which accounts each other DC must show changed: all, except on a
    // read-only DC, which only matters for the passwords it holds.
    let holds = |dc: &DomainController, dn: &str| {
        !dc.read_only
            || revealed
                .get(&dc.host)
                .and_then(Option::as_ref)
                .is_none_or(|set| set.contains(&dn.to_ascii_lowercase()))
    };

    if plan.flush.dry_run {
        for (input, account) in &accounts {
            events.emit(Event::UserFinished {
                user: planned(input, account, &plan.change),
            });
        }
        let source_dc = DomainController::configured(&source_host);
        let views =
            std::iter::once((&source_dc, true)).chain(other_dcs.iter().map(|dc| (dc, false)));
        for (dc, is_source) in views {
            let cached: Vec<&(String, UserAccount)> =
                accounts.iter().filter(|(_, a)| holds(dc, &a.dn)).collect();
            let plan_words = what_the_gate_will_do(&plan, dc, is_source, &cached);
            let dc = dry_run_view(&plan.directory, &secrets, dc, &cached, plan_words).await;
            events.emit(Event::DomainControllerFinished { dc });
        }
        if !plan.change.flushes() {
            events.emit(Event::RunFinished {
                finished_at: SystemTime::now(),
            });
            return;
        }
        let owners = session_owners(accounts.iter().map(|(_, a)| a));
        flush_and_kill(plan.flush, connector, f5, owners, events).await;
        return;
    }

    let mut written = Vec::new();
    let mut changed_accounts = Vec::new();
    for (input, account) in &accounts {
        events.emit(Event::DirectoryStep {
            what: format!("{} {} on {source_host}", verb(&plan.change), account.sam),
        });
        // Each account's own new password (a reset), keyed by DN in prepare.
        let new_password = secrets.new_passwords.get(&account.dn);
        let stamp = stamped_by.as_deref().map(|by| {
            stamp_line(
                &plan.change,
                SystemTime::now(),
                by,
                plan.ticket.as_deref(),
                plan.reason.as_deref(),
            )
        });
        // Journaled before the write: a change the journal cannot record is not made.
        let announced = events.emit_durable(Event::AccountChanging {
            dn: account.dn.clone(),
            sam_account_name: account.sam.clone(),
            dc: source_host.clone(),
            change: plan.change.name().to_string(),
            user_account_control: account.user_account_control,
        });
        if let Err(error) = announced {
            let outcome = failed_outcome(input, account, format!("not changed: {error}"));
            events.emit(Event::UserFinished { user: outcome });
            continue;
        }
        let outcome = match apply_stamped(
            &mut conn,
            &account.dn,
            &plan.change,
            new_password,
            stamp.as_deref(),
        )
        .await
        {
            Ok(applied) => {
                // The stamp of this write, to recognise it on the other DCs.
                let stamp = metadata::read(&mut conn, &account.dn, plan.change.attribute())
                    .await
                    .ok()
                    .flatten()
                    .map(|(stamp, _)| stamp);
                written.push(Written {
                    dn: account.dn.clone(),
                    label: account.sam.clone(),
                    state: applied.after.clone(),
                    stamp,
                });
                changed_accounts.push(account);
                changed(input, account, &plan.change, &applied)
            }
            Err(error) => {
                let mut why = explain_failure(account, error);
                if stamp.is_some() && why.contains("result 50") {
                    // The change and its stamp are one modify: the right to
                    // write info is as needed as the change's own.
                    why.push_str(
                        " — with [directory] stamp = true the same modify writes the account's \
                         info too: the operator needs Write info on the account's OU \
                         (docs/permissions.md), or set stamp = false",
                    );
                }
                failed_outcome(input, account, why)
            }
        };
        events.emit(Event::UserFinished { user: outcome });
    }
    let write_done = Instant::now();
    if written.is_empty() {
        events.emit(Event::FlushSkipped {
            reason: "the change in AD failed for every account, so nothing was flushed; \
                     fix the cause and run again"
                .into(),
        });
        events.emit(Event::RunFinished {
            finished_at: SystemTime::now(),
        });
        return;
    }
    // One account's failure does not abandon the others: those changed are
    // gated and flushed; the failed one stays in the report (exit 2).
    events.emit(Event::DomainControllerFinished {
        dc: DcOutcome::now(&source_host, DcStatus::Written, Duration::ZERO, None),
    });
    let mut checks = Vec::new();
    for dc in &other_dcs {
        let accounts: Vec<Written> = written
            .iter()
            .filter(|w| holds(dc, &w.dn))
            .cloned()
            .collect();
        if accounts.is_empty() {
            events.emit(Event::DomainControllerFinished {
                dc: not_cached(dc, &written, write_done.elapsed()),
            });
        } else {
            checks.push(Check {
                dc: dc.clone(),
                accounts,
            });
        }
    }
    match plan.replication_timeout {
        Some(deadline) if !checks.is_empty() => {
            events.emit(Event::DirectoryStep {
                what: format!(
                    "waiting until {} domain controller(s) have the change",
                    checks.len()
                ),
            });
            let gate = Gate {
                settings: plan.directory.clone(),
                secrets: secrets.clone(),
                source_dsa: source.ds_service_name.clone(),
                naming_context: source.default_naming_context.clone(),
                change: plan.change,
                direct_write: plan.direct_write,
                written_at: write_done,
                deadline,
                events: events.clone(),
            };
            converge(gate, checks).await;
        }
        Some(_) => {}
        None => {
            for check in &checks {
                events.emit(Event::DomainControllerFinished {
                    dc: DcOutcome::now(
                        &check.dc.host,
                        DcStatus::Unchecked,
                        write_done.elapsed(),
                        Some("not checked (--no-wait-replication)".into()),
                    )
                    .read_only(check.dc.read_only),
                });
            }
        }
    }
    conn.close().await;
    if !plan.change.flushes() {
        // `enable`: nothing cached to clear, no session to kill.
        events.emit(Event::RunFinished {
            finished_at: SystemTime::now(),
        });
        return;
    }
    // After the gate: a killed session that logs on again meets a DC that
    // already has the change.
    let owners = session_owners(changed_accounts.into_iter());
    flush_and_kill(plan.flush, connector, f5, owners, events).await;
}

fn session_owners<'a>(accounts: impl Iterator<Item = &'a UserAccount>) -> Vec<SessionOwner> {
    accounts
        .map(|a| SessionOwner {
            sam: a.sam.clone(),
            upn: a.upn.clone(),
        })
        .collect()
}

/// A read-only DC that holds none of the changed accounts' passwords.
fn not_cached(dc: &DomainController, written: &[Written], elapsed: Duration) -> DcOutcome {
    let names: Vec<&str> = written.iter().map(|w| w.label.as_str()).collect();
    DcOutcome::now(
        &dc.host,
        DcStatus::NotCached,
        elapsed,
        Some(format!(
            "low risk: this read-only DC holds no copy of the password of {} (its computer \
             object's revealed list does not name them), so it sends their logons to a \
             writable DC, which has the change",
            names.join(", ")
        )),
    )
    .read_only(true)
}

/// A change refused on the source DC, with what the operator can do.
fn explain_failure(account: &UserAccount, error: DirectoryError) -> String {
    let text = error.to_string();
    if account.admin_count && text.contains("result 50") {
        format!(
            "{text} — {} has adminCount=1: AdminSDHolder protects it, so rights delegated on its \
             OU do not reach it; a Domain Admin must change it, or grant the right on \
             CN=AdminSDHolder,CN=System of the domain",
            account.sam
        )
    } else {
        text
    }
}

/// The flush and the APM session kill, concurrently: neither waits for the
/// other, and a BIG-IP's failure never touches a server's job. The run
/// finishes (`RunFinished`) when both are done.
pub(crate) async fn flush_and_kill(
    flush: FlushPlan,
    connector: Connector,
    f5: Option<F5Client>,
    owners: Vec<SessionOwner>,
    events: EventSink,
) {
    let dry_run = flush.dry_run;
    let flush = orchestrate::flush(flush, connector, &events);
    match f5 {
        Some(f5) => {
            tokio::join!(
                flush,
                f5::kill_sessions(f5, owners, dry_run, events.clone())
            );
        }
        None => flush.await,
    }
    events.emit(Event::RunFinished {
        finished_at: SystemTime::now(),
    });
}
