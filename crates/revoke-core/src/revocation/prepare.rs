//! The read-only half: who the accounts are, whether revoke may touch them,
//! where to write and which DCs and servers the run takes in.

use super::stamp::{stamp_author, stamped_disabled_by_revoke};
use super::{Prepared, RevocationError, RevocationPlan};
use std::collections::HashMap;

use crate::Password;
use crate::directory::forest::{self, Forest};
use crate::directory::guards::{self, Operator, OperatorLookup};
use crate::directory::topology::{self, DomainController};
use crate::directory::{
    Connection, DirectoryError, DirectorySettings, UserAccount, discovery, identity,
};
use crate::f5::F5Client;
use crate::plan::Target;
use crate::secrets::Secrets;

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
            Err(error) if error.names_no_single_account() => unresolved.push(error.to_string()),
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
        Err(error) if error.names_no_single_account() => unresolved.push(error.to_string()),
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
