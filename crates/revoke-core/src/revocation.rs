//! `revoke disable` / `revoke reset`: resolve and guard every account, change
//! it in AD, wait until every writable DC has the change, then flush the
//! Exchange servers with the existing fan-out and, with `[f5]`, kill the
//! accounts' APM sessions at the same time.
//!
//! Two halves, so the operator can confirm in between: [`prepare`] only
//! reads (and refuses, changing nothing); [`execute`] writes and emits
//! [`Event`]s like the flush core. Neither knows about terminals.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use thiserror::Error;

use crate::Password;
use crate::directory::account::ACCOUNT_DISABLE;
use crate::directory::change::{AccountState, Applied, Change, apply_stamped};
use crate::directory::convergence::{
    Check, DirectWrite, FORCED_REPLICATION_GRACE, Gate, Written, converge,
};
use crate::directory::forest::{self, Forest};
use crate::directory::guards::{self, Operator, OperatorLookup};
use crate::directory::metadata;
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
    /// Whether a lagging writable DC may get the change written directly.
    pub direct_write: DirectWrite,
    pub allow_privileged: bool,
    /// Its targets may be empty: then they are discovered in AD.
    pub flush: FlushPlan,
    /// `[f5]`: the BIG-IPs whose APM sessions of the accounts are killed.
    pub f5: Option<F5Settings>,
    /// `--ticket`: the change request this run belongs to (report, journal, stamp).
    pub ticket: Option<String>,
    /// `--reason`: why, in the operator's words (report, journal, stamp).
    pub reason: Option<String>,
    /// `[directory] stamp`: append a line naming the change, the operator,
    /// the ticket and the reason to each account's `info`, in the same modify.
    pub stamp: bool,
    /// `enable` without `--force`: only accounts revoke disabled may be
    /// enabled. None: no such check (other changes, or `--force`).
    pub enable_guard: Option<EnableGuard>,
}

/// Which accounts `enable` may enable without `--force`: those revoke
/// disabled, by the journal.
#[derive(Debug, Clone, Default)]
pub struct EnableGuard {
    /// DNs (any case) whose last change in the journal was revoke disabling them.
    pub disabled_by_revoke: Vec<String>,
    /// Where that was looked up, in words (e.g. the journal's path), for the refusal.
    pub looked_in: String,
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
    /// Per read-only DC (by host): the accounts (lowercased DNs) whose
    /// passwords it holds; None if its revealed list could not be read.
    revealed: HashMap<String, Option<HashSet<String>>>,
    f5: Option<F5Client>,
    /// `[directory] stamp`: the operator as the `info` line names them
    /// (`LAB\revoke-op`); None without stamping.
    stamped_by: Option<String>,
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
    /// The Exchange servers the run will flush.
    pub fn targets(&self) -> &[Target] {
        &self.plan.flush.targets
    }
    /// The account revoke binds as.
    pub fn bind_user(&self) -> &str {
        &self.plan.directory.bind_user
    }
    /// Whether this run flushes anything (`enable` does not).
    pub fn flushes(&self) -> bool {
        self.plan.change.flushes()
    }
    pub fn ticket(&self) -> Option<&str> {
        self.plan.ticket.as_deref()
    }
    pub fn reason(&self) -> Option<&str> {
        self.plan.reason.as_deref()
    }
}

