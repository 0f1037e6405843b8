//! What a fresh lab directory holds: the domain and its well-known
//! containers, groups and accounts, the configuration partition with a
//! crossRef, one server + NTDS Settings per DC, and the Exchange servers
//! the caller asked for. Mirrors what scripts/samba-ad.sh provisions.

use std::sync::Arc;

use super::access::{Bound, Delegation};
use super::domain::Domain;
use super::store::{LdapResult, norm_dn, sid_bytes};
use super::{ChildDomainConfig, DirectoryConfig};

pub fn base_dn(dns_domain: &str) -> String {
    dns_domain
        .split('.')
        .map(|p| format!("DC={p}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn dsa_dn(base_dn: &str, dc: usize) -> String {
    format!("CN=NTDS Settings,{}", server_dn(base_dn, dc))
}

fn server_dn(base_dn: &str, dc: usize) -> String {
    format!("CN=DC{dc},CN=Servers,CN=Default-First-Site-Name,CN=Sites,CN=Configuration,{base_dn}")
}

/// A child domain's DC `dc` (CHILDDC1, ...) in the forest root's
/// configuration partition (`config_dn`).
pub fn child_dsa_dn(config_dn: &str, dc: usize) -> String {
    format!("CN=NTDS Settings,{}", child_server_dn(config_dn, dc))
}

fn child_server_dn(config_dn: &str, dc: usize) -> String {
    format!("CN=CHILDDC{dc},CN=Servers,CN=Default-First-Site-Name,CN=Sites,{config_dn}")
}

/// Global security (-2147483646), universal security (-2147483640),
/// builtin local security (-2147483643).
const GLOBAL: &str = "-2147483646";
const UNIVERSAL: &str = "-2147483640";
const BUILTIN: &str = "-2147483643";

struct Seeder<'d> {
    domain: &'d Arc<Domain>,
    admin: Bound,
}

impl Seeder<'_> {
    /// `domain`'s crossRef in the forest's partitions container (this
    /// seeder's domain holds the configuration partition).
    fn cross_ref(&self, partitions: &str, domain: &Domain) -> LdapResult<()> {
        self.add(
            &format!("CN={},{partitions}", domain.netbios),
            &[
                ("objectClass", &["crossRef"]),
                ("nCName", &[&domain.base_dn]),
                ("nETBIOSName", &[&domain.netbios]),
                ("dnsRoot", &[&domain.dns_domain]),
                // FLAG_CR_NTDS_NC | FLAG_CR_NTDS_DOMAIN (docs/windows-behaviour.md §2.28).
                ("systemFlags", &["3"]),
            ],
        )
    }

    /// Every DC of `dcs`'s domain: its computer object (`<prefix>N$`, in
    /// Domain Controllers) there, and its server (at `server_dn(N)`) and NTDS
    /// Settings objects in this seeder's configuration partition.
    fn domain_controllers(
        &self,
        dcs: &Seeder,
        prefix: &str,
        server_dn: impl Fn(usize) -> String,
    ) -> LdapResult<()> {
        let base = dcs.domain.base_dn.clone();
        let config_dn = self.domain.config_dn.clone();
        let schema = format!("CN=Schema,{config_dn}");
        let masters = [base.as_str(), config_dn.as_str(), schema.as_str()];
        for (i, dc) in dcs.domain.dcs.clone().iter().enumerate() {
            let n = i + 1;
            let computer = format!("CN={prefix}{n},OU=Domain Controllers,{base}");
            let sam = format!("{prefix}{n}$");
            dcs.add(
                &computer,
                &[
                    ("objectClass", &["computer"]),
                    ("sAMAccountName", &[&sam]),
                    ("userAccountControl", &["532480"]),
                    ("dNSHostName", &[&dc.host]),
                ],
            )?;
            dcs.member(&format!("CN=Domain Controllers,CN=Users,{base}"), &computer)?;
            self.add(
                &server_dn(n),
                &[
                    ("objectClass", &["server"]),
                    ("dNSHostName", &[&dc.host]),
                    ("serverReference", &[&computer]),
                ],
            )?;
            self.add(
                &dc.dsa_dn,
                &[
                    ("objectClass", &["applicationSettings", "nTDSDSA"]),
                    ("hasMasterNCs", &masters),
                    ("msDS-hasMasterNCs", &masters),
                    ("options", &["1"]),
                ],
            )?;
        }
        Ok(())
    }

    fn add(&self, dn: &str, attrs: &[(&str, &[&str])]) -> LdapResult<()> {
        self.add_raw(dn, attrs, Vec::new())
    }

    fn add_raw(
        &self,
        dn: &str,
        attrs: &[(&str, &[&str])],
        raw: Vec<(String, Vec<Vec<u8>>)>,
    ) -> LdapResult<()> {
        let mut all: Vec<(String, Vec<Vec<u8>>)> = attrs
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    v.iter().map(|s| s.as_bytes().to_vec()).collect(),
                )
            })
            .collect();
        all.extend(raw);
        self.domain.add(0, &self.admin, dn, all, true)
    }

    fn group(&self, dn: &str, sam: &str, sid: &str, group_type: &str) -> LdapResult<()> {
        self.add_raw(
            dn,
            &[
                ("objectClass", &["group"]),
                ("sAMAccountName", &[sam]),
                ("groupType", &[group_type]),
                ("description", &["well-known group"]),
            ],
            vec![("objectSid".into(), vec![sid_bytes(sid)])],
        )
    }

    fn user(
        &self,
        dn: &str,
        sam: &str,
        extra: &[(&str, &[&str])],
        password: Option<&str>,
        sid: Option<&str>,
    ) -> LdapResult<()> {
        let upn = format!("{sam}@{}", self.domain.dns_domain);
        let mut attrs: Vec<(&str, &[&str])> = vec![
            ("objectClass", &["user"]),
            ("sAMAccountName", std::slice::from_ref(&sam)),
        ];
        let upn_values = [upn.as_str()];
        // Like Samba's, the provisioned Administrator has no UPN: it binds
        // by its implicit one (docs/windows-behaviour.md §7.13).
        if sam != "Administrator" {
            attrs.push(("userPrincipalName", &upn_values));
        }
        attrs.extend_from_slice(extra);
        let mut raw = Vec::new();
        if let Some(sid) = sid {
            raw.push(("objectSid".to_string(), vec![sid_bytes(sid)]));
        }
        if let Some(password) = password {
            let pwd = revoke_core::directory::password::unicode_pwd(&revoke_core::Password::new(
                password.into(),
            ));
            raw.push(("unicodePwd".to_string(), vec![pwd]));
        }
        self.add_raw(dn, &attrs, raw)
    }

    /// The domain head, its containers, builtin and domain groups, the
    /// built-in Administrator, Guest and krbtgt. `forest_root`: the root
    /// domain has Schema and Enterprise Admins, a child domain has not.
    fn domain_tree(&self, admin_password: &str, forest_root: bool) -> LdapResult<()> {
        let base = self.domain.base_dn.clone();
        let sid = self.domain.domain_sid.clone();
        let dsid = |rid: u32| format!("{sid}-{rid}");
        let users = format!("CN=Users,{base}");
        let builtin = format!("CN=Builtin,{base}");
        self.add_raw(
            &base,
            &[("objectClass", &["domain", "domainDNS"])],
            vec![("objectSid".into(), vec![sid_bytes(&sid)])],
        )?;
        for (dn, class) in [
            (users.clone(), "container"),
            (format!("CN=Computers,{base}"), "container"),
            (
                format!("OU=Domain Controllers,{base}"),
                "organizationalUnit",
            ),
            (format!("OU=Staff,{base}"), "organizationalUnit"),
        ] {
            self.add(&dn, &[("objectClass", &[class])])?;
        }
        self.add_raw(
            &builtin,
            &[("objectClass", &["builtinDomain"])],
            vec![("objectSid".into(), vec![sid_bytes("S-1-5-32")])],
        )?;
        for (name, rid) in [
            ("Administrators", 544),
            ("Users", 545),
            ("Guests", 546),
            ("Account Operators", 548),
            ("Server Operators", 549),
            ("Print Operators", 550),
            ("Backup Operators", 551),
            ("Replicator", 552),
        ] {
            self.group(
                &format!("CN={name},{builtin}"),
                name,
                &format!("S-1-5-32-{rid}"),
                BUILTIN,
            )?;
        }
        for (name, rid, kind) in [
            ("Domain Admins", 512, GLOBAL),
            ("Domain Users", 513, GLOBAL),
            ("Domain Guests", 514, GLOBAL),
            ("Domain Computers", 515, GLOBAL),
            ("Domain Controllers", 516, GLOBAL),
            ("Schema Admins", 518, UNIVERSAL),
            ("Cert Publishers", 517, "-2147483644"),
            ("Enterprise Admins", 519, UNIVERSAL),
            ("Group Policy Creator Owners", 520, GLOBAL),
            ("Read-only Domain Controllers", 521, GLOBAL),
        ] {
            if !forest_root && (rid == 518 || rid == 519) {
                continue;
            }
            self.group(&format!("CN={name},{users}"), name, &dsid(rid), kind)?;
        }
        let group = |name: &str| format!("CN={name},{users}");
        let administrator = format!("CN=Administrator,{users}");
        self.user(
            &administrator,
            "Administrator",
            &[
                ("userAccountControl", &["66048"]),
                ("adminCount", &["1"]),
                (
                    "description",
                    &["Built-in account for administering the computer/domain"],
                ),
            ],
            Some(admin_password),
            Some(&dsid(500)),
        )?;
        self.user(
            &format!("CN=Guest,{users}"),
            "Guest",
            &[
                ("userAccountControl", &["66082"]),
                ("primaryGroupID", &["514"]),
            ],
            None,
            Some(&dsid(501)),
        )?;
        self.user(
            &format!("CN=krbtgt,{users}"),
            "krbtgt",
            &[
                ("userAccountControl", &["514"]),
                ("adminCount", &["1"]),
                ("description", &["Key Distribution Center Service Account"]),
            ],
            Some(&random_password()),
            Some(&dsid(502)),
        )?;
        let forest_groups: &[&str] = if forest_root {
            &["Domain Admins", "Enterprise Admins", "Schema Admins"]
        } else {
            &["Domain Admins"]
        };
        for g in forest_groups {
            self.member(&group(g), &administrator)?;
        }
        let administrators = format!("CN=Administrators,{builtin}");
        let mut members = vec![administrator.clone(), group("Domain Admins")];
        if forest_root {
            members.push(group("Enterprise Admins"));
        }
        for member in members {
            self.member(&administrators, &member)?;
        }
        Ok(())
    }

    /// Users made at start, in OU=Staff unless they say otherwise.
    fn seed_users(&self, users: &[super::SeedUser]) -> LdapResult<()> {
        let staff = format!("OU=Staff,{}", self.domain.base_dn);
        for u in users {
            let cn = u.cn.clone().unwrap_or_else(|| u.sam.clone());
            let parent = u.parent.clone().unwrap_or_else(|| staff.clone());
            let mut extra: Vec<(&str, &[&str])> = vec![("userAccountControl", &["512"])];
            let display = u.display_name.as_deref().map(|d| [d]);
            if let Some(d) = &display {
                extra.push(("displayName", d));
            }
            let mail = u.mail.as_deref().map(|m| [m]);
            if let Some(m) = &mail {
                extra.push(("mail", m));
            }
            if u.admin_count {
                extra.push(("adminCount", &["1"]));
            }
            self.user(
                &format!("CN={cn},{parent}"),
                &u.sam,
                &extra,
                Some(&u.password),
                None,
            )?;
        }
        Ok(())
    }

    fn member(&self, group: &str, member: &str) -> LdapResult<()> {
        let change = super::domain::Modification {
            op: ldap3_proto::proto::LdapModifyType::Add,
            attr: "member".into(),
            values: vec![member.as_bytes().to_vec()],
        };
        self.domain.modify(0, &self.admin, group, &[change], true)
    }
}

