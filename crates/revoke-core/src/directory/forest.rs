//! Forests with several domains: which domains there are (their crossRefs),
//! where a name lives (the Global Catalog), and which domain a DN is in.
//!
//! A DC holds its own domain only: a name typed by the operator could be in
//! any domain of the forest, and taking the bound domain's match could change
//! the wrong person. So in a forest of more than one domain every name that
//! is not a DN is looked up in the Global Catalog, which holds every domain's
//! objects (with the partial attribute set): one match is the account, two or
//! more are ambiguous. The change is then made on a writable DC of the
//! account's own domain (docs/windows-behaviour.md §2.28, §2.29).

use super::connection::{Connection, first};
use super::identity::AccountName;
use super::{DirectoryError, account};

/// A domain of the forest, from its crossRef under CN=Partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForestDomain {
    /// nCName: the domain's naming context, e.g. DC=child,DC=corp,DC=example.
    pub naming_context: String,
    /// dnsRoot: its DNS name.
    pub dns_root: String,
    /// nETBIOSName.
    pub netbios: Option<String>,
}

impl ForestDomain {
    /// "CHILD (child.corp.example)" for messages.
    pub fn label(&self) -> String {
        match &self.netbios {
            Some(netbios) => format!("{netbios} ({})", self.dns_root),
            None => self.dns_root.clone(),
        }
    }

    /// Does `dn` lie in this domain's naming context?
    fn holds(&self, dn: &str) -> bool {
        let dn = normalise(dn);
        let nc = normalise(&self.naming_context);
        dn == nc || dn.ends_with(&format!(",{nc}"))
    }
}

/// The forest's domains.
#[derive(Debug, Clone)]
pub struct Forest {
    pub domains: Vec<ForestDomain>,
    /// The forest root domain's naming context (rootDSE).
    pub root_naming_context: String,
}

/// FLAG_CR_NTDS_DOMAIN: the crossRef is for a domain naming context
/// (docs/windows-behaviour.md §2.28).
const FLAG_CR_NTDS_DOMAIN: u32 = 2;

impl Forest {
    /// Reads the domain crossRefs (`systemFlags` bit 2) from the
    /// configuration partition, which every DC of the forest holds.
    pub async fn read(conn: &mut Connection) -> Result<Forest, DirectoryError> {
        let partitions = format!(
            "CN=Partitions,{}",
            conn.root_dse.configuration_naming_context
        );
        let filter = format!(
            "(&(objectClass=crossRef)(systemFlags:1.2.840.113556.1.4.803:={FLAG_CR_NTDS_DOMAIN}))"
        );
        let entries = conn
            .search(&partitions, &filter, &["nCName", "dnsRoot", "nETBIOSName"])
            .await?;
        let mut domains: Vec<ForestDomain> = entries
            .iter()
            .filter_map(|e| {
                Some(ForestDomain {
                    naming_context: first(&e.attrs, "nCName")?,
                    dns_root: first(&e.attrs, "dnsRoot")?,
                    netbios: first(&e.attrs, "nETBIOSName"),
                })
            })
            .collect();
        domains.sort_by_key(|d| d.naming_context.len());
        let root_naming_context = match conn.root_dse.root_domain_naming_context.as_str() {
            "" => conn.root_dse.default_naming_context.clone(),
            root => root.to_string(),
        };
        Ok(Forest {
            domains,
            root_naming_context,
        })
    }

    /// More than one domain: names are resolved through the Global Catalog.
    pub fn has_several_domains(&self) -> bool {
        self.domains.len() > 1
    }

    /// The domain whose naming context holds `dn` (the longest suffix: a
    /// child domain's DNs end with its parent's naming context too).
    pub fn domain_of_dn(&self, dn: &str) -> Option<&ForestDomain> {
        self.domains
            .iter()
            .filter(|d| d.holds(dn))
            .max_by_key(|d| d.naming_context.len())
    }

