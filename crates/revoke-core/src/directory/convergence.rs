//! The convergence gate: after the write, every writable DC must show the
//! change before the caches are flushed, or a flushed client simply logs on
//! again through a DC that still has the old state (docs/windows-behaviour.md §2.9).
//!
//! Each lagging DC is first asked to pull the object (`replicateSingleObject`
//! on its rootDSE, as Windows AD allows). Where that is refused (Samba) or
//! does not work quickly, the same change is written on that DC directly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ldap3::Mod;
use tokio::task::JoinSet;

use super::change::{AccountState, Change, apply};
use super::connection::{Connection, DirectorySettings};
use super::topology::DomainController;
use crate::events::{DcOutcome, DcStatus, Event, EventSink};
use crate::secrets::Secrets;

/// Between two reads of a lagging DC.
const POLL: Duration = Duration::from_millis(300);
/// How long a DC that accepted `replicateSingleObject` gets before the
/// change is written on it directly.
const FORCED_REPLICATION_GRACE: Duration = Duration::from_secs(5);

/// One changed account: its DN and the state written on the source DC.
#[derive(Debug, Clone)]
pub struct Written {
    pub dn: String,
    pub label: String,
    pub state: AccountState,
}

/// What every DC's check shares: how to reach the DCs, what was written
/// where, and how long to wait.
pub struct Gate {
    pub settings: DirectorySettings,
    pub secrets: Secrets,
    /// The DSA object of the DC the change was written on.
    pub source_dsa: String,
    pub accounts: Vec<Written>,
    pub change: Change,
    /// When the write on the source DC ended.
    pub written_at: Instant,
    pub deadline: Duration,
    pub events: EventSink,
}

/// Waits until every DC in `dcs` has the change for every account, or the
/// gate's deadline passes. Returns one outcome per DC, in the given order.
pub async fn converge(gate: Gate, dcs: &[DomainController]) -> Vec<DcOutcome> {
    let gate = Arc::new(gate);
    let deadline = gate.deadline;
    let mut tasks = JoinSet::new();
    for (index, dc) in dcs.iter().enumerate() {
        let gate = gate.clone();
        let dc = dc.clone();
        tasks.spawn(async move {
            // converge_one checks the deadline itself; this bounds a hung operation.
            let limit = deadline + gate.settings.operation_timeout;
            let outcome = tokio::time::timeout(limit, converge_one(&gate, &dc))
                .await
                .unwrap_or_else(|_| gate.not_converged(&dc, "an LDAP operation hung".into()));
            gate.events.emit(Event::DomainControllerFinished {
                dc: outcome.clone(),
            });
            (index, outcome)
        });
    }
    let mut outcomes: Vec<Option<DcOutcome>> = vec![None; dcs.len()];
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, outcome)) = joined {
            outcomes[index] = Some(outcome);
        }
    }
    outcomes
        .into_iter()
        .zip(dcs)
        .map(|(o, dc)| {
            o.unwrap_or_else(|| {
                gate.not_converged(dc, "the check of this DC failed unexpectedly".into())
            })
        })
        .collect()
}

impl Gate {
    fn not_converged(&self, dc: &DomainController, why: String) -> DcOutcome {
        let message = format!(
            "not confirmed within {} s ({why}): this DC may still let the user in",
            self.deadline.as_secs()
        );
        DcOutcome::now(
            &dc.host,
            DcStatus::NotConverged,
            self.written_at.elapsed(),
            Some(message),
        )
    }
}

