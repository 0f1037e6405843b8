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

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use crate::Password;
use crate::events::{Event, EventSink};

pub const DEFAULT_PORT: u16 = 443;
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// iControl REST's token header.
const TOKEN_HEADER: &str = "X-F5-Auth-Token";
/// A session list larger than this is not a session list.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// One BIG-IP's management address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct F5Device {
    pub host: String,
    pub port: u16,
    /// As the report names it: the host, or `host:port` if not port 443.
    pub label: String,
}

impl F5Device {
    fn base_url(&self) -> String {
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
    /// `$REVOKE_F5_PASSWORD`, else the operator's password; filled in late.
    pub password: Password,
    pub ca_file: Option<PathBuf>,
    pub accept_invalid_certs: bool,
    /// For each HTTP request (connecting included).
    pub timeout: Duration,
}

/// The TLS setup (CA file) failed: checked before anything is changed.
#[derive(Debug, Error)]
#[error("[f5]: {0}")]
pub struct F5SetupError(String);

/// Settings plus the HTTP client, built once per run. Cheap to clone.
#[derive(Clone)]
pub struct F5Client {
    settings: Arc<F5Settings>,
    http: reqwest::Client,
}

impl std::fmt::Debug for F5Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("F5Client")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl F5Client {
    /// Reads the CA file and builds the client with revoke's TLS
    /// configuration (`crate::tls`): nothing is contacted yet.
    pub fn new(settings: F5Settings) -> Result<Self, F5SetupError> {
        let tls =
            crate::tls::client_config(settings.ca_file.as_deref(), settings.accept_invalid_certs)
                .map_err(|e| F5SetupError(e.to_string()))?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // A management interface is reached directly, never through a proxy.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| F5SetupError(format!("HTTP client: {e}")))?;
        Ok(F5Client {
            settings: Arc::new(settings),
            http,
        })
    }

    pub fn devices(&self) -> &[F5Device] {
        &self.settings.devices
    }
}

/// An account whose sessions are killed: the names APM may log it under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub sam: String,
    pub upn: Option<String>,
}

impl Identity {
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

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase()
}

/// One session as the BIG-IP lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedSession {
    pub id: String,
    /// `logonUser`; empty while the session has not logged on.
    pub user: String,
    pub client_ip: Option<String>,
}

/// The sessions in a `GET /mgmt/tm/apm/access-info` answer. No `entries`
/// at all means no sessions (that is how a BIG-IP answers then).
pub fn parse_access_info(body: &[u8]) -> Result<Vec<ListedSession>, String> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| format!("the session list is not JSON ({e})"))?;
    let Some(doc) = doc.as_object() else {
        return Err("the session list is not a JSON object".into());
    };
    let entries = match doc.get("entries") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(entries)) => entries,
        Some(_) => return Err("the session list's entries is not an object".into()),
    };
    let mut sessions = Vec::with_capacity(entries.len());
    for (key, entry) in entries {
        let stats = &entry["nestedStats"]["entries"];
        let text = |name: &str| stats[name]["description"].as_str().map(str::to_string);
        let from_key = key
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let id = if from_key.is_empty() {
            text("sessionId").unwrap_or_default()
        } else {
            from_key
        };
        if id.is_empty() {
            return Err(format!("a session entry without an id: {key:?}"));
        }
        sessions.push(ListedSession {
            id,
            user: text("logonUser").unwrap_or_default(),
            client_ip: text("clientIp").filter(|ip| !ip.is_empty()),
        });
    }
    Ok(sessions)
}

