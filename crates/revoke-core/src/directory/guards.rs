//! Accounts revoke refuses to touch. A refusal changes nothing anywhere and
//! ends the run with exit code 3.

use ldap3::ldap_escape;

use super::account::UserAccount;
use super::connection::Connection;
use super::{DirectoryError, account};

/// Why an account was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    BuiltinAdministrator,
    Krbtgt,
    Operator,
    AdminCount,
    PrivilegedGroup { group: String },
}

impl Refusal {
    /// Overridable with `--allow-privileged`.
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
            Refusal::Operator => format!(
                "{who} is the account revoke is running as; revoke does not lock out its own operator"
            ),
            Refusal::AdminCount => format!(
                "{who} has adminCount=1: it is, or was, a member of a protected group. \
                 If this is intended, run again with --allow-privileged"
            ),
            Refusal::PrivilegedGroup { group } => format!(
                "{who} is a member of {group} (directly or through nested groups). \
                 If this is intended, run again with --allow-privileged"
            ),
        }
    }
}

/// Well-known RIDs of privileged domain groups, and builtin group SIDs.
const PRIVILEGED_DOMAIN_RIDS: &[(u32, &str)] = &[
    (512, "Domain Admins"),
    (518, "Schema Admins"),
    (519, "Enterprise Admins"),
];
const PRIVILEGED_BUILTIN_SIDS: &[(&str, &str)] = &[
    ("S-1-5-32-544", "Administrators"),
    ("S-1-5-32-548", "Account Operators"),
    ("S-1-5-32-549", "Server Operators"),
    ("S-1-5-32-550", "Print Operators"),
    ("S-1-5-32-551", "Backup Operators"),
];

/// The account revoke is bound as, to refuse acting on it.
#[derive(Debug, Clone, Default)]
pub struct Operator {
    pub dn: Option<String>,
    pub sid: Option<String>,
}

impl Operator {
    /// Looks the operator up by the name it bound with (UPN, DN, DOMAIN\sam).
    pub async fn find(conn: &mut Connection, bind_user: &str) -> Self {
        match super::identity::resolve(conn, bind_user).await {
            Ok(account) => Operator {
                dn: Some(account.dn),
                sid: Some(account.sid),
            },
            Err(error) => {
                tracing::warn!("cannot look up the operator account {bind_user}: {error}");
                Operator::default()
            }
        }
    }

    fn is(&self, user: &UserAccount) -> bool {
        self.dn
            .as_deref()
            .is_some_and(|dn| dn.eq_ignore_ascii_case(&user.dn))
            || self.sid.as_deref().is_some_and(|sid| sid == user.sid)
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
    if operator.is(user) {
        return Ok(Some(Refusal::Operator));
    }
    if allow_privileged {
        return Ok(None);
    }
    if let Some(group) = privileged_group(conn, user).await? {
        return Ok(Some(Refusal::PrivilegedGroup { group }));
    }
    if user.admin_count {
        return Ok(Some(Refusal::AdminCount));
    }
    Ok(None)
}

/// The privileged groups the user belongs to, in a fixed order: through
/// its primary group, or transitively through `member`
/// (LDAP_MATCHING_RULE_IN_CHAIN, one query). None if there are none.
async fn privileged_group(
    conn: &mut Connection,
    user: &UserAccount,
) -> Result<Option<String>, DirectoryError> {
    let domain_sid = user.sid.rsplit_once('-').map(|(d, _)| d.to_string());
    let filter = format!(
        "(&(objectClass=group)(member:1.2.840.113556.1.4.1941:={}))",
        ldap_escape(user.dn.as_str())
    );
    let base = conn.root_dse.default_naming_context.clone();
    let groups = conn.search(&base, &filter, &["objectSid"]).await?;
    let sids: Vec<String> = groups.iter().filter_map(account::object_sid).collect();
    let is_member = |sid: &str| sids.iter().any(|s| s == sid);
    let mut names = Vec::new();
    for (rid, name) in PRIVILEGED_DOMAIN_RIDS {
        if user.primary_group_id == *rid {
            names.push(format!("{name} (its primary group)"));
        } else if let Some(domain) = &domain_sid
            && is_member(&format!("{domain}-{rid}"))
        {
            names.push(name.to_string());
        }
    }
    for (sid, name) in PRIVILEGED_BUILTIN_SIDS {
        if is_member(sid) {
            names.push(name.to_string());
        }
    }
    Ok((!names.is_empty()).then(|| names.join(", ")))
}
