//! GSSAPI failures in words an operator can act on, with the library's own
//! text kept for the specialist.

use std::fmt;

use crate::ffi;

/// What kind of Kerberos failure it was: decides the advice given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No Kerberos library could be loaded.
    NoLibrary,
    /// No ticket in the cache and no password given.
    NoCredentials,
    /// The clocks differ by more than the allowed skew (5 minutes by default).
    ClockSkew,
    /// The KDC knows no such service principal (missing SPN, or wrong realm).
    UnknownServer,
    /// No KDC could be found or reached for the realm.
    NoKdc,
    /// The ticket could not be decrypted with the service's key (keytab or
    /// account password out of step with the KDC).
    WrongKey,
    /// The ticket expired: `kinit` again.
    Expired,
    /// The password was refused by the KDC.
    BadPassword,
    /// The server did not prove its identity (no or bad AP-REP).
    MutualFailed,
    /// A sealed message came again or out of order.
    Replay,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GssError {
    pub kind: ErrorKind,
    /// What was being done ("authenticating with Kerberos").
    pub doing: &'static str,
    /// The library's message (or ours where there is none).
    pub detail: String,
}

impl GssError {
    pub(crate) fn from_status(
        doing: &'static str,
        major: u32,
        _minor: u32,
        detail: String,
    ) -> Self {
        let routine = (major >> ffi::ROUTINE_SHIFT) & 0xff;
        let kind = classify(&detail, routine == ffi::ROUTINE_NO_CRED);
        Self {
            kind,
            doing,
            detail,
        }
    }

    pub(crate) fn no_library(detail: String) -> Self {
        Self {
            kind: ErrorKind::NoLibrary,
            doing: "loading the Kerberos library",
            detail,
        }
    }

    pub(crate) fn unsupported(detail: &str) -> Self {
        Self {
            kind: ErrorKind::Other,
            doing: "using Kerberos",
            detail: detail.to_string(),
        }
    }

    pub(crate) fn mutual_missing() -> Self {
        Self {
            kind: ErrorKind::MutualFailed,
            doing: "authenticating with Kerberos",
            detail: "the server did not prove its identity (no AP-REP)".into(),
        }
    }

    pub(crate) fn replayed() -> Self {
        Self {
            kind: ErrorKind::Replay,
            doing: "opening a sealed message",
            detail: "the message was replayed or arrived out of order".into(),
        }
    }

    /// What to do about it, in one sentence.
    pub fn advice(&self) -> &'static str {
        match self.kind {
            ErrorKind::NoLibrary => "install the system's Kerberos library, or use NTLM",
            ErrorKind::NoCredentials => {
                "no Kerberos ticket: run kinit (or log on to the domain), or give the \
                 account's password (REVOKE_WINRM_PASSWORD / REVOKE_DIRECTORY_PASSWORD, \
                 --password-stdin)"
            }
            ErrorKind::ClockSkew => {
                "this machine's clock and the KDC's or server's differ by more than 5 minutes: \
                 fix the time (NTP) and try again"
            }
            ErrorKind::UnknownServer => {
                "the KDC knows no such service: check the server's DNS name, its SPN \
                 (setspn -L), and that the ticket is for the right realm ([kerberos] realm)"
            }
            ErrorKind::NoKdc => {
                "no KDC found for the realm: set [kerberos] realm and kdc, or check DNS \
                 and krb5.conf"
            }
            ErrorKind::WrongKey => {
                "the server could not read the ticket: its key (keytab or computer account \
                 password) is out of step with the KDC's"
            }
            ErrorKind::Expired => "the Kerberos ticket expired: run kinit again",
            ErrorKind::BadPassword => "the KDC refused the password",
            ErrorKind::MutualFailed => {
                "the server did not prove it is the server named: it may not be the real one"
            }
            ErrorKind::Replay => "a sealed message was replayed or reordered on the network",
            ErrorKind::Other => "see the Kerberos library's message",
        }
    }
}

impl fmt::Display for GssError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed: {} ({})",
            self.doing,
            self.advice(),
            self.detail
        )
    }
}

impl std::error::Error for GssError {}

/// MIT and Heimdal say the same things in nearly the same words; the
/// minor codes differ between them, the texts much less.
fn classify(detail: &str, no_cred: bool) -> ErrorKind {
    let text = detail.to_ascii_lowercase();
    let has = |needle: &str| text.contains(needle);
    if has("skew") {
        ErrorKind::ClockSkew
    } else if has("not found in kerberos database") || has("server not found") {
        ErrorKind::UnknownServer
    } else if has("cannot find kdc")
        || has("cannot contact any kdc")
        || has("unable to reach any kdc")
    {
        ErrorKind::NoKdc
    } else if has("expired") {
        ErrorKind::Expired
    } else if has("preauthentication failed") || has("password incorrect") {
        ErrorKind::BadPassword
    } else if has("integrity check failed")
        || has("not found in keytab")
        || has("not with enctype")
        || has("wrong principal")
        || has("bad encryption type")
        || has("cannot decrypt")
    {
        ErrorKind::WrongKey
    } else if no_cred
        || has("no credentials")
        || has("no kerberos credentials")
        || has("credentials cache")
        || has("no such file")
    {
        ErrorKind::NoCredentials
    } else {
        ErrorKind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_texts_map_to_plain_advice() {
        let cases = [
            (
                "Miscellaneous failure: Clock skew too great",
                ErrorKind::ClockSkew,
            ),
            (
                "Server HTTP/ex09.lab.example.test@LAB.EXAMPLE.TEST not found in Kerberos database",
                ErrorKind::UnknownServer,
            ),
            (
                "No Kerberos credentials available (default cache: FILE:/tmp/krb5cc_0)",
                ErrorKind::NoCredentials,
            ),
            ("Cannot find KDC for realm \"OTHER.TEST\"", ErrorKind::NoKdc),
            ("Decrypt integrity check failed", ErrorKind::WrongKey),
            ("Ticket expired", ErrorKind::Expired),
            ("Preauthentication failed", ErrorKind::BadPassword),
            ("something else", ErrorKind::Other),
        ];
        for (text, kind) in cases {
            assert_eq!(classify(text, false), kind, "{text}");
        }
        let error = GssError::from_status(
            "authenticating",
            0x000d_0000,
            0,
            "Clock skew too great".into(),
        );
        assert!(error.to_string().contains("fix the time"), "{error}");
    }
}
