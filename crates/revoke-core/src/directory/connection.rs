//! One bound LDAP connection to one domain controller: LDAPS by default,
//! StartTLS on 389, plain LDAP only when explicitly (and loudly) allowed,
//! or sealed by Kerberos (`auth = "kerberos"`: [`sasl`]).

#[path = "sasl.rs"]
pub mod sasl;

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

/// How revoke proves who it is to the DCs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DirectoryAuth {
    /// A simple bind with `bind_user`'s password (TLS required).
    #[default]
    Simple,
    /// SASL GSSAPI: the ticket cache, or `bind_user`'s password for a
    /// ticket; on plain LDAP every message is sealed with the Kerberos key.
    Kerberos {
        /// `[kerberos] realm`, for the principal when logging on with a password.
        realm: Option<String>,
    },
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
    /// The forest's Global Catalog, `ldaps://HOST[:3269]` or
    /// `ldap://HOST[:3268]` (StartTLS) [default: the DC's host on 3269 with
    /// LDAPS, or on 3268 with StartTLS]. Used only in a forest of several
    /// domains (docs/directory.md, "Forests with several domains").
    pub global_catalog: Option<String>,
    /// Simple bind or Kerberos, for every connection (writable DC, the
    /// gate's DCs, the Global Catalog).
    pub auth: DirectoryAuth,
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
    pub(crate) fn url_for(&self, host: &str) -> String {
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

    /// The same account, TLS and timeouts, pointed at the Global Catalog:
    /// `global_catalog` if set, else this DC's host on 3269 (LDAPS) or 3268
    /// (StartTLS, or plain where plain LDAP was allowed for the DC)
    /// (docs/windows-behaviour.md §2.29).
    pub fn global_catalog_settings(&self) -> Result<DirectorySettings, DirectoryError> {
        let default_port = |security: Security| match security {
            Security::Ldaps => GC_LDAPS_PORT,
            Security::StartTls | Security::Plain => GC_LDAP_PORT,
        };
        let (host, port, security) = match &self.global_catalog {
            None => (
                self.host.clone(),
                default_port(self.security),
                self.security,
            ),
            Some(url) => {
                let plain = url.to_ascii_lowercase().starts_with("ldap://");
                let starttls = plain && self.security != Security::Plain;
                let (host, port, security) =
                    Self::parse_url(url, starttls, self.security == Security::Plain).map_err(
                        |e| DirectoryError::Settings(format!("[directory] global_catalog: {e}")),
                    )?;
                let rest = url.split_once("://").map_or("", |(_, r)| r);
                let has_port = split_host_port(rest.trim_end_matches('/'))
                    .is_some_and(|(_, port)| port.is_some());
                let port = if has_port {
                    port
                } else {
                    default_port(security)
                };
                (host, port, security)
            }
        };
        Ok(DirectorySettings {
            host,
            port,
            security,
            ..self.clone()
        })
    }
}

/// The Global Catalog's ports: LDAP (for StartTLS) and LDAPS.
pub const GC_LDAP_PORT: u16 = 3268;
pub const GC_LDAPS_PORT: u16 = 3269;

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
    /// The forest root domain's naming context (empty if not served).
    pub root_domain_naming_context: String,
    pub dns_host_name: String,
    /// DN of this DC's nTDSDSA object.
    pub ds_service_name: String,
}

/// Entries per page. Below AD's default MaxPageSize (1,000), so the DC
/// never cuts a page short (docs/windows-behaviour.md §2.20).
pub const PAGE_SIZE: i32 = 500;

/// What a subtree search found.
#[derive(Debug, Default)]
pub struct Found {
    pub entries: Vec<SearchEntry>,
    /// LDAP URLs of the naming contexts the DC referred the search to.
    pub references: Vec<String>,
}

/// The DN of an LDAP URL (`ldap://host/DN?...`), percent-decoded.
pub fn reference_dn(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let path = rest.split_once('/')?.1;
    let dn = path.split('?').next().unwrap_or_default();
    let bytes = dn.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = dn.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok().filter(|d| !d.is_empty())
}

/// A bound connection to one DC.
pub struct Connection {
    ldap: ldap3::Ldap,
    /// The host as we dialled it.
    pub host: String,
    pub root_dse: RootDse,
    /// With Kerberos: the principal the DC authenticated (`sam@REALM`).
    pub kerberos_principal: Option<String>,
    /// The forest root domain's objectSid, when it was read elsewhere (a
    /// child domain's DC refers the root's naming context head to its DCs).
    pub forest_root_sid: Option<String>,
    timeout: Duration,
}

