//! The lab's embedded directory: an LDAP server that behaves like Active
//! Directory (as Samba AD does, docs/windows-behaviour.md §2, §3, §7) for everything
//! revoke uses, so the lab runs without Samba.
//!
//! Several writable DCs, each its own listener on its own loopback address
//! (127.0.0.1, 127.0.0.2, ... on one port; dNSHostName = the address, so no
//! DNS is involved), each with its own copy of the data. A change made on
//! one DC reaches the others after that DC's replication delay, or never
//! (`None`, like the Samba test domain's DC2), or when [`Directory::sync`]
//! pulls it. Like Samba, no DC accepts rootDSE `replicateSingleObject`.
//!
//! Like Windows (and unlike Samba), each DC answers LDAP "Who am I?" with
//! `u:DOMAIN\sam`, and enforces a MaxPageSize (1,000, settable) on searches
//! without the paged results control, which it serves. Like both, it
//! computes `tokenGroups` on base searches, and refers searches that reach
//! another naming context (the configuration partition, a domain with a
//! crossRef) instead of answering for it.
//!
//! With [`DirectoryConfig::child`], a two-domain forest: the root domain
//! and a child domain (its own DCs on their own addresses, on the same
//! ports; its own data and SID), one configuration partition (crossRefs
//! of both domains, the server and NTDS Settings objects of every DC; it
//! is copied to the child's DCs at start and does not change afterwards),
//! child DCs whose rootDSE names the root as forest root, referrals for the
//! other domain's DNs, and a read-only Global Catalog on the root's first
//! DC (its own port) that serves both domains' objects with the partial
//! attribute set and binds accounts of either domain. Samba cannot host a
//! child domain, so this is where multi-domain behaviour is tested.
//!
//! Modules: `store` (entries, DNs, AD's value rules), `filter` (search
//! filters), `domain` (the LDAP operations: rootDSE, search, add, modify,
//! delete), `access` (binds, administrators, delegated rights),
//! `replication` (per-DC delays, pulls, no replicateSingleObject), `server`
//! (the wire: ldap3_proto over tokio, LDAPS and StartTLS), `seed` (the
//! domain a fresh directory holds).

mod access;
mod domain;
mod filter;
mod replication;
mod seed;
mod server;
mod store;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ldap3_proto::proto::LdapModifyType;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use self::access::Bound;
use self::domain::{DcInfo, Domain, Modification};
pub use self::store::LdapError;

/// One domain controller of the lab directory.
#[derive(Debug, Clone)]
pub struct DcConfig {
    /// Its listen address and dNSHostName (a 127.x address).
    pub address: Ipv4Addr,
    /// How long changes made on other DCs take to arrive here; `None` =
    /// never by themselves (only [`Directory::sync`] brings them).
    pub replication_delay: Option<Duration>,
}

/// A user the directory is created with.
#[derive(Debug, Clone)]
pub struct SeedUser {
    pub sam: String,
    /// The CN [default: the sAMAccountName].
    pub cn: Option<String>,
    /// Container DN [default: OU=Staff,<base>].
    pub parent: Option<String>,
    pub display_name: Option<String>,
    pub mail: Option<String>,
    pub password: String,
    pub admin_count: bool,
}

impl SeedUser {
    pub fn new(sam: &str, password: &str) -> Self {
        SeedUser {
            sam: sam.to_string(),
            cn: None,
            parent: None,
            display_name: None,
            mail: None,
            password: password.to_string(),
            admin_count: false,
        }
    }
}

/// An `msExchExchangeServer` object in the configuration partition.
#[derive(Debug, Clone)]
pub struct SeedExchangeServer {
    /// "EX01"
    pub name: String,
    /// What `networkAddress: ncacn_ip_tcp:` holds (how revoke reaches it).
    pub fqdn: String,
    /// msExchCurrentServerRoles: Mailbox 2, Client Access 4, Edge 64.
    pub roles: u32,
    /// serialNumber, e.g. "Version 15.1 (Build 30225.42)".
    pub version: String,
}