/// A child domain of the forest: its own tree (in `child`'s first DC), and
/// in the forest root's configuration partition (`root`'s first DC) its
/// crossRef and the server and NTDS Settings objects of its DCs.
pub fn seed_child(
    child: &Arc<Domain>,
    root: &Arc<Domain>,
    config: &ChildDomainConfig,
) -> LdapResult<()> {
    let admin = Bound {
        dn: None,
        admin: true,
    };
    let c = Seeder {
        domain: child,
        admin: admin.clone(),
    };
    c.domain_tree(&config.admin_password, false)?;
    c.seed_users(&config.users)?;
    let r = Seeder {
        domain: root,
        admin,
    };
    let config_dn = root.config_dn.clone();
    let partitions = format!("CN=Partitions,{config_dn}");
    r.cross_ref(&partitions, child)?;
    r.domain_controllers(&c, "CHILDDC", |n| child_server_dn(&config_dn, n))?;
    Ok(())
}

pub fn seed(domain: &Arc<Domain>, config: &DirectoryConfig) -> LdapResult<()> {
    let s = Seeder {
        domain,
        admin: Bound {
            dn: None,
            admin: true,
        },
    };
    let base = domain.base_dn.clone();
    let config_dn = domain.config_dn.clone();
    let users = format!("CN=Users,{base}");
    let staff = format!("OU=Staff,{base}");

    s.domain_tree(&config.admin_password, true)?;

    if let Some((sam, password)) = &config.operator {
        let dn = format!("CN={sam},{users}");
        s.user(
            &dn,
            sam,
            &[
                ("userAccountControl", &["512"]),
                (
                    "description",
                    &["the account revoke binds as; delegated rights on OU=Staff only"],
                ),
            ],
            Some(password),
            None,
        )?;
        domain
            .delegations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Delegation {
                trustee: norm_dn(&dn),
                scope: norm_dn(&staff),
                attributes: [
                    "useraccountcontrol",
                    "pwdlastset",
                    "lockouttime",
                    "unicodepwd",
                    // revoke's audit line with [directory] stamp = true.
                    "info",
                ]
                .map(String::from)
                .to_vec(),
            });
    }
    s.seed_users(&config.users)?;

    // The configuration partition.
    let schema = format!("CN=Schema,{config_dn}");
    let partitions = format!("CN=Partitions,{config_dn}");
    let sites = format!("CN=Sites,{config_dn}");
    let site = format!("CN=Default-First-Site-Name,{sites}");
    let servers = format!("CN=Servers,{site}");
    let services = format!("CN=Services,{config_dn}");
    s.add(&config_dn, &[("objectClass", &["configuration"])])?;
    s.add(&schema, &[("objectClass", &["dMD"])])?;
    s.add(&partitions, &[("objectClass", &["crossRefContainer"])])?;
    s.cross_ref(&partitions, domain)?;
    s.add(&sites, &[("objectClass", &["sitesContainer"])])?;
    s.add(&site, &[("objectClass", &["site"])])?;
    s.add(&servers, &[("objectClass", &["serversContainer"])])?;
    s.domain_controllers(&s, "DC", |n| server_dn(&base, n))?;
    s.add(&services, &[("objectClass", &["container"])])?;
    let exchange = format!("CN=Microsoft Exchange,{services}");
    s.add(
        &exchange,
        &[("objectClass", &["msExchConfigurationContainer"])],
    )?;
    let org = format!("CN={},{exchange}", config.exchange_org);
    let groups = format!("CN=Administrative Groups,{org}");
    let ag = format!("CN=Exchange Administrative Group (FYDIBOHF23SPDLT),{groups}");
    let ex_servers = format!("CN=Servers,{ag}");
    for dn in [&org, &groups, &ag, &ex_servers] {
        s.add(dn, &[("objectClass", &["container"])])?;
    }
    for server in &config.exchange_servers {
        let roles = server.roles.to_string();
        let name = &server.name;
        let addresses = [
            format!("ncacn_vns_spp:{name}"),
            format!("netbios:{name}"),
            format!("ncacn_np:{name}"),
            format!("ncacn_spx:{name}"),
            format!("ncacn_ip_tcp:{}", server.fqdn),
            format!("ncalrpc:{name}"),
        ];
        let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
        s.add(
            &format!("CN={name},{ex_servers}"),
            &[
                ("objectClass", &["server", "msExchExchangeServer"]),
                ("msExchCurrentServerRoles", &[&roles]),
                ("serialNumber", &[&server.version]),
                ("networkAddress", &addresses),
                // Exchange setup records the server's AD site (one site here).
                ("msExchServerSite", &[&site]),
            ],
        )?;
    }
    Ok(())
}

fn random_password() -> String {
    let mut bytes = [0u8; 16];
    let _ = getrandom::fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("Kr{hex}!9")
}
