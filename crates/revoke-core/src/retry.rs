//! `revoke retry`: take up what an earlier run left open — DCs not confirmed,
//! servers not flushed `ok`, BIG-IPs not clean — and never change an account
//! again. Each account is re-read on the DC revoke connects to; one that was
//! changed back meanwhile (re-enabled after a disable) stops the retry
//! before anything is done. A lagging DC is asked to replicate and waited
//! for, never written (a direct write would be a new change of the account).

use std::time::{Duration, Instant, SystemTime};

use crate::directory::account::ACCOUNT_DISABLE;
use crate::directory::change::{AccountState, Change};
use crate::directory::convergence::{Check, DirectWrite, Gate, Written, converge};
use crate::directory::metadata;
use crate::directory::topology::DomainController;
use crate::directory::{Connection, DirectorySettings, uac_flag_names};
use crate::events::{DcOutcome, DcStatus, Event, EventSink, UserOutcome, UserStatus};
use crate::f5::{F5Client, F5Settings, SessionOwner};
use crate::plan::FlushPlan;
use crate::revocation::{RevocationError, flush_and_kill};
use crate::secrets::Secrets;
use revoke_winrm::Connector;

/// One account the earlier run changed.
#[derive(Debug, Clone)]
pub struct RetryAccount {
    pub input: String,
    pub dn: String,
    pub sam: String,
    pub upn: Option<String>,
}

/// What a retry takes up. No secrets.
#[derive(Debug)]
pub struct RetryPlan {
    /// The run it finishes.
    pub retry_of: String,
    /// The earlier run's change; None for a `flush`.
    pub change: Option<Change>,
    pub accounts: Vec<RetryAccount>,
    /// Needed when there are accounts.
    pub directory: Option<DirectorySettings>,
    /// The DCs not confirmed to have the change.
    pub domain_controllers: Vec<DomainController>,
    /// None: `--no-wait-replication`.
    pub replication_timeout: Option<Duration>,
    /// The servers not flushed `ok` (its targets may be empty).
    pub flush: FlushPlan,
    /// The BIG-IPs not clean, if any.
    pub f5: Option<F5Settings>,
    /// `--ticket` / `--reason` of the retry itself.
    pub ticket: Option<String>,
    pub reason: Option<String>,
}

/// Re-read and ready: every account still has the change.
pub struct PreparedRetry {
    plan: RetryPlan,
    secrets: Secrets,
    conn: Option<Connection>,
    /// Each account and its state now, with the stamp of its change.
    written: Vec<(RetryAccount, Written)>,
    f5: Option<F5Client>,
}

impl PreparedRetry {
    pub fn plan(&self) -> &RetryPlan {
        &self.plan
    }
    /// The DC the accounts were re-read on.
    pub fn source_host(&self) -> Option<&str> {
        self.conn
            .as_ref()
            .map(|c| c.root_dse.dns_host_name.as_str())
    }
}

/// Re-reads every account (changing nothing) and refuses if one no longer
/// has the change.
pub async fn prepare(plan: RetryPlan, secrets: Secrets) -> Result<PreparedRetry, RevocationError> {
    let f5 = plan
        .f5
        .clone()
        .map(|settings| F5Client::new(settings, secrets.f5.clone()))
        .transpose()?;
    // No account to re-read (a flush, or nothing changed): nothing to open.
    let directory = plan
        .directory
        .as_ref()
        .filter(|_| !plan.accounts.is_empty());
    let (Some(change), Some(directory)) = (plan.change, directory) else {
        return Ok(PreparedRetry {
            plan,
            secrets,
            conn: None,
            written: Vec::new(),
            f5,
        });
    };
    let mut conn = Connection::open(directory, &secrets.operator).await?;
    let mut written = Vec::new();
    let mut refusals = Vec::new();
    for account in &plan.accounts {
        let state = AccountState::read(&mut conn, &account.dn).await?;
        if let Some(why) = changed_back(&change, &state) {
            refusals.push(format!(
                "{}: {why} on {} since run {}: someone changed it back. revoke retry never \
                 writes an account; find out why, and run `revoke {} {}` again if it must be",
                account.sam,
                conn.host,
                plan.retry_of,
                change.name(),
                account.sam
            ));
            continue;
        }
        let stamp = metadata::read(&mut conn, &account.dn, change.attribute())
            .await
            .ok()
            .flatten()
            .map(|(stamp, _)| stamp);
        written.push((
            account.clone(),
            Written {
                dn: account.dn.clone(),
                label: account.sam.clone(),
                state,
                stamp,
            },
        ));
    }
    if !refusals.is_empty() {
        conn.close().await;
        return Err(RevocationError::Refused(refusals));
    }
    Ok(PreparedRetry {
        plan,
        secrets,
        conn: Some(conn),
        written,
        f5,
    })
}

