//! `revoke doctor`: everything a `disable` / `reset` / `flush` needs, checked
//! before the day it matters, without changing anything. Each check gives a
//! [`CheckResult`]: what was checked, where, ok or the problem, and the fix.
//! No terminal here: the binary prints the results (docs/operations.md).
//!
//! - [`directory`]: the configured DC (reachable, TLS trusted, bind), the
//!   operator identified, the domain controllers, and on each of them the
//!   same connection plus whether the operator may force replication there.
//! - [`servers`]: each Exchange server over WinRM: reachable, authenticated
//!   (and how), the flush's read-only survey (`hostname`, `appcmd list
//!   apppool`, `appcmd list wp`), the configured pools present and started.
//! - [`f5`]: each BIG-IP: the iControl REST login and the APM session list.
//!
//! The one probe that is a write is the Replication Synchronization check: a
//! rootDSE `replicateSingleObject` of the operator's own account, from the DC
//! a run writes on, sent to each other DC — the request the convergence gate
//! sends, on an object whose state is the same on every DC or newer on the
//! source. It pulls no change that replication would not bring anyway, and
//! it is the only way to learn the right without reading security
//! descriptors (docs/operations.md, "revoke doctor").

use std::collections::HashSet;
use std::sync::Arc;

use ldap3::Mod;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::Password;
use crate::directory::connection::{Connection, DirectorySettings, Security};
use crate::directory::guards::{Operator, OperatorLookup};
use crate::directory::topology::{self, DomainController};
use crate::directory::{DirectoryError, describe_result};
use crate::f5::{self, F5Client, F5Device, F5Settings};
use crate::iis::{self, PoolState};
use crate::plan::{FlushPlan, Target};
use revoke_winrm::{Auth, Connector, Mechanism, Scheme, WinrmError, sanitize};

/// What a check looked at. The JSON names are kebab-case and stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// The config file was found and parses, and the settings are valid.
    Config,
    /// A password for an account (never shown).
    Secrets,
    /// A DC answers on its LDAP port.
    DcReachable,
    /// The DC's certificate is trusted (LDAPS or StartTLS).
    DcTls,
    /// The bind as `[directory] bind_user` succeeds.
    DcBind,
    /// Which account revoke is bound as ("never yourself" needs it).
    Operator,
    /// The domain controllers a run waits for.
    DomainControllers,
    /// Whether a DC takes `replicateSingleObject` from the operator.
    ReplicationSync,
    /// The Exchange servers found in AD, when none are listed.
    Discovery,
    /// A server's WinRM listener answers.
    WinrmReachable,
    /// WinRM accepts the account (and which mechanism it used).
    WinrmAuth,
    /// `appcmd list apppool` runs in the survey the flush sends first.
    Appcmd,
    /// The pools a flush recycles exist and are started.
    Pools,
    /// The BIG-IP's iControl REST login.
    F5Login,
    /// The BIG-IP's APM session list.
    F5Sessions,
}

impl Check {
    pub fn name(self) -> String {
        crate::events::status_word(&self)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    /// Something a run needs is missing or wrong: `fix` says what to do.
    Problem,
    /// Not checked: the part is not configured, or what it depends on failed
    /// (that failure is its own row).
    Skipped,
}

/// One row of the doctor's table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub check: Check,
    /// The DC, server, device or account checked.
    pub target: String,
    pub status: CheckStatus,
    /// What was found, in words.
    pub detail: String,
    /// What to do about a problem; None when ok.
    pub fix: Option<String>,
}