/// Connects, resolves every user, applies the guards, lists the DCs and (if
/// none are configured) discovers the Exchange servers. Changes nothing.
pub async fn prepare(
    mut plan: RevocationPlan,
    mut secrets: Secrets,
) -> Result<Prepared, RevocationError> {
    // Offline first: a CA file that cannot be read stops the run here.
    let f5 = plan
        .f5
        .take()
        .map(|settings| F5Client::new(settings, secrets.f5.clone()))
        .transpose()?;
    let mut conn = Connection::open(&plan.directory, &secrets.operator).await?;

    // Before anything else: without knowing who it runs as, the "never
    // yourself" guard would be blind, so nothing may be changed.
    let operator = match Operator::identify(&mut conn, &plan.directory.bind_user).await? {
        OperatorLookup::Known(operator) => operator,
        OperatorLookup::Unknown { bind_user, why } => {
            return Err(RevocationError::Refused(vec![OperatorLookup::refusal(
                &bind_user, &why,
            )]));
        }
    };

    // In a forest of several domains, `conn` becomes a writable DC of the
    // accounts' own domain; the DC first connected to stays for the stamp.
    let Resolved {
        mut conn,
        accounts,
        first_dc: mut url_conn,
    } = resolve_accounts(conn, &plan, &secrets).await?;

    let mut refusals = Vec::new();
    for (_, account) in &accounts {
        if let Some(refusal) =
            guards::check(&mut conn, account, &operator, plan.allow_privileged).await?
        {
            refusals.push(refusal.explain(account));
        }
    }
    if let Some(guard) = &plan.enable_guard {
        for (_, account) in &accounts {
            if !account.is_disabled() {
                continue;
            }
            let ours = guard
                .disabled_by_revoke
                .iter()
                .any(|dn| dn.eq_ignore_ascii_case(&account.dn))
                || stamped_disabled_by_revoke(&mut conn, &account.dn).await?;
            if !ours {
                refusals.push(format!(
                    "{}: revoke did not disable this account (no record of it in {}, nor a \
                     revoke stamp in its info), so it may have been closed on purpose (by HR, \
                     by another tool); check why it is disabled, and if it must be enabled \
                     anyway give --force",
                    account.sam, guard.looked_in
                ));
            }
        }
    }
    if !refusals.is_empty() {
        return Err(RevocationError::Refused(refusals));
    }
    // A reset's new passwords were gathered by the names as typed; from
    // here on each account's is found by its DN (the gate knows only DNs).
    secrets.new_passwords = secrets.new_passwords.rekeyed(
        accounts
            .iter()
            .map(|(input, account)| (input.as_str(), account.dn.as_str())),
    );
    let stamped_by = match plan.stamp {
        // The operator was identified on the DC first connected to.
        true => Some(stamp_author(url_conn.as_mut().unwrap_or(&mut conn), &operator).await),
        false => None,
    };
    if let Some(first) = url_conn.take() {
        first.close().await;
    }

    // `[directory] domain_controllers` lists the DCs of the domain of
    // `url`; another domain's come from the configuration partition.
    let configured = plan
        .directory
        .domain_controllers
        .as_ref()
        .filter(|_| !conn_is_elsewhere(&conn, &plan.directory));
    let domain_controllers = match configured {
        Some(hosts) => hosts
            .iter()
            .map(|host| DomainController::configured(host))
            .collect(),
        None => topology::domain_controllers(&mut conn).await?,
    };
    let mut revealed = HashMap::new();
    for rodc in domain_controllers.iter().filter(|dc| dc.read_only) {
        revealed.insert(
            rodc.host.clone(),
            topology::revealed_accounts(&mut conn, rodc).await,
        );
    }

    // `enable` flushes nothing: no servers to find.
    if plan.change.flushes() && plan.flush.targets.is_empty() {
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
        revealed,
        f5,
        stamped_by,
    })
}

/// `NETBIOS\sAMAccountName` of the operator for the `info` stamp; the DN
/// where either cannot be read.
async fn stamp_author(conn: &mut Connection, operator: &Operator) -> String {
    let sam = identity::resolve(conn, &operator.dn)
        .await
        .ok()
        .map(|account| account.sam);
    let netbios = identity::domain_names(conn).await.ok().and_then(|(n, _)| n);
    match (netbios, sam) {
        (Some(domain), Some(sam)) => format!("{domain}\\{sam}"),
        (None, Some(sam)) => sam,
        _ => operator.dn.clone(),
    }
}

/// With `[directory] stamp`, revoke's last line in the account's `info`
/// says what it last did: `disabled ... via revoke` means revoke disabled it.
async fn stamped_disabled_by_revoke(
    conn: &mut Connection,
    dn: &str,
) -> Result<bool, DirectoryError> {
    let info = conn
        .read(dn, &["info"])
        .await?
        .and_then(|entry| crate::directory::connection::first(&entry.attrs, "info"))
        .unwrap_or_default();
    let last = info
        .lines()
        .rev()
        .find(|line| line.contains(" via revoke") && !line.starts_with("password reset "));
    Ok(last.is_some_and(|line| line.starts_with("disabled ")))
}

