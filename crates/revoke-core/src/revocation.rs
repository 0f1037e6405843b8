//! `revoke disable` / `revoke reset`: resolve and guard every account, change
//! it in AD, wait until every writable DC has the change, then flush the
//! Exchange servers with the existing fan-out and, with `[f5]`, kill the
//! accounts' APM sessions at the same time.
//!
//! Two halves, so the operator can confirm in between: [`prepare`] only
//! reads (and refuses, changing nothing); [`execute`] writes and emits
//! [`Event`]s like the flush core. Neither knows about terminals.

use std::time::{Duration, Instant, SystemTime};

use thiserror::Error;

use crate::Password;
use crate::directory::account::ACCOUNT_DISABLE;
use crate::directory::change::{AccountState, Applied, Change, apply};
use crate::directory::convergence::{Gate, Written, converge};
use crate::directory::guards::{self, Operator};
use crate::directory::topology::{self, DomainController};
use crate::directory::{
    Connection, DirectoryError, DirectorySettings, UserAccount, discovery, identity, uac_flag_names,
};
use crate::events::{DcOutcome, DcStatus, Event, EventSink, UserOutcome, UserStatus};
use crate::f5::{self, F5Client, F5Settings, SessionOwner};
use crate::orchestrate;
use crate::plan::{FlushPlan, Target};
use crate::secrets::Secrets;
use revoke_winrm::Connector;

/// What a `disable` / `reset` run will do, validated offline. No secrets:
/// those come apart, as [`Secrets`].
#[derive(Debug)]
pub struct RevocationPlan {
    pub change: Change,
    /// As the operator typed them.
    pub users: Vec<String>,
    pub directory: DirectorySettings,
    /// None: `--no-wait-replication`.
    pub replication_timeout: Option<Duration>,
    pub allow_privileged: bool,
    /// Its targets may be empty: then they are discovered in AD.
    pub flush: FlushPlan,
    /// `[f5]`: the BIG-IPs whose APM sessions of the accounts are killed.
    pub f5: Option<F5Settings>,
}

#[derive(Debug, Error)]
pub enum RevocationError {
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    F5(#[from] f5::F5SetupError),
    /// One or more accounts were refused by a guard: nothing was changed.
    #[error("refused, nothing was changed:\n  {}", .0.join("\n  "))]
    Refused(Vec<String>),
    #[error("nothing was changed:\n  {}", .0.join("\n  "))]
    Unresolved(Vec<String>),
    #[error(
        "no Exchange servers to flush: none configured and none found in AD; \
         give --servers or list them in the config file"
    )]
    NoServers,
}

/// The read-only half's result: what will be changed, where, and flushed.
pub struct Prepared {
    plan: RevocationPlan,
    secrets: Secrets,
    conn: Connection,
    /// `(as typed, account)` in the order given, duplicates removed.
    pub accounts: Vec<(String, UserAccount)>,
    pub domain_controllers: Vec<DomainController>,
    f5: Option<F5Client>,
}

impl Prepared {
    /// The BIG-IPs whose sessions will be killed (none without `[f5]`).
    pub fn f5_devices(&self) -> Vec<String> {
        self.f5
            .iter()
            .flat_map(|c| c.devices())
            .map(|d| d.label.clone())
            .collect()
    }
    pub fn change(&self) -> &Change {
        &self.plan.change
    }
    pub fn servers(&self) -> Vec<String> {
        self.plan
            .flush
            .targets
            .iter()
            .map(|t| t.label.clone())
            .collect()
    }
    pub fn dry_run(&self) -> bool {
        self.plan.flush.dry_run
    }
    /// How many servers the flush will handle at once.
    pub fn concurrency(&self) -> usize {
        self.plan.flush.concurrency()
    }
    /// The DC revoke writes on.
    pub fn source_host(&self) -> &str {
        &self.conn.root_dse.dns_host_name
    }
}