impl CheckResult {
    pub fn ok(check: Check, target: impl Into<String>, detail: impl Into<String>) -> Self {
        CheckResult {
            check,
            target: target.into(),
            status: CheckStatus::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn problem(
        check: Check,
        target: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        CheckResult {
            check,
            target: target.into(),
            status: CheckStatus::Problem,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn skipped(check: Check, target: impl Into<String>, detail: impl Into<String>) -> Self {
        CheckResult {
            check,
            target: target.into(),
            status: CheckStatus::Skipped,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn is_problem(&self) -> bool {
        self.status == CheckStatus::Problem
    }
}

/// No problem among the results (skipped checks are not problems).
pub fn all_ok(results: &[CheckResult]) -> bool {
    !results.iter().any(CheckResult::is_problem)
}

// ------------------------------------------------------------ directory

/// What the directory checks learned besides their rows: a bound
/// connection to the configured DC, for discovery.
pub struct DirectoryFindings {
    pub results: Vec<CheckResult>,
    pub connection: Option<Connection>,
}

/// The configured DC, the operator, the domain controllers, and on every
/// other DC the connection and the Replication Synchronization right.
pub async fn directory(settings: &DirectorySettings, password: &Password) -> DirectoryFindings {
    let mut results = Vec::new();
    let start = settings.url();
    let mut conn = match Connection::open(settings, password).await {
        Ok(conn) => {
            results.extend(connected_rows(settings, &start));
            conn
        }
        Err(error) => {
            results.extend(connection_failed(settings, &start, error));
            return DirectoryFindings {
                results,
                connection: None,
            };
        }
    };

    let operator = match Operator::identify(&mut conn, &settings.bind_user).await {
        Ok(OperatorLookup::Known(operator)) => {
            results.push(CheckResult::ok(
                Check::Operator,
                &settings.bind_user,
                format!("{} (from {})", operator.dn, operator.how),
            ));
            Some(operator)
        }
        Ok(OperatorLookup::Unknown { bind_user, why }) => {
            results.push(CheckResult::problem(
                Check::Operator,
                &settings.bind_user,
                format!("cannot tell which account revoke is bound as: {why}"),
                format!(
                    "without it revoke changes nothing (it must not disable its own operator): \
                     bind as the account's userPrincipalName, DOMAIN\\name or DN instead of \
                     {bind_user} (--bind-user / [directory] bind_user)"
                ),
            ));
            None
        }
        Err(error) => {
            results.push(CheckResult::problem(
                Check::Operator,
                &settings.bind_user,
                error.to_string(),
                "the account must be able to read its own object and the rootDSE; \
                 check its rights with the domain's administrators",
            ));
            None
        }
    };

    let dcs = match &settings.domain_controllers {
        Some(hosts) => {
            let dcs: Vec<DomainController> = hosts
                .iter()
                .map(|h| DomainController::configured(h))
                .collect();
            results.push(CheckResult::ok(
                Check::DomainControllers,
                "[directory] domain_controllers",
                format!("{} listed: {}", dcs.len(), hosts.join(", ")),
            ));
            dcs
        }
        None => match topology::domain_controllers(&mut conn).await {
            Ok(dcs) => {
                results.push(CheckResult::ok(
                    Check::DomainControllers,
                    &conn.root_dse.default_naming_context,
                    describe_dcs(&dcs),
                ));
                dcs
            }
            Err(error) => {
                results.push(CheckResult::problem(
                    Check::DomainControllers,
                    &conn.root_dse.default_naming_context,
                    error.to_string(),
                    "the operator must be able to read CN=Sites in the configuration partition; \
                     else list the writable DCs in [directory] domain_controllers",
                ));
                Vec::new()
            }
        },
    };

    let source = Source {
        dsa: conn.root_dse.ds_service_name.clone(),
        host: conn.host.clone(),
        naming_context: conn.root_dse.default_naming_context.clone(),
    };
    for dc in &dcs {
        let target = dc_label(dc);
        if topology::is_connected_dc(&conn, dc) {
            results.push(CheckResult::ok(
                Check::ReplicationSync,
                target,
                format!(
                    "not needed here: a run writes its change on this DC ({})",
                    settings.url()
                ),
            ));
            continue;
        }
        let mut other = match Connection::open_host(settings, password, &dc.host).await {
            Ok(other) => {
                results.extend(connected_rows(settings, &target));
                other
            }
            Err(error) => {
                results.extend(connection_failed(settings, &target, error));
                continue;
            }
        };
        results.push(match &operator {
            Some(operator) => {
                replication_sync(&mut other, &target, &source, operator, settings).await
            }
            None => CheckResult::skipped(
                Check::ReplicationSync,
                target,
                "not checked: the operator is not known (see the operator row)",
            ),
        });
        other.close().await;
    }
    DirectoryFindings {
        results,
        connection: Some(conn),
    }
}

/// Where a run writes: the DC the connection went to.
struct Source {
    dsa: String,
    host: String,
    naming_context: String,
}

fn dc_label(dc: &DomainController) -> String {
    if dc.read_only {
        format!("{} (read-only)", dc.host)
    } else {
        dc.host.clone()
    }
}

fn describe_dcs(dcs: &[DomainController]) -> String {
    let writable: Vec<&str> = dcs
        .iter()
        .filter(|d| !d.read_only)
        .map(|d| d.host.as_str())
        .collect();
    let read_only: Vec<&str> = dcs
        .iter()
        .filter(|d| d.read_only)
        .map(|d| d.host.as_str())
        .collect();
    let mut text = format!("{} writable ({})", writable.len(), writable.join(", "));
    if !read_only.is_empty() {
        text.push_str(&format!(
            ", {} read-only ({})",
            read_only.len(),
            read_only.join(", ")
        ));
    }
    text
}

/// The rows of a connection that worked: it answered, TLS, the bind.
fn connected_rows(settings: &DirectorySettings, target: &str) -> Vec<CheckResult> {
    let tls = match settings.security {
        Security::Ldaps => CheckResult::ok(Check::DcTls, target, trusted_by(settings, "LDAPS")),
        Security::StartTls => {
            CheckResult::ok(Check::DcTls, target, trusted_by(settings, "StartTLS"))
        }
        Security::Plain if crate::directory::connection::sasl::is_kerberos(settings) => {
            CheckResult::ok(
                Check::DcTls,
                target,
                "no TLS: Kerberos (SASL GSSAPI) seals every LDAP message; no password crosses",
            )
        }
        // Allowed by the operator's own setting, so not a problem here; said.
        Security::Plain => CheckResult::ok(
            Check::DcTls,
            target,
            "no TLS (insecure_plain_ldap = true): the bind password crosses the network in clear text",
        ),
    };
    vec![
        CheckResult::ok(
            Check::DcReachable,
            target,
            format!("answers on port {}", settings.port),
        ),
        tls,
        CheckResult::ok(
            Check::DcBind,
            target,
            format!("bound as {}", settings.bind_user),
        ),
    ]
}

fn trusted_by(settings: &DirectorySettings, how: &str) -> String {
    match &settings.ca_file {
        Some(ca) => format!("{how}; certificate signed by the CA in {}", ca.display()),
        None => format!("{how}; certificate trusted by the system's trust store"),
    }
}

/// The rows of a connection that failed: the step that failed is the
/// problem, the steps before it are ok.
fn connection_failed(
    settings: &DirectorySettings,
    target: &str,
    error: DirectoryError,
) -> Vec<CheckResult> {
    let answered = CheckResult::ok(
        Check::DcReachable,
        target,
        format!("answers on port {}", settings.port),
    );
    match error {
        DirectoryError::Unreachable { reason, .. } => {
            let port_words = match settings.security {
                Security::Ldaps => "its LDAPS port (636 by default)",
                _ => "its LDAP port (389 by default)",
            };
            vec![CheckResult::problem(
                Check::DcReachable,
                target,
                reason,
                format!(
                    "check that port {} is {port_words}, that the DC is up, and that no firewall \
                     blocks this machine from it",
                    settings.port
                ),
            )]
        }
        DirectoryError::Untrusted { reason, .. } => {
            // DirectoryError words the reason as "what: what to do".
            let (what, fix) = reason
                .split_once(": ")
                .map(|(w, f)| (w.to_string(), f.to_string()))
                .unwrap_or_else(|| (reason.clone(), reason.clone()));
            vec![
                answered,
                CheckResult::problem(Check::DcTls, target, what, fix),
            ]
        }
        DirectoryError::Settings(message) => vec![CheckResult::problem(
            Check::DcTls,
            target,
            message,
            "give a readable PEM file of the CA that signs the DCs' certificates \
             (--directory-ca-file FILE or ca_file in [directory])",
        )],
        DirectoryError::BindRefused { user, reason, .. } => {
            // It answered and TLS held: the rows of a connection up to the bind.
            let mut rows = connected_rows(settings, target);
            rows.truncate(2);
            rows.push(CheckResult::problem(
                Check::DcBind,
                target,
                format!("the bind as {user} was refused: {reason}"),
                format!(
                    "check the password given for {user} ($REVOKE_DIRECTORY_PASSWORD, \
                     $REVOKE_PASSWORD or its line of --password-stdin) and that the account is \
                     enabled, not locked out and its password not expired"
                ),
            ));
            rows
        }
        other => vec![
            answered,
            CheckResult::problem(
                Check::DcBind,
                target,
                other.to_string(),
                "check that the URL names a domain controller of the domain",
            ),
        ],
    }
}

/// Asks `conn`'s DC to replicate the operator's own object from the source
/// DC (MS-ADTS 3.1.1.3.3.18, docs/windows-behaviour.md §2.10): what the
/// gate asks of a lagging DC, on an object no run changes.
async fn replication_sync(
    conn: &mut Connection,
    target: &str,
    source: &Source,
    operator: &Operator,
    settings: &DirectorySettings,
) -> CheckResult {
    if source.dsa.is_empty() {
        return CheckResult::skipped(
            Check::ReplicationSync,
            target,
            format!(
                "cannot tell: {} does not name its DSA object (dsServiceName)",
                source.host
            ),
        );
    }
    let value = format!("{}:{}", source.dsa, operator.dn).into_bytes();
    let mods = vec![Mod::Replace(
        b"replicateSingleObject".to_vec(),
        HashSet::from([value]),
    )];
    let nc = &source.naming_context;
    match conn.modify("", mods).await {
        Ok(result) if result.rc == 0 => CheckResult::ok(
            Check::ReplicationSync,
            target,
            format!(
                "the operator has Replication Synchronization on {nc}: this DC pulled the \
                 operator's own object from {} when asked",
                source.host
            ),
        ),
        Ok(result) if result.rc == 50 => CheckResult::problem(
            Check::ReplicationSync,
            target,
            format!(
                "missing right \"Replication Synchronization\" (DS-Replication-Synchronize) on \
                 {nc}: a run cannot ask this DC to pull the change ({})",
                describe_result(result.rc, &result.text)
            ),
            format!(
                "grant it: dsacls \"{nc}\" /G \"{}:CA;Replication Synchronization\" (until \
                 then a lagging writable DC gets the change written directly under \
                 --direct-write auto, and a read-only DC can only be waited for)",
                settings.bind_user
            ),
        ),
        // Samba refuses the operation for everyone (docs/windows-behaviour.md §7.3):
        // no right would change that, and the gate writes lagging DCs directly.
        Ok(result) if matches!(result.rc, 2 | 12 | 53) => CheckResult::ok(
            Check::ReplicationSync,
            target,
            format!(
                "not supported by this DC ({}): it refuses forced replication whatever the \
                 rights (as Samba does); a run writes the change on a lagging writable DC \
                 directly (--direct-write auto) and waits for a read-only one",
                describe_result(result.rc, &result.text)
            ),
        ),
        Ok(result) => CheckResult::problem(
            Check::ReplicationSync,
            target,
            format!(
                "the DC refused forced replication: {}",
                describe_result(result.rc, &result.text)
            ),
            "ask the domain's administrators why this DC refuses replicateSingleObject",
        ),
        Err(error) => CheckResult::problem(
            Check::ReplicationSync,
            target,
            error.to_string(),
            "check the DC's health (repadmin /showrepl) and run revoke doctor again",
        ),
    }
}

// ------------------------------------------------------------ Exchange servers

/// Every server of the plan at once: connect, authenticate, the flush's
/// read-only survey, the pools it would recycle.
pub async fn servers(plan: &FlushPlan, password: Password) -> Vec<CheckResult> {
    let connector = match Connector::new(plan.connection.clone(), password) {
        Ok(connector) => connector,
        Err(error) => {
            return vec![CheckResult::problem(
                Check::WinrmReachable,
                "[winrm]",
                error.to_string(),
                "fix the [winrm] settings (ca_file: a readable PEM file of the CA that signs \
                 the servers' certificates)",
            )];
        }
    };
    let plan = Arc::new(plan.clone());
    let mut tasks = JoinSet::new();
    for (index, target) in plan.targets.iter().enumerate() {
        let (plan, connector, target) = (plan.clone(), connector.clone(), target.clone());
        tasks.spawn(async move {
            let rows = match tokio::time::timeout(plan.timeout, server(&plan, &connector, &target))
                .await
            {
                Ok(rows) => rows,
                Err(_) => vec![CheckResult::problem(
                    Check::WinrmReachable,
                    &target.label,
                    format!("no answer within {} s", plan.timeout.as_secs()),
                    "check that the server is up and its WinRM service answers \
                     (winrm quickconfig / Test-WSMan)",
                )],
            };
            (index, rows)
        });
    }
    let mut by_server: Vec<Vec<CheckResult>> = vec![Vec::new(); plan.targets.len()];
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, rows)) = joined {
            by_server[index] = rows;
        }
    }
    by_server.into_iter().flatten().collect()
}

/// How the connector authenticates (or did, once known), in words.
fn mechanism(connector: &Connector, used: Option<Mechanism>) -> String {
    let settings = connector.settings();
    let how = match (used, settings.auth) {
        (Some(Mechanism::Kerberos), _) => "Kerberos (mutual)",
        (Some(Mechanism::Ntlm), Auth::Negotiate) => "Negotiate (NTLM)",
        (Some(Mechanism::Ntlm), _) | (None, Auth::Ntlm) => "NTLM",
        (Some(Mechanism::Basic), _) | (None, Auth::Basic) => "Basic",
        (None, Auth::Negotiate) => "Negotiate (Kerberos, else NTLM)",
        (None, Auth::Kerberos) => "Kerberos",
    };
    match settings.scheme {
        Scheme::Http if how != "Basic" => format!("{how} over HTTP, every message sealed"),
        Scheme::Https if how != "Basic" => format!("{how} over HTTPS, with channel binding"),
        scheme => format!("{how} over {}", scheme.name().to_uppercase()),
    }
}

async fn server(plan: &FlushPlan, connector: &Connector, target: &Target) -> Vec<CheckResult> {
    let label = target.label.as_str();
    let user = &connector.settings().user;
    let client = connector.client(&target.host, target.port);
    let shell = match client.open_shell().await {
        Ok(shell) => shell,
        Err(error) => return shell_refused(connector, target, error),
    };
    let mut rows = vec![
        CheckResult::ok(
            Check::WinrmReachable,
            label,
            format!("answers at {}", client.endpoint()),
        ),
        CheckResult::ok(
            Check::WinrmAuth,
            label,
            format!(
                "logged on as {user}: {}",
                mechanism(connector, client.mechanism())
            ),
        ),
    ];
    // The flush's first line, as it sends it: hostname, pools, workers.
    let survey = iis::survey();
    let command = survey.command();
    let out = match shell.run(&command.program, &command.args).await {
        Ok(out) => out,
        Err(error) => {
            rows.push(CheckResult::problem(
                Check::Appcmd,
                label,
                format!("the survey (hostname, appcmd list apppool, appcmd list wp) failed: {error}"),
                "run it by hand on the server to see why: %windir%\\system32\\inetsrv\\appcmd.exe list apppool",
            ));
            let _ = shell.close().await;
            return rows;
        }
    };
    let _ = shell.close().await;
    let parts = survey.finished(&out.stdout);
    let part = |label: &str| parts.iter().find(|p| p.label == label);
    let computer = part(iis::PART_HOSTNAME)
        .map(|p| sanitize(&p.stdout))
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| target.host.clone());
    let apppools = match part(iis::PART_APPPOOLS) {
        Some(p) if p.exit_code == 0 => p,
        other => {
            let why = match other {
                Some(p) => format!(
                    "exit code {}: {}",
                    p.exit_code,
                    sanitize(&iis::error_message(&p.stdout, &out.stderr))
                ),
                None => format!(
                    "the line ended (exit code {}) before it ran: {}",
                    out.exit_code,
                    sanitize(&iis::error_message("", &out.stderr))
                ),
            };
            rows.push(CheckResult::problem(
                Check::Appcmd,
                label,
                format!("appcmd list apppool failed on {computer} ({why})"),
                format!(
                    "check that IIS (the Web Server role) is installed and that {user} is a local \
                     administrator of the server: appcmd needs an elevated token"
                ),
            ));
            return rows;
        }
    };
    let pools = iis::parse_apppools(&apppools.stdout);
    rows.push(CheckResult::ok(
        Check::Appcmd,
        label,
        format!(
            "appcmd list apppool ran on {computer}: {} application pools",
            pools.len()
        ),
    ));
    rows.push(pool_row(plan, target, &pools));
    rows
}

/// The pools the flush would recycle on this server: present and started?
fn pool_row(plan: &FlushPlan, target: &Target, pools: &[iis::AppPool]) -> CheckResult {
    let wanted = plan.pools_for(target);
    let mut absent = Vec::new();
    let mut not_started = Vec::new();
    for pool in &wanted {
        match pools
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(pool.as_str()))
        {
            None => absent.push(pool.to_string()),
            Some(p) if p.state != PoolState::Started => {
                not_started.push(format!("{} ({})", p.name, p.state.as_str()))
            }
            Some(_) => {}
        }
    }
    if absent.is_empty() && not_started.is_empty() {
        return CheckResult::ok(
            Check::Pools,
            &target.label,
            format!(
                "{} pools present and started: {}",
                wanted.len(),
                wanted
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    let mut detail = Vec::new();
    let mut fix = Vec::new();
    if !absent.is_empty() {
        detail.push(format!("no such pool: {}", absent.join(", ")));
        fix.push(
            "if this server is not an Exchange server with client access, take it out of \
             `servers`; if its pools have other names, list them in [flush] pools (or --pool)"
                .to_string(),
        );
    }
    if !not_started.is_empty() {
        detail.push(format!("not started: {}", not_started.join(", ")));
        fix.push(
            "start each on the server (appcmd start apppool /apppool.name:\"NAME\"), or find \
             out why it is stopped: Exchange clients are not served by a stopped pool"
                .to_string(),
        );
    }
    CheckResult::problem(
        Check::Pools,
        &target.label,
        detail.join("; "),
        fix.join("; "),
    )
}

/// The rows of a shell that could not be opened: which step failed.
fn shell_refused(connector: &Connector, target: &Target, error: WinrmError) -> Vec<CheckResult> {
    let label = target.label.as_str();
    let settings = connector.settings();
    let reached = CheckResult::ok(
        Check::WinrmReachable,
        label,
        format!(
            "answers at {}://{}:{}/wsman",
            settings.scheme.name(),
            target.host,
            target.port
        ),
    );
    match error {
        e @ (WinrmError::ConnectionRefused(_)
        | WinrmError::Unreachable(_)
        | WinrmError::NameNotResolved(_)
        | WinrmError::NoAnswer(_)
        | WinrmError::ConnectionLost(_)) => vec![CheckResult::problem(
            Check::WinrmReachable,
            label,
            e.to_string(),
            format!(
                "check that WinRM listens on {}:{} ({} is Windows' default: winrm quickconfig; \
                 Test-WSMan from another machine) and that no firewall blocks this machine",
                target.host,
                target.port,
                match settings.scheme {
                    Scheme::Http => "HTTP on 5985",
                    Scheme::Https => "HTTPS on 5986 needs its own listener; HTTP on 5985",
                }
            ),
        )],
        e @ WinrmError::Tls(_) => vec![CheckResult::problem(
            Check::WinrmReachable,
            label,
            e.to_string(),
            "give the CA that signs the servers' HTTPS certificates with --ca-file FILE \
             (or ca_file in [winrm]), and name each server as its certificate does",
        )],
        e @ WinrmError::AuthRejected(_) => vec![
            reached,
            CheckResult::problem(
                Check::WinrmAuth,
                label,
                format!("{} refused: {e}", mechanism(connector, None)),
                format!(
                    "check the password given for {} ($REVOKE_WINRM_PASSWORD, $REVOKE_PASSWORD or \
                     its line of --password-stdin) and that the account is a local administrator \
                     of the server (docs/permissions.md)",
                    settings.user
                ),
            ),
        ],
        e @ WinrmError::Kerberos(_) => vec![
            reached,
            CheckResult::problem(
                Check::WinrmAuth,
                label,
                e.to_string(),
                "see docs/security.md (Kerberos): a ticket (kinit) for the account, the server's \
                 SPN HTTP/<name>, its DNS name in the server list, the clocks within 5 minutes",
            ),
        ],
        e => vec![
            reached,
            CheckResult::problem(
                Check::WinrmAuth,
                label,
                format!("the remote shell could not be opened: {e}"),
                "check the WinRM service on the server (its shell quotas, MaxShellsPerUser; \
                 its event log) and that the account may use WinRM",
            ),
        ],
    }
}

// ------------------------------------------------------------ BIG-IPs

/// Every BIG-IP at once: log in, list the APM sessions (nothing deleted).
pub async fn f5(settings: &F5Settings, password: Password) -> Vec<CheckResult> {
    let client = match F5Client::new(settings.clone(), password) {
        Ok(client) => client,
        Err(error) => {
            return vec![CheckResult::problem(
                Check::F5Login,
                "[f5]",
                error.to_string(),
                "give a readable PEM file of the CA that signs the BIG-IPs' certificates \
                 (ca_file in [f5])",
            )];
        }
    };
    let mut tasks = JoinSet::new();
    for (index, device) in settings.devices.iter().cloned().enumerate() {
        let client = client.clone();
        let user = settings.user.clone();
        tasks.spawn(async move { (index, device_rows(&client, &device, &user).await) });
    }
    let mut rows: Vec<Vec<CheckResult>> = vec![Vec::new(); settings.devices.len()];
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, device)) = joined {
            rows[index] = device;
        }
    }
    rows.into_iter().flatten().collect()
}

async fn device_rows(client: &F5Client, device: &F5Device, user: &str) -> Vec<CheckResult> {
    let label = device.label.as_str();
    match f5::probe(client, device).await {
        f5::Probe::Listed(sessions) => vec![
            CheckResult::ok(Check::F5Login, label, format!("logged in as {user}")),
            CheckResult::ok(
                Check::F5Sessions,
                label,
                format!("listed {sessions} APM access session(s)"),
            ),
        ],
        f5::Probe::ListFailed(why) => vec![
            CheckResult::ok(Check::F5Login, label, format!("logged in as {user}")),
            CheckResult::problem(
                Check::F5Sessions,
                label,
                why,
                format!(
                    "give {user} a role that may read and delete APM sessions (docs/permissions.md); \
                     check that APM is provisioned on the device"
                ),
            ),
        ],
        f5::Probe::LoginFailed(why) => {
            let fix = if why.starts_with("login refused") {
                format!(
                    "check the password given for {user} ($REVOKE_F5_PASSWORD, $REVOKE_PASSWORD \
                     or its line of --password-stdin) and that it is a local (tmos) user of the \
                     device"
                )
            } else if why.starts_with("TLS") {
                "give the CA that signs the device's certificate (ca_file in [f5]) and name the \
                 device as its certificate does"
                    .to_string()
            } else {
                format!(
                    "check [f5] devices: {} must be the device's management address \
                     (host or host:port, 443 by default)",
                    device.label
                )
            };
            vec![CheckResult::problem(Check::F5Login, label, why, fix)]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_have_stable_names_and_rows_serialise() {
        assert_eq!(Check::ReplicationSync.name(), "replication-sync");
        assert_eq!(Check::F5Login.name(), "f5-login");
        let row = CheckResult::problem(Check::DcTls, "ldaps://dc1", "untrusted", "give the CA");
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["check"], "dc-tls");
        assert_eq!(json["status"], "problem");
        assert_eq!(json["fix"], "give the CA");
        assert!(!all_ok(&[row]));
        assert!(all_ok(&[CheckResult::skipped(
            Check::F5Login,
            "[f5]",
            "none"
        )]));
    }
}