/// The line `[directory] stamp` appends to an account's `info`:
/// `disabled 2026-12-02T03:00Z by LAB\op via revoke, INC123 — reason`.
pub fn stamp_line(
    change: &Change,
    at: SystemTime,
    by: &str,
    ticket: Option<&str>,
    reason: Option<&str>,
) -> String {
    let done = match change {
        Change::Disable => "disabled",
        Change::Reset { .. } => "password reset",
        Change::Enable => "enabled",
    };
    // Minutes are enough for an audit line, and keep it short.
    let when = humantime::format_rfc3339_seconds(at).to_string();
    let when = format!("{}Z", &when[..16]);
    let mut line = format!("{done} {when} by {by} via revoke");
    if let Some(ticket) = ticket {
        line.push_str(&format!(", {ticket}"));
    }
    if let Some(reason) = reason {
        line.push_str(&format!(" — {reason}"));
    }
    line
}

/// The accounts as resolved, and where they are changed.
struct Resolved {
    /// A writable DC of the accounts' domain: the DC first connected to,
    /// unless the accounts are in another domain of the forest.
    conn: Connection,
    /// `(as typed, account)` in the order given, duplicates removed.
    accounts: Vec<(String, UserAccount)>,
    /// The DC first connected to, when `conn` is another domain's DC.
    first_dc: Option<Connection>,
}

/// Is `conn` a DC other than the one `[directory] url` names (the
/// accounts are in another domain of the forest)?
fn conn_is_elsewhere(conn: &Connection, settings: &DirectorySettings) -> bool {
    !conn.host.eq_ignore_ascii_case(&settings.host)
}

