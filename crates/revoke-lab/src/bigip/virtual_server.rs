//! The traffic side of a lab BIG-IP: an APM virtual server on its own
//! HTTPS listener (apart from the management port, as on a real BIG-IP) in
//! front of a pool of the lab's Exchange front ends.
//!
//! A request without a valid `MRHSession` cookie is pre-authenticated: its
//! Basic credentials are checked with an LDAP simple bind against the
//! directory (the front end's [`DirectoryClient`]); success creates an
//! access session (listed by access-info like any other, logon user as the
//! client typed it, client IP its peer address) and sets the cookie;
//! failure is a 401. With a valid cookie the request is proxied to the next
//! pool member (round-robin), the client's `Authorization` passed through
//! as APM's SSO would, and the directory is not asked again: the session
//! lives until its inactivity timeout (900 s, slid by every request) or its
//! maximum lifetime (7 days), or until it is deleted over REST — the APM
//! half of the stale-credential bug (docs/windows-behaviour.md §1.6, §6).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, SET_COOKIE, WWW_AUTHENTICATE};
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::super::frontend::{
    BindOutcome, DirectoryClient, FrontEndConfig, Reply, base_url, basic_credentials, text,
    tls_trusting, validate_directory,
};
use super::super::tls::LabCa;
use super::{Access, State, accept_loop};

/// The cookie that carries an APM access session.
const SESSION_COOKIE: &str = "MRHSession";
/// Largest request body the virtual server forwards.
const MAX_PROXY_BODY: usize = 1024 * 1024;
/// How long the virtual server waits for a pool member (a Ping is held).
const PROXY_TIMEOUT: Duration = Duration::from_secs(600);

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
    /// starts the device ([`crate::Lab::start_bigip`]).
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

/// Checks `config` and binds the virtual server's listener (an OS-chosen
/// port on `listen`) for device `device`.
pub(super) async fn bind(
    config: &VirtualServerConfig,
    listen: IpAddr,
    device: &str,
) -> anyhow::Result<TcpListener> {
    config.validate()?;
    if config.pool.is_empty() {
        anyhow::bail!("the APM virtual server of {device} has no pool member");
    }
    TcpListener::bind(SocketAddr::new(listen, 0))
        .await
        .with_context(|| format!("binding the virtual server of {device}"))
}

/// Serves the virtual server on `listener` until `stop`; `realm` is what
/// its 401s offer (`Basic realm="..."`).
pub(super) fn serve(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    config: VirtualServerConfig,
    state: Arc<Mutex<State>>,
    ca: &LabCa,
    realm: &str,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured((*tls_trusting(ca.cert_pem())?).clone())
        .no_proxy()
        .timeout(PROXY_TIMEOUT)
        .build()
        .context("the virtual server's HTTP client")?;
    let server = Arc::new(VirtualServer {
        state,
        directory: DirectoryClient::new(config.directory_urls.clone(), &config.directory_ca_pem)?,
        pool: config.pool,
        next: AtomicUsize::new(0),
        http,
        realm: HeaderValue::from_str(realm).context("the device name in the realm")?,
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
    Ok(())
}

impl State {
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
            let url = format!("{}{path}", base_url(member));
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

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hyper::Method;

    use super::super::BigIpConfig;
    use super::super::rest::{TOKEN_LIFETIME, route};
    use super::*;

    const PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 50000);

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
