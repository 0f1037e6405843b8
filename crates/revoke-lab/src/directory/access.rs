//! Who may do what in the lab directory: simple binds (which account a
//! name means, AD's refusal texts, TLS), who counts as an administrator,
//! and the rights delegated on a container (write these attributes of the
//! users below it). Administrators may add, change and delete anything.

use super::domain::{Domain, Modification, lock};
use super::store::*;

/// AD's text for a failed simple bind, with its `data` sub-code.
pub fn bind_error(data: &str) -> LdapError {
    LdapError::new(
        49,
        format!(
            "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data {data}, v4563"
        ),
    )
}

fn insufficient_access(dn: &str) -> LdapError {
    LdapError::new(
        INSUFFICIENT_ACCESS,
        format!("00002098: Object {dn} has no write property access"),
    )
}

/// Rights an account has below a container, like a DACL delegation.
#[derive(Debug, Clone)]
pub struct Delegation {
    /// Normalised DN of the trustee.
    pub trustee: String,
    /// Normalised DN of the container (the rights apply to user objects below it).
    pub scope: String,
    /// Attributes it may write (lower case); unicodePwd means "reset password".
    pub attributes: Vec<String>,
}

/// Who a connection is bound as.
#[derive(Debug, Clone, Default)]
pub struct Bound {
    pub dn: Option<String>,
    pub admin: bool,
}

impl Bound {
    /// Adding and deleting objects is for administrators only.
    pub fn check_admin(&self, dn: &str) -> LdapResult<()> {
        if self.admin {
            Ok(())
        } else {
            Err(insufficient_access(dn))
        }
    }
}

impl Domain {
    /// A simple bind on DC `dc`: `who` is a DN, a UPN or `DOMAIN\sam`.
    pub fn bind(&self, dc: usize, who: &str, password: &str, tls: bool) -> LdapResult<Bound> {
        if who.is_empty() && password.is_empty() {
            return Ok(Bound::default());
        }
        if !tls && !self.allow_plain_bind {
            return Err(LdapError::new(
                8,
                // Samba's text; clients name result 8 "Strong(er) authentication required".
                "BindSimple: Transport encryption required.",
            ));
        }
        // An account of the forest's other domain binds here too (a DC
        // passes the logon to that domain), as on Windows.
        let local = self.find_account(&self.data(dc), who).cloned();
        let (entry, home) = match local {
            Some(entry) => (entry, None),
            None => {
                let peer = self.peer();
                let found = peer
                    .as_ref()
                    .and_then(|p| p.find_account(&p.data(0), who).cloned());
                match (found, peer) {
                    (Some(entry), Some(peer)) => (entry, Some(peer)),
                    _ => return Err(bind_error("525")),
                }
            }
        };
        if password.is_empty() || !entry.secrets.accepts(password) {
            return Err(bind_error("52e"));
        }
        if entry.uac() & UAC_DISABLE != 0 {
            return Err(bind_error("533"));
        }
        if entry.number("lockoutTime").unwrap_or(0) > 0 {
            return Err(bind_error("775"));
        }
        if entry.first("pwdLastSet").as_deref() == Some("0") {
            return Err(bind_error("773"));
        }
        let admin = match &home {
            None => self.is_admin(dc, &entry) || self.is_enterprise_admin(self, dc, &entry),
            Some(home) => self.is_enterprise_admin(home, 0, &entry),
        };
        Ok(Bound {
            dn: Some(entry.dn.clone()),
            admin,
        })
    }

    /// Enterprise Admins of the forest root, seen from `home`, the
    /// account's own domain: administrators in every domain of the forest.
    fn is_enterprise_admin(&self, home: &Domain, dc: usize, entry: &Entry) -> bool {
        let enterprise_admins = sid_bytes(&format!("{}-519", self.root_sid()));
        home.token_sids(dc, entry).contains(&enterprise_admins)
    }

    /// The account's token: its groups in its own domain and the universal
    /// groups of the forest's other domain.
    pub fn token_sids(&self, dc: usize, entry: &Entry) -> Vec<Vec<u8>> {
        let (mut sids, dns) = self.token_groups(&self.data(dc), entry);
        if let Some(peer) = self.peer() {
            sids.extend(peer.universal_groups_containing(&dns));
        }
        sids
    }

    fn find_account<'d>(&self, data: &'d DcData, who: &str) -> Option<&'d Entry> {
        let accounts = || {
            data.entries
                .values()
                .filter(|e| sam_account_type(e).is_some_and(|t| t >= 0x3000_0000))
        };
        let same = |a: &str, b: &str| a.to_lowercase() == b.to_lowercase();
        if let Some((domain, sam)) = who.split_once('\\') {
            if !same(domain, &self.netbios) && !same(domain, &self.dns_domain) {
                return None;
            }
            return accounts().find(|e| e.first("sAMAccountName").is_some_and(|s| same(&s, sam)));
        }
        if who.contains('=') {
            return data.get(who).filter(|e| sam_account_type(e).is_some());
        }
        if let Some((name, suffix)) = who.split_once('@') {
            let by_upn =
                accounts().find(|e| e.first("userPrincipalName").is_some_and(|u| same(&u, who)));
            // The implicit UPN; Samba also takes the NetBIOS name as the
            // suffix (docs/windows-behaviour.md §7.16).
            return by_upn.or_else(|| {
                (same(suffix, &self.dns_domain) || same(suffix, &self.netbios))
                    .then(|| {
                        accounts()
                            .find(|e| e.first("sAMAccountName").is_some_and(|s| same(&s, name)))
                    })
                    .flatten()
            });
        }
        None
    }

    /// RID 500, or a member of Domain Admins, Enterprise Admins or Administrators.
    fn is_admin(&self, dc: usize, entry: &Entry) -> bool {
        if entry.rid() == Some(500) {
            return true;
        }
        let admin_sids = [
            sid_bytes(&format!("{}-512", self.domain_sid)),
            sid_bytes(&format!("{}-519", self.domain_sid)),
            sid_bytes("S-1-5-32-544"),
        ];
        self.data(dc)
            .groups_of(&entry.dn)
            .iter()
            .any(|g| g.values("objectSid").iter().any(|s| admin_sids.contains(s)))
    }

    /// May `who` make `changes` to `target` (`dn` as the client wrote it)?
    /// Administrators may; anyone else only what a delegation grants on it.
    pub fn check_write(
        &self,
        who: &Bound,
        dn: &str,
        target: &Entry,
        changes: &[Modification],
    ) -> LdapResult<()> {
        if who.admin || self.delegated(who, target, changes) {
            Ok(())
        } else {
            Err(insufficient_access(dn))
        }
    }

    fn delegated(&self, who: &Bound, target: &Entry, changes: &[Modification]) -> bool {
        let Some(me) = who.dn.as_deref().map(norm_dn) else {
            return false;
        };
        let target_norm = target.norm();
        lock(&self.delegations).iter().any(|d| {
            d.trustee == me
                && target.has_class("user")
                && target_norm.ends_with(&format!(",{}", d.scope))
                && changes
                    .iter()
                    .all(|c| d.attributes.contains(&c.attr.to_ascii_lowercase()))
        })
    }
}
