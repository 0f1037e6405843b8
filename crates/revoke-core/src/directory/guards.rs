//! Accounts revoke refuses to touch, and the operator it must know. A
//! refusal changes nothing anywhere and ends the run with exit code 3.
//!
//! Protected membership comes from the user's `tokenGroups` (one base
//! search: every group of its logon token, nested and primary, as the DC
//! computes it), compared with the protected SIDs of the user's domain and
//! of the forest root domain (docs/windows-behaviour.md §2.17, §2.22).

use super::DirectoryError;
use super::account::{self, SAM_MACHINE_ACCOUNT, UserAccount};
use super::connection::Connection;
use super::identity;

/// Why an account was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    BuiltinAdministrator,
    Krbtgt,
    /// An account a system service runs as: never changed by revoke.
    ServiceAccount {
        kind: ServiceAccount,
    },
    Operator,
    AdminCount,
    PrivilegedGroup {
        group: String,
    },
}

/// The service accounts revoke never changes, and what to do instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceAccount {
    /// `krbtgt_NNNNN`: a read-only DC's own Kerberos account.
    RodcKrbtgt,
    /// `krbtgt_AzureAD`: the Microsoft Entra Kerberos (cloud trust) account.
    AzureAdKrbtgt,
    /// `MSOL_*` / `AAD_*`: Microsoft Entra Connect's directory sync account.
    DirectorySync,
    /// objectClass msDS-GroupManagedServiceAccount.
    GroupManaged,
    /// A computer (or standalone managed service) account.
    Computer,
}

impl ServiceAccount {
    fn of(user: &UserAccount) -> Option<Self> {
        let sam = user.sam.to_ascii_lowercase();
        if user.has_class("msDS-GroupManagedServiceAccount") {
            return Some(ServiceAccount::GroupManaged);
        }
        if user.has_class("computer") || user.sam_account_type == Some(SAM_MACHINE_ACCOUNT) {
            return Some(ServiceAccount::Computer);
        }
        if sam == "krbtgt_azuread" {
            return Some(ServiceAccount::AzureAdKrbtgt);
        }
        if let Some(n) = sam.strip_prefix("krbtgt_")
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
        {
            return Some(ServiceAccount::RodcKrbtgt);
        }
        if sam.starts_with("msol_") || sam.starts_with("aad_") {
            return Some(ServiceAccount::DirectorySync);
        }
        None
    }

    fn explain(self) -> &'static str {
        match self {
            ServiceAccount::RodcKrbtgt => {
                "a read-only DC's Kerberos account (krbtgt_NNNNN): changing it breaks every \
                 logon through that RODC; rotate it with the krbtgt reset procedure instead"
            }
            ServiceAccount::AzureAdKrbtgt => {
                "the Microsoft Entra Kerberos account (krbtgt_AzureAD): rotate its key with \
                 Set-AzureADKerberosServer instead"
            }
            ServiceAccount::DirectorySync => {
                "Microsoft Entra Connect's directory synchronisation account (MSOL_*/AAD_*): \
                 disabling or resetting it stops synchronisation; change its password in the \
                 Entra Connect wizard, which updates both sides"
            }
            ServiceAccount::GroupManaged => {
                "a group managed service account: its password is generated and rotated by the \
                 domain; remove the hosts allowed to retrieve it (msDS-GroupMSAMembership) instead"
            }
            ServiceAccount::Computer => {
                "a computer account: disabling or resetting it breaks the machine's secure \
                 channel; disable or reset the computer in Active Directory Users and Computers"
            }
        }
    }
}

impl Refusal {
    /// Overridable with `--allow-privileged`. Service accounts are not, by
    /// design: no flag lets revoke change them (docs/directory.md, Guards).
    pub fn overridable(&self) -> bool {
        matches!(self, Refusal::AdminCount | Refusal::PrivilegedGroup { .. })
    }

