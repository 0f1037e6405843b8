//! Exchange servers from the configuration partition (docs/windows-behaviour.md §3.1, §3.2):
//! every Exchange server object but Edge Transport. Not only those with the
//! Mailbox or Client Access bit: an Exchange 2013 stand-alone Client Access
//! server (roles 16385, §8.7) has neither, and it holds the OWA, ActiveSync
//! and RPC-proxy caches. A server too many is flushed for nothing (or
//! reported unreachable); a server too few would stay open unreported.

use serde::Serialize;

use super::DirectoryError;
use super::connection::{Connection, all, first};
use crate::iis::ExchangeVersion;

const MAILBOX: u32 = 2;
const CLIENT_ACCESS: u32 = 4;
const EDGE: u32 = 64;
/// Exchange 2013's stand-alone Client Access role (16385 = this + 1).
const CLIENT_ACCESS_2013: u32 = 16384;

/// Every Exchange server but Edge Transport (bitwise-AND matching rule,
/// LDAP_MATCHING_RULE_BIT_AND).
const FILTER: &str = "(&(objectClass=msExchExchangeServer)\
(!(msExchCurrentServerRoles:1.2.840.113556.1.4.803:=64)))";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExchangeServer {
    /// The server object's name (CN).
    pub name: String,
    /// From `networkAddress` (`ncacn_ip_tcp:`); the name if absent.
    pub fqdn: String,
    /// `serialNumber`, as AD has it.
    pub version_text: Option<String>,
    #[serde(skip)]
    pub version: Option<ExchangeVersion>,
    pub roles: Vec<&'static str>,
}

pub async fn exchange_servers(
    conn: &mut Connection,
) -> Result<Vec<ExchangeServer>, DirectoryError> {
    let base = conn.root_dse.configuration_naming_context.clone();
    let entries = conn
        .search(
            &base,
            FILTER,
            &[
                "cn",
                "networkAddress",
                "serialNumber",
                "msExchCurrentServerRoles",
            ],
        )
        .await?;
    let mut servers: Vec<ExchangeServer> = entries
        .iter()
        .map(|entry| {
            let name = first(&entry.attrs, "cn").unwrap_or_else(|| entry.dn.clone());
            let fqdn = all(&entry.attrs, "networkAddress")
                .iter()
                .find_map(|a| {
                    let (scheme, value) = a.split_once(':')?;
                    scheme
                        .eq_ignore_ascii_case("ncacn_ip_tcp")
                        .then(|| value.to_string())
                })
                .unwrap_or_else(|| name.clone());
            let version_text = first(&entry.attrs, "serialNumber");
            let roles_mask = first(&entry.attrs, "msExchCurrentServerRoles")
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0) as u32;
            ExchangeServer {
                name,
                fqdn,
                version: version_text.as_deref().and_then(ExchangeVersion::parse),
                version_text,
                roles: role_names(roles_mask),
            }
        })
        .filter(|s| !s.roles.contains(&"edge-transport"))
        .collect();
    servers.sort_by_key(|s| s.fqdn.to_ascii_lowercase());
    Ok(servers)
}

fn role_names(mask: u32) -> Vec<&'static str> {
    [
        (MAILBOX, "mailbox"),
        (CLIENT_ACCESS, "client-access"),
        (CLIENT_ACCESS_2013, "client-access"),
        (16, "unified-messaging"),
        (32, "hub-transport"),
        (EDGE, "edge-transport"),
    ]
    .into_iter()
    .filter(|(bit, _)| mask & bit != 0)
    .map(|(_, name)| name)
    .fold(Vec::new(), |mut names, name| {
        if !names.contains(&name) {
            names.push(name);
        }
        names
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_named() {
        assert_eq!(role_names(6), ["mailbox", "client-access"]);
        assert_eq!(role_names(64), ["edge-transport"]);
        assert_eq!(role_names(16385), ["client-access"]);
        assert_eq!(role_names(16384 | 4 | 2), ["mailbox", "client-access"]);
    }
}
