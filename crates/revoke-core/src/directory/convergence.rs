//! The convergence gate: after the write, every DC that can log the user on
//! by itself must show the change before the caches are flushed, or a
//! flushed client simply logs on again through a DC that still has the old
//! state (docs/windows-behaviour.md §2.9).
//!
//! Each lagging DC is first asked to pull the object (`replicateSingleObject`
//! on its rootDSE, MS-ADTS 3.1.1.3.3.18). Under `--direct-write auto` a
//! writable DC that refuses, or does not get the change quickly, gets the
//! same change written on it directly; under `never` revoke only waits.
//! Read-only DCs are never written: they are asked, then waited for.
//! Whether a DC has the change is decided by replication metadata
//! ([`super::metadata`]) where the DC serves it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ldap3::Mod;
use tokio::task::JoinSet;

use super::change::{AccountState, Change, apply};
use super::connection::{Connection, DirectorySettings};
use super::metadata::{self, Evidence, Stamp};
use super::topology::DomainController;
use super::{DirectoryError, describe_result};
use crate::events::{DcOutcome, DcStatus, Event, EventSink};
use crate::secrets::Secrets;

/// Between two reads of a lagging DC.
const POLL: Duration = Duration::from_millis(300);
/// How long a DC that accepted `replicateSingleObject` gets before the
/// change is written on it directly.
pub const FORCED_REPLICATION_GRACE: Duration = Duration::from_secs(5);

/// Whether revoke may write the change on a lagging writable DC itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DirectWrite {
    /// Ask it to replicate; if it refuses or the change has not arrived
    /// after a few seconds, write the change there.
    #[default]
    Auto,
    /// Ask it to replicate, then wait until the replication timeout.
    Never,
}

impl DirectWrite {
    pub const ALL: [DirectWrite; 2] = [DirectWrite::Auto, DirectWrite::Never];

    pub fn name(self) -> &'static str {
        match self {
            DirectWrite::Auto => "auto",
            DirectWrite::Never => "never",
        }
    }
}

/// One changed account: its DN, the state written on the source DC and the
/// replication stamp of the attribute that carries the change there.
#[derive(Debug, Clone)]
pub struct Written {
    pub dn: String,
    pub label: String,
    pub state: AccountState,
    /// None: the source DC serves no replication metadata.
    pub stamp: Option<Stamp>,
}

/// What every DC's check shares: how to reach the DCs, what was written
/// where, and how long to wait.
pub struct Gate {
    pub settings: DirectorySettings,
    pub secrets: Secrets,
    /// The DSA object of the DC the change was written on.
    pub source_dsa: String,
    /// The naming context whose head carries the replication rights.
    pub naming_context: String,
    pub change: Change,
    pub direct_write: DirectWrite,
    /// When the write on the source DC ended.
    pub written_at: Instant,
    pub deadline: Duration,
    pub events: EventSink,
}

/// One DC to check and the accounts it must show changed (for a read-only
/// DC, those whose passwords it holds).
pub struct Check {
    pub dc: DomainController,
    pub accounts: Vec<Written>,
}

/// Waits until every DC has the change for its accounts, or the gate's
/// deadline passes. Returns one outcome per check, in the given order.
pub async fn converge(gate: Gate, checks: Vec<Check>) -> Vec<DcOutcome> {
    let gate = Arc::new(gate);
    let deadline = gate.deadline;
    let hosts: Vec<DomainController> = checks.iter().map(|c| c.dc.clone()).collect();
    let mut tasks = JoinSet::new();
    for (index, check) in checks.into_iter().enumerate() {
        let gate = gate.clone();
        tasks.spawn(async move {
            // converge_one checks the deadline itself; this bounds a hung operation.
            let limit = deadline + gate.settings.operation_timeout;
            let outcome = tokio::time::timeout(limit, converge_one(&gate, &check))
                .await
                .unwrap_or_else(|_| gate.not_converged(&check, "an LDAP operation hung".into()));
            gate.events.emit(Event::DomainControllerFinished {
                dc: outcome.clone(),
            });
            (index, outcome)
        });
    }
    let mut outcomes: Vec<Option<DcOutcome>> = vec![None; hosts.len()];
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, outcome)) = joined {
            outcomes[index] = Some(outcome);
        }
    }
    outcomes
        .into_iter()
        .zip(hosts)
        .map(|(o, dc)| {
            o.unwrap_or_else(|| {
                let check = Check {
                    dc,
                    accounts: Vec::new(),
                };
                gate.not_converged(&check, "the check of this DC failed unexpectedly".into())
            })
        })
        .collect()
}