/// A child domain of the forest (e.g. child.lab.example.test under
/// lab.example.test), with its own DCs and data.
#[derive(Debug, Clone)]
pub struct ChildDomainConfig {
    /// "child.lab.example.test": must end with the root's DNS name.
    pub dns_domain: String,
    /// "CHILD"
    pub netbios_domain: String,
    /// Its DCs: addresses of their own, listening on the root's ports.
    pub dcs: Vec<DcConfig>,
    /// The child's own Administrator (RID 500 of the child).
    pub admin_password: String,
    /// Users made at start (in the child's OU=Staff unless they say otherwise).
    pub users: Vec<SeedUser>,
    /// The Global Catalog's LDAPS port on the root's first DC (Windows:
    /// 3269); 0 = a free one.
    pub global_catalog_port: u16,
    /// Its plain port for StartTLS (Windows: 3268), when the directory has
    /// plain listeners; 0 = a free one.
    pub global_catalog_ldap_port: u16,
}

impl Default for ChildDomainConfig {
    fn default() -> Self {
        ChildDomainConfig {
            dns_domain: "child.lab.example.test".into(),
            netbios_domain: "CHILD".into(),
            dcs: vec![
                DcConfig {
                    address: Ipv4Addr::new(127, 0, 0, 11),
                    replication_delay: Some(Duration::from_secs(15)),
                },
                DcConfig {
                    address: Ipv4Addr::new(127, 0, 0, 12),
                    replication_delay: Some(Duration::from_secs(15)),
                },
            ],
            admin_password: super::LAB_DEFAULT_PASSWORD.to_string(),
            users: Vec::new(),
            global_catalog_port: 0,
            global_catalog_ldap_port: 0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    /// "lab.example.test": the base DN is DC=lab,DC=example,DC=test.
    pub dns_domain: String,
    /// "LAB"
    pub netbios_domain: String,
    pub dcs: Vec<DcConfig>,
    /// LDAPS port shared by every DC's address; 0 = a free one.
    pub ldaps_port: u16,
    /// Plain LDAP (with StartTLS) port; `Some(0)` = a free one, `None` = none.
    pub ldap_port: Option<u16>,
    /// Accept simple binds without TLS (AD and Samba refuse them: result 8).
    pub allow_plain_bind: bool,
    /// Administrator's password (RID 500, Domain Admins).
    pub admin_password: String,
    /// The operator account (in CN=Users) with delegated rights on OU=Staff
    /// only: write userAccountControl, pwdLastSet, lockoutTime, reset passwords.
    pub operator: Option<(String, String)>,
    /// Users made at start (in OU=Staff unless they say otherwise).
    pub users: Vec<SeedUser>,
    /// The Exchange organisation's name (CN=<org>,CN=Microsoft Exchange,...).
    pub exchange_org: String,
    pub exchange_servers: Vec<SeedExchangeServer>,
    /// A child domain, making a two-domain forest with a Global Catalog
    /// [default: none, one domain].
    pub child: Option<ChildDomainConfig>,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        let password = super::LAB_DEFAULT_PASSWORD.to_string();
        DirectoryConfig {
            dns_domain: "lab.example.test".into(),
            netbios_domain: "LAB".into(),
            dcs: vec![
                DcConfig {
                    address: Ipv4Addr::new(127, 0, 0, 1),
                    replication_delay: Some(Duration::from_secs(15)),
                },
                DcConfig {
                    address: Ipv4Addr::new(127, 0, 0, 2),
                    replication_delay: Some(Duration::from_secs(15)),
                },
            ],
            ldaps_port: 0,
            ldap_port: Some(0),
            allow_plain_bind: false,
            admin_password: password.clone(),
            operator: Some(("revoke-op".into(), password)),
            users: Vec::new(),
            exchange_org: "Lab Org".into(),
            exchange_servers: Vec::new(),
            child: None,
        }
    }
}

/// A running lab directory. Dropping it (or [`Directory::stop`]) closes
/// every listener and connection.
pub struct Directory {
    domain: Arc<Domain>,
    /// The child domain of a two-domain forest.
    child: Option<Arc<Domain>>,
    /// The Global Catalog's LDAPS port and plain (StartTLS) port.
    global_catalog: Option<(u16, Option<u16>)>,
    ca_pem: String,
    ldaps_port: u16,
    ldap_port: Option<u16>,
    admin_password: String,
    operator: Option<(String, String)>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Directory {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Binds every address on one port (a free one if `port` is 0).
async fn bind_all(addresses: &[Ipv4Addr], port: u16) -> anyhow::Result<(u16, Vec<TcpListener>)> {
    let tries = if port == 0 { 50 } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let mut listeners = Vec::new();
        let mut chosen = port;
        let mut failed = false;
        for address in addresses {
            match TcpListener::bind((*address, chosen)).await {
                Ok(listener) => {
                    chosen = listener.local_addr()?.port();
                    listeners.push(listener);
                }
                Err(e) => {
                    last =
                        Some(anyhow::Error::new(e).context(format!("binding {address}:{chosen}")));
                    failed = true;
                    break;
                }
            }
        }
        if !failed {
            return Ok((chosen, listeners));
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no address to bind")))
}

impl Directory {
    /// Seeds the domain and starts every DC's listeners on the current runtime.
    pub async fn start(config: DirectoryConfig) -> anyhow::Result<Directory> {
        if config.dcs.is_empty() {
            bail!("the lab directory needs at least one DC");
        }
        let root_addresses: Vec<Ipv4Addr> = config.dcs.iter().map(|d| d.address).collect();
        let ca = super::tls::LabCa::new().context("lab CA")?;
        let base_dn = seed::base_dn(&config.dns_domain);
        let infos: Vec<DcInfo> = root_addresses
            .iter()
            .enumerate()
            .map(|(i, a)| DcInfo {
                host: a.to_string(),
                dsa_dn: seed::dsa_dn(&base_dn, i + 1),
            })
            .collect();
        let domain = Arc::new(Domain::new(
            &config.dns_domain,
            &config.netbios_domain,
            infos,
            vec![None; root_addresses.len()],
            config.allow_plain_bind,
        ));
        seed::seed(&domain, &config).context("seeding the lab directory")?;
        let child = match &config.child {
            Some(child_config) => Some(start_child(&domain, child_config, &config)?),
            None => None,
        };
        for dc in 1..domain.dc_count() {
            domain.pull(0, dc, None);
        }
        if let Some(child) = &child {
            share_configuration(&domain, child);
        }
        let mut domains: Vec<(&Arc<Domain>, &DcConfig, usize)> = Vec::new();
        for (i, dc) in config.dcs.iter().enumerate() {
            domains.push((&domain, dc, i));
        }
        if let (Some(child), Some(child_config)) = (&child, &config.child) {
            for (i, dc) in child_config.dcs.iter().enumerate() {
                domains.push((child, dc, i));
            }
        }
        for (d, dc, i) in &domains {
            d.set_delay(*i, dc.replication_delay);
            d.set_runtime(tokio::runtime::Handle::current());
        }

        // Every DC of every domain on the same ports (revoke reaches each DC
        // on the port of the URL it was given).
        let addresses: Vec<Ipv4Addr> = domains.iter().map(|(_, dc, _)| dc.address).collect();
        let (ldaps_port, ldaps) = bind_all(&addresses, config.ldaps_port)
            .await
            .context("LDAPS listeners")?;
        let plain = match config.ldap_port {
            Some(port) => Some(bind_all(&addresses, port).await.context("LDAP listeners")?),
            None => None,
        };
        let ldap_port = plain.as_ref().map(|(p, _)| *p);
        let mut tasks = Vec::new();
        let mut plain_listeners = plain.map(|(_, l)| l).unwrap_or_default().into_iter();
        let mut first_acceptor = None;
        for (listener, (d, _, i)) in ldaps.into_iter().zip(&domains) {
            let name = if d.is_root() {
                format!("DC{}", i + 1)
            } else {
                format!("CHILDDC{}", i + 1)
            };
            let address = IpAddr::V4(d.dcs[*i].host.parse()?);
            let cert = ca.issue_server(&name, &d.dns_domain, address)?;
            let mut tls = (*cert.server_config()?).clone();
            tls.alpn_protocols.clear();
            let acceptor = TlsAcceptor::from(Arc::new(tls));
            first_acceptor.get_or_insert_with(|| acceptor.clone());
            tasks.push(tokio::spawn(accept_loop(
                listener,
                (*d).clone(),
                *i,
                false,
                acceptor.clone(),
                true,
            )));
            if let Some(listener) = plain_listeners.next() {
                tasks.push(tokio::spawn(accept_loop(
                    listener,
                    (*d).clone(),
                    *i,
                    false,
                    acceptor,
                    false,
                )));
            }
        }
        // The Global Catalog on the root's first DC, on ports of its own.
        let mut global_catalog = None;
        if let (Some(child_config), Some(acceptor)) = (&config.child, first_acceptor) {
            let gc_address = [root_addresses[0]];
            let (gc_port, mut gc) = bind_all(&gc_address, child_config.global_catalog_port)
                .await
                .context("Global Catalog listener")?;
            tasks.push(tokio::spawn(accept_loop(
                gc.remove(0),
                domain.clone(),
                0,
                true,
                acceptor.clone(),
                true,
            )));
            let mut gc_plain = None;
            if ldap_port.is_some() {
                let (port, mut listeners) =
                    bind_all(&gc_address, child_config.global_catalog_ldap_port)
                        .await
                        .context("Global Catalog StartTLS listener")?;
                tasks.push(tokio::spawn(accept_loop(
                    listeners.remove(0),
                    domain.clone(),
                    0,
                    true,
                    acceptor,
                    false,
                )));
                gc_plain = Some(port);
            }
            global_catalog = Some((gc_port, gc_plain));
        }
        Ok(Directory {
            domain,
            child,
            global_catalog,
            ca_pem: ca.cert_pem().to_string(),
            ldaps_port,
            ldap_port,
            admin_password: config.admin_password,
            operator: config.operator,
            tasks,
        })
    }

    /// Closes every listener and connection.
    pub fn stop(self) {}

    /// Serve rootDSE `replicateSingleObject` as Windows does (to
    /// administrators and accounts granted Replication Synchronization), or
    /// refuse it as Samba does (the default).
    pub fn set_forced_replication(&self, on: bool) {
        self.domain.set_forced_replication(on);
    }

    /// Grants Replication Synchronization on the domain to the object `dn`.
    pub fn grant_replication_sync(&self, dn: &str) {
        self.domain.grant_replication_sync(dn);
    }

    // ------------------------------------------------------------ where

    /// Number of DCs.
    pub fn dc_count(&self) -> usize {
        self.domain.dc_count()
    }

    /// DC `dc`'s (1-based, as in "dc1") address and dNSHostName.
    pub fn host(&self, dc: usize) -> &str {
        &self.domain.dcs[dc - 1].host
    }

    pub fn ldaps_port(&self) -> u16 {
        self.ldaps_port
    }

    pub fn ldap_port(&self) -> Option<u16> {
        self.ldap_port
    }

    /// `ldaps://127.0.0.N:PORT` (no port when it is 636).
    pub fn ldaps_url(&self, dc: usize) -> String {
        match self.ldaps_port {
            636 => format!("ldaps://{}", self.host(dc)),
            port => format!("ldaps://{}:{port}", self.host(dc)),
        }
    }

    /// `ldap://127.0.0.N:PORT` for StartTLS, if there is a plain listener.
    pub fn ldap_url(&self, dc: usize) -> Option<String> {
        self.ldap_port.map(|port| match port {
            389 => format!("ldap://{}", self.host(dc)),
            port => format!("ldap://{}:{port}", self.host(dc)),
        })
    }

    /// The child domain of a two-domain forest ([`DirectoryConfig::child`]).
    pub fn child(&self) -> Option<ChildDomain<'_>> {
        self.child.as_ref().map(|domain| ChildDomain { domain })
    }

    /// `ldaps://<root's first DC>:PORT` of the forest's Global Catalog
    /// (a two-domain forest only).
    pub fn global_catalog_url(&self) -> Option<String> {
        self.global_catalog
            .map(|(port, _)| format!("ldaps://{}:{port}", self.host(1)))
    }

    /// `ldap://<root's first DC>:PORT` of the Global Catalog, for StartTLS.
    pub fn global_catalog_ldap_url(&self) -> Option<String> {
        self.global_catalog
            .and_then(|(_, plain)| plain)
            .map(|port| format!("ldap://{}:{port}", self.host(1)))
    }

    /// PEM of the CA that signed every DC's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn base_dn(&self) -> &str {
        &self.domain.base_dn
    }

    pub fn config_dn(&self) -> &str {
        &self.domain.config_dn
    }

    pub fn dns_domain(&self) -> &str {
        &self.domain.dns_domain
    }

    pub fn netbios_domain(&self) -> &str {
        &self.domain.netbios
    }

    /// S-1-5-21-...
    pub fn domain_sid(&self) -> &str {
        &self.domain.domain_sid
    }

    /// DN of DC `dc`'s nTDSDSA object (its dsServiceName).
    pub fn dsa_dn(&self, dc: usize) -> &str {
        &self.domain.dcs[dc - 1].dsa_dn
    }

    /// ("Administrator@<dns domain>", password)
    pub fn admin(&self) -> (String, &str) {
        (
            format!("Administrator@{}", self.domain.dns_domain),
            &self.admin_password,
        )
    }

    /// The operator's UPN and password, if the directory has one.
    pub fn operator(&self) -> Option<(String, &str)> {
        self.operator
            .as_ref()
            .map(|(sam, pw)| (format!("{sam}@{}", self.domain.dns_domain), pw.as_str()))
    }

    // ------------------------------------------------------------ writes (as Administrator)

    fn admin_bound() -> Bound {
        Bound {
            dn: None,
            admin: true,
        }
    }

    /// Adds an object on DC `dc`, as Administrator over LDAPS would.
    pub fn add(&self, dc: usize, dn: &str, attrs: &[(&str, &[&[u8]])]) -> Result<(), LdapError> {
        let attrs = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|x| x.to_vec()).collect()))
            .collect();
        self.domain
            .add(dc - 1, &Self::admin_bound(), dn, attrs, true)
    }

    /// An enabled user (512) `sam` under `parent` (default OU=Staff) with
    /// UPN `sam@<dns domain>` and `password`; returns its DN.
    pub fn add_user(
        &self,
        dc: usize,
        parent: Option<&str>,
        sam: &str,
        password: &str,
    ) -> Result<String, LdapError> {
        add_user_in(&self.domain, dc, parent, sam, password)
    }

    /// A global security group `sam` under `parent` (default OU=Staff).
    pub fn add_group(
        &self,
        dc: usize,
        parent: Option<&str>,
        sam: &str,
    ) -> Result<String, LdapError> {
        let parent = parent.map_or_else(|| format!("OU=Staff,{}", self.base_dn()), str::to_string);
        let dn = format!("CN={sam},{parent}");
        self.add(
            dc,
            &dn,
            &[
                ("objectClass", &[b"group"]),
                ("sAMAccountName", &[sam.as_bytes()]),
            ],
        )?;
        Ok(dn)
    }

    fn modify(
        &self,
        dc: usize,
        dn: &str,
        op: LdapModifyType,
        attr: &str,
        values: Vec<Vec<u8>>,
    ) -> Result<(), LdapError> {
        let change = Modification {
            op,
            attr: attr.to_string(),
            values,
        };
        self.domain
            .modify(dc - 1, &Self::admin_bound(), dn, &[change], true)
    }

    pub fn add_member(&self, dc: usize, group_dn: &str, member_dn: &str) -> Result<(), LdapError> {
        self.modify(
            dc,
            group_dn,
            LdapModifyType::Add,
            "member",
            vec![member_dn.as_bytes().to_vec()],
        )
    }

    pub fn set_user_account_control(
        &self,
        dc: usize,
        dn: &str,
        value: u32,
    ) -> Result<(), LdapError> {
        let value = (value as i32).to_string().into_bytes();
        self.modify(
            dc,
            dn,
            LdapModifyType::Replace,
            "userAccountControl",
            vec![value],
        )
    }

    /// An administrative reset (the previous password keeps working until the next one).
    pub fn set_password(&self, dc: usize, dn: &str, password: &str) -> Result<(), LdapError> {
        let pwd = revoke_core::directory::password::unicode_pwd(&revoke_core::Password::new(
            password.into(),
        ));
        self.modify(dc, dn, LdapModifyType::Replace, "unicodePwd", vec![pwd])
    }

    /// Deletes a leaf object on DC `dc` (replicated like any change).
    pub fn delete(&self, dc: usize, dn: &str) -> Result<(), LdapError> {
        self.domain.delete(dc - 1, &Self::admin_bound(), dn)
    }

    /// Replaces any attribute (values as text) on DC `dc`.
    pub fn replace(
        &self,
        dc: usize,
        dn: &str,
        attr: &str,
        values: &[&str],
    ) -> Result<(), LdapError> {
        let values = values.iter().map(|v| v.as_bytes().to_vec()).collect();
        self.modify(dc, dn, LdapModifyType::Replace, attr, values)
    }

    // ------------------------------------------------------------ reads

    /// Every attribute of `dn` as DC `dc` has it (binary ones lossily as
    /// text; secrets never), or None.
    pub fn read(&self, dc: usize, dn: &str) -> Option<HashMap<String, Vec<String>>> {
        let data = self.domain.data(dc - 1);
        data.get(dn).map(domain::as_strings)
    }

    /// Would DC `dc` accept this simple bind (over TLS)? Err carries AD's
    /// result 49 text (`data 533`, ...).
    pub fn bind(&self, dc: usize, who: &str, password: &str) -> Result<(), LdapError> {
        self.domain.bind(dc - 1, who, password, true).map(|_| ())
    }

    // ------------------------------------------------------------ replication

    /// Pulls DC `from`'s newer objects into DC `to` now: one object, or all
    /// with `None`. Returns how many objects changed on `to`.
    pub fn sync(&self, from: usize, to: usize, dn: Option<&str>) -> usize {
        self.domain.pull(from - 1, to - 1, dn)
    }

    /// Every DC gets every other DC's newer objects.
    pub fn sync_all(&self) {
        let n = self.dc_count();
        for from in 1..=n {
            for to in 1..=n {
                self.sync(from, to, None);
            }
        }
    }

    /// AD's MaxPageSize: the most entries a search (or one page of a
    /// paged search) returns [default: 1,000, as AD].
    pub fn set_max_page_size(&self, entries: usize) {
        self.domain
            .max_page_size
            .store(entries, std::sync::atomic::Ordering::Relaxed);
    }

    /// Changes how long changes take to reach DC `dc` (None = never).
    pub fn set_replication_delay(&self, dc: usize, delay: Option<Duration>) {
        self.domain.set_delay(dc - 1, delay);
    }
}