    /// The rule and the reason, in words.
    pub fn explain(&self, user: &UserAccount) -> String {
        let who = format!("{} ({})", user.sam, user.dn);
        match self {
            Refusal::BuiltinAdministrator => format!(
                "{who} is the domain's built-in Administrator (RID 500); revoke never changes it"
            ),
            Refusal::Krbtgt => format!(
                "{who} is krbtgt (RID 502), the Kerberos service account; disabling or resetting it \
                 breaks or weakens every logon in the domain"
            ),
            Refusal::ServiceAccount { kind } => format!(
                "{who} is a service account, which revoke never changes (no flag overrides \
                 this): {}",
                kind.explain()
            ),
            Refusal::Operator => format!(
                "{who} is the account revoke is running as; revoke does not lock out its own operator"
            ),
            Refusal::AdminCount => format!(
                "{who} has adminCount=1: it is, or was, a member of a protected group. \
                 If this is intended, run again with --allow-privileged"
            ),
            Refusal::PrivilegedGroup { group } => format!(
                "{who} is a member of {group} (directly, through nested groups or as its primary \
                 group). If this is intended, run again with --allow-privileged"
            ),
        }
    }
}

/// Privileged groups of the forest root domain (relative to its SID).
const FOREST_ROOT_RIDS: &[(u32, &str)] = &[
    (518, "Schema Admins"),
    (519, "Enterprise Admins"),
    (527, "Enterprise Key Admins"),
];
/// Privileged groups of the user's own domain. Cert Publishers (517) is
/// not protected (MS-ADTS 3.1.1.6.1.2) and not refused.
const DOMAIN_RIDS: &[(u32, &str)] = &[
    (512, "Domain Admins"),
    (516, "Domain Controllers"),
    (521, "Read-only Domain Controllers"),
    (526, "Key Admins"),
];
const BUILTIN_SIDS: &[(&str, &str)] = &[
    ("S-1-5-32-544", "Administrators"),
    ("S-1-5-32-548", "Account Operators"),
    ("S-1-5-32-549", "Server Operators"),
    ("S-1-5-32-550", "Print Operators"),
    ("S-1-5-32-551", "Backup Operators"),
    ("S-1-5-32-552", "Replicator"),
];

/// The account revoke is bound as, to refuse acting on it.
#[derive(Debug, Clone)]
pub struct Operator {
    pub dn: String,
    pub sid: String,
    /// How revoke learnt it, for the log: "Who am I?" or the bind name.
    pub how: String,
}

/// The operator, or why it is not known.
#[derive(Debug, Clone)]
pub enum OperatorLookup {
    Known(Operator),
    /// Nothing may be changed: the "never yourself" guard would be blind.
    Unknown {
        bind_user: String,
        why: String,
    },
}

impl OperatorLookup {
    /// The refusal text for [`OperatorLookup::Unknown`].
    pub fn refusal(bind_user: &str, why: &str) -> String {
        format!(
            "revoke cannot tell which account it is bound as ({bind_user}): {why}. Without \
             knowing it, revoke cannot make sure it does not disable or reset its own operator, \
             so it changes nothing. Bind as the account's userPrincipalName, DOMAIN\\name or DN \
             (--bind-user / [directory] bind_user)"
        )
    }
}

impl Operator {
    /// Who the connection is bound as: LDAP "Who am I?" (RFC 4532) where
    /// the DC answers it (Windows), else the bind name resolved the way AD
    /// resolves it, implicit UPN included (Samba: docs/windows-behaviour.md
    /// §7.7, §7.13).
    pub async fn identify(
        conn: &mut Connection,
        bind_user: &str,
    ) -> Result<OperatorLookup, DirectoryError> {
        let (found, how) = match conn.who_am_i().await? {
            Some(authz_id) => {
                let how = format!("\"Who am I?\" answered {authz_id}");
                (identity::resolve_authz_id(conn, &authz_id).await?, how)
            }
            None => (
                identity::resolve_bind_name(conn, bind_user).await?,
                format!("the bind name {bind_user} (the DC does not answer \"Who am I?\")"),
            ),
        };
        Ok(match found {
            Ok(account) if !account.sid.is_empty() => {
                tracing::debug!("the operator is {} ({how})", account.dn);
                OperatorLookup::Known(Operator {
                    dn: account.dn,
                    sid: account.sid,
                    how,
                })
            }
            Ok(account) => OperatorLookup::Unknown {
                bind_user: bind_user.to_string(),
                why: format!("{} has no readable objectSid ({how})", account.dn),
            },
            Err(why) => OperatorLookup::Unknown {
                bind_user: bind_user.to_string(),
                why: format!("{why} ({how})"),
            },
        })
    }