/// Resolves every account. One domain: in it, as typed. Several domains:
/// every name through the Global Catalog (a name in two domains is
/// ambiguous), DNs by their naming context; then the accounts must share
/// one domain, and are read on a writable DC of it (docs/directory.md,
/// "Forests with several domains").
async fn resolve_accounts(
    mut conn: Connection,
    plan: &RevocationPlan,
    secrets: &Secrets,
) -> Result<Resolved, RevocationError> {
    let forest = Forest::read(&mut conn).await?;
    let mut unresolved = Vec::new();
    let mut accounts: Vec<(String, UserAccount)> = Vec::new();
    // Several domains: every name through the Global Catalog. Without one,
    // names are resolved in the DC's own domain as in a single-domain
    // forest, where a name the DC refers elsewhere is refused, never guessed.
    let mut gc = None;
    if forest.has_several_domains() {
        let gc_settings = plan.directory.global_catalog_settings()?;
        match Connection::open(&gc_settings, &secrets.operator).await {
            Ok(connection) => gc = Some(connection),
            Err(error) => tracing::warn!("{}", no_global_catalog(&forest, &gc_settings, &error)),
        }
    }
    let Some(mut gc) = gc else {
        for input in &plan.users {
            let found = identity::resolve(&mut conn, input).await;
            keep(&mut accounts, &mut unresolved, input, found)?;
        }
        if !unresolved.is_empty() {
            return Err(RevocationError::Unresolved(unresolved));
        }
        return Ok(Resolved {
            conn,
            accounts,
            first_dc: None,
        });
    };

    let mut located = Vec::new();
    for input in &plan.users {
        match forest::locate(&forest, &mut gc, input).await {
            Ok(at) => located.push((input.clone(), at)),
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
    if let Some(why) = forest::several_domains(&located) {
        return Err(RevocationError::Unresolved(vec![why]));
    }
    let Some((_, first)) = located.first() else {
        return Ok(Resolved {
            conn,
            accounts,
            first_dc: None,
        });
    };
    let domain = first.domain.clone();
    let here = conn
        .root_dse
        .default_naming_context
        .eq_ignore_ascii_case(&domain.naming_context);
    let (mut target, first_dc) = if here {
        (conn, None)
    } else {
        let other = open_writable_dc(&mut conn, &plan.directory, secrets, &domain).await?;
        (other, Some(conn))
    };
    if !forest.is_root(&target.root_dse.default_naming_context) {
        // A child domain's DC refers the root's naming context head: the
        // root's SID (for Enterprise Admins) comes from the Global Catalog.
        target.forest_root_sid = Some(forest::root_domain_sid(&forest, &mut gc).await?);
    }
    gc.close().await;
    for (input, at) in &located {
        let found = identity::resolve(&mut target, &at.dn).await;
        keep(&mut accounts, &mut unresolved, input, found)?;
    }
    if !unresolved.is_empty() {
        return Err(RevocationError::Unresolved(unresolved));
    }
    Ok(Resolved {
        conn: target,
        accounts,
        first_dc,
    })
}

/// Keeps a resolved account (once) or the reason it was not resolved;
/// any other error ends the run.
fn keep(
    accounts: &mut Vec<(String, UserAccount)>,
    unresolved: &mut Vec<String>,
    input: &str,
    found: Result<UserAccount, DirectoryError>,
) -> Result<(), RevocationError> {
    match found {
        Ok(account) => {
            if !accounts.iter().any(|(_, a)| a.dn == account.dn) {
                accounts.push((input.to_string(), account));
            }
        }
        Err(
            error @ (DirectoryError::NoSuchUser { .. }
            | DirectoryError::Ambiguous { .. }
            | DirectoryError::BadIdentity(_)),
        ) => unresolved.push(error.to_string()),
        Err(error) => return Err(error.into()),
    }
    Ok(())
}

/// Why names are resolved in the DC's own domain only, and what to do.
fn no_global_catalog(
    forest: &Forest,
    settings: &DirectorySettings,
    error: &DirectoryError,
) -> String {
    format!(
        "this forest has {} domains ({}), so revoke looks names up in its Global Catalog, \
         and could not use the one at {}: {error}. Names are resolved in the domain of the DC \
         revoke connected to only, and a name that DC refers to another domain is refused. \
         Point [directory] global_catalog at a Global Catalog server (ldaps://HOST:3269)",
        forest.domains.len(),
        forest
            .domains
            .iter()
            .map(|d| d.label())
            .collect::<Vec<_>>()
            .join(", "),
        settings.url()
    )
}

/// A writable DC of `domain`, from the configuration partition: the first
/// that answers.
async fn open_writable_dc(
    conn: &mut Connection,
    settings: &DirectorySettings,
    secrets: &Secrets,
    domain: &forest::ForestDomain,
) -> Result<Connection, DirectoryError> {
    let dcs = topology::domain_controllers_of(conn, &domain.naming_context).await?;
    let mut failures = Vec::new();
    for dc in dcs.iter().filter(|dc| !dc.read_only) {
        match Connection::open_host(settings, &secrets.operator, &dc.host).await {
            Ok(other) => {
                tracing::info!(
                    "the accounts are in {}: changing them on its DC {}",
                    domain.label(),
                    dc.host
                );
                return Ok(other);
            }
            Err(error) => failures.push(format!("{}: {error}", dc.host)),
        }
    }
    Err(DirectoryError::Operation {
        what: format!("connecting to a writable DC of {}", domain.label()),
        host: conn.host.clone(),
        reason: format!(
            "the accounts are in that domain, and none of its writable DCs could be used: {}",
            failures.join("; ")
        ),
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

/// Dry run: what the gate will try on this DC.
fn what_the_gate_will_do(
    plan: &RevocationPlan,
    dc: &DomainController,
    is_source: bool,
    cached: &[&(String, UserAccount)],
) -> String {
    if is_source {
        return "the change is written here".to_string();
    }
    if plan.replication_timeout.is_none() {
        return "will not be checked (--no-wait-replication)".to_string();
    }
    if dc.read_only {
        if cached.is_empty() {
            return "read-only, holds none of these passwords: low risk, not waited for"
                .to_string();
        }
        return "read-only, holds the password: will be asked to replicate and waited for, \
                never written"
            .to_string();
    }
    match plan.direct_write {
        DirectWrite::Auto => format!(
            "will be asked to replicate; if it refuses or lags {} s, the change is written here \
             directly (--direct-write auto)",
            FORCED_REPLICATION_GRACE.as_secs()
        ),
        DirectWrite::Never => {
            "will be asked to replicate and waited for (--direct-write never)".to_string()
        }
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

fn verb(change: &Change) -> &'static str {
    match change {
        Change::Disable => "disabling",
        Change::Reset { .. } => "resetting the password of",
        Change::Enable => "enabling",
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
        Change::Enable if !account.is_disabled() => (
            account.user_account_control,
            "already enabled: nothing to write".to_string(),
        ),
        Change::Enable => (
            account.user_account_control & !ACCOUNT_DISABLE,
            "would clear ACCOUNTDISABLE in userAccountControl".to_string(),
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
    let message = with_warnings(Some(message), account, change);
    outcome(input, account, UserStatus::Planned, after, message)
}

/// What the account's own flags mean for this change (docs/windows-behaviour.md §2.26).
fn warnings(account: &UserAccount, change: &Change) -> Vec<&'static str> {
    const PASSWD_CANT_CHANGE: u32 = 0x40;
    const DONT_EXPIRE_PASSWORD: u32 = 0x1_0000;
    const SMARTCARD_REQUIRED: u32 = 0x4_0000;
    let uac = account.user_account_control;
    let mut out = Vec::new();
    if let Change::Reset { must_change } = change {
        if *must_change && uac & DONT_EXPIRE_PASSWORD != 0 {
            out.push(
                "warning: the account's password never expires (DONT_EXPIRE_PASSWORD), which makes \
                 must-change-password moot: AD does not ask for a new password at logon",
            );
        }
        if *must_change && uac & PASSWD_CANT_CHANGE != 0 {
            out.push(
                "warning: the account may not change its password (PASSWD_CANT_CHANGE), so \
                 must-change-password is a dead end: the user cannot log on until an administrator \
                 sets a password",
            );
        }
        if uac & SMARTCARD_REQUIRED != 0 {
            out.push(
                "warning: the account logs on with a smart card (SMARTCARD_REQUIRED): a reset does \
                 not stop smart-card logons; disable the account or revoke the certificate",
            );
        }
    }
    out
}

fn with_warnings(
    message: Option<String>,
    account: &UserAccount,
    change: &Change,
) -> Option<String> {
    let mut parts: Vec<String> = message.into_iter().collect();
    parts.extend(warnings(account, change).into_iter().map(String::from));
    (!parts.is_empty()).then(|| parts.join("; "))
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
        Change::Enable if applied.already => (
            UserStatus::AlreadyEnabled,
            Some("was already enabled; nothing written".to_string()),
        ),
        Change::Enable => (UserStatus::Enabled, None),
        Change::Reset { .. } => (UserStatus::Reset, None),
    };
    let message = match (message, &applied.note) {
        (Some(message), Some(note)) => Some(format!("{message}; {note}")),
        (message, note) => message.or_else(|| note.clone()),
    };
    let message = with_warnings(message, &account, change);
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

/// Dry run: what one DC currently says about each account it matters for,
/// and what the gate will do there.
async fn dry_run_view(
    settings: &DirectorySettings,
    secrets: &Secrets,
    dc: &DomainController,
    accounts: &[&(String, UserAccount)],
    will: String,
) -> DcOutcome {
    let started = Instant::now();
    let now = if accounts.is_empty() {
        String::new()
    } else {
        match Connection::open_host(settings, &secrets.operator, &dc.host).await {
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
                format!("currently sees {}; ", parts.join(", "))
            }
            Err(error) => format!("cannot check it now: {error}; "),
        }
    };
    DcOutcome::now(
        &dc.host,
        DcStatus::Planned,
        started.elapsed(),
        Some(format!("{now}{will}")),
    )
    .read_only(dc.read_only)
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
