//! The management side of a lab BIG-IP: the three iControl REST endpoints
//! `revoke` uses (docs/windows-behaviour.md §6.1-§6.3), answering with a
//! BIG-IP's shapes:
//!
//! - `POST /mgmt/shared/authn/login` `{"username","password","loginProviderName"}`
//!   → 200 with `token.token`, or 401 `Authentication failed.`;
//! - `GET /mgmt/tm/apm/access-info` → `entries` keyed by
//!   `https://localhost/mgmt/tm/apm/access-info/<id>`, each with
//!   `nestedStats.entries.{logonUser,clientIp,...}.description`; no
//!   `entries` at all when there is no session;
//! - `DELETE /mgmt/tm/apm/session/<id>` → 200 (empty body), 404 if unknown.
//!
//! Tokens are random, expire after 1200 s like a BIG-IP's, and are checked
//! (`X-F5-Auth-Token`) on every call but the login.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::{BigIpRequest, State};

/// A BIG-IP's REST token lifetime (seconds).
pub(super) const TOKEN_LIFETIME: Duration = Duration::from_secs(1200);
const MAX_BODY: usize = 64 * 1024;
/// What a BIG-IP names itself in its links.
const SELF_HOST: &str = "https://localhost";
const VERSION: &str = "16.1.3";

/// One REST call: routed, recorded in [`State::requests`], answered as JSON.
pub(super) async fn handle(
    state: &Mutex<State>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let token = req
        .headers()
        .get("x-f5-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    let (status, answer) = route(&mut state, &method, &path, token.as_deref(), &body, peer);
    state.requests.push(BigIpRequest {
        at: SystemTime::now(),
        method: method.to_string(),
        path,
        status: status.as_u16(),
    });
    let mut response = Response::new(Full::new(match answer {
        Some(value) => Bytes::from(value.to_string()),
        None => Bytes::new(),
    }));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    response
}

/// The answer to one REST call: status and JSON body (None: empty).
pub(super) fn route(
    state: &mut State,
    method: &Method,
    path: &str,
    token: Option<&str>,
    body: &[u8],
    peer: SocketAddr,
) -> (StatusCode, Option<Value>) {
    let peer_ip = peer.ip().to_string();
    if path == "/mgmt/shared/authn/login" {
        if method != Method::POST {
            return state.error(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
                &peer_ip,
            );
        }
        return state.login(body, &peer_ip);
    }
    let known = path == "/mgmt/tm/apm/access-info" || path.starts_with("/mgmt/tm/apm/session/");
    if !known {
        return state.error(
            StatusCode::NOT_FOUND,
            &format!("Public URI path not registered: {path}"),
            &peer_ip,
        );
    }
    let now = Instant::now();
    state.tokens.retain(|_, expires| *expires > now);
    match token {
        None => {
            let message = format!(
                "Authorization failed: no user authentication header or token detected. \
                 Uri:http://localhost:8100{path} Referrer:{peer_ip} Sender:{peer_ip}"
            );
            return state.error(StatusCode::UNAUTHORIZED, &message, &peer_ip);
        }
        Some(token) if !state.tokens.contains_key(token) => {
            return state.error(
                StatusCode::UNAUTHORIZED,
                "X-F5-Auth-Token does not exist.",
                &peer_ip,
            );
        }
        Some(_) => {}
    }
    if path == "/mgmt/tm/apm/access-info" {
        if method != Method::GET {
            return state.error(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
                &peer_ip,
            );
        }
        state.expire();
        return (StatusCode::OK, Some(state.access_info()));
    }
    let id = path.trim_start_matches("/mgmt/tm/apm/session/");
    if method != Method::DELETE {
        return state.error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            &peer_ip,
        );
    }
    if state.end_session(id) {
        return (StatusCode::OK, None);
    }
    (
        StatusCode::NOT_FOUND,
        Some(json!({
            "code": 404,
            "message": format!("01020036:3: The requested session ({id}) was not found."),
            "errorStack": [],
            "apiError": 3
        })),
    )
}

impl State {
    /// iControl REST's error document.
    fn error(
        &mut self,
        status: StatusCode,
        message: &str,
        peer_ip: &str,
    ) -> (StatusCode, Option<Value>) {
        let operation = self.next_operation;
        self.next_operation += 1;
        (
            status,
            Some(json!({
                "code": status.as_u16(),
                "message": message,
                "referer": peer_ip,
                "restOperationId": operation,
                "kind": ":resterrorresponse"
            })),
        )
    }