impl Gate {
    fn not_converged(&self, check: &Check, why: String) -> DcOutcome {
        let dc = &check.dc;
        let (status, message) = if dc.read_only {
            let names = labels(check.accounts.iter());
            (
                DcStatus::RodcNotConverged,
                format!(
                    "not confirmed within {} s ({why}): this read-only DC holds the password of \
                     {names} and may log them on with its old copy until replication reaches it. \
                     Replicate the object to it now (on Windows: repadmin /replsingleobj {} \
                     <source DC> <user DN>), or take {names} out of its password replication \
                     policy (Allowed RODC Password Replication Group) and revealed list",
                    self.deadline.as_secs(),
                    dc.host
                ),
            )
        } else {
            (
                DcStatus::NotConverged,
                format!(
                    "not confirmed within {} s ({why}): this DC may still let the user in",
                    self.deadline.as_secs()
                ),
            )
        };
        DcOutcome::now(&dc.host, status, self.written_at.elapsed(), Some(message))
            .read_only(dc.read_only)
    }

    /// The value of `replicateSingleObject` that pulls `dn` from the source.
    fn replicate_value(&self, dn: &str, secrets_only: bool) -> Vec<u8> {
        let suffix = if secrets_only { ":SECRETS_ONLY" } else { "" };
        format!("{}:{dn}{suffix}", self.source_dsa).into_bytes()
    }
}

