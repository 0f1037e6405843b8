//! One bound LDAP connection to one domain controller: LDAPS by default,
//! StartTLS on 389, plain LDAP only when explicitly (and loudly) allowed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};

use super::{DirectoryError, describe_result};
use crate::Password;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (port 636).
    Ldaps,
    /// Plain LDAP upgraded with StartTLS before the bind (port 389).
    StartTls,
    /// No encryption at all: the password crosses the wire in clear text.
    Plain,
}

/// Where and how to reach the directory, and as whom.
#[derive(Debug, Clone)]
pub struct DirectorySettings {
    /// The DC to start from (host name or address).
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// PEM CA that signs the DCs' certificates [default: the system's trust store].
    pub ca_file: Option<PathBuf>,
    /// The operator's UPN (or DN) for the simple bind.
    pub bind_user: String,
    /// Writable DCs to check after a change [default: read from the configuration partition].
    pub domain_controllers: Option<Vec<String>>,
    /// Each LDAP operation, and connecting, gives up after this long.
    pub operation_timeout: Duration,
}

impl DirectorySettings {
    /// Parses `ldaps://HOST[:PORT]` or `ldap://HOST[:PORT]` (with StartTLS, or
    /// plain only if `allow_plain`).
    pub fn parse_url(
        url: &str,
        starttls: bool,
        allow_plain: bool,
    ) -> Result<(String, u16, Security), DirectoryError> {
        let bad = |why: &str| {
            DirectoryError::Settings(format!(
                "directory URL {url:?} {why}; expected ldaps://HOST[:PORT] or ldap://HOST[:PORT] with StartTLS"
            ))
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("has no scheme"))?;
        let security = match (scheme.to_ascii_lowercase().as_str(), starttls, allow_plain) {
            ("ldaps", false, _) => Security::Ldaps,
            ("ldaps", true, _) => return Err(bad("is ldaps:// and StartTLS is on: choose one")),
            ("ldap", true, _) => Security::StartTls,
            ("ldap", false, true) => Security::Plain,
            ("ldap", false, false) => {
                return Err(DirectoryError::Settings(format!(
                    "directory URL {url:?} is plain LDAP: the password would cross the network \
                     in clear text. Use ldaps://, or turn on StartTLS (--starttls / starttls = true); \
                     insecure_plain_ldap = true allows it for a lab"
                )));
            }
            _ => return Err(bad("has an unknown scheme")),
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains(['/', '?', '@']) {
            return Err(bad("is not a host and port"));
        }
        let default_port = if security == Security::Ldaps {
            636
        } else {
            389
        };
        let (host, port) = split_host_port(rest).ok_or_else(|| bad("has a bad port"))?;
        Ok((host, port.unwrap_or(default_port), security))
    }

    /// The URL of a given DC, reached the same way as the configured one.
    fn url_for(&self, host: &str) -> String {
        let scheme = if self.security == Security::Ldaps {
            "ldaps"
        } else {
            "ldap"
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        format!("{scheme}://{host}:{}", self.port)
    }

    pub fn url(&self) -> String {
        self.url_for(&self.host)
    }
}

fn split_host_port(text: &str) -> Option<(String, Option<u16>)> {
    if let Some(inner) = text.strip_prefix('[') {
        let (host, rest) = inner.split_once(']')?;
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if rest.is_empty() => None,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            Some((host.to_string(), Some(port.parse().ok()?)))
        }
        Some(_) => Some((text.to_string(), None)),
        None => Some((text.to_string(), None)),
    }
}

/// What every DC says about itself (base search on the empty DN).
#[derive(Debug, Clone, Default)]
pub struct RootDse {
    pub default_naming_context: String,
    pub configuration_naming_context: String,
    pub dns_host_name: String,
    /// DN of this DC's nTDSDSA object.
    pub ds_service_name: String,
}

/// A bound connection to one DC.
pub struct Connection {
    ldap: ldap3::Ldap,
    /// The host as we dialled it.
    pub host: String,
    pub root_dse: RootDse,
    timeout: Duration,
}

impl Connection {
    /// Connects to the configured DC.
    pub async fn open(
        settings: &DirectorySettings,
        password: &Password,
    ) -> Result<Self, DirectoryError> {
        if settings.security == Security::Plain {
            tracing::warn!(
                "insecure_plain_ldap = true: the operator's password goes to {} in clear text",
                settings.url()
            );
        }
        Self::open_host(settings, password, &settings.host).await
    }