/// The child domain of a running two-domain forest ([`Directory::child`]);
/// DC numbers are 1-based, as for the root.
pub struct ChildDomain<'a> {
    domain: &'a Arc<Domain>,
}

impl ChildDomain<'_> {
    pub fn dc_count(&self) -> usize {
        self.domain.dc_count()
    }

    /// DC `dc`'s address and dNSHostName.
    pub fn host(&self, dc: usize) -> &str {
        &self.domain.dcs[dc - 1].host
    }

    pub fn base_dn(&self) -> &str {
        &self.domain.base_dn
    }

    pub fn dns_domain(&self) -> &str {
        &self.domain.dns_domain
    }

    pub fn netbios_domain(&self) -> &str {
        &self.domain.netbios
    }

    pub fn domain_sid(&self) -> &str {
        &self.domain.domain_sid
    }

    /// An enabled user (512) `sam` under `parent` (default the child's
    /// OU=Staff) with UPN `sam@<child DNS name>`; returns its DN.
    pub fn add_user(
        &self,
        dc: usize,
        parent: Option<&str>,
        sam: &str,
        password: &str,
    ) -> Result<String, LdapError> {
        add_user_in(self.domain, dc, parent, sam, password)
    }

    /// Every attribute of `dn` as the child's DC `dc` has it, or None.
    pub fn read(&self, dc: usize, dn: &str) -> Option<HashMap<String, Vec<String>>> {
        let data = self.domain.data(dc - 1);
        data.get(dn).map(domain::as_strings)
    }

    /// Every child DC gets every other child DC's newer objects.
    pub fn sync_all(&self) {
        let n = self.dc_count();
        for from in 0..n {
            for to in 0..n {
                self.domain.pull(from, to, None);
            }
        }
    }
}

