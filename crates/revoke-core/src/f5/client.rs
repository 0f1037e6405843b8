//! iControl REST requests to one BIG-IP: log in for a token, list the access
//! sessions, delete one. Answers are size-capped; the token and the password
//! never reach a log or a report.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{F5Device, F5Settings, F5SetupError};
use crate::Password;

/// iControl REST's token header.
const TOKEN_HEADER: &str = "X-F5-Auth-Token";
/// A session list larger than this is not a session list.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Settings plus the HTTP client, built once per run. Cheap to clone.
#[derive(Clone)]
pub struct F5Client {
    settings: Arc<F5Settings>,
    password: Password,
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
    pub fn new(settings: F5Settings, password: Password) -> Result<Self, F5SetupError> {
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
            password,
            http,
        })
    }

    pub fn devices(&self) -> &[F5Device] {
        &self.settings.devices
    }
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
pub(super) fn valid_session_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// An answer: status and body.
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

/// The token, which must never be printed.
pub struct Token(String);

impl F5Client {
    async fn send(
        &self,
        device: &F5Device,
        method: Method,
        path: &str,
        token: Option<&Token>,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, String> {
        let url = format!("{}{path}", device.base_url());
        let mut request = self
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
        let response = request
            .send()
            .await
            .map_err(|e| self.describe(device, &e))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.describe(device, &e))?;
        if body.len() > MAX_BODY {
            return Err(format!("an answer of {} bytes is too large", body.len()));
        }
        Ok(Answer {
            status,
            body: body.to_vec(),
        })
    }

    pub(super) async fn login(&self, device: &F5Device) -> Result<Token, String> {
        let settings = &self.settings;
        let body = serde_json::to_vec(&serde_json::json!({
            "username": settings.user,
            "password": self.password.expose(),
            "loginProviderName": "tmos",
        }))
        .expect("a JSON object serializes");
        let answer = self
            .send(
                device,
                Method::POST,
                "/mgmt/shared/authn/login",
                None,
                Some(body),
            )
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

    pub(super) async fn list(
        &self,
        device: &F5Device,
        token: &Token,
    ) -> Result<Vec<ListedSession>, String> {
        let answer = self
            .send(
                device,
                Method::GET,
                "/mgmt/tm/apm/access-info",
                Some(token),
                None,
            )
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
    pub(super) async fn delete(
        &self,
        device: &F5Device,
        token: &Token,
        id: &str,
    ) -> Result<bool, String> {
        if !valid_session_id(id) {
            return Err(format!("not deleted: {id:?} is not a session id"));
        }
        let path = format!("/mgmt/tm/apm/session/{id}");
        let answer = self
            .send(device, Method::DELETE, &path, Some(token), None)
            .await?;
        match answer.status {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(format!("DELETE failed ({})", http_error(&answer))),
        }
    }

    /// A transport error in plain words (never the URL's secrets: there are none).
    fn describe(&self, device: &F5Device, error: &reqwest::Error) -> String {
        if error.is_timeout() {
            return format!("no answer within {} s", self.settings.timeout.as_secs());
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
                        device.port
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
