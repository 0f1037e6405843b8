//! Active Directory over LDAP: who the user is, whether revoke may touch the
//! account, the change itself, whether every domain controller has it, and
//! where the Exchange servers are. docs/windows-behaviour.md §2 and §3 hold the facts this
//! relies on.
//!
//! - [`connection`]: LDAPS / StartTLS, the operator's bind, rootDSE.
//! - [`identity`]: what the operator typed → exactly one user object.
//! - [`forest`]: a forest's domains, the Global Catalog, an account's domain.
//! - [`guards`]: accounts revoke refuses to touch.
//! - [`change`]: disable and reset, written the safe way.
//! - [`topology`]: the domain controllers, writable and read-only.
//! - [`metadata`]: replication stamps: whether a DC has a write.
//! - [`policy`]: the password length policy that applies to an account.
//! - [`convergence`]: the gate that waits until every DC has the change.
//! - [`discovery`]: Exchange servers from the configuration partition.

pub mod account;
pub mod change;
pub mod connection;
pub mod convergence;
pub mod discovery;
pub mod forest;
pub mod guards;
pub mod identity;
pub mod metadata;
pub mod password;
pub mod policy;
pub mod topology;

pub use account::{UserAccount, uac_flag_names};
pub use connection::{Connection, DirectorySettings, RootDse, Security};
pub use identity::AccountName;

use thiserror::Error;

/// Everything that can go wrong talking to the directory, in plain words.
#[derive(Debug, Error)]
pub enum DirectoryError {
    #[error("directory settings: {0}")]
    Settings(String),
    #[error("cannot reach the directory at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// It answered, but its certificate is not one revoke may trust.
    #[error("the directory at {url} answered, but {reason}")]
    Untrusted { url: String, reason: String },
    #[error("the directory at {url} refused the bind as {user}: {reason}")]
    BindRefused {
        url: String,
        user: String,
        reason: String,
    },
    #[error("{what} failed on {host}: {reason}")]
    Operation {
        what: String,
        host: String,
        reason: String,
    },
    #[error("no such user: {input} (searched {base} for {filter})")]
    NoSuchUser {
        input: String,
        base: String,
        filter: String,
    },
    #[error(
        "{input} matches {} user objects, refusing to guess; name one by its DN:\n  {}",
        candidates.len(),
        candidates.join("\n  ")
    )]
    Ambiguous {
        input: String,
        candidates: Vec<String>,
    },
    #[error("{0}")]
    BadIdentity(String),
}

impl DirectoryError {
    /// The input names no single account (none, several, or it cannot
    /// name one): that input is refused, the others of the run go on.
    pub fn names_no_single_account(&self) -> bool {
        matches!(
            self,
            DirectoryError::NoSuchUser { .. }
                | DirectoryError::Ambiguous { .. }
                | DirectoryError::BadIdentity(_)
        )
    }

    /// Connecting (TCP, TLS, StartTLS) or binding failed: an untrusted
    /// certificate is told apart from a DC that cannot be reached.
    pub(crate) fn connecting(url: &str, error: &ldap3::LdapError) -> Self {
        match certificate_problem(error) {
            Some(reason) => DirectoryError::Untrusted {
                url: url.to_string(),
                reason,
            },
            None => DirectoryError::Unreachable {
                url: url.to_string(),
                reason: describe_ldap_error(error),
            },
        }
    }

    pub(crate) fn operation(what: impl Into<String>, host: &str, error: ldap3::LdapError) -> Self {
        DirectoryError::Operation {
            what: what.into(),
            host: host.to_string(),
            reason: describe_ldap_error(&error),
        }
    }
}

/// An LDAP error in plain words: result code name, AD's `data NNN` decoded.
pub fn describe_ldap_error(error: &ldap3::LdapError) -> String {
    use std::io::ErrorKind;
    match error {
        ldap3::LdapError::LdapResult { result } => describe_result(result.rc, &result.text),
        ldap3::LdapError::Io { source, .. } => match source.kind() {
            ErrorKind::ConnectionRefused => "connection refused (nothing listens there)".into(),
            ErrorKind::TimedOut => "no answer (connection timed out)".into(),
            ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof => {
                "the connection was closed (is it LDAPS on this port?)".into()
            }
            _ => source.to_string(),
        },
        ldap3::LdapError::Timeout { .. } => "no answer within the operation timeout".into(),
        other => other.to_string(),
    }
}