/// Connects, resolves every user, applies the guards, lists the DCs and (if
/// none are configured) discovers the Exchange servers. Changes nothing.
pub async fn prepare(
    mut plan: RevocationPlan,
    secrets: Secrets,
) -> Result<Prepared, RevocationError> {
    // Offline first: a CA file that cannot be read stops the run here.
    let f5 = plan
        .f5
        .take()
        .map(|settings| F5Client::new(settings, secrets.f5.clone()))
        .transpose()?;
    let mut conn = Connection::open(&plan.directory, &secrets.operator).await?;

    let mut accounts: Vec<(String, UserAccount)> = Vec::new();
    let mut unresolved = Vec::new();
    for input in &plan.users {
        match identity::resolve(&mut conn, input).await {
            Ok(account) => {
                if !accounts.iter().any(|(_, a)| a.dn == account.dn) {
                    accounts.push((input.clone(), account));
                }
            }
            Err(
                error @ (DirectoryError::NoSuchUser { .. }
                | DirectoryError::Ambiguous { .. }
                | DirectoryError::BadIdentity(_)),
            ) => unresolved.push(error.to_string()),
            Err(error) => return Err(error.into()),
        }
    }
    if !unresolved.is_empty() {
        return Err(RevocationError::Unresolved(unresolved));
    }

    let operator = Operator::find(&mut conn, &plan.directory.bind_user).await;
    let mut refusals = Vec::new();
    for (_, account) in &accounts {
        if let Some(refusal) =
            guards::check(&mut conn, account, &operator, plan.allow_privileged).await?
        {
            refusals.push(refusal.explain(account));
        }
    }
    if !refusals.is_empty() {
        return Err(RevocationError::Refused(refusals));
    }

    let domain_controllers = match &plan.directory.domain_controllers {
        Some(hosts) => hosts
            .iter()
            .map(|host| DomainController {
                host: host.clone(),
                dsa_dn: None,
            })
            .collect(),
        None => topology::writable_dcs(&mut conn).await?,
    };

    if plan.flush.targets.is_empty() {
        plan.flush.targets = discover_targets(&mut conn, plan.flush.default_port).await?;
        if plan.flush.targets.is_empty() {
            return Err(RevocationError::NoServers);
        }
    }
    Ok(Prepared {
        plan,
        secrets,
        conn,
        accounts,
        domain_controllers,
        f5,
    })
}

/// Exchange servers from AD as flush targets.
pub async fn discover_targets(
    conn: &mut Connection,
    port: u16,
) -> Result<Vec<Target>, DirectoryError> {
    Ok(discovery::exchange_servers(conn)
        .await?
        .into_iter()
        .map(|server| Target {
            label: server.fqdn.clone(),
            host: server.fqdn,
            port,
            version: server.version,
        })
        .collect())
}

/// Writes the change, waits for the DCs, flushes (and kills the APM
/// sessions alongside). Emits events throughout.
pub async fn execute(prepared: Prepared, connector: Connector, events: EventSink) {
    let Prepared {
        plan,
        secrets,
        mut conn,
        accounts,
        domain_controllers,
        f5,
    } = prepared;
    let owners: Vec<SessionOwner> = accounts
        .iter()
        .map(|(_, a)| SessionOwner {
            sam: a.sam.clone(),
            upn: a.upn.clone(),
        })
        .collect();
    events.emit(Event::DirectoryStarted {
        run_id: uuid::Uuid::new_v4().to_string(),
        change: plan.change.name().to_string(),
        dry_run: plan.flush.dry_run,
        users: accounts.iter().map(|(_, a)| a.sam.clone()).collect(),
        started_at: SystemTime::now(),
    });
    let source = conn.root_dse.clone();
    let is_source = |dc: &DomainController| topology::is_connected_dc(&conn, dc);
    let (source_dcs, other_dcs): (Vec<DomainController>, Vec<DomainController>) =
        domain_controllers.iter().cloned().partition(is_source);
    let source_host = source_dcs
        .first()
        .map(|dc| dc.host.clone())
        .unwrap_or_else(|| source.dns_host_name.clone());

    if plan.flush.dry_run {
        for (input, account) in &accounts {
            events.emit(Event::UserFinished {
                user: planned(input, account, &plan.change),
            });
        }
        let mut views = vec![source_host.clone()];
        views.extend(other_dcs.iter().map(|dc| dc.host.clone()));
        for host in views {
            let dc = dry_run_view(&plan.directory, &secrets, &host, &accounts).await;
            events.emit(Event::DomainControllerFinished { dc });
        }
        flush_and_kill(plan.flush, connector, f5, owners, events).await;
        return;
    }

    let mut written = Vec::new();
    let mut failed = false;
    for (input, account) in &accounts {
        events.emit(Event::DirectoryStep {
            what: format!("{} {} on {source_host}", verb(&plan.change), account.sam),
        });
        let new_password = secrets.new_password.as_ref();
        let outcome = match apply(&mut conn, &account.dn, &plan.change, new_password).await {
            Ok(applied) => {
                written.push(Written {
                    dn: account.dn.clone(),
                    label: account.sam.clone(),
                    state: applied.after.clone(),
                });
                changed(input, account, &plan.change, &applied)
            }
            Err(error) => {
                failed = true;
                failed_outcome(input, account, error.to_string())
            }
        };
        events.emit(Event::UserFinished { user: outcome });
    }
    let write_done = Instant::now();
    if failed {
        events.emit(Event::FlushSkipped {
            reason: "the change in AD failed for an account, so nothing was flushed; \
                     fix the cause and run again"
                .into(),
        });
        events.emit(Event::RunFinished {
            finished_at: SystemTime::now(),
        });
        return;
    }
    events.emit(Event::DomainControllerFinished {
        dc: DcOutcome::now(&source_host, DcStatus::Written, Duration::ZERO, None),
    });
    match plan.replication_timeout {
        Some(deadline) if !other_dcs.is_empty() => {
            events.emit(Event::DirectoryStep {
                what: format!(
                    "waiting until {} domain controller(s) have the change",
                    other_dcs.len()
                ),
            });
            let gate = Gate {
                settings: plan.directory.clone(),
                secrets: secrets.clone(),
                source_dsa: source.ds_service_name.clone(),
                accounts: written,
                change: plan.change,
                written_at: write_done,
                deadline,
                events: events.clone(),
            };
            converge(gate, &other_dcs).await;
        }
        Some(_) => {}
        None => {
            for dc in &other_dcs {
                events.emit(Event::DomainControllerFinished {
                    dc: DcOutcome::now(
                        &dc.host,
                        DcStatus::Unchecked,
                        write_done.elapsed(),
                        Some("not checked (--no-wait-replication)".into()),
                    ),
                });
            }
        }
    }
    conn.close().await;
    // After the gate: a killed session that logs on again meets a DC that
    // already has the change.
    flush_and_kill(plan.flush, connector, f5, owners, events).await;
}

