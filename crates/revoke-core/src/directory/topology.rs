//! The domain controllers of the domain, writable and read-only, from the
//! configuration partition (docs/windows-behaviour.md §2.12) or from the
//! configuration file; and which accounts' passwords each read-only DC holds.

use std::collections::HashSet;

use ldap3::ldap_escape;

use super::DirectoryError;
use super::connection::{Connection, all, first};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainController {
    /// dNSHostName: how revoke connects to it.
    pub host: String,
    /// DN of its nTDSDSA object, when known (the source of forced replication).
    pub dsa_dn: Option<String>,
    /// A read-only DC: checked, never written (docs/windows-behaviour.md §8.1, §2.24).
    pub read_only: bool,
    /// Its computer object (`serverReference`), where an RODC's revealed
    /// list lives.
    pub computer_dn: Option<String>,
}

impl DomainController {
    /// A writable DC named in the configuration file.
    pub fn configured(host: &str) -> Self {
        DomainController {
            host: host.to_string(),
            dsa_dn: None,
            read_only: false,
            computer_dn: None,
        }
    }
}

/// Every DC that holds this domain's naming context: writable ones
/// (`hasMasterNCs`) and read-only ones (`msDS-hasFullReplicaNCs`, with
/// `msDS-isRODC`). An RODC that caches a user's password logs the user on by
/// itself, with its own copy of the account, until replication reaches it.
pub async fn domain_controllers(
    conn: &mut Connection,
) -> Result<Vec<DomainController>, DirectoryError> {
    let naming_context = conn.root_dse.default_naming_context.clone();
    domain_controllers_of(conn, &naming_context).await
}

/// Every DC that holds the domain naming context `naming_context`, read
/// from the forest's configuration partition (which every DC of the forest
/// holds, so `conn` may be a DC of another domain).
pub async fn domain_controllers_of(
    conn: &mut Connection,
    naming_context: &str,
) -> Result<Vec<DomainController>, DirectoryError> {
    let sites = format!("CN=Sites,{}", conn.root_dse.configuration_naming_context);
    let nc = ldap_escape(naming_context).into_owned();
    let filter = format!(
        "(&(objectClass=nTDSDSA)(|(msDS-hasMasterNCs={nc})(hasMasterNCs={nc})(msDS-hasFullReplicaNCs={nc})))"
    );
    let dsas = conn.search(&sites, &filter, &["msDS-isRODC"]).await?;
    let servers = conn
        .search(
            &sites,
            "(objectClass=server)",
            &["dNSHostName", "serverReference"],
        )
        .await?;
    let mut dcs = Vec::new();
    for dsa in dsas {
        let read_only = all(&dsa.attrs, "msDS-isRODC")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("TRUE"));
        // The nTDSDSA's parent is the server object that has the host name.
        let Some((_, parent)) = dsa.dn.split_once(',') else {
            continue;
        };
        let Some(server) = servers.iter().find(|s| s.dn.eq_ignore_ascii_case(parent)) else {
            continue;
        };
        if let Some(host) = first(&server.attrs, "dNSHostName") {
            dcs.push(DomainController {
                host,
                dsa_dn: Some(dsa.dn.clone()),
                read_only,
                computer_dn: first(&server.attrs, "serverReference"),
            });
        }
    }
    if !dcs.iter().any(|dc| !dc.read_only) {
        return Err(DirectoryError::Operation {
            what: "listing the domain controllers".into(),
            host: conn.host.clone(),
            reason: format!(
                "no writable DC of {naming_context} found under {sites}; list them in \
                 [directory] domain_controllers"
            ),
        });
    }
    dcs.sort_by_key(|dc| (dc.read_only, dc.host.to_ascii_lowercase()));
    Ok(dcs)
}

/// Is `dc` the DC this connection is bound to?
pub fn is_connected_dc(conn: &Connection, dc: &DomainController) -> bool {
    let root = &conn.root_dse;
    dc.host.eq_ignore_ascii_case(&root.dns_host_name)
        || dc.host.eq_ignore_ascii_case(&conn.host)
        || dc
            .dsa_dn
            .as_deref()
            .is_some_and(|dn| dn.eq_ignore_ascii_case(&root.ds_service_name))
}

/// The accounts (lowercased DNs) whose secrets a read-only DC has been given,
/// read from its computer object on a writable DC: `msDS-RevealedList`
/// (constructed, Windows) and `msDS-RevealedUsers` (stored; Windows and
/// Samba). Both hold DN-with-binary/string values ending in the account's DN.
/// None: the computer object is unknown or unreadable.
pub async fn revealed_accounts(
    conn: &mut Connection,
    rodc: &DomainController,
) -> Option<HashSet<String>> {
    let computer = rodc.computer_dn.as_deref()?;
    let entry = conn
        .read(computer, &["msDS-RevealedList", "msDS-RevealedUsers"])
        .await
        .ok()??;
    let mut revealed = HashSet::new();
    for name in ["msDS-RevealedList", "msDS-RevealedUsers"] {
        for value in all(&entry.attrs, name) {
            revealed.insert(dn_of_dn_with_data(&value).to_ascii_lowercase());
        }
    }
    Some(revealed)
}

/// `B:<n>:<hex>:<DN>` or `S:<n>:<text>:<DN>` → the DN (MS-ADTS 3.1.1.2.2.2
/// Object(DN-Binary) and Object(DN-String)); anything else as it is.
fn dn_of_dn_with_data(value: &str) -> &str {
    let mut parts = value.splitn(4, ':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("B" | "S"), Some(_), Some(_), Some(dn)) => dn,
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revealed_values_give_the_accounts_dn() {
        assert_eq!(
            dn_of_dn_with_data("B:96:3700090001000000AD:CN=revoke-op,CN=Users,DC=lab"),
            "CN=revoke-op,CN=Users,DC=lab"
        );
        assert_eq!(dn_of_dn_with_data("S:3:abc:CN=a,DC=x"), "CN=a,DC=x");
        assert_eq!(dn_of_dn_with_data("CN=plain,DC=x"), "CN=plain,DC=x");
    }
}
