//! The secrets a run needs, kept apart from its plan: a plan says what will
//! happen and may be shown, logged or reviewed; these may not. They are
//! gathered only once the plan is valid, and wiped when dropped.

use crate::Password;

#[derive(Clone)]
pub struct Secrets {
    /// The operator's password: the LDAP bind and WinRM.
    pub operator: Password,
    /// The BIG-IPs' account's password (the operator's unless another was given).
    pub f5: Password,
    /// `reset`: the account's new password.
    pub new_password: Option<Password>,
}

impl Secrets {
    /// The operator's password for everything.
    pub fn operator(password: Password) -> Self {
        Secrets {
            f5: password.clone(),
            operator: password,
            new_password: None,
        }
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(<redacted>)")
    }
}