/// An enabled user in `domain` (see [`Directory::add_user`]).
fn add_user_in(
    domain: &Arc<Domain>,
    dc: usize,
    parent: Option<&str>,
    sam: &str,
    password: &str,
) -> Result<String, LdapError> {
    let parent = parent.map_or_else(|| format!("OU=Staff,{}", domain.base_dn), str::to_string);
    let dn = format!("CN={sam},{parent}");
    let upn = format!("{sam}@{}", domain.dns_domain);
    let pwd =
        revoke_core::directory::password::unicode_pwd(&revoke_core::Password::new(password.into()));
    let attrs: Vec<(String, Vec<Vec<u8>>)> = vec![
        ("objectClass".into(), vec![b"user".to_vec()]),
        ("sAMAccountName".into(), vec![sam.as_bytes().to_vec()]),
        ("userPrincipalName".into(), vec![upn.into_bytes()]),
        ("unicodePwd".into(), vec![pwd]),
        ("userAccountControl".into(), vec![b"512".to_vec()]),
    ];
    let admin = Bound {
        dn: None,
        admin: true,
    };
    domain.add(dc - 1, &admin, &dn, attrs, true)?;
    Ok(dn)
}

/// The child domain: seeded (its tree, and its crossRef and DCs in the
/// root's configuration partition), linked with the root both ways, and
/// its first DC's data pulled by its other DCs.
fn start_child(
    root: &Arc<Domain>,
    child_config: &ChildDomainConfig,
    config: &DirectoryConfig,
) -> anyhow::Result<Arc<Domain>> {
    if child_config.dcs.is_empty() {
        bail!("the child domain needs at least one DC");
    }
    if !child_config
        .dns_domain
        .to_ascii_lowercase()
        .ends_with(&format!(".{}", config.dns_domain.to_ascii_lowercase()))
    {
        bail!(
            "the child domain {} must be below {}",
            child_config.dns_domain,
            config.dns_domain
        );
    }
    let infos: Vec<DcInfo> = child_config
        .dcs
        .iter()
        .enumerate()
        .map(|(i, dc)| DcInfo {
            host: dc.address.to_string(),
            dsa_dn: seed::child_dsa_dn(&root.config_dn, i + 1),
        })
        .collect();
    let child = Arc::new(Domain::new_child(
        &child_config.dns_domain,
        &child_config.netbios_domain,
        infos,
        vec![None; child_config.dcs.len()],
        config.allow_plain_bind,
        root,
    ));
    let _ = root.peer.set(Arc::downgrade(&child));
    let _ = child.peer.set(Arc::downgrade(root));
    seed::seed_child(&child, root, child_config).context("seeding the child domain")?;
    for dc in 1..child.dc_count() {
        child.pull(0, dc, None);
    }
    Ok(child)
}

/// Every child DC gets the forest's configuration partition as the
/// root's first DC holds it (one partition, seen by all DCs).
fn share_configuration(root: &Domain, child: &Domain) {
    let config = store::norm_dn(&root.config_dn);
    let entries: Vec<store::Entry> = root
        .data(0)
        .entries
        .iter()
        .filter(|(norm, _)| **norm == config || norm.ends_with(&format!(",{config}")))
        .map(|(_, e)| e.clone())
        .collect();
    for dc in 0..child.dc_count() {
        let mut data = child.data(dc);
        for entry in &entries {
            data.put(entry.clone(), true);
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    domain: Arc<Domain>,
    dc: usize,
    gc: bool,
    acceptor: TlsAcceptor,
    ldaps: bool,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            // Out of file descriptors, say: do not spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (domain, acceptor) = (domain.clone(), acceptor.clone());
        if ldaps {
            connections.spawn(server::serve_ldaps(domain, dc, gc, acceptor, tcp));
        } else {
            connections.spawn(server::serve_plain(domain, dc, gc, acceptor, tcp));
        }
        while connections.try_join_next().is_some() {}
    }
}
