//! The secrets a run needs, kept apart from its plan: a plan says what will
//! happen and may be shown, logged or reviewed; these may not. They are
//! gathered only once the plan is valid, and wiped when dropped.
//!
//! Each part authenticates as its own account (`[directory] bind_user`,
//! `[winrm] user`, `[f5] user`), so each has its own password here. Where two
//! parts use the same account the binary puts the same password in both;
//! a password is never put where another account logs on (docs/permissions.md).

use crate::Password;

#[derive(Clone)]
pub struct Secrets {
    /// The directory's: the password of `[directory] bind_user`, for every
    /// LDAP bind (the writable DC, each DC of the gate, discovery). The name
    /// is older than the split into three accounts; it means the LDAP bind only.
    pub operator: Password,
    /// The password of `[winrm] user`, for the Exchange servers.
    pub winrm: Password,
    /// The password of `[f5] user`, for the BIG-IPs' iControl REST login.
    pub f5: Password,
    /// `reset`: each account's own new password (never one for several).
    pub new_passwords: NewPasswords,
}

/// A reset's new passwords, one per account. The binary gathers them by the
/// account as the operator typed it (`RevocationPlan::users`), before
/// anything is resolved; `revocation::prepare` keys them by DN once it knows
/// which account each name is, so the write and the convergence gate (which
/// may write the reset on a lagging DC) both take the account's own.
/// Keys compare ignoring ASCII case, as AD compares names and DNs.
#[derive(Clone, Default)]
pub struct NewPasswords(Vec<(String, Password)>);

impl NewPasswords {
    /// One password for one account.
    pub fn one(key: &str, password: Password) -> Self {
        let mut all = Self::default();
        all.insert(key, password);
        all
    }

    /// Sets the password of `key` (replacing an earlier one).
    pub fn insert(&mut self, key: &str, password: Password) {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        self.0.push((key.to_string(), password));
    }

    pub fn get(&self, key: &str) -> Option<&Password> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, p)| p)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The same passwords under new keys: `(old, new)` pairs, e.g. (as
    /// typed, DN). A key without a pair is dropped, so a password is never
    /// left under a name no account answers to.
    pub fn rekeyed<'a>(&self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut out = Self::default();
        for (old, new) in pairs {
            if let Some(password) = self.get(old) {
                out.insert(new, password.clone());
            }
        }
        out
    }
}

impl std::fmt::Debug for NewPasswords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NewPasswords({} redacted)", self.0.len())
    }
}

impl Secrets {
    /// One password for every part (the lab and the demo, where the LDAP
    /// bind, WinRM and the BIG-IPs share one account).
    pub fn operator(password: Password) -> Self {
        Secrets {
            f5: password.clone(),
            winrm: password.clone(),
            operator: password,
            new_passwords: NewPasswords::default(),
        }
    }

    /// A password for a part the run does not authenticate to (a flush of
    /// listed servers has no LDAP bind; a run without `[f5]` no BIG-IP):
    /// empty, never another account's.
    pub fn unused() -> Password {
        Password::new(String::new())
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_account_keeps_its_own_password_when_rekeyed() {
        let mut typed = NewPasswords::default();
        typed.insert("alice", Password::new("a".into()));
        typed.insert("LAB\\bob", Password::new("b".into()));
        let by_dn = typed.rekeyed([
            ("ALICE", "CN=alice,OU=Staff"),
            ("lab\\bob", "CN=bob,OU=Staff"),
        ]);
        assert_eq!(by_dn.get("cn=alice,ou=staff").unwrap().expose(), "a");
        assert_eq!(by_dn.get("CN=bob,OU=Staff").unwrap().expose(), "b");
        assert!(by_dn.get("alice").is_none());
        assert_eq!(format!("{by_dn:?}"), "NewPasswords(2 redacted)");
    }
}
