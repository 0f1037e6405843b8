//! A lab F5 BIG-IP: one device, its APM access sessions, and its listeners,
//! over HTTPS on loopback with certificates from the lab CA.
//!
//! - `rest`: the management port, the three iControl REST endpoints
//!   `revoke` uses (login, access-info, session delete;
//!   docs/windows-behaviour.md §6.1-§6.3).
//! - `virtual_server`: with [`BigIpConfig::virtual_server`], an APM virtual
//!   server on a second listener in front of the lab's Exchange front ends,
//!   pre-authenticating users against the directory and creating access
//!   sessions (docs/windows-behaviour.md §1.6, §6).
//!
//! Both sides share the device's session table: a session the virtual
//! server creates is listed and deleted over REST like any other. Tests
//! create sessions with [`LabBigIp::add_session`] and read what is left with
//! [`LabBigIp::sessions`]; [`LabBigIp::refuse_logins`] is the fault of a
//! device whose REST user is refused.

mod rest;
mod virtual_server;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::LAB_DEFAULT_PASSWORD;
use super::frontend::{Reply, WorkerGone};
use super::tls::LabCa;

pub use virtual_server::VirtualServerConfig;

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

impl Default for BigIpConfig {
    fn default() -> Self {
        BigIpConfig {
            name: "bigip1".into(),
            listen: IpAddr::V4(Ipv4Addr::LOCALHOST),
            admin_user: "revoke-f5".into(),
            admin_password: LAB_DEFAULT_PASSWORD.into(),
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

/// One login on the REST port. The password offered is kept so a test can
/// check where a secret went ([`BigIpLogin::password_was`]); `Debug` never
/// shows it.
#[derive(Clone)]
pub struct BigIpLogin {
    pub at: SystemTime,
    pub user: String,
    pub accepted: bool,
    password: String,
}

impl BigIpLogin {
    /// Whether this login offered exactly `candidate` as its password.
    pub fn password_was(&self, candidate: &str) -> bool {
        self.password == candidate
    }
}

impl std::fmt::Debug for BigIpLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BigIpLogin")
            .field("at", &self.at)
            .field("user", &self.user)
            .field("accepted", &self.accepted)
            .finish_non_exhaustive()
    }
}

/// What the virtual server knows of a session it created.
struct Access {
    /// The whole `MRHSession` value (the session id is its last 8 digits).
    cookie: String,
    last_seen: Instant,
}

/// Everything a device knows, behind one lock shared by its listeners.
struct State {
    config: BigIpConfig,
    sessions: Vec<LabApmSession>,
    /// Sessions made by the virtual server, by id.
    access: HashMap<String, Access>,
    /// REST token → when it expires.
    tokens: HashMap<String, Instant>,
    /// Every REST call answered, in order.
    requests: Vec<BigIpRequest>,
    /// Every login attempt, in order.
    logins: Vec<BigIpLogin>,
    /// The next `restOperationId` of a REST error.
    next_operation: u64,
}

impl State {
    fn new(config: BigIpConfig) -> State {
        State {
            config,
            sessions: Vec::new(),
            access: HashMap::new(),
            tokens: HashMap::new(),
            requests: Vec::new(),
            logins: Vec::new(),
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

    /// Ends session `id`, whoever made it; false if there is none.
    fn end_session(&mut self, id: &str) -> bool {
        match self.sessions.iter().position(|s| s.id == id) {
            Some(index) => {
                self.sessions.remove(index);
                self.access.remove(id);
                true
            }
            None => false,
        }
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
            Some(vs) => Some(virtual_server::bind(vs, config.listen, &name).await?),
        };
        let state = Arc::new(Mutex::new(State::new(config)));
        let (shutdown, stop) = watch::channel(false);
        let rest = state.clone();
        tokio::spawn(accept_loop(
            listener,
            acceptor.clone(),
            move |req, peer| {
                let state = rest.clone();
                async move { Some(rest::handle(&state, req, peer).await) }
            },
            stop.clone(),
        ));
        let mut virtual_addr = None;
        if let (Some(vs), Some(listener)) = (virtual_server, virtual_listener) {
            virtual_addr = Some(listener.local_addr()?);
            let realm = format!("Basic realm=\"{}.{dns_domain}\"", name.to_lowercase());
            virtual_server::serve(listener, acceptor, vs, state.clone(), ca, &realm, stop)?;
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

    /// Every login attempt so far (who, accepted or not), in order.
    pub fn logins(&self) -> Vec<BigIpLogin> {
        self.state().logins.clone()
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
