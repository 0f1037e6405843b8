//! What the operator typed → exactly one user object.
//!
//! Accepted: `sAMAccountName`, `DOMAIN\sam`, a UPN or mail address
//! (`x@y`, matched against both), or a full DN. Every value put into a
//! filter is escaped (RFC 4515), so `*`, `(`, `)`, `\` and NUL match only
//! themselves.

use ldap3::ldap_escape;

use super::DirectoryError;
use super::account::{USER_ATTRIBUTES, UserAccount};
use super::connection::{Connection, first};

/// Normal user accounts only (SAM_USER_OBJECT): computers, gMSAs (machine
/// accounts), groups and contacts have another sAMAccountType or none.
pub const USER_FILTER: &str = "(sAMAccountType=805306368)";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountName {
    Sam(String),
    DomainSam {
        domain: String,
        sam: String,
    },
    /// `x@y`: a UPN or a mail address.
    Address(String),
    Dn(String),
}

impl AccountName {
    pub fn parse(input: &str) -> Result<Self, DirectoryError> {
        let text = input.trim();
        if text.is_empty() {
            return Err(DirectoryError::BadIdentity(
                "an empty user name: give a sAMAccountName, DOMAIN\\name, UPN, mail address or DN"
                    .into(),
            ));
        }
        if let Some((domain, sam)) = text.split_once('\\')
            && !domain.is_empty()
            && !sam.is_empty()
            && !domain.contains(['=', ',', '@'])
        {
            return Ok(AccountName::DomainSam {
                domain: domain.to_string(),
                sam: sam.to_string(),
            });
        }
        // A DN: first component is ATTR=value, e.g. CN=Alice,OU=Staff,DC=...
        if let Some((attr, _)) = text.split_once('=')
            && !attr.is_empty()
            && attr
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            && text.contains(',')
        {
            return Ok(AccountName::Dn(text.to_string()));
        }
        if text.contains('@') {
            return Ok(AccountName::Address(text.to_string()));
        }
        Ok(AccountName::Sam(text.to_string()))
    }

    /// The filter that finds this identity among user objects (not for DNs).
    pub fn filter(&self) -> String {
        let clause = match self {
            AccountName::Sam(sam) | AccountName::DomainSam { sam, .. } => {
                format!("(sAMAccountName={})", ldap_escape(sam.as_str()))
            }
            AccountName::Address(address) => {
                let v = ldap_escape(address.as_str());
                format!("(|(userPrincipalName={v})(mail={v}))")
            }
            AccountName::Dn(dn) => format!("(distinguishedName={})", ldap_escape(dn.as_str())),
        };
        format!("(&{USER_FILTER}{clause})")
    }
}

/// Finds the one user object `input` names.
pub async fn resolve(conn: &mut Connection, input: &str) -> Result<UserAccount, DirectoryError> {
    let identity = AccountName::parse(input)?;
    let base = conn.root_dse.default_naming_context.clone();
    if let AccountName::DomainSam { domain, .. } = &identity {
        check_domain(conn, domain).await?;
    }
    let (search_base, filter) = match &identity {
        // A base search on the DN itself: a DN outside the domain's naming
        // context or of a non-user object finds nothing.
        AccountName::Dn(dn) => (dn.clone(), format!("(&{USER_FILTER})")),
        other => (base.clone(), other.filter()),
    };
    let entries = match &identity {
        AccountName::Dn(dn) => match conn.read_filtered(dn, &filter).await {
            Ok(entries) => entries,
            Err(DirectoryError::Operation { reason, .. }) if reason.contains("result 34") => {
                return Err(DirectoryError::BadIdentity(format!(
                    "{input:?} looks like a DN but is not a valid one"
                )));
            }
            Err(DirectoryError::Operation { reason, .. }) if reason.contains("result 10") => {
                return Err(DirectoryError::BadIdentity(format!(
                    "{input} is not in this DC's domain ({base}): {reason}. Point revoke at a DC \
                     of that domain (--directory / [directory] url)"
                )));
            }
            Err(e) => return Err(e),
        },
        _ => {
            let found = conn.search_found(&base, &filter, USER_ATTRIBUTES).await?;
            let elsewhere: Vec<String> = found
                .references
                .iter()
                .filter(|r| !conn.holds_no_accounts(r))
                .cloned()
                .collect();
            // `DOMAIN\sam` names its domain (checked above); any other form
            // may also match in a naming context this DC referred to, and
            // picking the local match could change the wrong person.
            if !elsewhere.is_empty() && !matches!(identity, AccountName::DomainSam { .. }) {
                return Err(referred(input, &base, &filter, &found.entries, &elsewhere));
            }
            found.entries
        }
    };
    match entries.len() {
        0 => Err(DirectoryError::NoSuchUser {
            input: input.to_string(),
            base: search_base,
            filter,
        }),
        1 => Ok(UserAccount::from_entry(&entries[0])),
        _ => Err(DirectoryError::Ambiguous {
            input: input.to_string(),
            candidates: entries.iter().map(|e| e.dn.clone()).collect(),
        }),
    }
}

