//! F5 BIG-IP APM: kill a user's access sessions over iControl REST
//! (docs/windows-behaviour.md §6). A session on the BIG-IP outlives the account's change
//! in AD (up to the access profile's maximum session timeout, 7 days by
//! default), so `disable` / `reset` end them on every configured device.
//!
//! Per device: `POST /mgmt/shared/authn/login` for a token, `GET
//! /mgmt/tm/apm/access-info` for the sessions, `DELETE
//! /mgmt/tm/apm/session/<id>` for each session of the account, then list
//! again to see that they are gone. Devices run concurrently; one device's
//! failure never touches another's job. The token and the password are
//! never logged nor reported.

//!
//! Modules: `client` (iControl REST requests: login, list, delete), `job`
//! (the work on every device, concurrently); the outcomes are
//! [`crate::events`] values.

mod client;
mod job;

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

pub use crate::events::{ApmSession, F5Outcome, F5Status, SessionStatus};
pub use client::{F5Client, ListedSession, parse_access_info};
pub use job::kill_sessions;

pub const DEFAULT_PORT: u16 = 443;
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// One BIG-IP's management address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct F5Device {
    pub host: String,
    pub port: u16,
    /// As the report names it: the host, or `host:port` if not port 443.
    pub label: String,
}

impl F5Device {
    pub(crate) fn base_url(&self) -> String {
        if self.host.contains(':') {
            format!("https://[{}]:{}", self.host, self.port)
        } else {
            format!("https://{}:{}", self.host, self.port)
        }
    }
}

/// The `[f5]` section, resolved.
#[derive(Debug, Clone)]
pub struct F5Settings {
    pub devices: Vec<F5Device>,
    pub user: String,
    pub ca_file: Option<PathBuf>,
    pub accept_invalid_certs: bool,
    /// For each HTTP request (connecting included).
    pub timeout: Duration,
}

/// The TLS setup (CA file) failed: checked before anything is changed.
#[derive(Debug, Error)]
#[error("[f5]: {0}")]
pub struct F5SetupError(pub(crate) String);

/// An account whose sessions are killed: the names APM may log it under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOwner {
    pub sam: String,
    pub upn: Option<String>,
}

impl SessionOwner {
    /// Does APM's `logonUser` name this account? `sam`, `DOMAIN\sam` (any
    /// domain part) or the UPN, case-insensitive.
    pub fn matches(&self, logon_user: &str) -> bool {
        let user = logon_user.trim();
        if user.is_empty() {
            return false;
        }
        let bare = user.rsplit_once('\\').map_or(user, |(_, sam)| sam);
        same(bare, &self.sam) || self.upn.as_deref().is_some_and(|upn| same(user, upn))
    }
}

/// What `revoke doctor` learns from one device: it logs in and lists the
/// access sessions, and deletes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    LoginFailed(String),
    ListFailed(String),
    /// Logged in and listed this many sessions.
    Listed(usize),
}

/// Logs in to `device` and lists its APM sessions (`revoke doctor`).
pub async fn probe(client: &F5Client, device: &F5Device) -> Probe {
    let token = match client.login(device).await {
        Ok(token) => token,
        Err(why) => return Probe::LoginFailed(why),
    };
    match client.list(device, &token).await {
        Ok(sessions) => Probe::Listed(sessions.len()),
        Err(why) => Probe::ListFailed(why),
    }
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::client::valid_session_id;
    use super::*;

    /// The shape of a BIG-IP's answer (entries keyed by the session's URL).
    const ACCESS_INFO: &str = r#"{
      "kind": "tm:apm:access-info:access-infostats",
      "selfLink": "https://localhost/mgmt/tm/apm/access-info?ver=16.1.3",
      "entries": {
        "https://localhost/mgmt/tm/apm/access-info/5519d028": {
          "nestedStats": { "entries": {
            "accessProfile": { "description": "/Common/ap-exchange" },
            "clientIp": { "description": "203.0.113.10" },
            "logonUser": { "description": "alice" },
            "sessionId": { "description": "5519d028" }
          } }
        },
        "https://localhost/mgmt/tm/apm/access-info/40780348?ver=16.1.3": {
          "nestedStats": { "entries": {
            "clientIp": { "description": "198.51.100.7" },
            "logonUser": { "description": "CORP\\Bob" }
          } }
        },
        "https://localhost/mgmt/tm/apm/access-info/0a1b2c3d": {
          "nestedStats": { "entries": {
            "clientIp": { "description": "" }
          } }
        }
      }
    }"#;

    #[test]
    fn access_info_parses_ids_users_and_addresses() {
        let mut sessions = parse_access_info(ACCESS_INFO.as_bytes()).unwrap();
        sessions.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(
            sessions,
            [
                ListedSession {
                    id: "0a1b2c3d".into(),
                    user: "".into(),
                    client_ip: None
                },
                ListedSession {
                    id: "40780348".into(),
                    user: "CORP\\Bob".into(),
                    client_ip: Some("198.51.100.7".into())
                },
                ListedSession {
                    id: "5519d028".into(),
                    user: "alice".into(),
                    client_ip: Some("203.0.113.10".into())
                },
            ]
        );
    }

    #[test]
    fn no_entries_means_no_sessions() {
        let none = r#"{"kind":"tm:apm:access-info:access-infostats","selfLink":"https://localhost/mgmt/tm/apm/access-info?ver=16.1.3"}"#;
        assert!(parse_access_info(none.as_bytes()).unwrap().is_empty());
        assert!(parse_access_info(br#"{"entries":{}}"#).unwrap().is_empty());
        assert!(parse_access_info(b"<html>").is_err());
        assert!(parse_access_info(b"[]").is_err());
        assert!(parse_access_info(br#"{"entries":[]}"#).is_err());
    }

    #[test]
    fn users_match_by_sam_domain_sam_and_upn_ignoring_case() {
        let alice = SessionOwner {
            sam: "alice".into(),
            upn: Some("alice.example@corp.example.com".into()),
        };
        for name in [
            "alice",
            "ALICE",
            "CORP\\alice",
            "corp\\Alice",
            " alice ",
            "Alice.Example@CORP.example.com",
        ] {
            assert!(alice.matches(name), "{name}");
        }
        for name in [
            "",
            "alice2",
            "malice",
            "alice@corp.example.com",
            "CORP\\alice2",
            "alice.example",
            "bob",
        ] {
            assert!(!alice.matches(name), "{name}");
        }
        let no_upn = SessionOwner {
            sam: "Jörg".into(),
            upn: None,
        };
        assert!(no_upn.matches("CORP\\JÖRG"));
    }

    #[test]
    fn only_plain_ids_go_into_a_url() {
        assert!(valid_session_id("5519d028"));
        assert!(!valid_session_id(""));
        assert!(!valid_session_id("../../sys"));
        assert!(!valid_session_id("a b"));
        assert!(!valid_session_id("a?b"));
    }

    #[test]
    fn ipv6_devices_get_brackets() {
        let device = F5Device {
            host: "::1".into(),
            port: 8443,
            label: "[::1]:8443".into(),
        };
        assert_eq!(device.base_url(), "https://[::1]:8443");
    }
}
