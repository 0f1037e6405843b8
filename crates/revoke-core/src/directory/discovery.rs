//! Exchange servers from the configuration partition (docs/windows-behaviour.md §3.1, §3.2):
//! every Exchange server object but Edge Transport. Not only those with the
//! Mailbox or Client Access bit: an Exchange 2013 stand-alone Client Access
//! server (roles 16385, §8.7) has neither, and it holds the OWA, ActiveSync
//! and RPC-proxy caches. A server too many is flushed for nothing (or
//! reported unreachable); a server too few would stay open unreported.

use serde::Serialize;

use super::connection::{Connection, all, first};
use super::{DirectoryError, DirectorySettings};
use crate::iis::ExchangeVersion;
use revoke_winrm::Password;

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
    /// From `serialNumber`, else from `versionNumber`.
    #[serde(skip)]
    pub version: Option<ExchangeVersion>,
    /// The build as `serialNumber` writes it ("30225.42" of
    /// "Version 15.1 (Build 30225.42)"), else `versionNumber`'s build.
    pub build: Option<String>,
    /// `versionNumber`, as AD has it.
    pub version_number: Option<u32>,
    pub roles: Vec<&'static str>,
    /// `msExchCurrentServerRoles`, as AD has it (0 if absent).
    pub roles_mask: u32,
    /// The AD site: the CN of `msExchServerSite`; None if the attribute is
    /// absent (e.g. on the Samba test domain, whose stand-in schema lacks it).
    pub site: Option<String>,
    pub site_dn: Option<String>,
}

impl ExchangeServer {
    /// `Exchange 2016`, from the major.minor (docs/windows-behaviour.md §3.4).
    pub fn product(&self) -> Option<&'static str> {
        self.version.and_then(product_name)
    }

    /// `Exchange 2016 (15.1, build 30225.42)`; `unknown` without a version.
    pub fn version_words(&self) -> String {
        let Some(version) = self.version else {
            return "unknown".into();
        };
        let product = self.product().unwrap_or("Exchange (unknown release)");
        match &self.build {
            Some(build) => format!("{product} ({version}, build {build})"),
            None => format!("{product} ({version})"),
        }
    }

    /// `Mailbox, Client Access`, `Client Access (Exchange 2013 stand-alone)`.
    pub fn role_words(&self) -> String {
        role_words(self.roles_mask)
    }
}

/// Opens the configured DC, lists the Exchange servers and closes
/// (`revoke servers`).
pub async fn list(
    settings: &DirectorySettings,
    password: &Password,
) -> Result<Vec<ExchangeServer>, DirectoryError> {
    let mut conn = Connection::open(settings, password).await?;
    let servers = exchange_servers(&mut conn).await;
    conn.close().await;
    servers
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
                "versionNumber",
                "msExchCurrentServerRoles",
                "msExchServerSite",
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
            let version_number = first(&entry.attrs, "versionNumber")
                .and_then(|v| v.parse::<i64>().ok())
                .map(|v| v as u32);
            let roles_mask = first(&entry.attrs, "msExchCurrentServerRoles")
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0) as u32;
            let site_dn = first(&entry.attrs, "msExchServerSite");
            // serialNumber first: its text is what Exchange setup wrote;
            // versionNumber's layout is only a fallback (§3.4).
            let (version, build) = match version_text.as_deref().and_then(ExchangeVersion::parse) {
                Some(v) => (Some(v), version_text.as_deref().and_then(serial_build)),
                None => match version_number.and_then(decode_version_number) {
                    Some((v, build)) => (Some(v), Some(build.to_string())),
                    None => (None, None),
                },
            };
            ExchangeServer {
                name,
                fqdn,
                version,
                version_text,
                build,
                version_number,
                roles: role_names(roles_mask),
                roles_mask,
                site: site_dn.as_deref().and_then(first_rdn_value),
                site_dn,
            }
        })
        .filter(|s| !s.roles.contains(&"edge-transport"))
        .collect();
    servers.sort_by_key(|s| s.fqdn.to_ascii_lowercase());
    Ok(servers)
}

/// The product of a major.minor (docs/windows-behaviour.md §3.4).
fn product_name(version: ExchangeVersion) -> Option<&'static str> {
    match (version.major, version.minor) {
        (15, 2) => Some("Exchange 2019"),
        (15, 1) => Some("Exchange 2016"),
        (15, 0) => Some("Exchange 2013"),
        (14, _) => Some("Exchange 2010"),
        (8, _) => Some("Exchange 2007"),
        _ => None,
    }
}

