//! A lab F5 BIG-IP: the three iControl REST endpoints `revoke` uses
//! (docs/windows-behaviour.md §6.1-§6.3), over HTTPS on loopback with a certificate from the lab
//! CA, answering with a BIG-IP's shapes:
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
//! (`X-F5-Auth-Token`) on every call but the login. Tests create sessions
//! with [`LabBigIp::add_session`] and read what is left with
//! [`LabBigIp::sessions`]; [`LabBigIp::refuse_logins`] is the fault of a
//! device whose REST user is refused.
//!
//! With [`BigIpConfig::virtual_server`] the device also runs an APM virtual
//! server: a second HTTPS listener (the traffic side, apart from the
//! management port, as on a real BIG-IP) in front of a pool of the lab's
//! Exchange front ends. A request without a valid `MRHSession` cookie is
//! pre-authenticated: its Basic credentials are checked with an LDAP simple
//! bind against the directory (the front end's [`DirectoryClient`]); success
//! creates an access session (listed by access-info like any other, logon
//! user as the client typed it, client IP its peer address) and sets the
//! cookie; failure is a 401. With a valid cookie the request is proxied to
//! the next pool member (round-robin), the client's `Authorization` passed
//! through as APM's SSO would, and the directory is not asked again: the
//! session lives until its inactivity timeout (900 s, slid by every
//! request) or its maximum lifetime (7 days), or until it is deleted over
//! REST — the APM half of the stale-credential bug (docs/windows-behaviour.md §1.6, §6).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, SET_COOKIE, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::frontend::{
    BindOutcome, DirectoryClient, FrontEndConfig, Reply, WorkerGone, basic_credentials, text,
    tls_trusting, validate_directory,
};
use super::tls::LabCa;

/// A BIG-IP's REST token lifetime (seconds).
const TOKEN_LIFETIME: Duration = Duration::from_secs(1200);
const MAX_BODY: usize = 64 * 1024;
/// What a BIG-IP names itself in its links.
const SELF_HOST: &str = "https://localhost";
const VERSION: &str = "16.1.3";
/// The cookie that carries an APM access session.
const SESSION_COOKIE: &str = "MRHSession";
/// Largest request body the virtual server forwards.
const MAX_PROXY_BODY: usize = 1024 * 1024;
/// How long the virtual server waits for a pool member (a Ping is held).
const PROXY_TIMEOUT: Duration = Duration::from_secs(600);

/// How a lab BIG-IP is set up.
#[derive(Debug, Clone)]
pub struct BigIpConfig {
    /// For its certificate (`<name>.<dns domain>`) and for messages.
    pub name: String,
    pub listen: IpAddr,
    /// The iControl REST user it accepts (with `loginProviderName` "tmos").
    pub admin_user: String,
    pub admin_password: String,
    /// Fault: every login is refused (401), whoever asks.
    pub refuse_logins: bool,
    /// An APM virtual server in front of the Exchange front ends; None: the
    /// device only has its management port.
    pub virtual_server: Option<VirtualServerConfig>,
}

/// The APM virtual server of a lab BIG-IP: where it pre-authenticates
/// users, what it proxies to, and how long its access sessions live.
#[derive(Debug, Clone)]
pub struct VirtualServerConfig {
    /// The directory APM's AD authentication binds to (as the front end's:
    /// `ldaps://` or `ldap://` + StartTLS, tried in order when unreachable).
    pub directory_urls: Vec<String>,
    /// PEM of the CA that signed the directory's certificates.
    pub directory_ca_pem: String,
    /// Pool members (HTTPS, lab CA). Empty: every front end of the lab that
    /// starts the device ([`super::Lab::start_bigip`]).
    pub pool: Vec<SocketAddr>,
    /// An access session's maximum lifetime (APM: 7 days).
    pub max_session_timeout: Duration,
    /// An access session ends after this long without a request (APM: 900 s).
    pub inactivity_timeout: Duration,
}