/// The flush and the APM session kill, concurrently: neither waits for the
/// other, and a BIG-IP's failure never touches a server's job. The run
/// finishes (`RunFinished`) when both are done.
async fn flush_and_kill(
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

fn verb(change: &Change) -> &'static str {
    match change {
        Change::Disable => "disabling",
        Change::Reset { .. } => "resetting the password of",
    }
}

fn outcome(
    input: &str,
    account: &UserAccount,
    status: UserStatus,
    after: u32,
    message: Option<String>,
) -> UserOutcome {
    UserOutcome {
        input: input.to_string(),
        dn: account.dn.clone(),
        sam_account_name: account.sam.clone(),
        user_principal_name: account.upn.clone(),
        display_name: account.display_name.clone(),
        status,
        user_account_control_before: account.user_account_control,
        user_account_control_after: after,
        flags_before: uac_flag_names(account.user_account_control),
        flags_after: uac_flag_names(after),
        message,
    }
}

fn planned(input: &str, account: &UserAccount, change: &Change) -> UserOutcome {
    let (after, message) = match change {
        Change::Disable if account.is_disabled() => (
            account.user_account_control,
            "already disabled: nothing to write; the flush would still run".to_string(),
        ),
        Change::Disable => (
            account.user_account_control | ACCOUNT_DISABLE,
            "would write userAccountControl".to_string(),
        ),
        Change::Reset { must_change, .. } => (
            account.user_account_control,
            format!(
                "would set the password twice (a random throwaway, then the new one){}",
                if *must_change {
                    " and pwdLastSet = 0"
                } else {
                    ""
                }
            ),
        ),
    };
    outcome(input, account, UserStatus::Planned, after, Some(message))
}

fn changed(input: &str, account: &UserAccount, change: &Change, applied: &Applied) -> UserOutcome {
    let before = &applied.before;
    let mut account = account.clone();
    // The fresh read made while writing is more current than the one at resolve time.
    account.user_account_control = before.user_account_control;
    let (status, message) = match change {
        Change::Disable if applied.already => (
            UserStatus::AlreadyDisabled,
            Some("was already disabled; nothing written, the flush still runs".to_string()),
        ),
        Change::Disable => (UserStatus::Disabled, None),
        Change::Reset { .. } => (UserStatus::Reset, None),
    };
    outcome(
        input,
        &account,
        status,
        applied.after.user_account_control,
        message,
    )
}

fn failed_outcome(input: &str, account: &UserAccount, message: String) -> UserOutcome {
    outcome(
        input,
        account,
        UserStatus::Failed,
        account.user_account_control,
        Some(message),
    )
}

/// Dry run: what one DC currently says about each account.
async fn dry_run_view(
    settings: &DirectorySettings,
    secrets: &Secrets,
    host: &str,
    accounts: &[(String, UserAccount)],
) -> DcOutcome {
    let started = Instant::now();
    let message = match Connection::open_host(settings, &secrets.operator, host).await {
        Ok(mut conn) => {
            let mut parts = Vec::new();
            for (_, account) in accounts {
                parts.push(match AccountState::read(&mut conn, &account.dn).await {
                    Ok(state) => format!(
                        "{} {} ({})",
                        account.sam,
                        if state.user_account_control & ACCOUNT_DISABLE != 0 {
                            "disabled"
                        } else {
                            "enabled"
                        },
                        state.user_account_control
                    ),
                    Err(error) => format!("{}: {error}", account.sam),
                });
            }
            conn.close().await;
            format!("currently sees {}", parts.join(", "))
        }
        Err(error) => format!("cannot check it now: {error}"),
    };
    DcOutcome::now(host, DcStatus::Planned, started.elapsed(), Some(message))
}

/// Connects and lists the Exchange servers as flush targets (`flush` and
/// `servers` without configured servers).
pub async fn discover(
    settings: &DirectorySettings,
    password: &Password,
    port: u16,
) -> Result<Vec<Target>, DirectoryError> {
    let mut conn = Connection::open(settings, password).await?;
    let targets = discover_targets(&mut conn, port).await?;
    conn.close().await;
    Ok(targets)
}