    fn is(&self, user: &UserAccount) -> bool {
        self.dn.eq_ignore_ascii_case(&user.dn) || (!user.sid.is_empty() && self.sid == user.sid)
    }
}

/// The first rule that refuses `user`, if any.
pub async fn check(
    conn: &mut Connection,
    user: &UserAccount,
    operator: &Operator,
    allow_privileged: bool,
) -> Result<Option<Refusal>, DirectoryError> {
    match user.rid() {
        Some(500) => return Ok(Some(Refusal::BuiltinAdministrator)),
        Some(502) => return Ok(Some(Refusal::Krbtgt)),
        _ => {}
    }
    if let Some(kind) = ServiceAccount::of(user) {
        return Ok(Some(Refusal::ServiceAccount { kind }));
    }
    if operator.is(user) {
        return Ok(Some(Refusal::Operator));
    }
    if allow_privileged {
        return Ok(None);
    }
    if let Some(group) = privileged_groups(conn, user).await? {
        return Ok(Some(Refusal::PrivilegedGroup { group }));
    }
    if user.admin_count {
        return Ok(Some(Refusal::AdminCount));
    }
    Ok(None)
}

/// The protected groups in the user's logon token, in a fixed order; None
/// if there are none.
async fn privileged_groups(
    conn: &mut Connection,
    user: &UserAccount,
) -> Result<Option<String>, DirectoryError> {
    let token = token_groups(conn, user).await?;
    let root = forest_root_sid(conn).await?;
    let domain = user.sid.rsplit_once('-').map(|(d, _)| d.to_string());
    Ok(protected_in(
        &token,
        domain.as_deref(),
        &root,
        user.primary_group_id,
    ))
}

/// Names of the protected SIDs in `token`, joined; None if there are none.
fn protected_in(
    token: &[String],
    domain_sid: Option<&str>,
    root_sid: &str,
    primary_group_id: u32,
) -> Option<String> {
    let has = |sid: &str| token.iter().any(|s| s.eq_ignore_ascii_case(sid));
    let mut names = Vec::new();
    let mut check = |base: Option<&str>, rid: u32, name: &str| {
        if let Some(base) = base
            && has(&format!("{base}-{rid}"))
        {
            let primary = domain_sid == Some(base) && primary_group_id == rid;
            let named = if primary {
                format!("{name} (its primary group)")
            } else {
                name.to_string()
            };
            if !names.contains(&named) {
                names.push(named);
            }
        }
    };
    for (rid, name) in FOREST_ROOT_RIDS {
        check(Some(root_sid), *rid, name);
    }
    for (rid, name) in DOMAIN_RIDS {
        check(domain_sid, *rid, name);
    }
    for (sid, name) in BUILTIN_SIDS {
        if has(sid) {
            names.push(name.to_string());
        }
    }
    (!names.is_empty()).then(|| names.join(", "))
}

/// The user's `tokenGroups`: a constructed attribute, served on a base
/// search only ([MS-ADTS] 3.1.1.4.5.19).
async fn token_groups(
    conn: &mut Connection,
    user: &UserAccount,
) -> Result<Vec<String>, DirectoryError> {
    let entries = conn
        .base_search(&user.dn, "(objectClass=*)", &["tokenGroups"])
        .await?;
    let sids = entries
        .first()
        .map(|e| account::sids(e, "tokenGroups"))
        .unwrap_or_default();
    if sids.is_empty() {
        // Every account has at least its primary group in the token: an
        // empty answer means the attribute was not served, and guessing
        // "unprivileged" would be the unsafe way to fail.
        return Err(DirectoryError::Operation {
            what: format!("reading tokenGroups of {}", user.dn),
            host: conn.host.clone(),
            reason: "the DC returned no groups; revoke cannot check protected membership".into(),
        });
    }
    Ok(sids)
}