fn labels<'a>(accounts: impl Iterator<Item = &'a Written>) -> String {
    accounts
        .map(|a| a.label.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// How a DC answered `replicateSingleObject`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Asked {
    Accepted,
    /// Result 50: the operator lacks Replication Synchronization on the NC.
    MissingRight(String),
    /// Any other refusal, in words.
    Refused(String),
}

async fn converge_one(gate: &Gate, check: &Check) -> DcOutcome {
    let dc = &check.dc;
    let (settings, change, started, deadline) =
        (&gate.settings, &gate.change, gate.written_at, gate.deadline);
    let step = |what: String| gate.events.emit(Event::DirectoryStep { what });
    let not_converged = |why: String| gate.not_converged(check, why);
    let mut last_error = String::new();
    let mut conn = loop {
        match Connection::open_host(settings, &gate.secrets.operator, &dc.host).await {
            Ok(conn) => break conn,
            // A refused bind does not get better by waiting.
            Err(error @ DirectoryError::BindRefused { .. }) => {
                return not_converged(format!("cannot read it: {error}"));
            }
            Err(error) => {
                // Unreachable DCs are retried until the deadline: one that
                // comes back with the old state must still be caught.
                last_error = error.to_string();
                if started.elapsed() + Duration::from_secs(1) >= deadline {
                    return not_converged(last_error);
                }
                step(format!("{}: {last_error}; retrying", dc.host));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let mut evidence: Option<Evidence> = None;
    // Accounts written here directly (and read back).
    let mut written_here: Vec<&str> = Vec::new();
    let mut asked: Option<(Instant, Asked)> = None;
    let mut direct_failed = false;
    loop {
        let mut lagging = Vec::new();
        for account in check
            .accounts
            .iter()
            .filter(|a| !written_here.contains(&a.dn.as_str()))
        {
            match has_change(&mut conn, account, change).await {
                Ok(Some(seen)) => {
                    evidence.get_or_insert(seen);
                }
                Ok(None) => lagging.push(account),
                Err(error) => {
                    last_error = error.to_string();
                    lagging.push(account);
                }
            }
        }
        if lagging.is_empty() {
            return converged(gate, check, &written_here, asked.as_ref(), evidence);
        }
        let names = labels(lagging.iter().copied());
        if started.elapsed() >= deadline {
            let mut why = if last_error.is_empty() {
                format!("it still has the old state of {names}")
            } else {
                last_error
            };
            if let Some((_, Asked::MissingRight(reason) | Asked::Refused(reason))) = &asked {
                why.push_str(&format!("; it refused forced replication: {reason}"));
            }
            if gate.direct_write == DirectWrite::Never && !dc.read_only {
                why.push_str("; direct writes are off (--direct-write never)");
            }
            return not_converged(why);
        }
        let may_write = gate.direct_write == DirectWrite::Auto && !dc.read_only && !direct_failed;
        match &asked {
            None => {
                step(format!(
                    "{}: does not have {names} yet; asking it to replicate",
                    dc.host
                ));
                let mut answer = Asked::Accepted;
                for account in &lagging {
                    answer = ask_to_replicate(gate, &mut conn, &account.dn, false).await;
                    if dc.read_only && answer == Asked::Accepted && change.moves_secret() {
                        // An RODC gets a new password only with SECRETS_ONLY.
                        answer = ask_to_replicate(gate, &mut conn, &account.dn, true).await;
                    }
                    if answer != Asked::Accepted {
                        break;
                    }
                }
                if let Asked::MissingRight(reason) | Asked::Refused(reason) = &answer {
                    step(format!("{}: {reason}", dc.host));
                }
                let refused = answer != Asked::Accepted;
                asked = Some((Instant::now(), answer));
                if !(refused && may_write) {
                    tokio::time::sleep(POLL).await;
                }
            }
            Some((at, answer))
                if may_write
                    && (*answer != Asked::Accepted || at.elapsed() >= FORCED_REPLICATION_GRACE) =>
            {
                step(format!(
                    "{}: writing the change directly for {names}",
                    dc.host
                ));
                for account in &lagging {
                    // Journaled before the write, like the first one.
                    let announced = gate.events.emit_durable(Event::AccountChanging {
                        dn: account.dn.clone(),
                        sam_account_name: account.label.clone(),
                        dc: dc.host.clone(),
                        change: change.name().to_string(),
                        user_account_control: account.state.user_account_control,
                    });
                    if let Err(error) = announced {
                        direct_failed = true;
                        last_error = format!("not written directly: {error}");
                        continue;
                    }
                    match apply(
                        &mut conn,
                        &account.dn,
                        change,
                        // A reset writes each account's own new password
                        // (keyed by DN in revocation::prepare).
                        gate.secrets.new_passwords.get(&account.dn),
                    )
                    .await
                    {
                        Ok(_) => written_here.push(&account.dn),
                        Err(error) => {
                            // Not again: wait for replication instead.
                            direct_failed = true;
                            last_error = error.to_string();
                            step(format!("{}: {last_error}", dc.host));
                        }
                    }
                }
            }
            Some(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// The outcome of a DC that has the change for every account.
fn converged(
    gate: &Gate,
    check: &Check,
    written_here: &[&str],
    asked: Option<&(Instant, Asked)>,
    evidence: Option<Evidence>,
) -> DcOutcome {
    let (status, message, evidence) = if !written_here.is_empty() {
        let why = match asked {
            Some((_, Asked::MissingRight(reason) | Asked::Refused(reason))) => {
                format!(
                    "it refused forced replication ({reason}), so the change was written here directly"
                )
            }
            _ => format!(
                "forced replication did not arrive within {} s, so the change was written here directly",
                FORCED_REPLICATION_GRACE.as_secs()
            ),
        };
        (
            DcStatus::DirectWrite,
            Some(why),
            Some(Evidence::WrittenHere),
        )
    } else {
        match asked {
            Some((_, Asked::Accepted)) => (DcStatus::Forced, None, evidence),
            Some((_, Asked::MissingRight(reason) | Asked::Refused(reason))) => (
                DcStatus::Replicated,
                Some(format!("it refused forced replication ({reason})")),
                evidence,
            ),
            None => (DcStatus::Replicated, None, evidence),
        }
    };
    DcOutcome::now(&check.dc.host, status, gate.written_at.elapsed(), message)
        .read_only(check.dc.read_only)
        .decided_by(evidence)
}

/// Does this DC have `account`'s change? By the attribute's replication
/// stamp where both the source and this DC serve one, else by its value.
async fn has_change(
    conn: &mut Connection,
    account: &Written,
    change: &Change,
) -> Result<Option<Evidence>, DirectoryError> {
    if let Some(written) = &account.stamp
        && let Some((stamp, evidence)) =
            metadata::read(conn, &account.dn, change.attribute()).await?
    {
        return Ok(stamp.includes(written).then_some(evidence));
    }
    let state = AccountState::read(conn, &account.dn).await?;
    Ok(state.has(change, &account.state).then_some(Evidence::Value))
}

/// MS-ADTS 3.1.1.3.3.18: rootDSE `replicateSingleObject` =
/// `<source DSA DN>:<object DN>[:SECRETS_ONLY]`; it needs the Replication
/// Synchronization right on the naming context head.
async fn ask_to_replicate(
    gate: &Gate,
    conn: &mut Connection,
    dn: &str,
    secrets_only: bool,
) -> Asked {
    if gate.source_dsa.is_empty() {
        return Asked::Refused("the source DC's DSA object is unknown".into());
    }
    let mods = vec![Mod::Replace(
        b"replicateSingleObject".to_vec(),
        std::collections::HashSet::from([gate.replicate_value(dn, secrets_only)]),
    )];
    match conn.modify("", mods).await {
        Ok(result) if result.rc == 0 => Asked::Accepted,
        Ok(result) if result.rc == 50 => Asked::MissingRight(format!(
            "missing right \"Replication Synchronization\" (DS-Replication-Synchronize) on {nc}; \
             grant it: dsacls \"{nc}\" /G \"{user}:CA;Replication Synchronization\"",
            nc = gate.naming_context,
            user = gate.settings.bind_user,
        )),
        Ok(result) => Asked::Refused(describe_result(result.rc, &result.text)),
        Err(error) => Asked::Refused(error.to_string()),
    }
}