impl VirtualServerConfig {
    /// APM's defaults: sessions live up to 7 days, 15 minutes idle.
    pub fn new(directory_urls: Vec<String>, directory_ca_pem: String) -> Self {
        VirtualServerConfig {
            directory_urls,
            directory_ca_pem,
            pool: Vec::new(),
            max_session_timeout: Duration::from_secs(7 * 24 * 3600),
            inactivity_timeout: Duration::from_secs(900),
        }
    }

    /// Pre-authenticates against the same directory as the front end.
    pub fn for_front_end(front_end: &FrontEndConfig) -> Self {
        Self::new(
            front_end.directory_urls.clone(),
            front_end.directory_ca_pem.clone(),
        )
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        validate_directory(
            "the APM virtual server",
            &self.directory_urls,
            &self.directory_ca_pem,
        )
    }
}

impl Default for BigIpConfig {
    fn default() -> Self {
        BigIpConfig {
            name: "bigip1".into(),
            listen: IpAddr::V4(Ipv4Addr::LOCALHOST),
            admin_user: "revoke-f5".into(),
            admin_password: super::LAB_DEFAULT_PASSWORD.into(),
            refuse_logins: false,
            virtual_server: None,
        }
    }
}

/// One APM access session on a lab BIG-IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabApmSession {
    pub id: String,
    /// `logonUser` as APM records it (`alice`, `CORP\alice`, a UPN, ...).
    pub user: String,
    pub client_ip: String,
    pub created: SystemTime,
}

/// One REST call the device answered (never its body or token).
#[derive(Debug, Clone)]
pub struct BigIpRequest {
    pub at: SystemTime,
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// What the virtual server knows of a session it created.
struct Access {
    /// The whole `MRHSession` value (the session id is its last 8 digits).
    cookie: String,
    last_seen: Instant,
}

struct State {
    config: BigIpConfig,
    sessions: Vec<LabApmSession>,
    /// Sessions made by the virtual server, by id.
    access: HashMap<String, Access>,
    /// Token → when it expires.
    tokens: HashMap<String, Instant>,
    requests: Vec<BigIpRequest>,
    next_operation: u64,
}

/// A running lab BIG-IP. Dropping it stops the listener.
pub struct LabBigIp {
    name: String,
    addr: SocketAddr,
    virtual_addr: Option<SocketAddr>,
    state: Arc<Mutex<State>>,
    _shutdown: watch::Sender<bool>,
}

impl LabBigIp {
    /// Binds an OS-chosen port on `config.listen` and serves until dropped.
    pub(crate) async fn start(
        config: BigIpConfig,
        ca: &LabCa,
        dns_domain: &str,
    ) -> anyhow::Result<LabBigIp> {
        let cert = ca
            .issue_server(&config.name, dns_domain, config.listen)
            .with_context(|| format!("issuing the certificate of {}", config.name))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(cert.server_config()?);
        let listener = TcpListener::bind(SocketAddr::new(config.listen, 0))
            .await
            .with_context(|| format!("binding {}", config.name))?;
        let addr = listener.local_addr()?;
        let name = config.name.clone();
        let virtual_server = config.virtual_server.clone();
        let virtual_listener = match &virtual_server {
            None => None,
            Some(vs) => {
                vs.validate()?;
                if vs.pool.is_empty() {
                    anyhow::bail!("the APM virtual server of {name} has no pool member");
                }
                let listener = TcpListener::bind(SocketAddr::new(config.listen, 0))
                    .await
                    .with_context(|| format!("binding the virtual server of {name}"))?;
                Some(listener)
            }
        };
        let realm = format!("Basic realm=\"{}.{dns_domain}\"", name.to_lowercase());
        let state = Arc::new(Mutex::new(State::new(config)));
        let (shutdown, stop) = watch::channel(false);
        let rest = state.clone();
        tokio::spawn(accept_loop(
            listener,
            acceptor.clone(),
            move |req, peer| {
                let state = rest.clone();
                async move { Some(handle(&state, req, peer).await) }
            },
            stop.clone(),
        ));
        let mut virtual_addr = None;
        if let (Some(vs), Some(listener)) = (virtual_server, virtual_listener) {
            virtual_addr = Some(listener.local_addr()?);
            let http = reqwest::Client::builder()
                .tls_backend_preconfigured((*tls_trusting(ca.cert_pem())?).clone())
                .no_proxy()
                .timeout(PROXY_TIMEOUT)
                .build()
                .context("the virtual server's HTTP client")?;
            let server = Arc::new(VirtualServer {
                state: state.clone(),
                directory: DirectoryClient::new(vs.directory_urls.clone(), &vs.directory_ca_pem)?,
                pool: vs.pool,
                next: AtomicUsize::new(0),
                http,
                realm: HeaderValue::from_str(&realm).context("the device name in the realm")?,
            });
            tokio::spawn(accept_loop(
                listener,
                acceptor,
                move |req, peer| {
                    let server = server.clone();
                    async move { server.handle(req, peer).await }
                },
                stop,
            ));
        }
        Ok(LabBigIp {
            name,
            addr,
            virtual_addr,
            state,
            _shutdown: shutdown,
        })
    }