    fn login(&mut self, body: &[u8], peer_ip: &str) -> (StatusCode, Option<Value>) {
        let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let user = request["username"].as_str().unwrap_or_default().to_string();
        let password = request["password"].as_str().unwrap_or_default();
        let provider = request["loginProviderName"].as_str().unwrap_or("tmos");
        let accepted = !self.config.refuse_logins
            && provider == "tmos"
            && user == self.config.admin_user
            && password == self.config.admin_password;
        self.logins.push(super::BigIpLogin {
            at: SystemTime::now(),
            user: user.clone(),
            accepted,
            password: password.to_string(),
        });
        if !accepted {
            let (status, mut answer) =
                self.error(StatusCode::UNAUTHORIZED, "Authentication failed.", peer_ip);
            // A BIG-IP echoes the request, without the password.
            if let Some(answer) = answer.as_mut() {
                answer["originalRequestBody"] = json!({
                    "username": user,
                    "loginProviderName": provider,
                    "generation": 0,
                    "lastUpdateMicros": 0
                })
                .to_string()
                .into();
            }
            return (status, answer);
        }
        let token = new_token();
        self.tokens
            .insert(token.clone(), Instant::now() + TOKEN_LIFETIME);
        let micros = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros() as u64;
        let provider_link = format!(
            "{SELF_HOST}/mgmt/cm/system/authn/providers/tmos/1f44a60e-11a7-3c51-a49f-82983026b41b"
        );
        (
            StatusCode::OK,
            Some(json!({
                "username": user,
                "loginReference": { "link": format!("{provider_link}/login") },
                "loginProviderName": "tmos",
                "token": {
                    "token": token,
                    "name": token,
                    "userName": user,
                    "authProviderName": "tmos",
                    "user": { "link": format!("{provider_link}/users/{user}") },
                    "groupReferences": [],
                    "timeout": TOKEN_LIFETIME.as_secs(),
                    "startTime": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
                    "address": peer_ip,
                    "partition": "[All]",
                    "generation": 1,
                    "lastUpdateMicros": micros,
                    "expirationMicros": micros + TOKEN_LIFETIME.as_micros() as u64,
                    "kind": "shared:authz:tokens:authtokenitemstate",
                    "selfLink": format!("{SELF_HOST}/mgmt/shared/authz/tokens/{token}")
                },
                "generation": 0,
                "lastUpdateMicros": 0
            })),
        )
    }

    fn access_info(&self) -> Value {
        let mut doc = json!({
            "kind": "tm:apm:access-info:access-infostats",
            "selfLink": format!("{SELF_HOST}/mgmt/tm/apm/access-info?ver={VERSION}"),
        });
        if !self.sessions.is_empty() {
            let entries: serde_json::Map<String, Value> = self
                .sessions
                .iter()
                .map(|s| {
                    (
                        format!("{SELF_HOST}/mgmt/tm/apm/access-info/{}", s.id),
                        json!({ "nestedStats": { "entries": {
                            "accessProfile": { "description": "/Common/ap-exchange" },
                            "clientIp": { "description": s.client_ip },
                            "logonUser": { "description": s.user },
                            "sessionId": { "description": s.id },
                        } } }),
                    )
                })
                .collect();
            doc["entries"] = Value::Object(entries);
        }
        doc
    }
}

/// 26 characters of base32, like a BIG-IP's tokens.
fn new_token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bytes = [0u8; 26];
    getrandom::fill(&mut bytes).expect("random");
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(b & 31)] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::super::{BigIpConfig, LabApmSession};
    use super::*;

    fn state() -> State {
        State::new(BigIpConfig::default())
    }

    const PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 50000);

    fn login(state: &mut State, password: &str) -> (StatusCode, Option<Value>) {
        let body =
            json!({"username": "revoke-f5", "password": password, "loginProviderName": "tmos"});
        route(
            state,
            &Method::POST,
            "/mgmt/shared/authn/login",
            None,
            body.to_string().as_bytes(),
            PEER,
        )
    }

    #[test]
    fn tokens_are_random_and_checked() {
        let mut s = state();
        let (status, answer) = login(&mut s, "wrong");
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let answer = answer.unwrap().to_string();
        assert!(!answer.contains("wrong"), "{answer}");
        let (status, answer) = login(&mut s, super::super::LAB_DEFAULT_PASSWORD);
        assert_eq!(status, StatusCode::OK);
        let token = answer.unwrap()["token"]["token"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(token.len(), 26);
        assert_ne!(token, new_token());
        let list = |s: &mut State, t: Option<&str>| {
            route(s, &Method::GET, "/mgmt/tm/apm/access-info", t, b"", PEER)
        };
        assert_eq!(list(&mut s, None).0, StatusCode::UNAUTHORIZED);
        assert_eq!(list(&mut s, Some("NOPE")).0, StatusCode::UNAUTHORIZED);
        let (status, doc) = list(&mut s, Some(&token));
        assert_eq!(status, StatusCode::OK);
        assert!(doc.unwrap().get("entries").is_none());
        s.config.refuse_logins = true;
        assert_eq!(
            login(&mut s, super::super::LAB_DEFAULT_PASSWORD).0,
            StatusCode::UNAUTHORIZED
        );
        // Every attempt is recorded, with what it offered (never in Debug).
        let seen: Vec<(bool, bool)> = s
            .logins
            .iter()
            .map(|l| (l.accepted, l.password_was("wrong")))
            .collect();
        assert_eq!(seen, [(false, true), (true, false), (false, false)]);
        assert!(s.logins.iter().all(|l| l.user == "revoke-f5"));
        assert!(!format!("{:?}", s.logins).contains("wrong"));
    }

    #[test]
    fn sessions_list_and_delete_like_a_bigip() {
        let mut s = state();
        s.tokens.insert("T".into(), Instant::now() + TOKEN_LIFETIME);
        s.sessions.push(LabApmSession {
            id: "5519d028".into(),
            user: "alice".into(),
            client_ip: "203.0.113.10".into(),
            created: SystemTime::now(),
        });
        let (_, doc) = route(
            &mut s,
            &Method::GET,
            "/mgmt/tm/apm/access-info",
            Some("T"),
            b"",
            PEER,
        );
        let body = doc.unwrap().to_string();
        let parsed = revoke_core::f5::parse_access_info(body.as_bytes()).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].id, "5519d028");
        assert_eq!(parsed[0].user, "alice");
        let delete = |s: &mut State| {
            route(
                s,
                &Method::DELETE,
                "/mgmt/tm/apm/session/5519d028",
                Some("T"),
                b"",
                PEER,
            )
            .0
        };
        assert_eq!(delete(&mut s), StatusCode::OK);
        assert!(s.sessions.is_empty());
        assert_eq!(delete(&mut s), StatusCode::NOT_FOUND);
    }
}
