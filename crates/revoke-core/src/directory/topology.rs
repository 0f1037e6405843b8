//! The writable domain controllers of the domain, from the configuration
//! partition (docs/windows-behaviour.md §2.12) or from the configuration file.

use ldap3::ldap_escape;

use super::DirectoryError;
use super::connection::{Connection, all, first};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainController {
    /// dNSHostName: how revoke connects to it.
    pub host: String,
    /// DN of its nTDSDSA object, when known (the source of forced replication).
    pub dsa_dn: Option<String>,
}

/// Writable DCs that hold this domain's naming context. Read-only DCs are
/// left out: a change cannot be written there and they forward
/// authentication of accounts whose secrets they do not cache.
pub async fn writable_dcs(conn: &mut Connection) -> Result<Vec<DomainController>, DirectoryError> {
    let sites = format!("CN=Sites,{}", conn.root_dse.configuration_naming_context);
    let nc = ldap_escape(conn.root_dse.default_naming_context.as_str()).into_owned();
    let filter = format!("(&(objectClass=nTDSDSA)(|(msDS-hasMasterNCs={nc})(hasMasterNCs={nc})))");
    let dsas = conn.search(&sites, &filter, &["msDS-isRODC"]).await?;
    let servers = conn
        .search(&sites, "(objectClass=server)", &["dNSHostName"])
        .await?;
    let mut dcs = Vec::new();
    for dsa in dsas {
        let read_only = all(&dsa.attrs, "msDS-isRODC")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("TRUE"));
        if read_only {
            continue;
        }
        // The nTDSDSA's parent is the server object that has the host name.
        let Some((_, parent)) = dsa.dn.split_once(',') else {
            continue;
        };
        let host = servers
            .iter()
            .find(|s| s.dn.eq_ignore_ascii_case(parent))
            .and_then(|s| first(&s.attrs, "dNSHostName"));
        if let Some(host) = host {
            dcs.push(DomainController {
                host,
                dsa_dn: Some(dsa.dn.clone()),
            });
        }
    }
    if dcs.is_empty() {
        return Err(DirectoryError::Operation {
            what: "listing the domain controllers".into(),
            host: conn.host.clone(),
            reason: format!(
                "no writable DC found under {sites}; list them in [directory] domain_controllers"
            ),
        });
    }
    dcs.sort_by_key(|dc| dc.host.to_ascii_lowercase());
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