impl Connection {
    /// Connects to the configured DC.
    pub async fn open(
        settings: &DirectorySettings,
        password: &Password,
    ) -> Result<Self, DirectoryError> {
        if settings.security == Security::Plain && settings.auth == DirectoryAuth::Simple {
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
        if let DirectoryAuth::Kerberos { .. } = settings.auth {
            let bound = sasl::open(settings, password, host).await?;
            tracing::debug!(
                "bound to {} with Kerberos as {} ({})",
                host,
                bound.principal,
                if settings.security == Security::Plain {
                    "every message sealed"
                } else {
                    "inside TLS"
                }
            );
            let mut connection = Connection {
                ldap: bound.ldap,
                host: host.to_string(),
                root_dse: RootDse::default(),
                kerberos_principal: Some(bound.principal),
                forest_root_sid: None,
                timeout: settings.operation_timeout,
            };
            connection.root_dse = connection.read_root_dse().await?;
            return Ok(connection);
        }
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
            kerberos_principal: None,
            forest_root_sid: None,
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
                    "rootDomainNamingContext",
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
            root_domain_naming_context: get("rootDomainNamingContext"),
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

    /// Subtree search of every page (Simple Paged Results); continuation
    /// references to other naming contexts are logged, never dropped
    /// silently (see [`Connection::search_found`] to act on them).
    pub async fn search(
        &mut self,
        base: &str,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let found = self.search_found(base, filter, attrs).await?;
        for reference in &found.references {
            if self.holds_no_accounts(reference) {
                tracing::debug!(
                    "searching {base:?} for {filter}: not followed: {reference} \
                     (an application or configuration partition)"
                );
            } else {
                tracing::warn!(
                    "searching {base:?} for {filter}: the DC referred part of the search to \
                     {reference}, which revoke does not follow: objects there are not included"
                );
            }
        }
        Ok(found.entries)
    }

    /// Subtree search of every page, with the continuation references the DC
    /// returned (RFC 4511 §4.5.3: parts of the tree held by other naming
    /// contexts, e.g. a child domain).
    pub async fn search_found(
        &mut self,
        base: &str,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Found, DirectoryError> {
        use ldap3::adapters::{Adapter, PagedResults};
        let what = format!("searching {base:?} for {filter}");
        let attrs: Vec<String> = attrs.iter().map(|a| a.to_string()).collect();
        let adapters: Vec<Box<dyn Adapter<'_, String, Vec<String>>>> =
            vec![Box::new(PagedResults::new(PAGE_SIZE))];
        let fail = |e| DirectoryError::operation(what.clone(), &self.host, e);
        let mut stream = self
            .ldap
            .with_timeout(self.timeout)
            .streaming_search_with(adapters, base, Scope::Subtree, filter, attrs)
            .await
            .map_err(fail)?;
        let mut found = Found::default();
        loop {
            match stream.next().await {
                Ok(Some(entry)) if entry.is_ref() => {
                    found.references.extend(ldap3::parse_refs(entry.0));
                }
                Ok(Some(entry)) if entry.is_intermediate() => {}
                Ok(Some(entry)) => found.entries.push(SearchEntry::construct(entry)),
                Ok(None) => break,
                Err(e) => {
                    let _ = stream.finish().await;
                    return Err(fail(e));
                }
            }
        }
        let result = stream.finish().await;
        match result.rc {
            0 => {}
            // A referral for the base itself: the base is in another naming context.
            10 => found.references.extend(result.refs.clone()),
            _ => return Err(fail(ldap3::LdapError::from(result))),
        }
        Ok(found)
    }

    /// A reference to an application partition (DomainDnsZones,
    /// ForestDnsZones) or to the configuration or schema partition: they hold
    /// no user accounts, and Windows returns them for every subtree search of
    /// a domain's naming context.
    pub fn holds_no_accounts(&self, reference: &str) -> bool {
        let Some(dn) = reference_dn(reference) else {
            return false;
        };
        let first = dn.split(',').next().unwrap_or_default().trim();
        let config = &self.root_dse.configuration_naming_context;
        first.eq_ignore_ascii_case("DC=DomainDnsZones")
            || first.eq_ignore_ascii_case("DC=ForestDnsZones")
            || (!config.is_empty()
                && (dn.eq_ignore_ascii_case(config)
                    || dn
                        .to_ascii_lowercase()
                        .ends_with(&format!(",{}", config.to_ascii_lowercase()))))
    }

    /// LDAP "Who am I?" (RFC 4532): the identity this connection is bound
    /// as, `u:DOMAIN\sam` or `dn:<DN>` as the DC words it. None when the DC
    /// does not implement the operation (Samba: docs/windows-behaviour.md §7.7)
    /// and the bind was simple; after a Kerberos bind the DC's silence is
    /// answered with the principal the ticket named, `u:REALM\sam` (a
    /// principal's name part is the account's sAMAccountName and its realm
    /// the domain's DNS name), never with the configured bind_user.
    pub async fn who_am_i(&mut self) -> Result<Option<String>, DirectoryError> {
        use ldap3::exop::{WhoAmI, WhoAmIResp};
        let what = "asking \"Who am I?\" (RFC 4532)";
        let ldap3::result::ExopResult(exop, result) = self
            .ldap
            .with_timeout(self.timeout)
            .extended(WhoAmI)
            .await
            .map_err(|e| DirectoryError::operation(what, &self.host, e))?;
        match result.rc {
            0 => Ok(Some(exop.parse::<WhoAmIResp>().authzid)),
            // protocolError (Samba: "Extended Operation ... not supported"),
            // unavailableCriticalExtension, unwillingToPerform.
            2 | 12 | 53 => {
                tracing::debug!(
                    "{} does not answer \"Who am I?\": {}",
                    self.host,
                    describe_result(result.rc, &result.text)
                );
                Ok(self
                    .kerberos_principal
                    .as_deref()
                    .and_then(principal_authz_id))
            }
            rc => Err(DirectoryError::Operation {
                what: what.into(),
                host: self.host.clone(),
                reason: describe_result(rc, &result.text),
            }),
        }
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

    /// A base search (one object: never more than a page). A referral
    /// (result 10: the DN is in a naming context this DC does not hold) is
    /// an error that names where the DC pointed.
    async fn search_scope(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let what = format!("searching {base:?} for {filter}");
        let result = self
            .ldap
            .with_timeout(self.timeout)
            .search(base, scope, filter, attrs.to_vec())
            .await
            .map_err(|e| DirectoryError::operation(what.clone(), &self.host, e))?;
        let ldap3::SearchResult(entries, done) = result;
        match done.rc {
            0 => {}
            10 => {
                return Err(DirectoryError::Operation {
                    what,
                    host: self.host.clone(),
                    reason: format!(
                        "referral (result 10): the DC does not hold this object's naming \
                         context and points to {}",
                        done.refs.join(", ")
                    ),
                });
            }
            _ => {
                return Err(DirectoryError::operation(
                    what,
                    &self.host,
                    ldap3::LdapError::from(done),
                ));
            }
        }
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

/// `sam@REALM` as a Who-am-I answer, `u:REALM\sam`, which the operator
/// lookup resolves by sAMAccountName in the domain whose DNS name is REALM.
fn principal_authz_id(principal: &str) -> Option<String> {
    let (sam, realm) = principal.rsplit_once('@')?;
    (!sam.is_empty() && !realm.is_empty() && !sam.contains('/'))
        .then(|| format!("u:{realm}\\{sam}"))
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
    fn a_kerberos_principal_is_named_like_who_am_i() {
        assert_eq!(
            principal_authz_id("op@LAB.EXAMPLE.TEST").as_deref(),
            Some("u:LAB.EXAMPLE.TEST\\op")
        );
        assert_eq!(principal_authz_id("host/dc1@LAB"), None);
        assert_eq!(principal_authz_id("op"), None);
    }

    #[test]
    fn references_name_their_naming_context() {
        assert_eq!(
            reference_dn("ldaps://lab.example.test/CN=Configuration,DC=lab,DC=example,DC=test")
                .as_deref(),
            Some("CN=Configuration,DC=lab,DC=example,DC=test")
        );
        assert_eq!(
            reference_dn("ldap://child.corp.example/DC=child,DC=corp%2CDC=example??sub").as_deref(),
            Some("DC=child,DC=corp,DC=example")
        );
        assert_eq!(reference_dn("ldap://host"), None);
    }

    fn settings(url: &str, starttls: bool, global_catalog: Option<&str>) -> DirectorySettings {
        let (host, port, security) = DirectorySettings::parse_url(url, starttls, false).unwrap();
        DirectorySettings {
            host,
            port,
            security,
            ca_file: None,
            bind_user: "op@corp.example".into(),
            domain_controllers: None,
            operation_timeout: Duration::from_secs(5),
            global_catalog: global_catalog.map(str::to_string),
            auth: DirectoryAuth::Simple,
        }
    }

    #[test]
    fn the_global_catalog_defaults_to_the_dcs_host_on_its_own_ports() {
        let gc = |s: DirectorySettings| {
            let gc = s.global_catalog_settings().unwrap();
            (gc.host, gc.port, gc.security)
        };
        assert_eq!(
            gc(settings("ldaps://dc1.corp.example", false, None)),
            ("dc1.corp.example".into(), 3269, Security::Ldaps)
        );
        assert_eq!(
            gc(settings("ldap://dc1.corp.example", true, None)),
            ("dc1.corp.example".into(), 3268, Security::StartTls)
        );
        assert_eq!(
            gc(settings(
                "ldaps://dc1",
                false,
                Some("ldaps://gc.corp.example")
            )),
            ("gc.corp.example".into(), 3269, Security::Ldaps)
        );
        assert_eq!(
            gc(settings("ldaps://dc1", false, Some("ldap://gc:13268"))),
            ("gc".into(), 13268, Security::StartTls)
        );
        let bad = settings("ldaps://dc1", false, Some("gc.corp.example"))
            .global_catalog_settings()
            .unwrap_err()
            .to_string();
        assert!(bad.contains("[directory] global_catalog"), "{bad}");
    }

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