/// Found, or not, but the DC also referred the search elsewhere.
fn referred(
    input: &str,
    base: &str,
    filter: &str,
    entries: &[ldap3::SearchEntry],
    elsewhere: &[String],
) -> DirectoryError {
    let here = match entries {
        [] => format!("no user matches {filter} under {base}"),
        found => format!(
            "{} matches here ({})",
            found.len(),
            found
                .iter()
                .map(|e| e.dn.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    DirectoryError::BadIdentity(format!(
        "{input}: {here}, but the DC referred the search to other naming contexts that may hold \
         the same name: {}. revoke does not guess: name the account by DN, or as DOMAIN\\name \
         against a DC of its own domain",
        elsewhere.join(", ")
    ))
}

/// The domain's names from its crossRef: (NetBIOS, DNS), either may be missing.
pub async fn domain_names(
    conn: &mut Connection,
) -> Result<(Option<String>, Option<String>), DirectoryError> {
    let naming_context = conn.root_dse.default_naming_context.clone();
    let partitions = format!(
        "CN=Partitions,{}",
        conn.root_dse.configuration_naming_context
    );
    let filter = format!(
        "(&(objectClass=crossRef)(nCName={}))",
        ldap_escape(naming_context.as_str())
    );
    let entries = conn
        .search(&partitions, &filter, &["nETBIOSName", "dnsRoot"])
        .await?;
    Ok(entries
        .first()
        .map(|e| (first(&e.attrs, "nETBIOSName"), first(&e.attrs, "dnsRoot")))
        .unwrap_or_default())
}

/// `DOMAIN\sam` must name this directory's domain (NetBIOS or DNS name).
async fn check_domain(conn: &mut Connection, domain: &str) -> Result<(), DirectoryError> {
    let (netbios, dns) = domain_names(conn).await?;
    let names: Vec<String> = [netbios, dns].into_iter().flatten().collect();
    if names.is_empty() || names.iter().any(|n| n.eq_ignore_ascii_case(domain)) {
        return Ok(());
    }
    Err(DirectoryError::BadIdentity(format!(
        "domain {domain:?} is not the directory's domain ({}); give the user without a domain or as a UPN",
        names.join(" / ")
    )))
}

/// Accounts that can bind: users, and computers / managed service accounts.
const ACCOUNT_FILTER: &str = "(|(sAMAccountType=805306368)(sAMAccountType=805306369))";

/// The account a connection is bound as, from what "Who am I?" answered
/// (RFC 4532 §2: `dn:<DN>` or `u:<name>`; AD answers `u:DOMAIN\sam`).
/// Err(why) when the answer names nothing revoke can find exactly once.
pub async fn resolve_authz_id(
    conn: &mut Connection,
    authz_id: &str,
) -> Result<Result<UserAccount, String>, DirectoryError> {
    if let Some(dn) = authz_id.strip_prefix("dn:") {
        return one_account(conn, &AccountName::Dn(dn.to_string()), authz_id).await;
    }
    match authz_id.strip_prefix("u:") {
        Some(name) if !name.is_empty() => resolve_bind_name(conn, name).await,
        _ => Ok(Err(format!(
            "the DC says the connection is bound as {authz_id:?} (anonymous or unknown form)"
        ))),
    }
}

/// The account a simple bind as `bind_user` logged on as, resolved the way
/// AD resolves bind names: a DN; `DOMAIN\sam` of this domain; a UPN, which
/// is `userPrincipalName` or else the implicit UPN `sAMAccountName@<the
/// domain's DNS name>` (docs/windows-behaviour.md §2.21). Anything that
/// leaves a doubt is Err(why): a bind name the DC may have read differently
/// than revoke would (`sam@NETBIOS`, an unknown UPN suffix) is not guessed.
pub async fn resolve_bind_name(
    conn: &mut Connection,
    bind_user: &str,
) -> Result<Result<UserAccount, String>, DirectoryError> {
    let name = match AccountName::parse(bind_user) {
        Ok(name) => name,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let (netbios, dns) = domain_names(conn).await?;
    let is = |a: &Option<String>, b: &str| a.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(b));
    match &name {
        AccountName::Dn(_) | AccountName::Sam(_) => one_account(conn, &name, bind_user).await,
        AccountName::DomainSam { domain, sam } => {
            if !is(&netbios, domain) && !is(&dns, domain) {
                return Ok(Err(format!(
                    "{domain:?} is not this DC's domain ({})",
                    [netbios, dns]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" / ")
                )));
            }
            one_account(conn, &AccountName::Sam(sam.clone()), bind_user).await
        }
        AccountName::Address(upn) => {
            let filter = format!(
                "(&{ACCOUNT_FILTER}(userPrincipalName={}))",
                ldap_escape(upn.as_str())
            );
            let base = conn.root_dse.default_naming_context.clone();
            let explicit = conn.search(&base, &filter, USER_ATTRIBUTES).await?;
            match explicit.as_slice() {
                [one] => return Ok(Ok(UserAccount::from_entry(one))),
                [] => {}
                several => {
                    return Ok(Err(format!(
                        "userPrincipalName {upn} is on {} accounts",
                        several.len()
                    )));
                }
            }
            let (sam, suffix) = upn.rsplit_once('@').unwrap_or((upn.as_str(), ""));
            if is(&dns, suffix) {
                one_account(conn, &AccountName::Sam(sam.to_string()), bind_user).await
            } else {
                Ok(Err(format!(
                    "no account has the userPrincipalName {upn}, and {suffix:?} is not the \
                     domain's DNS name ({}), so it is not an implicit UPN either",
                    dns.as_deref().unwrap_or("unknown")
                )))
            }
        }
    }
}

/// Exactly one account (user, computer or managed service account) by DN or
/// sAMAccountName; Err(why) otherwise.
async fn one_account(
    conn: &mut Connection,
    name: &AccountName,
    said: &str,
) -> Result<Result<UserAccount, String>, DirectoryError> {
    let entries = match name {
        AccountName::Dn(dn) => {
            let filter = format!("(&{ACCOUNT_FILTER})");
            match conn.read_filtered(dn, &filter).await {
                Ok(entries) => entries,
                Err(DirectoryError::Operation { reason, .. }) => {
                    return Ok(Err(format!("reading {dn}: {reason}")));
                }
                Err(e) => return Err(e),
            }
        }
        AccountName::Sam(sam) => {
            let filter = format!(
                "(&{ACCOUNT_FILTER}(sAMAccountName={}))",
                ldap_escape(sam.as_str())
            );
            let base = conn.root_dse.default_naming_context.clone();
            conn.search(&base, &filter, USER_ATTRIBUTES).await?
        }
        _ => unreachable!("one_account takes a DN or a sAMAccountName"),
    };
    Ok(match entries.as_slice() {
        [one] => Ok(UserAccount::from_entry(one)),
        [] => Err(format!("{said}: no such account in this domain")),
        several => Err(format!("{said} matches {} accounts", several.len())),
    })
}

impl Connection {
    /// Base search of `dn` with a filter; no such object is an empty result.
    async fn read_filtered(
        &mut self,
        dn: &str,
        filter: &str,
    ) -> Result<Vec<ldap3::SearchEntry>, DirectoryError> {
        match self.base_search(dn, filter, USER_ATTRIBUTES).await {
            Err(DirectoryError::Operation { reason, .. }) if reason.contains("result 32") => {
                Ok(Vec::new())
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_forms() {
        assert_eq!(
            AccountName::parse(" alice ").unwrap(),
            AccountName::Sam("alice".into())
        );
        assert_eq!(
            AccountName::parse("LAB\\alice").unwrap(),
            AccountName::DomainSam {
                domain: "LAB".into(),
                sam: "alice".into()
            }
        );
        assert_eq!(
            AccountName::parse("alice@lab.example.test").unwrap(),
            AccountName::Address("alice@lab.example.test".into())
        );
        assert_eq!(
            AccountName::parse("CN=Alice Example,OU=Staff,DC=lab").unwrap(),
            AccountName::Dn("CN=Alice Example,OU=Staff,DC=lab".into())
        );
        assert!(AccountName::parse("  ").is_err());
    }

    #[test]
    fn filter_values_are_escaped() {
        let filter = AccountName::parse("a*)(|(x=*").unwrap().filter();
        assert_eq!(
            filter,
            "(&(sAMAccountType=805306368)(sAMAccountName=a\\2a\\29\\28|\\28x=\\2a))"
        );
        let filter = AccountName::parse("a\0b@x").unwrap().filter();
        assert!(filter.contains("(mail=a\\00b@x)"), "{filter}");
        let filter = AccountName::parse("\\start").unwrap().filter();
        assert!(filter.contains("(sAMAccountName=\\5cstart)"), "{filter}");
    }
}
