use thiserror::Error;

/// What went wrong talking to one server, in words an operator can act on.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum WinrmError {
    #[error("connection refused ({0})")]
    ConnectionRefused(String),
    /// The report already says "unreachable"; the text says why.
    #[error("{0}")]
    Unreachable(String),
    #[error("the name {0} does not resolve (DNS): check the server's name, or give its address")]
    NameNotResolved(String),
    #[error("no answer within {0} s")]
    NoAnswer(u64),
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    #[error("TLS failed: {0}")]
    Tls(String),
    #[error(
        "authentication refused (HTTP 401) for {0}: check the password, or give another \
         account with --user DOMAIN\\user (or user in [winrm])"
    )]
    AuthRejected(String),
    #[error("HTTP {status} from the WinRM service{}", detail_suffix(.detail))]
    Http { status: u16, detail: String },
    #[error("WinRM fault {subcode}: {reason}")]
    Fault {
        subcode: String,
        reason: String,
        wsman_code: Option<u32>,
    },
    #[error("unexpected answer from the WinRM service: {0}")]
    Protocol(String),
    #[error("invalid settings: {0}")]
    Settings(String),
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl WinrmError {
    /// Worth another try (before anything mutating was sent): the request may
    /// never have reached the service, or the service was briefly unwell.
    pub fn is_transient(&self) -> bool {
        match self {
            WinrmError::ConnectionLost(_) | WinrmError::NoAnswer(_) => true,
            WinrmError::Http { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// The server could not be reached at all (nothing was ever exchanged).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            WinrmError::ConnectionRefused(_)
                | WinrmError::Unreachable(_)
                | WinrmError::NameNotResolved(_)
        )
    }
}