    /// The domain `DOMAIN\` names: its NetBIOS or DNS name.
    pub fn domain_named(&self, name: &str) -> Option<&ForestDomain> {
        self.domains.iter().find(|d| {
            d.dns_root.eq_ignore_ascii_case(name)
                || d.netbios
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
    }

    /// Is `naming_context` the forest root domain's?
    pub fn is_root(&self, naming_context: &str) -> bool {
        normalise(naming_context) == normalise(&self.root_naming_context)
    }

    fn labels(&self) -> String {
        self.domains
            .iter()
            .map(ForestDomain::label)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Where an account lives: its DN and its domain.
#[derive(Debug, Clone)]
pub struct Located {
    pub dn: String,
    pub domain: ForestDomain,
}

/// Finds the one user object `input` names anywhere in the forest. A DN
/// is placed by its naming context, without a search; any other form is
/// searched in the Global Catalog `gc`:
/// a name that matches in two domains is ambiguous, listing both DNs.
pub async fn locate(
    forest: &Forest,
    gc: &mut Connection,
    input: &str,
) -> Result<Located, DirectoryError> {
    let identity = AccountName::parse(input)?;
    let (base, within) = match &identity {
        AccountName::Dn(dn) => return located_dn(forest, input, dn),
        AccountName::DomainSam { domain, .. } => match forest.domain_named(domain) {
            Some(d) => (d.naming_context.clone(), Some(d.clone())),
            None => {
                return Err(DirectoryError::BadIdentity(format!(
                    "{input}: {domain:?} is not a domain of this forest ({}); give the \
                     domain's NetBIOS or DNS name, or the user's UPN or DN",
                    forest.labels()
                )));
            }
        },
        // The whole forest: on a GC the empty base is every domain.
        _ => (String::new(), None),
    };
    let filter = identity.filter();
    let found = gc
        .search_found(&base, &filter, &["distinguishedName", "sAMAccountName"])
        .await?;
    // On a GC, a parent domain's subtree includes its child domains:
    // `DOMAIN\name` counts only matches in that domain itself.
    let entries: Vec<&ldap3::SearchEntry> = found
        .entries
        .iter()
        .filter(|e| match &within {
            Some(d) => forest.domain_of_dn(&e.dn) == Some(d),
            None => true,
        })
        .collect();
    match entries.as_slice() {
        [] => Err(DirectoryError::NoSuchUser {
            input: input.to_string(),
            base: if base.is_empty() {
                format!(
                    "the Global Catalog at {} (every domain of the forest)",
                    gc.host
                )
            } else {
                format!("{base} in the Global Catalog at {}", gc.host)
            },
            filter,
        }),
        [one] => located_dn(forest, input, &one.dn),
        several => Err(DirectoryError::Ambiguous {
            input: input.to_string(),
            candidates: several.iter().map(|e| e.dn.clone()).collect(),
        }),
    }
}

fn located_dn(forest: &Forest, input: &str, dn: &str) -> Result<Located, DirectoryError> {
    match forest.domain_of_dn(dn) {
        Some(domain) => Ok(Located {
            dn: dn.to_string(),
            domain: domain.clone(),
        }),
        None => Err(DirectoryError::BadIdentity(format!(
            "{input} is in none of this forest's domains ({})",
            forest.labels()
        ))),
    }
}

/// The forest root domain's objectSid from the Global Catalog (domain
/// heads and their objectSid are in it: docs/windows-behaviour.md §2.29).
pub async fn root_domain_sid(
    forest: &Forest,
    gc: &mut Connection,
) -> Result<String, DirectoryError> {
    let root = forest.root_naming_context.clone();
    let entry = gc.read(&root, &["objectSid"]).await?;
    entry
        .as_ref()
        .and_then(account::object_sid)
        .ok_or_else(|| DirectoryError::Operation {
            what: format!("reading objectSid of the forest root domain {root}"),
            host: gc.host.clone(),
            reason: "the Global Catalog returned no objectSid".into(),
        })
}

/// Several accounts in several domains: refused, naming them (a run writes
/// on one domain's DC and gates that domain's DCs).
pub fn several_domains(located: &[(String, Located)]) -> Option<String> {
    let mut domains: Vec<(&ForestDomain, Vec<&str>)> = Vec::new();
    for (input, at) in located {
        match domains.iter_mut().find(|(d, _)| **d == at.domain) {
            Some((_, inputs)) => inputs.push(input),
            None => domains.push((&at.domain, vec![input])),
        }
    }
    (domains.len() > 1).then(|| {
        format!(
            "the accounts are in {} domains: {}. revoke changes the accounts of one domain \
             per run (it writes on a DC of that domain and waits for that domain's DCs): run \
             it once per domain",
            domains.len(),
            domains
                .iter()
                .map(|(d, inputs)| format!("{} ({})", d.label(), inputs.join(", ")))
                .collect::<Vec<_>>()
                .join("; ")
        )
    })
}

/// A DN compared as AD compares DNs, roughly: RDNs trimmed, lower case.
fn normalise(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| match rdn.split_once('=') {
            Some((a, v)) => format!("{}={}", a.trim(), v.trim()),
            None => rdn.trim().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forest() -> Forest {
        let domain = |nc: &str, dns: &str, netbios: &str| ForestDomain {
            naming_context: nc.into(),
            dns_root: dns.into(),
            netbios: Some(netbios.into()),
        };
        Forest {
            domains: vec![
                domain("DC=corp,DC=example", "corp.example", "CORP"),
                domain("DC=child,DC=corp,DC=example", "child.corp.example", "CHILD"),
            ],
            root_naming_context: "DC=corp,DC=example".into(),
        }
    }

    #[test]
    fn a_dn_belongs_to_the_most_specific_naming_context() {
        let f = forest();
        let of = |dn: &str| f.domain_of_dn(dn).map(|d| d.dns_root.clone());
        assert_eq!(
            of("CN=a,OU=Staff,DC=child,DC=corp,DC=example").as_deref(),
            Some("child.corp.example")
        );
        assert_eq!(
            of("cn=a, dc=Corp, dc=example").as_deref(),
            Some("corp.example")
        );
        assert_eq!(of("CN=a,DC=other,DC=example"), None);
        // DC=child is not DC=xchild.
        assert_eq!(
            of("CN=a,DC=xchild,DC=corp,DC=example").as_deref(),
            Some("corp.example")
        );
        assert!(f.is_root("dc=corp,dc=example"));
    }

    #[test]
    fn domain_names_map_through_the_cross_refs() {
        let f = forest();
        assert_eq!(
            f.domain_named("child").unwrap().naming_context,
            "DC=child,DC=corp,DC=example"
        );
        assert_eq!(
            f.domain_named("CORP.example").unwrap().netbios.as_deref(),
            Some("CORP")
        );
        assert!(f.domain_named("OTHER").is_none());
    }

    #[test]
    fn accounts_of_several_domains_are_named_with_their_domains() {
        let f = forest();
        let at = |dn: &str| Located {
            dn: dn.into(),
            domain: f.domain_of_dn(dn).unwrap().clone(),
        };
        let one = vec![
            ("a".to_string(), at("CN=a,DC=child,DC=corp,DC=example")),
            ("b".to_string(), at("CN=b,DC=child,DC=corp,DC=example")),
        ];
        assert_eq!(several_domains(&one), None);
        let two = vec![
            ("a".to_string(), at("CN=a,DC=child,DC=corp,DC=example")),
            ("CORP\\b".to_string(), at("CN=b,DC=corp,DC=example")),
        ];
        let text = several_domains(&two).unwrap();
        assert!(
            text.contains("CHILD (child.corp.example) (a); CORP (corp.example) (CORP\\b)"),
            "{text}"
        );
        assert!(text.contains("once per domain"), "{text}");
    }
}