/// objectSid of the forest root domain (rootDSE rootDomainNamingContext):
/// as read from the Global Catalog when `conn` is a DC of a child domain,
/// which refers the root's naming context head elsewhere
/// ([`Connection::forest_root_sid`]); else read here.
async fn forest_root_sid(conn: &mut Connection) -> Result<String, DirectoryError> {
    if let Some(sid) = &conn.forest_root_sid {
        return Ok(sid.clone());
    }
    let root = match conn.root_dse.root_domain_naming_context.as_str() {
        "" => conn.root_dse.default_naming_context.clone(),
        dn => dn.to_string(),
    };
    let entry = conn.read(&root, &["objectSid"]).await?;
    entry
        .as_ref()
        .and_then(account::object_sid)
        .ok_or_else(|| DirectoryError::Operation {
            what: format!("reading objectSid of the forest root domain {root}"),
            host: conn.host.clone(),
            reason: "no objectSid returned".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "S-1-5-21-1-2-3";
    const CHILD: &str = "S-1-5-21-4-5-6";

    fn names(token: &[&str], domain: &str, primary: u32) -> Option<String> {
        let token: Vec<String> = token.iter().map(|s| s.to_string()).collect();
        protected_in(&token, Some(domain), ROOT, primary)
    }

    #[test]
    fn forest_groups_count_only_from_the_root_domain() {
        let ea_root = format!("{ROOT}-519");
        let ea_child = format!("{CHILD}-519");
        let users = format!("{CHILD}-513");
        assert_eq!(
            names(&[&users, &ea_root], CHILD, 513).as_deref(),
            Some("Enterprise Admins")
        );
        // A child domain has no Enterprise Admins of its own.
        assert_eq!(names(&[&users, &ea_child], CHILD, 513), None);
        let da_child = format!("{CHILD}-512");
        assert_eq!(
            names(&[&da_child], CHILD, 512).as_deref(),
            Some("Domain Admins (its primary group)")
        );
        let key_admins = format!("{CHILD}-526");
        let rodcs = format!("{CHILD}-521");
        assert_eq!(
            names(&[&key_admins, &rodcs, "S-1-5-32-552"], CHILD, 513).as_deref(),
            Some("Read-only Domain Controllers, Key Admins, Replicator")
        );
        // Cert Publishers is not protected (MS-ADTS 3.1.1.6.1.2).
        assert_eq!(names(&[&format!("{CHILD}-517")], CHILD, 513), None);
    }

    fn account(sam: &str, classes: &[&str], sam_type: u32) -> UserAccount {
        UserAccount {
            dn: format!("CN={sam},CN=Users,DC=x"),
            sam: sam.into(),
            upn: None,
            display_name: None,
            mail: None,
            user_account_control: 512,
            sid: format!("{ROOT}-1200"),
            admin_count: false,
            primary_group_id: 513,
            pwd_last_set: String::new(),
            object_classes: classes.iter().map(|c| c.to_string()).collect(),
            sam_account_type: Some(sam_type),
        }
    }

    #[test]
    fn service_accounts_are_recognised() {
        let user = &["top", "person", "user"];
        let of = |sam: &str| ServiceAccount::of(&account(sam, user, 0x3000_0000));
        assert_eq!(of("krbtgt_12345"), Some(ServiceAccount::RodcKrbtgt));
        assert_eq!(of("KRBTGT_AzureAD"), Some(ServiceAccount::AzureAdKrbtgt));
        assert_eq!(of("MSOL_0123abcd"), Some(ServiceAccount::DirectorySync));
        assert_eq!(of("AAD_9f8e7d"), Some(ServiceAccount::DirectorySync));
        assert_eq!(of("krbtgt_x"), None);
        assert_eq!(of("msolo"), None);
        assert_eq!(of("alice"), None);
        let gmsa = account(
            "web$",
            &["top", "user", "computer", "msDS-GroupManagedServiceAccount"],
            0x3000_0001,
        );
        assert_eq!(
            ServiceAccount::of(&gmsa),
            Some(ServiceAccount::GroupManaged)
        );
        let pc = account("pc1$", &["top", "user", "computer"], 0x3000_0001);
        assert_eq!(ServiceAccount::of(&pc), Some(ServiceAccount::Computer));
    }
}
