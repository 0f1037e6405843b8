//! Who may log on to a lab server: the lab administrator, under the names
//! Windows would accept for a domain account.

use revoke_winrm::ntlm;

use super::LabConfig;

#[derive(Clone)]
pub struct Accounts {
    user: String,
    netbios_domain: String,
    dns_domain: String,
    computer: String,
    nt_hash: [u8; 16],
    /// Kept only to check Basic logons; never logged or printed.
    password: String,
    /// The RejectCredentials fault: every logon fails.
    reject_all: bool,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("user", &self.user)
            .field("netbios_domain", &self.netbios_domain)
            .finish_non_exhaustive()
    }
}

impl Accounts {
    pub fn new(config: &LabConfig, computer: &str) -> Self {
        Accounts {
            user: config.admin_user.clone(),
            netbios_domain: config.netbios_domain.clone(),
            dns_domain: config.dns_domain.clone(),
            computer: computer.to_string(),
            nt_hash: ntlm::nt_hash(&config.admin_password),
            password: config.admin_password.clone(),
            reject_all: false,
        }
    }

    pub fn rejecting_all(mut self, reject: bool) -> Self {
        self.reject_all = reject;
        self
    }

    /// The account as Windows names it in logs: `LAB\revoke-admin`.
    pub fn canonical(&self) -> String {
        format!("{}\\{}", self.netbios_domain, self.user)
    }

    pub fn identity(&self) -> ntlm::ServerIdentity {
        ntlm::ServerIdentity {
            netbios_domain: self.netbios_domain.to_uppercase(),
            netbios_computer: self.computer.to_uppercase(),
            dns_domain: self.dns_domain.to_lowercase(),
            dns_computer: format!(
                "{}.{}",
                self.computer.to_lowercase(),
                self.dns_domain.to_lowercase()
            ),
        }
    }

    /// True when `domain` names this account's domain (or this computer).
    fn domain_matches(&self, domain: &str) -> bool {
        domain.is_empty()
            || domain.eq_ignore_ascii_case(&self.netbios_domain)
            || domain.eq_ignore_ascii_case(&self.dns_domain)
            || domain.eq_ignore_ascii_case(&self.computer)
    }

    /// Resolves a logon name (`user`, `DOMAIN\user` or `user@dns.domain`)
    /// with an optional separate domain (NTLM carries it apart).
    fn resolves_to_admin(&self, user: &str, domain: &str) -> bool {
        if self.reject_all {
            return false;
        }
        if let Some((d, u)) = user.split_once('\\') {
            return domain.is_empty()
                && self.domain_matches(d)
                && u.eq_ignore_ascii_case(&self.user);
        }
        if let Some((u, d)) = user.split_once('@') {
            return (domain.is_empty() || self.domain_matches(domain))
                && (d.eq_ignore_ascii_case(&self.dns_domain)
                    || d.eq_ignore_ascii_case(&self.netbios_domain))
                && u.eq_ignore_ascii_case(&self.user);
        }
        self.domain_matches(domain) && user.eq_ignore_ascii_case(&self.user)
    }

    /// For a Kerberos logon: the account (as [`Self::canonical`] names it)
    /// when `principal` (`user@REALM`) is the administrator of this domain.
    pub fn kerberos_user(&self, principal: &str) -> Option<String> {
        let (user, realm) = principal.rsplit_once('@')?;
        (!self.reject_all
            && user.eq_ignore_ascii_case(&self.user)
            && realm.eq_ignore_ascii_case(&self.dns_domain))
        .then(|| self.canonical())
    }

    /// For the NTLM acceptor: the NT hash of the named account, if it exists.
    pub fn nt_hash_of(&self, user: &str, domain: &str) -> Option<[u8; 16]> {
        self.resolves_to_admin(user, domain).then_some(self.nt_hash)
    }

    /// Checks a decoded Basic `user:password`.
    pub fn check_basic(&self, user: &str, password: &str) -> bool {
        // Not constant-time: this is a loopback test lab.
        self.resolves_to_admin(user, "") && password == self.password
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> Accounts {
        Accounts::new(&LabConfig::default(), "EX01")
    }

    #[test]
    fn basic_accepts_the_names_windows_would() {
        let a = accounts();
        let pw = crate::LAB_DEFAULT_PASSWORD;
        for user in [
            "revoke-admin",
            "REVOKE-ADMIN",
            "LAB\\revoke-admin",
            "lab\\Revoke-Admin",
            "lab.example.test\\revoke-admin",
            "EX01\\revoke-admin",
            "revoke-admin@lab.example.test",
            "revoke-admin@LAB",
        ] {
            assert!(a.check_basic(user, pw), "{user}");
        }
        assert!(!a.check_basic("revoke-admin", "wrong"));
        assert!(!a.check_basic("OTHER\\revoke-admin", pw));
        assert!(!a.check_basic("someone", pw));
        assert!(!a.check_basic("revoke-admin@elsewhere.test", pw));
        assert!(
            !a.clone()
                .rejecting_all(true)
                .check_basic("revoke-admin", pw)
        );
    }

    #[test]
    fn ntlm_domains() {
        let a = accounts();
        let hash = ntlm::nt_hash(crate::LAB_DEFAULT_PASSWORD);
        for domain in ["", "LAB", "lab", "lab.example.test", "EX01"] {
            assert_eq!(
                a.nt_hash_of("Revoke-Admin", domain),
                Some(hash),
                "{domain:?}"
            );
        }
        assert_eq!(
            a.nt_hash_of("revoke-admin@lab.example.test", ""),
            Some(hash)
        );
        assert_eq!(a.nt_hash_of("revoke-admin", "OTHER"), None);
        assert_eq!(a.nt_hash_of("guest", "LAB"), None);
        assert_eq!(
            a.clone()
                .rejecting_all(true)
                .nt_hash_of("revoke-admin", "LAB"),
            None
        );
        assert_eq!(a.canonical(), "LAB\\revoke-admin");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let text = format!("{:?}", accounts());
        assert!(!text.contains(crate::LAB_DEFAULT_PASSWORD), "{text}");
    }
}