/// A session id as it may go into a URL path: APM's are hex; anything
/// else is not sent anywhere.
fn valid_session_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// One session of the account, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApmSession {
    pub id: String,
    /// As the BIG-IP logged it (`logonUser`).
    pub user: String,
    pub client_ip: Option<String>,
    /// The account it belongs to (sAMAccountName).
    pub account: String,
    pub status: SessionStatus,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionStatus {
    /// Deleted, and no longer listed.
    Killed,
    /// Gone before revoke deleted it (the BIG-IP answered 404).
    Gone,
    /// Still listed after revoke tried to delete it: it may still let the user in.
    Alive,
    /// Deleted, but the device could not be listed again to confirm.
    Unverified,
    /// Dry run: would be deleted.
    Planned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum F5Status {
    /// Every session of the account is gone (or there was none).
    Ok,
    /// Not reached, login refused, or a session may still be alive.
    Failed,
    /// Dry run: listed, nothing deleted.
    Planned,
    /// The run was interrupted before this device finished.
    Interrupted,
}

impl F5Status {
    pub fn is_success(self) -> bool {
        matches!(self, F5Status::Ok | F5Status::Planned)
    }
}

/// What happened on one BIG-IP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct F5Outcome {
    pub device: String,
    pub status: F5Status,
    /// Sessions deleted and confirmed gone.
    pub killed: usize,
    /// The account's sessions found on the device.
    pub sessions: Vec<ApmSession>,
    pub duration_ms: u64,
    /// When the device was seen without any session of the accounts
    /// (RFC 3339, UTC); null unless `ok`.
    pub confirmed_at: Option<String>,
    /// Plain words for anything not ok, e.g. "login refused (HTTP 401)".
    pub message: Option<String>,
}

impl F5Outcome {
    /// The sessions that may still let the user in.
    pub fn alive(&self) -> impl Iterator<Item = &ApmSession> {
        self.sessions
            .iter()
            .filter(|s| matches!(s.status, SessionStatus::Alive | SessionStatus::Unverified))
    }
}

/// Kills (or, in a dry run, lists) the sessions of `accounts` on every
/// device, concurrently. Emits `F5Started`, `F5Step`s and one
/// `F5DeviceFinished` per device; returns when every device is done.
pub async fn run(client: F5Client, accounts: Vec<Identity>, dry_run: bool, events: EventSink) {
    events.emit(Event::F5Started {
        devices: client.devices().iter().map(|d| d.label.clone()).collect(),
        dry_run,
    });
    let accounts = Arc::new(accounts);
    let mut tasks = Vec::new();
    for device in client.devices().to_vec() {
        let (client, accounts, events) = (client.clone(), Arc::clone(&accounts), events.clone());
        let label = device.label.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let job = DeviceJob {
                client: &client,
                device: &device,
                events: &events,
            };
            let mut outcome = job.run(&accounts, dry_run).await;
            outcome.duration_ms = started.elapsed().as_millis() as u64;
            if outcome.status == F5Status::Ok {
                outcome.confirmed_at =
                    Some(humantime::format_rfc3339_millis(SystemTime::now()).to_string());
            }
            events.emit(Event::F5DeviceFinished { device: outcome });
        });
        tasks.push((label, task));
    }
    for (label, task) in tasks {
        if let Err(error) = task.await {
            // A panic in one device's task ends only that device.
            tracing::error!("the task of F5 device {label} failed: {error}");
            events.emit(Event::F5DeviceFinished {
                device: failed(&label, Vec::new(), format!("internal error: {error}")),
            });
        }
    }
}

fn failed(device: &str, sessions: Vec<ApmSession>, message: String) -> F5Outcome {
    F5Outcome {
        device: device.to_string(),
        status: F5Status::Failed,
        killed: 0,
        sessions,
        duration_ms: 0,
        confirmed_at: None,
        message: Some(message),
    }
}

/// The work on one device.
struct DeviceJob<'a> {
    client: &'a F5Client,
    device: &'a F5Device,
    events: &'a EventSink,
}

/// An answer: status and body.
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

/// The token, which must never be printed.
struct Token(String);

