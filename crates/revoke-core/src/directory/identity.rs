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
            Err(e) => return Err(e),
        },
        _ => conn.search(&base, &filter, USER_ATTRIBUTES).await?,
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

/// `DOMAIN\sam` must name this directory's domain (NetBIOS or DNS name).
async fn check_domain(conn: &mut Connection, domain: &str) -> Result<(), DirectoryError> {
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
    let names: Vec<String> = entries
        .iter()
        .flat_map(|e| [first(&e.attrs, "nETBIOSName"), first(&e.attrs, "dnsRoot")])
        .flatten()
        .collect();
    if names.is_empty() || names.iter().any(|n| n.eq_ignore_ascii_case(domain)) {
        return Ok(());
    }
    Err(DirectoryError::BadIdentity(format!(
        "domain {domain:?} is not the directory's domain ({}); give the user without a domain or as a UPN",
        names.join(" / ")
    )))
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
