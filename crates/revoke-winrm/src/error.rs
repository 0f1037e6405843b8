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
    /// Kerberos could not authenticate (the text says why and what to do).
    #[error("Kerberos: {0}")]
    Kerberos(String),
    /// One HTTP answer was larger than any WinRM answer can be (the client
    /// asks for envelopes of at most [`crate::soap::MAX_ENVELOPE_SIZE`]).
    #[error(
        "the server's answer is larger than {limit} bytes, more than a WinRM service sends: \
         stopped reading it (something on the network or the server is misbehaving)"
    )]
    ResponseTooLarge { limit: usize },
    /// A command printed more than the client keeps for one command.
    #[error(
        "the command printed more than {} MiB, far more than it should: stopped reading \
         and asked the server to end it (something on the network or the server is misbehaving)",
        .limit / (1024 * 1024)
    )]
    OutputTooLarge { limit: usize },
    /// A command that changes the server was sent and no trustworthy answer
    /// came back: it may have run. It is never sent again by the client.
    #[error(
        "{command} was sent, then: {reason}; it may have run (it is not sent again: \
         check the server)"
    )]
    MayHaveRun { command: String, reason: String },
}

/// Text that came from a server or the network, made safe for a terminal:
/// control characters (escape sequences, carriage returns, bells) become
/// spaces, runs of whitespace collapse, and it is cut to a readable length.
pub fn sanitize(text: &str) -> String {
    const MAX_CHARS: usize = 1000;
    let cleaned: String = text
        .chars()
        .map(|c| if is_unsafe(c) { ' ' } else { c })
        .take(MAX_CHARS)
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
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

    /// A command that changes the server may have run (see [`WinrmError::MayHaveRun`]).
    pub fn may_have_run(&self) -> bool {
        matches!(self, WinrmError::MayHaveRun { .. })
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

/// Control characters (C0, DEL, C1) and the invisible bidirectional
/// overrides that can make a terminal show something else than what was sent.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_strips_terminal_control_sequences() {
        assert_eq!(sanitize("abc\u{202e}fed"), "abc fed");
        let hostile = "EX01\u{1b}[2J\u{1b}]0;owned\u{7}\r\nAccess\tdenied\u{9b}31m";
        let clean = sanitize(hostile);
        assert!(!clean.chars().any(char::is_control), "{clean:?}");
        assert_eq!(clean, "EX01 [2J ]0;owned Access denied 31m");
        assert_eq!(sanitize(&"x".repeat(5000)).len(), 1000);
    }
}