async fn converge_one(gate: &Gate, dc: &DomainController) -> DcOutcome {
    let (settings, change, started, deadline) =
        (&gate.settings, &gate.change, gate.written_at, gate.deadline);
    let step = |what: String| gate.events.emit(Event::DirectoryStep { what });
    let not_converged = |why: String| gate.not_converged(dc, why);
    let mut last_error = String::new();
    let mut conn = loop {
        match Connection::open_host(settings, &gate.secrets.operator, &dc.host).await {
            Ok(conn) => break conn,
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
    let mut direct_write = false;
    // Accounts written here directly: the write was read back, and a reset's
    // pwdLastSet is this DC's own, so it cannot be compared with the source's.
    let mut written_here: Vec<&str> = Vec::new();
    let mut asked_at: Option<Instant> = None;
    let mut asking_refused = false;
    let mut asked_refused_ever = false;
    loop {
        let mut lagging = Vec::new();
        for account in gate
            .accounts
            .iter()
            .filter(|a| !written_here.contains(&a.dn.as_str()))
        {
            match AccountState::read(&mut conn, &account.dn).await {
                Ok(state) if state.has(change, &account.state) => {}
                Ok(_) => lagging.push(account),
                Err(error) => {
                    last_error = error.to_string();
                    lagging.push(account);
                }
            }
        }
        if lagging.is_empty() {
            let (status, message) = match (direct_write, asked_refused_ever) {
                (false, _) => (DcStatus::Replicated, None),
                (true, true) => (
                    DcStatus::DirectWrite,
                    Some(
                        "it refused forced replication (replicateSingleObject), so the change was written here directly",
                    ),
                ),
                (true, false) => (
                    DcStatus::DirectWrite,
                    Some(
                        "forced replication did not arrive in time, so the change was written here directly",
                    ),
                ),
            };
            return DcOutcome::now(
                &dc.host,
                status,
                started.elapsed(),
                message.map(String::from),
            );
        }
        let names: Vec<&str> = lagging.iter().map(|a| a.label.as_str()).collect();
        if started.elapsed() >= deadline {
            let why = if last_error.is_empty() {
                format!("it still has the old state of {}", names.join(", "))
            } else {
                last_error
            };
            return not_converged(why);
        }
        match asked_at {
            None => {
                step(format!(
                    "{}: does not have {} yet; asking it to replicate",
                    dc.host,
                    names.join(", ")
                ));
                for account in &lagging {
                    if !ask_to_replicate(&mut conn, &gate.source_dsa, &account.dn).await {
                        asking_refused = true;
                        asked_refused_ever = true;
                    }
                }
                asked_at = Some(Instant::now());
                if !asking_refused {
                    tokio::time::sleep(POLL).await;
                }
            }
            Some(at) if asking_refused || at.elapsed() >= FORCED_REPLICATION_GRACE => {
                step(format!(
                    "{}: writing the change directly for {}",
                    dc.host,
                    names.join(", ")
                ));
                for account in &lagging {
                    match apply(
                        &mut conn,
                        &account.dn,
                        change,
                        gate.secrets.new_password.as_ref(),
                    )
                    .await
                    {
                        Ok(_) => {
                            direct_write = true;
                            written_here.push(&account.dn);
                        }
                        Err(error) => last_error = error.to_string(),
                    }
                }
                asking_refused = false;
                asked_at = Some(Instant::now());
                if !last_error.is_empty() && !direct_write {
                    step(format!("{}: {last_error}", dc.host));
                    tokio::time::sleep(POLL).await;
                }
            }
            Some(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// MS-ADTS 3.1.1.3.3.18: rootDSE `replicateSingleObject` =
/// `<source DSA DN>:<object DN>`. False when the DC refuses it.
async fn ask_to_replicate(conn: &mut Connection, source_dsa: &str, dn: &str) -> bool {
    if source_dsa.is_empty() {
        return false;
    }
    let value = format!("{source_dsa}:{dn}").into_bytes();
    let mods = vec![Mod::Replace(
        b"replicateSingleObject".to_vec(),
        std::collections::HashSet::from([value]),
    )];
    match conn.modify("", mods).await {
        Ok(result) if result.rc == 0 => true,
        Ok(result) => {
            tracing::debug!(
                "{} refused replicateSingleObject: {}",
                conn.host,
                super::describe_result(result.rc, &result.text)
            );
            false
        }
        Err(_) => false,
    }
}