/// "30225.42" from "Version 15.1 (Build 30225.42)".
fn serial_build(serial: &str) -> Option<String> {
    let start = serial.find("(Build ")? + "(Build ".len();
    let rest = &serial[start..];
    let build = &rest[..rest.find(')')?];
    let valid = !build.is_empty() && build.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    valid.then(|| build.to_string())
}

/// `versionNumber` read with the layout Exchange documents for its
/// ServerVersion value: major in bits 22-27, minor in 16-21, build in 0-14
/// (docs/windows-behaviour.md §3.5). None for anything that is not Exchange.
fn decode_version_number(value: u32) -> Option<(ExchangeVersion, u32)> {
    let major = (value >> 22) & 0x3f;
    let minor = (value >> 16) & 0x3f;
    let build = value & 0x7fff;
    matches!(major, 8 | 14 | 15).then_some((ExchangeVersion { major, minor }, build))
}

/// "Default-First-Site-Name" from "CN=Default-First-Site-Name,CN=Sites,...".
fn first_rdn_value(dn: &str) -> Option<String> {
    let (_, value) = dn.split_once('=')?;
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            ',' => break,
            c => out.push(c),
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The roles in words, for people.
pub fn role_words(mask: u32) -> String {
    if mask & (MAILBOX | CLIENT_ACCESS) == 0 && mask & CLIENT_ACCESS_2013 != 0 {
        return "Client Access (Exchange 2013 stand-alone)".into();
    }
    let words: Vec<&str> = [
        (MAILBOX, "Mailbox"),
        (CLIENT_ACCESS | CLIENT_ACCESS_2013, "Client Access"),
        (16, "Unified Messaging"),
        (32, "Hub Transport"),
        (EDGE, "Edge Transport"),
    ]
    .into_iter()
    .filter(|(bits, _)| mask & bits != 0)
    .map(|(_, word)| word)
    .collect();
    if words.is_empty() {
        format!("none known ({mask})")
    } else {
        words.join(", ")
    }
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

    #[test]
    fn roles_are_said_in_words() {
        assert_eq!(role_words(6), "Mailbox, Client Access");
        assert_eq!(role_words(4), "Client Access");
        assert_eq!(
            role_words(16385),
            "Client Access (Exchange 2013 stand-alone)"
        );
        assert_eq!(role_words(2 | 32), "Mailbox, Hub Transport");
        assert_eq!(role_words(16), "Unified Messaging");
        assert_eq!(role_words(0), "none known (0)");
    }

    #[test]
    fn versions_are_named() {
        let server = |serial: Option<&str>, number: Option<u32>| {
            let version = serial.and_then(ExchangeVersion::parse);
            let (version, build) = match version {
                Some(v) => (Some(v), serial.and_then(serial_build)),
                None => match number.and_then(decode_version_number) {
                    Some((v, b)) => (Some(v), Some(b.to_string())),
                    None => (None, None),
                },
            };
            ExchangeServer {
                name: "EX01".into(),
                fqdn: "ex01".into(),
                version_text: serial.map(String::from),
                version,
                build,
                version_number: number,
                roles: vec![],
                roles_mask: 0,
                site: None,
                site_dn: None,
            }
        };
        assert_eq!(
            server(Some("Version 15.1 (Build 30225.42)"), None).version_words(),
            "Exchange 2016 (15.1, build 30225.42)"
        );
        assert_eq!(
            server(Some("Version 15.0 (Build 1497.2)"), None).version_words(),
            "Exchange 2013 (15.0, build 1497.2)"
        );
        assert_eq!(
            server(Some("Version 15.2 (Build 1118.7)"), None).version_words(),
            "Exchange 2019 (15.2, build 1118.7)"
        );
        assert_eq!(
            server(Some("Version 14.3 (Build 123.4)"), None).version_words(),
            "Exchange 2010 (14.3, build 123.4)"
        );
        assert_eq!(
            server(Some("15.1"), None).version_words(),
            "Exchange 2016 (15.1)"
        );
        assert_eq!(server(None, None).version_words(), "unknown");
        // The documented ServerVersion example: 0x738180DA is 14.1, build 218.
        assert_eq!(
            server(None, Some(0x7381_80DA)).version_words(),
            "Exchange 2010 (14.1, build 218)"
        );
        assert_eq!(decode_version_number(12345), None);
    }

    #[test]
    fn the_site_is_the_first_rdn() {
        assert_eq!(
            first_rdn_value("CN=Default-First-Site-Name,CN=Sites,CN=Configuration,DC=x").as_deref(),
            Some("Default-First-Site-Name")
        );
        assert_eq!(
            first_rdn_value("CN=Paris\\, Rive Gauche,CN=Sites,DC=x").as_deref(),
            Some("Paris, Rive Gauche")
        );
        assert_eq!(first_rdn_value("garbage"), None);
    }
}