    /// Connects to `host` with the configured port, security and credentials,
    /// binds as the operator and reads the rootDSE.
    pub async fn open_host(
        settings: &DirectorySettings,
        password: &Password,
        host: &str,
    ) -> Result<Self, DirectoryError> {
        let url = settings.url_for(host);
        let mut ldap_settings = LdapConnSettings::new()
            .set_conn_timeout(settings.operation_timeout)
            .set_starttls(settings.security == Security::StartTls);
        if settings.security != Security::Plain {
            let tls = crate::tls::client_config(settings.ca_file.as_deref(), false)
                .map_err(|e| DirectoryError::Settings(e.0))?;
            ldap_settings = ldap_settings.set_config(tls);
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(ldap_settings, &url)
            .await
            .map_err(|e| DirectoryError::connecting(&url, &e))?;
        ldap3::drive!(conn);
        let result = ldap
            .with_timeout(settings.operation_timeout)
            .simple_bind(&settings.bind_user, password.expose())
            .await
            .map_err(|e| DirectoryError::connecting(&url, &e))?;
        if result.rc != 0 {
            return Err(DirectoryError::BindRefused {
                url,
                user: settings.bind_user.clone(),
                reason: describe_result(result.rc, &result.text),
            });
        }
        let mut connection = Connection {
            ldap,
            host: host.to_string(),
            root_dse: RootDse::default(),
            timeout: settings.operation_timeout,
        };
        connection.root_dse = connection.read_root_dse().await?;
        Ok(connection)
    }

    async fn read_root_dse(&mut self) -> Result<RootDse, DirectoryError> {
        let entry = self
            .read(
                "",
                &[
                    "defaultNamingContext",
                    "configurationNamingContext",
                    "dnsHostName",
                    "dsServiceName",
                ],
            )
            .await?
            .ok_or_else(|| DirectoryError::Operation {
                what: "reading the rootDSE".into(),
                host: self.host.clone(),
                reason: "no rootDSE returned".into(),
            })?;
        let get = |name: &str| first(&entry.attrs, name).unwrap_or_default();
        let root = RootDse {
            default_naming_context: get("defaultNamingContext"),
            configuration_naming_context: get("configurationNamingContext"),
            dns_host_name: get("dnsHostName"),
            ds_service_name: get("dsServiceName"),
        };
        if root.default_naming_context.is_empty() {
            return Err(DirectoryError::Operation {
                what: "reading the rootDSE".into(),
                host: self.host.clone(),
                reason: "no defaultNamingContext: is this an Active Directory DC?".into(),
            });
        }
        Ok(root)
    }

    /// Subtree search; referrals are skipped.
    pub async fn search(
        &mut self,
        base: &str,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        self.search_scope(base, Scope::Subtree, filter, attrs).await
    }

    /// One entry by DN, or None if it does not exist.
    pub async fn read(
        &mut self,
        dn: &str,
        attrs: &[&str],
    ) -> Result<Option<SearchEntry>, DirectoryError> {
        match self.base_search(dn, "(objectClass=*)", attrs).await {
            Ok(mut entries) => Ok(entries.pop()),
            Err(DirectoryError::Operation { reason, .. }) if reason.contains("result 32") => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Base search of one DN with a filter.
    pub async fn base_search(
        &mut self,
        dn: &str,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        self.search_scope(dn, Scope::Base, filter, attrs).await
    }

    async fn search_scope(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let what = format!("searching {base:?} for {filter}");
        let (entries, _) = self
            .ldap
            .with_timeout(self.timeout)
            .search(base, scope, filter, attrs.to_vec())
            .await
            .and_then(|r| r.success())
            .map_err(|e| DirectoryError::operation(what, &self.host, e))?;
        Ok(entries
            .into_iter()
            .filter(|e| !e.is_ref() && !e.is_intermediate())
            .map(SearchEntry::construct)
            .collect())
    }

    /// An LDAP modify; the raw result so callers can tell conflicts apart.
    pub async fn modify(
        &mut self,
        dn: &str,
        mods: Vec<ldap3::Mod<Vec<u8>>>,
    ) -> Result<ldap3::LdapResult, DirectoryError> {
        self.ldap
            .with_timeout(self.timeout)
            .modify(dn, mods)
            .await
            .map_err(|e| DirectoryError::operation(format!("modifying {dn}"), &self.host, e))
    }

    /// Best effort: the connection closes when dropped anyway.
    pub async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }
}

/// First value of an attribute (attribute names are case-insensitive).
pub fn first(attrs: &HashMap<String, Vec<String>>, name: &str) -> Option<String> {
    attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first().cloned())
}

/// All values of an attribute (case-insensitive name).
pub fn all(attrs: &HashMap<String, Vec<String>>, name: &str) -> Vec<String> {
    attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_their_default_ports() {
        let parse = |u, s, p| DirectorySettings::parse_url(u, s, p).map_err(|e| e.to_string());
        assert_eq!(
            parse("ldaps://dc1.corp.example", false, false).unwrap(),
            ("dc1.corp.example".into(), 636, Security::Ldaps)
        );
        assert_eq!(
            parse("ldap://dc1:3389", true, false).unwrap(),
            ("dc1".into(), 3389, Security::StartTls)
        );
        assert_eq!(
            parse("ldaps://[::1]:1636/", false, false).unwrap(),
            ("::1".into(), 1636, Security::Ldaps)
        );
        let plain = parse("ldap://dc1", false, false).unwrap_err();
        assert!(plain.contains("clear text"), "{plain}");
        assert_eq!(
            parse("ldap://dc1", false, true).unwrap(),
            ("dc1".into(), 389, Security::Plain)
        );
        assert!(
            parse("dc1", false, false)
                .unwrap_err()
                .contains("no scheme")
        );
        assert!(
            parse("http://dc1", false, false)
                .unwrap_err()
                .contains("unknown scheme")
        );
        assert!(
            parse("ldaps://dc1:x", false, false)
                .unwrap_err()
                .contains("bad port")
        );
    }
}