/// The certificate problem behind a failed TLS handshake, in words that say
/// what to do; None if the failure was not about the certificate.
fn certificate_problem(error: &ldap3::LdapError) -> Option<String> {
    use rustls::CertificateError as Cert;
    let ldap3::LdapError::Io { source, .. } = error else {
        return None;
    };
    // rustls' error travels inside the io::Error (possibly nested).
    let mut inner: Option<&(dyn std::error::Error + 'static)> = source.get_ref().map(|e| e as _);
    while let Some(e) = inner {
        if let Some(rustls::Error::InvalidCertificate(cert)) = e.downcast_ref::<rustls::Error>() {
            let what = match cert {
                Cert::UnknownIssuer | Cert::BadSignature => {
                    "its certificate is not signed by a CA revoke trusts: give the CA that signs \
                     the DCs' certificates with --directory-ca-file FILE (or ca_file in [directory])"
                        .to_string()
                }
                Cert::NotValidForName | Cert::NotValidForNameContext { .. } => {
                    "its certificate is not valid for the name revoke connected to: use the DC's \
                     name as its certificate gives it (usually its DNS name) in --directory"
                        .to_string()
                }
                Cert::Expired | Cert::ExpiredContext { .. } => {
                    "its certificate has expired: renew the DC's certificate".to_string()
                }
                Cert::NotValidYet | Cert::NotValidYetContext { .. } => {
                    "its certificate is not valid yet: check the clocks of this machine and the DC"
                        .to_string()
                }
                Cert::Revoked => "its certificate has been revoked".to_string(),
                other => format!("its certificate was refused ({other:?})"),
            };
            return Some(what);
        }
        inner = e.source();
    }
    None
}

/// A non-success LDAP result in plain words.
pub fn describe_result(rc: u32, text: &str) -> String {
    let name = match rc {
        1 => "operations error",
        8 => "stronger authentication required (use LDAPS or StartTLS)",
        16 => "no such attribute value (changed concurrently?)",
        19 => "constraint violation",
        20 => "attribute or value already exists",
        32 => "no such object",
        34 => "invalid DN syntax",
        49 => "invalid credentials",
        50 => "insufficient access rights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwilling to perform",
        _ => "LDAP error",
    };
    let text = text.trim_end_matches(['\0', '\n', ' ']);
    match ad_data_code(text) {
        Some(meaning) => format!("{meaning} ({name}, result {rc}: {text})"),
        None if text.is_empty() => format!("{name} (result {rc})"),
        None => format!("{name} (result {rc}: {text})"),
    }
}

/// AD's `data NNN` sub-code of a failed bind, decoded (docs/windows-behaviour.md §2.3).
fn ad_data_code(text: &str) -> Option<&'static str> {
    let code = text.split("data ").nth(1)?.get(..3)?;
    Some(match code {
        "525" => "no such user",
        "52e" => "wrong password",
        "530" => "logon not permitted at this time",
        "531" => "logon not permitted from this workstation",
        "532" => "password expired",
        "533" => "account disabled",
        "701" => "account expired",
        "773" => "password must be changed",
        "775" => "account locked out",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a rustls refusal looks like by the time ldap3 reports it.
    fn tls_refusal(cert: rustls::CertificateError) -> ldap3::LdapError {
        ldap3::LdapError::Io {
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(cert),
            ),
        }
    }

    #[test]
    fn a_refused_certificate_says_what_to_do_not_unreachable() {
        use rustls::CertificateError as Cert;
        let url = "ldaps://dc1.corp.example.com:636";
        for (cert, says) in [
            (Cert::UnknownIssuer, "--directory-ca-file"),
            (Cert::NotValidForName, "not valid for the name"),
            (Cert::Expired, "has expired"),
        ] {
            let text = DirectoryError::connecting(url, &tls_refusal(cert)).to_string();
            assert!(
                text.starts_with(&format!("the directory at {url} answered, but")),
                "{text}"
            );
            assert!(text.contains(says), "{text}");
        }
        let refused = ldap3::LdapError::Io {
            source: std::io::ErrorKind::ConnectionRefused.into(),
        };
        let text = DirectoryError::connecting(url, &refused).to_string();
        assert!(text.starts_with("cannot reach the directory"), "{text}");
    }

    #[test]
    fn bind_failures_are_decoded() {
        let text = "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 533, v4563";
        assert!(describe_result(49, text).starts_with("account disabled (invalid credentials"));
        assert!(describe_result(49, "... data 52e, v1").starts_with("wrong password"));
        assert_eq!(describe_result(32, ""), "no such object (result 32)");
    }
}