impl DeviceJob<'_> {
    fn step(&self, what: impl Into<String>) {
        self.events.emit(Event::F5Step {
            device: self.device.label.clone(),
            what: what.into(),
        });
    }

    async fn run(&self, accounts: &[Identity], dry_run: bool) -> F5Outcome {
        let label = &self.device.label;
        self.step("logging in");
        let token = match self.login().await {
            Ok(token) => token,
            Err(message) => return failed(label, Vec::new(), message),
        };
        self.step("listing sessions");
        let listed = match self.list(&token).await {
            Ok(listed) => listed,
            Err(message) => return failed(label, Vec::new(), message),
        };
        let mut sessions: Vec<ApmSession> = listed
            .into_iter()
            .filter_map(|s| {
                let account = accounts.iter().find(|a| a.matches(&s.user))?;
                Some(ApmSession {
                    id: s.id,
                    user: s.user,
                    client_ip: s.client_ip,
                    account: account.sam.clone(),
                    status: SessionStatus::Planned,
                    message: None,
                })
            })
            .collect();
        if dry_run {
            return F5Outcome {
                device: label.clone(),
                status: F5Status::Planned,
                killed: 0,
                message: Some(format!("would kill {} session(s)", sessions.len())),
                sessions,
                duration_ms: 0,
                confirmed_at: None,
            };
        }
        if sessions.is_empty() {
            return F5Outcome {
                device: label.clone(),
                status: F5Status::Ok,
                killed: 0,
                sessions,
                duration_ms: 0,
                confirmed_at: None,
                message: None,
            };
        }

        self.step(format!("killing {} session(s)", sessions.len()));
        let mut deleted = Vec::new();
        for session in &mut sessions {
            match self.delete(&token, &session.id).await {
                Ok(true) => deleted.push(session.id.clone()),
                Ok(false) => session.status = SessionStatus::Gone,
                Err(message) => {
                    session.status = SessionStatus::Alive;
                    session.message = Some(message);
                }
            }
        }

        self.step("verifying");
        let still = match self.list(&token).await {
            Ok(listed) => listed,
            Err(message) => {
                for session in sessions.iter_mut().filter(|s| deleted.contains(&s.id)) {
                    session.status = SessionStatus::Unverified;
                }
                return failed(
                    label,
                    sessions,
                    format!("deleted, but could not list the sessions again: {message}"),
                );
            }
        };
        for session in &mut sessions {
            let listed = still.iter().any(|s| s.id == session.id);
            if listed {
                session.status = SessionStatus::Alive;
                session
                    .message
                    .get_or_insert_with(|| "still listed after DELETE".into());
            } else if deleted.contains(&session.id) {
                session.status = SessionStatus::Killed;
            } else if session.status == SessionStatus::Alive {
                // The DELETE failed, yet it is gone now.
                session.status = SessionStatus::Gone;
            }
        }
        let killed = sessions
            .iter()
            .filter(|s| s.status == SessionStatus::Killed)
            .count();
        let alive: Vec<&str> = sessions
            .iter()
            .filter(|s| s.status == SessionStatus::Alive)
            .map(|s| s.id.as_str())
            .collect();
        let (status, message) = if alive.is_empty() {
            (F5Status::Ok, None)
        } else {
            (
                F5Status::Failed,
                Some(format!(
                    "{} session(s) still alive: {}",
                    alive.len(),
                    alive.join(", ")
                )),
            )
        };
        F5Outcome {
            device: label.clone(),
            status,
            killed,
            sessions,
            duration_ms: 0,
            confirmed_at: None,
            message,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&Token>,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, String> {
        let url = format!("{}{path}", self.device.base_url());
        let mut request = self
            .client
            .http
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&token.0)
                .map_err(|_| "the device's token is not a header value".to_string())?;
            // Kept out of any debug output of the request.
            value.set_sensitive(true);
            request = request.header(TOKEN_HEADER, value);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request.send().await.map_err(|e| self.describe(&e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| self.describe(&e))?;
        if body.len() > MAX_BODY {
            return Err(format!("an answer of {} bytes is too large", body.len()));
        }
        Ok(Answer {
            status,
            body: body.to_vec(),
        })
    }

    async fn login(&self) -> Result<Token, String> {
        let settings = &self.client.settings;
        let body = serde_json::to_vec(&serde_json::json!({
            "username": settings.user,
            "password": settings.password.expose(),
            "loginProviderName": "tmos",
        }))
        .expect("a JSON object serializes");
        let answer = self
            .send(Method::POST, "/mgmt/shared/authn/login", None, Some(body))
            .await?;
        // The body of a refused login is never shown: some versions echo
        // the request in it.
        match answer.status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(format!(
                    "login refused (HTTP {}) for {}",
                    answer.status.as_u16(),
                    settings.user
                ));
            }
            other => return Err(format!("login failed (HTTP {})", other.as_u16())),
        }
        let doc: Value = serde_json::from_slice(&answer.body)
            .map_err(|_| "the login answer is not JSON".to_string())?;
        doc["token"]["token"]
            .as_str()
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
            .map(|t| Token(t.to_string()))
            .ok_or_else(|| "the login answer holds no token".to_string())
    }

    async fn list(&self, token: &Token) -> Result<Vec<ListedSession>, String> {
        let answer = self
            .send(Method::GET, "/mgmt/tm/apm/access-info", Some(token), None)
            .await?;
        if answer.status != StatusCode::OK {
            return Err(format!(
                "listing the sessions failed ({})",
                http_error(&answer)
            ));
        }
        parse_access_info(&answer.body)
    }

    /// Ok(true): deleted; Ok(false): no such session (gone already).
    async fn delete(&self, token: &Token, id: &str) -> Result<bool, String> {
        if !valid_session_id(id) {
            return Err(format!("not deleted: {id:?} is not a session id"));
        }
        let path = format!("/mgmt/tm/apm/session/{id}");
        let answer = self.send(Method::DELETE, &path, Some(token), None).await?;
        match answer.status {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(format!("DELETE failed ({})", http_error(&answer))),
        }
    }

    /// A transport error in plain words (never the URL's secrets: there are none).
    fn describe(&self, error: &reqwest::Error) -> String {
        if error.is_timeout() {
            return format!(
                "no answer within {} s",
                self.client.settings.timeout.as_secs()
            );
        }
        let mut causes: Vec<String> = Vec::new();
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
        while let Some(cause) = source {
            // io::Errors nest (hyper-rustls wraps tokio-rustls' io::Error,
            // which wraps rustls' error): look inside each.
            let mut inner: Option<&(dyn std::error::Error + 'static)> = Some(cause);
            while let Some(e) = inner {
                if let Some(tls) = e.downcast_ref::<rustls::Error>() {
                    return format!("TLS: {tls}");
                }
                let Some(io) = e.downcast_ref::<std::io::Error>() else {
                    break;
                };
                if io.kind() == std::io::ErrorKind::ConnectionRefused {
                    return format!(
                        "connection refused (nothing listens on port {})",
                        self.device.port
                    );
                }
                inner = io
                    .get_ref()
                    .map(|e| e as &(dyn std::error::Error + 'static));
            }
            let text = cause.to_string();
            // hyper-util's "client error (Connect)" says nothing of its own.
            if !text.starts_with("client error (") && !causes.iter().any(|c| c.contains(&text)) {
                causes.push(text);
            }
            source = cause.source();
        }
        if causes.is_empty() {
            causes.push(error.to_string());
        }
        let what = if error.is_connect() {
            "cannot connect: "
        } else {
            ""
        };
        format!("{what}{}", causes.join(": "))
    }
}

/// `HTTP 404: <message>` from an iControl REST error answer.
fn http_error(answer: &Answer) -> String {
    let message = serde_json::from_slice::<Value>(&answer.body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .filter(|m| !m.is_empty());
    match message {
        Some(message) => format!("HTTP {}: {message}", answer.status.as_u16()),
        None => format!("HTTP {}", answer.status.as_u16()),
    }
}

#[cfg(test)]
mod tests {
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
        let alice = Identity {
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
        let no_upn = Identity {
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