    /// The APM virtual server's address, when the device has one.
    pub fn virtual_server_addr(&self) -> Option<SocketAddr> {
        self.virtual_addr
    }

    /// `https://VS/PATH` of one Exchange endpoint through the virtual server.
    pub fn virtual_server_url(&self, endpoint: &super::Endpoint) -> Option<String> {
        self.virtual_addr
            .map(|a| format!("{}{}", super::frontend::base_url(a), endpoint.path))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// As revoke.toml's `[f5] devices` names it: `127.0.0.1:PORT`.
    pub fn device(&self) -> String {
        self.addr.to_string()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new access session, as if `user` had logged on through APM from
    /// `client_ip`; returns its id (8 hex digits, like APM's).
    pub fn add_session(&self, user: &str, client_ip: &str) -> String {
        self.state().new_session(user, client_ip)
    }

    /// The sessions that exist now.
    pub fn sessions(&self) -> Vec<LabApmSession> {
        let mut state = self.state();
        state.expire();
        state.sessions.clone()
    }

    pub fn has_session(&self, id: &str) -> bool {
        let mut state = self.state();
        state.expire();
        state.sessions.iter().any(|s| s.id == id)
    }

    /// Fault: refuse every login from now on (or accept them again).
    pub fn refuse_logins(&self, refuse: bool) {
        self.state().config.refuse_logins = refuse;
    }

    /// Every call answered so far, in order.
    pub fn requests(&self) -> Vec<BigIpRequest> {
        self.state().requests.clone()
    }
}

/// Serves HTTPS on `listener` with `handler` (None: drop the connection).
async fn accept_loop<H, F>(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    handler: H,
    mut stop: watch::Receiver<bool>,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Option<Reply>> + Send + 'static,
{
    let stop_signal = stop.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let acceptor = acceptor.clone();
                let handler = handler.clone();
                let mut stop = stop_signal.clone();
                tokio::spawn(async move {
                    let serve = async move {
                        let Ok(Ok(tls)) =
                            tokio::time::timeout(Duration::from_secs(30), acceptor.accept(stream)).await
                        else {
                            return;
                        };
                        let service = service_fn(move |req| {
                            let answer = handler(req, peer);
                            async move { answer.await.ok_or(WorkerGone) }
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    };
                    tokio::select! {
                        _ = serve => {}
                        _ = stop.wait_for(|s| *s) => {}
                    }
                });
            }
            // Set to true, or the LabBigIp was dropped.
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}

async fn handle(
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

fn route(
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
    match state.sessions.iter().position(|s| s.id == id) {
        Some(index) => {
            state.sessions.remove(index);
            state.access.remove(id);
            (StatusCode::OK, None)
        }
        None => (
            StatusCode::NOT_FOUND,
            Some(json!({
                "code": 404,
                "message": format!("01020036:3: The requested session ({id}) was not found."),
                "errorStack": [],
                "apiError": 3
            })),
        ),
    }
}

impl State {
    fn new(config: BigIpConfig) -> State {
        State {
            config,
            sessions: Vec::new(),
            access: HashMap::new(),
            tokens: HashMap::new(),
            requests: Vec::new(),
            next_operation: 1,
        }
    }

    /// A new access session; returns its id (8 hex digits, like APM's).
    fn new_session(&mut self, user: &str, client_ip: &str) -> String {
        let id = loop {
            let id = format!("{:08x}", getrandom::u32().expect("random"));
            if !self.sessions.iter().any(|s| s.id == id) {
                break id;
            }
        };
        self.sessions.push(LabApmSession {
            id: id.clone(),
            user: user.to_string(),
            client_ip: client_ip.to_string(),
            created: SystemTime::now(),
        });
        id
    }

    /// Ends the sessions past their maximum lifetime or idle too long
    /// (only on a device with a virtual server, whose timeouts they are).
    fn expire(&mut self) {
        let Some(vs) = &self.config.virtual_server else {
            return;
        };
        let (max, idle) = (vs.max_session_timeout, vs.inactivity_timeout);
        let (now, wall) = (Instant::now(), SystemTime::now());
        let access = &self.access;
        self.sessions.retain(|s| {
            wall.duration_since(s.created).unwrap_or_default() < max
                && access
                    .get(&s.id)
                    .is_none_or(|a| now.duration_since(a.last_seen) < idle)
        });
        let sessions = &self.sessions;
        self.access
            .retain(|id, _| sessions.iter().any(|s| &s.id == id));
    }

    /// The live session this `MRHSession` value belongs to; slides its
    /// inactivity timer.
    fn touch(&mut self, cookie: &str) -> Option<String> {
        self.expire();
        let id = cookie.get(cookie.len().checked_sub(8)?..)?;
        let access = self.access.get_mut(id)?;
        if access.cookie != cookie {
            return None;
        }
        access.last_seen = Instant::now();
        Some(id.to_string())
    }

    /// A session for a user the virtual server just authenticated; returns
    /// its `MRHSession` value (24 random hex digits, then the session id).
    fn logon(&mut self, user: &str, client_ip: &str) -> String {
        let id = self.new_session(user, client_ip);
        let mut random = [0u8; 12];
        getrandom::fill(&mut random).expect("random");
        let mut cookie: String = random.iter().map(|b| format!("{b:02x}")).collect();
        cookie.push_str(&id);
        self.access.insert(
            id,
            Access {
                cookie: cookie.clone(),
                last_seen: Instant::now(),
            },
        );
        cookie
    }

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

/// The running APM virtual server of a device.
struct VirtualServer {
    state: Arc<Mutex<State>>,
    directory: DirectoryClient,
    pool: Vec<SocketAddr>,
    /// Round-robin position in `pool`.
    next: AtomicUsize,
    http: reqwest::Client,
    realm: HeaderValue,
}

impl VirtualServer {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One client request: pre-authentication unless it has a live
    /// session, then the pool. None: drop the client's connection.
    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Option<Reply> {
        let cookie = session_cookie(&req);
        let credentials = basic_credentials(&req);
        let (parts, body) = req.into_parts();
        let Ok(body) = Limited::new(body, MAX_PROXY_BODY).collect().await else {
            return Some(text(StatusCode::PAYLOAD_TOO_LARGE, "Request Too Large"));
        };
        let body = body.to_bytes();
        let live = cookie.and_then(|c| self.state().touch(&c));
        let mut new_cookie = None;
        if live.is_none() {
            // Pre-authentication: APM's AD auth, one bind per logon.
            let Some((user, password)) = credentials else {
                return Some(self.unauthorized());
            };
            match self.directory.validate(&user, &password).await {
                BindOutcome::Accepted => {
                    let ip = peer.ip().to_string();
                    new_cookie = Some(self.state().logon(user.trim(), &ip));
                }
                BindOutcome::Refused(why) => {
                    tracing::debug!(%user, %why, "APM logon refused");
                    return Some(self.unauthorized());
                }
                BindOutcome::Unreachable(why) => {
                    tracing::warn!(%user, %why, "APM: no directory to validate a logon");
                    return Some(self.unauthorized());
                }
            }
        }
        let mut response = self.proxy(&parts, body).await?;
        if let Some(cookie) = new_cookie
            && let Ok(value) =
                HeaderValue::from_str(&format!("{SESSION_COOKIE}={cookie}; path=/; secure"))
        {
            response.headers_mut().append(SET_COOKIE, value);
        }
        Some(response)
    }

    /// Sends the request to the next pool member that accepts a connection.
    async fn proxy(&self, parts: &hyper::http::request::Parts, body: Bytes) -> Option<Reply> {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for k in 0..self.pool.len() {
            let member = self.pool[(start + k) % self.pool.len()];
            let url = format!("{}{path}", super::frontend::base_url(member));
            let mut request = self.http.request(parts.method.clone(), url);
            for (name, value) in &parts.headers {
                if forwarded(name) {
                    request = request.header(name, value);
                }
            }
            match request.body(body.clone()).send().await {
                Ok(answer) => {
                    let status = answer.status();
                    let headers = answer.headers().clone();
                    let Ok(body) = answer.bytes().await else {
                        return None;
                    };
                    let mut response = Response::new(Full::new(body));
                    *response.status_mut() = status;
                    for (name, value) in &headers {
                        if forwarded(name) {
                            response.headers_mut().append(name, value.clone());
                        }
                    }
                    return Some(response);
                }
                // A member that is down: the next one (LTM's monitor would
                // have marked it down).
                Err(e) if e.is_connect() => {
                    tracing::debug!(%member, error = %e, "pool member unreachable");
                }
                Err(_) => return None,
            }
        }
        Some(text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"))
    }

    fn unauthorized(&self) -> Reply {
        let mut r = text(StatusCode::UNAUTHORIZED, "401 - Unauthorized");
        r.headers_mut().insert(WWW_AUTHENTICATE, self.realm.clone());
        r
    }
}

/// Headers passed between client and pool member: not hop-by-hop ones,
/// not the length (recomputed), not the client's cookies (APM's own among
/// them; the lab's Exchange sets none).
fn forwarded(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
            | "cookie"
    )
}

/// The `MRHSession` value the client sent, if any.
fn session_cookie<B>(req: &Request<B>) -> Option<String> {
    req.headers()
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_string())
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

    #[test]
    fn virtual_server_sessions_live_by_cookie_until_deleted_or_idle() {
        let mut s = State::new(BigIpConfig {
            virtual_server: Some(VirtualServerConfig::new(vec![], String::new())),
            ..BigIpConfig::default()
        });
        s.tokens.insert("T".into(), Instant::now() + TOKEN_LIFETIME);
        let cookie = s.logon("LAB\\alice", "127.0.0.1");
        assert_eq!(cookie.len(), 32);
        let id = s.touch(&cookie).expect("a live session");
        assert!(cookie.ends_with(&id));
        assert_eq!(s.sessions[0].user, "LAB\\alice");
        // Only the whole cookie opens it.
        let forged = format!("{}{id}", "0".repeat(24));
        assert_eq!(s.touch(&forged), None);
        assert_eq!(s.touch(&id), None);
        assert_eq!(s.touch(""), None);
        // Idle too long: gone.
        let vs = s.config.virtual_server.as_mut().unwrap();
        assert_eq!(vs.inactivity_timeout, Duration::from_secs(900));
        vs.inactivity_timeout = Duration::ZERO;
        assert_eq!(s.touch(&cookie), None);
        assert!(s.sessions.is_empty());
        s.config.virtual_server.as_mut().unwrap().inactivity_timeout = Duration::from_secs(900);
        // Deleted over REST: gone.
        let cookie = s.logon("alice", "127.0.0.1");
        let id = s.touch(&cookie).unwrap();
        let path = format!("/mgmt/tm/apm/session/{id}");
        let (status, _) = route(&mut s, &Method::DELETE, &path, Some("T"), b"", PEER);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(s.touch(&cookie), None);
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let req = Request::builder()
            .header("cookie", "a=1; MRHSession=abc123 ; b=2")
            .body(())
            .unwrap();
        assert_eq!(session_cookie(&req).as_deref(), Some("abc123"));
        let req = Request::builder()
            .header("cookie", "LastMRH_Session=x")
            .body(())
            .unwrap();
        assert_eq!(session_cookie(&req), None);
        assert!(!forwarded(&hyper::header::COOKIE));
        assert!(forwarded(&hyper::header::AUTHORIZATION));
    }
}