/// Why the account no longer has the change, if it does not.
fn changed_back(change: &Change, state: &AccountState) -> Option<String> {
    let disabled = state.user_account_control & ACCOUNT_DISABLE != 0;
    match change {
        Change::Disable if !disabled => Some(format!(
            "it is enabled again (userAccountControl {})",
            state.user_account_control
        )),
        Change::Enable if disabled => Some(format!(
            "it is disabled again (userAccountControl {})",
            state.user_account_control
        )),
        _ => None,
    }
}

/// Waits for the open DCs, then flushes the open servers and kills the
/// sessions on the open BIG-IPs. Writes no account.
pub async fn execute(prepared: PreparedRetry, connector: Connector, events: EventSink) {
    let PreparedRetry {
        plan,
        secrets,
        conn,
        written,
        f5,
    } = prepared;
    if let (Some(change), Some(conn)) = (plan.change, conn) {
        events.emit(Event::DirectoryStarted {
            run_id: events.run_id().to_string(),
            change: change.name().to_string(),
            dry_run: false,
            users: written.iter().map(|(a, _)| a.sam.clone()).collect(),
            started_at: SystemTime::now(),
            ticket: plan.ticket.clone(),
            reason: plan.reason.clone(),
        });
        for (account, w) in &written {
            events.emit(Event::UserFinished {
                user: unchanged(account, w, &change, &plan.retry_of, &conn.host),
            });
        }
        let checks: Vec<Check> = plan
            .domain_controllers
            .iter()
            .map(|dc| Check {
                dc: dc.clone(),
                accounts: written.iter().map(|(_, w)| w.clone()).collect(),
            })
            .collect();
        let started = Instant::now();
        match (plan.replication_timeout, &plan.directory) {
            (Some(deadline), Some(settings)) if !checks.is_empty() => {
                events.emit(Event::DirectoryStep {
                    what: format!(
                        "waiting until {} domain controller(s) have the change",
                        checks.len()
                    ),
                });
                let gate = Gate {
                    settings: settings.clone(),
                    secrets: secrets.clone(),
                    source_dsa: conn.root_dse.ds_service_name.clone(),
                    naming_context: conn.root_dse.default_naming_context.clone(),
                    change,
                    // Never written: that would change the account again.
                    direct_write: DirectWrite::Never,
                    written_at: started,
                    deadline,
                    events: events.clone(),
                };
                converge(gate, checks).await;
            }
            _ => {
                for check in &checks {
                    events.emit(Event::DomainControllerFinished {
                        dc: DcOutcome::now(
                            &check.dc.host,
                            DcStatus::Unchecked,
                            started.elapsed(),
                            Some("not checked (--no-wait-replication)".into()),
                        )
                        .read_only(check.dc.read_only),
                    });
                }
            }
        }
        conn.close().await;
    }
    if plan.flush.targets.is_empty() && f5.is_none() {
        events.emit(Event::RunFinished {
            finished_at: SystemTime::now(),
        });
        return;
    }
    let owners = plan
        .accounts
        .iter()
        .map(|a| SessionOwner {
            sam: a.sam.clone(),
            upn: a.upn.clone(),
        })
        .collect();
    flush_and_kill(plan.flush, connector, f5, owners, events).await;
}

/// An account as the retry found it: changed by the earlier run, not written.
fn unchanged(
    account: &RetryAccount,
    written: &Written,
    change: &Change,
    retry_of: &str,
    host: &str,
) -> UserOutcome {
    let uac = written.state.user_account_control;
    UserOutcome {
        input: account.input.clone(),
        dn: account.dn.clone(),
        sam_account_name: account.sam.clone(),
        user_principal_name: account.upn.clone(),
        display_name: None,
        status: match change {
            Change::Disable => UserStatus::Disabled,
            Change::Enable => UserStatus::Enabled,
            Change::Reset { .. } => UserStatus::Reset,
        },
        user_account_control_before: uac,
        user_account_control_after: uac,
        flags_before: uac_flag_names(uac),
        flags_after: uac_flag_names(uac),
        message: Some(format!(
            "changed by run {retry_of}; re-read on {host}, not written again"
        )),
    }
}
