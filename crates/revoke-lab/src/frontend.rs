//! The client front end of a lab server: what a phone, Outlook or a browser
//! talks to on an Exchange server, and where the stale-token bug lives
//! (docs/windows-behaviour.md §1.1-§1.5).
//!
//! One HTTPS listener per server (certificate from the lab CA) serves the
//! Exchange virtual directories, each in its application pool:
//!
//! | path | pool |
//! |------|------|
//! | `/EWS/Exchange.asmx` | MSExchangeServicesAppPool |
//! | `/Microsoft-Server-ActiveSync` | MSExchangeSyncAppPool |
//! | `/owa` | MSExchangeOWAAppPool |
//! | `/mapi/` | MSExchangeMAPIFrontEndAppPool |
//! | `/rpc/rpcproxy.dll` | MSExchangeRPCProxyFrontEndAppPool |
//!
//! Every request is accepted by its pool's current worker in the simulated
//! IIS ([`IisSim::accept_request`]) and held by it until answered. Basic
//! authentication works like IIS's: the worker keeps a logon-token cache
//! keyed by user name and a hash of the password; a hit slides the entry's
//! lifetime and asks nobody; a miss validates the credentials with an LDAPS
//! simple bind against the directory and caches the token on success. The
//! cache belongs to the worker process: a recycle (new worker, empty cache)
//! or an iisreset is the only thing that makes the server ask the directory
//! again before the entry expires.
//!
//! `POST /Microsoft-Server-ActiveSync?Cmd=Ping` is a DirectPush long poll:
//! held open for the heartbeat, then answered 200, unless the worker holding
//! it exits first (drain limit, iisreset), which drops the connection.
//!
//! Lab-only response headers, for tests and curious users: `X-Lab-Worker`
//! (the PID that served the request) and `X-Lab-Token-Cache` (`hit` or
//! `miss`). `X-FEServer` names the server, as Exchange does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ldap3::{LdapConnAsync, LdapConnSettings};
use md5::Md5;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::iis::{IisSim, RequestGuard, Unavailable};
use revoke_core::iis::EXCHANGE_POOLS;

const MAX_BODY: usize = 1024 * 1024;
/// How often a held long poll checks that its worker still runs.
const HOLD_POLL: Duration = Duration::from_millis(25);
/// Connect and operation timeout of one validation bind.
const BIND_TIMEOUT: Duration = Duration::from_secs(10);

/// One client endpoint of an Exchange server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// What clients call it: "EWS", "ActiveSync", "OWA", "MAPI", "RPC".
    pub name: &'static str,
    /// The path a client requests, e.g. `/EWS/Exchange.asmx`.
    pub path: &'static str,
    /// The application pool whose worker serves it.
    pub pool: &'static str,
}

/// Every endpoint the front end serves, one per Exchange pool.
pub const ENDPOINTS: [Endpoint; 5] = [
    Endpoint {
        name: "EWS",
        path: "/EWS/Exchange.asmx",
        pool: EXCHANGE_POOLS[1],
    },
    Endpoint {
        name: "ActiveSync",
        path: "/Microsoft-Server-ActiveSync",
        pool: EXCHANGE_POOLS[0],
    },
    Endpoint {
        name: "OWA",
        path: "/owa",
        pool: EXCHANGE_POOLS[2],
    },
    Endpoint {
        name: "MAPI",
        path: "/mapi/",
        pool: EXCHANGE_POOLS[4],
    },
    Endpoint {
        name: "RPC",
        path: "/rpc/rpcproxy.dll",
        pool: EXCHANGE_POOLS[3],
    },
];

/// The endpoint a request path belongs to (IIS paths are case-insensitive).
pub fn endpoint_for(path: &str) -> Option<&'static Endpoint> {
    let path = path.to_ascii_lowercase();
    let under = |dir: &str| path == dir || path.starts_with(&format!("{dir}/"));
    let index = if under("/ews") {
        0
    } else if under("/microsoft-server-activesync") {
        1
    } else if under("/owa") {
        2
    } else if under("/mapi") {
        3
    } else if under("/rpc") {
        4
    } else {
        return None;
    };
    Some(&ENDPOINTS[index])
}

/// The directory the front end validates users against: LDAP URL(s) and
/// the CA of their certificates. `ldaps://` is LDAP over TLS; `ldap://`
/// uses StartTLS (AD refuses simple binds in the clear).
#[derive(Debug, Clone)]
pub struct FrontEndConfig {
    /// Server *i* asks `directory_urls[i % n]` first, the others when that
    /// one cannot be reached (never after a refusal).
    pub directory_urls: Vec<String>,
    /// PEM of the CA that signed the directory's certificates.
    pub directory_ca_pem: String,
    /// How long a cached logon token lives after its last use (IIS: 15 min).
    pub token_cache_ttl: Duration,
    /// How long an ActiveSync Ping is held before it answers.
    pub ping_heartbeat: Duration,
}

impl FrontEndConfig {
    /// Defaults: IIS's 15-minute token cache, a 30 s Ping heartbeat.
    pub fn new(directory_urls: Vec<String>, directory_ca_pem: String) -> Self {
        FrontEndConfig {
            directory_urls,
            directory_ca_pem,
            token_cache_ttl: Duration::from_secs(15 * 60),
            ping_heartbeat: Duration::from_secs(30),
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        validate_directory(
            "the front end",
            &self.directory_urls,
            &self.directory_ca_pem,
        )
    }
}

/// Checks a directory to validate logons against: at least one
/// `ldaps://`/`ldap://` URL and a usable CA (`who` names the asker).
pub(super) fn validate_directory(who: &str, urls: &[String], ca_pem: &str) -> anyhow::Result<()> {
    if urls.is_empty() {
        anyhow::bail!("{who} needs at least one directory URL");
    }
    for url in urls {
        let lower = url.to_ascii_lowercase();
        if !(lower.starts_with("ldaps://") || lower.starts_with("ldap://")) {
            anyhow::bail!("directory URL {url:?} is not ldaps://... or ldap://...");
        }
    }
    tls_trusting(ca_pem)?;
    Ok(())
}

/// A TLS client configuration trusting only the CA in `ca_pem` (the
/// directory's, or the lab's for a BIG-IP's pool).
pub(super) fn tls_trusting(ca_pem: &str) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots
            .add(cert.context("the directory CA is not PEM")?)
            .context("the directory CA is not a usable certificate")?;
    }
    if roots.is_empty() {
        anyhow::bail!("the directory CA holds no certificate");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// How one validation bind went.
#[derive(Debug)]
pub(super) enum BindOutcome {
    Accepted,
    /// The directory said no (result code and text, e.g. `data 533`).
    Refused(String),
    /// No directory could be asked.
    Unreachable(String),
}

/// Validates credentials with LDAP simple binds, as LogonUser would.
pub(super) struct DirectoryClient {
    /// In the order this server asks them.
    urls: Vec<String>,
    tls: Arc<rustls::ClientConfig>,
}

impl DirectoryClient {
    /// Asks `urls` in this order, trusting the CA in `ca_pem`.
    pub(super) fn new(urls: Vec<String>, ca_pem: &str) -> anyhow::Result<Self> {
        Ok(DirectoryClient {
            urls,
            tls: tls_trusting(ca_pem)?,
        })
    }

    pub(super) async fn validate(&self, user: &str, password: &str) -> BindOutcome {
        // An empty password is an unauthenticated bind, which LDAP "accepts".
        if password.is_empty() {
            return BindOutcome::Refused("empty password".into());
        }
        let mut last_error = String::from("no directory configured");
        for url in &self.urls {
            match self.bind(url, user, password).await {
                Err(e) => last_error = format!("{url}: {e}"),
                Ok(outcome) => return outcome,
            }
        }
        BindOutcome::Unreachable(last_error)
    }

    /// Ok(outcome) when the directory answered the bind, Err when it could not be asked.
    async fn bind(&self, url: &str, user: &str, password: &str) -> Result<BindOutcome, String> {
        let starttls = url.to_ascii_lowercase().starts_with("ldap://");
        let settings = LdapConnSettings::new()
            .set_conn_timeout(BIND_TIMEOUT)
            .set_starttls(starttls)
            .set_config(self.tls.clone());
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, url)
            .await
            .map_err(|e| e.to_string())?;
        ldap3::drive!(conn);
        let result = ldap
            .with_timeout(BIND_TIMEOUT)
            .simple_bind(user, password)
            .await
            .map_err(|e| e.to_string())?;
        let _ = ldap.unbind().await;
        Ok(if result.rc == 0 {
            BindOutcome::Accepted
        } else {
            BindOutcome::Refused(format!("result {}: {}", result.rc, result.text))
        })
    }
}

/// A cached logon: lower-cased user name and keyed hash of the password.
type CacheKey = (String, [u8; 16]);
/// One worker's logon-token cache: when each entry was last used.
type WorkerCache = HashMap<CacheKey, Instant>;

/// Logon tokens cached by each worker process, keyed by PID.
struct TokenCaches {
    ttl: Duration,
    /// Keys the password hashes; fresh per server, so nothing is comparable
    /// across runs.
    hash_key: [u8; 16],
    by_worker: Mutex<HashMap<u32, WorkerCache>>,
}

impl TokenCaches {
    fn key(&self, user: &str, password: &str) -> CacheKey {
        let mut mac =
            <Hmac<Md5> as KeyInit>::new_from_slice(&self.hash_key).expect("any key length");
        mac.update(password.as_bytes());
        let hash: [u8; 16] = mac.finalize().into_bytes().into();
        (user.to_lowercase(), hash)
    }

    /// A live entry for these credentials in this worker's cache; slides it.
    fn hit(&self, iis: &IisSim, pid: u32, key: &CacheKey) -> bool {
        let now = Instant::now();
        let mut caches = self.by_worker.lock().expect("token caches");
        // A worker's cache dies with it.
        let alive: Vec<u32> = iis.workers().iter().map(|w| w.pid).collect();
        caches.retain(|pid, _| alive.contains(pid));
        let Some(cache) = caches.get_mut(&pid) else {
            return false;
        };
        cache.retain(|_, last_used| now.duration_since(*last_used) < self.ttl);
        match cache.get_mut(key) {
            Some(last_used) => {
                *last_used = now;
                true
            }
            None => false,
        }
    }

    fn insert(&self, iis: &IisSim, pid: u32, key: CacheKey) {
        if !iis.worker_alive(pid) {
            return;
        }
        let mut caches = self.by_worker.lock().expect("token caches");
        caches.entry(pid).or_default().insert(key, Instant::now());
    }
}

/// What [`start`] needs to know about one server.
pub(super) struct FrontEndSpec {
    /// "EX01".
    pub name: String,
    /// 0-based: which directory URL this server asks first.
    pub index: usize,
    /// `exNN.<dns domain>`: the Basic realm.
    pub fqdn: String,
    pub iis: IisSim,
    pub latency: Duration,
}

pub(super) struct FrontEnd {
    name: String,
    realm: HeaderValue,
    iis: IisSim,
    latency: Duration,
    directory: DirectoryClient,
    caches: TokenCaches,
    ping_heartbeat: Duration,
}

/// Builds the front end of one server; [`serve`] runs it on a connection.
pub(super) fn build(spec: FrontEndSpec, config: &FrontEndConfig) -> anyhow::Result<Arc<FrontEnd>> {
    let n = config.directory_urls.len().max(1);
    let urls = (0..config.directory_urls.len())
        .map(|k| config.directory_urls[(spec.index + k) % n].clone())
        .collect();
    let mut hash_key = [0u8; 16];
    getrandom::fill(&mut hash_key).map_err(|e| anyhow::anyhow!("random token-cache key: {e}"))?;
    let realm = HeaderValue::from_str(&format!("Basic realm=\"{}\"", spec.fqdn))
        .context("server name in the Basic realm")?;
    Ok(Arc::new(FrontEnd {
        name: spec.name,
        realm,
        iis: spec.iis,
        latency: spec.latency,
        directory: DirectoryClient::new(urls, &config.directory_ca_pem)?,
        caches: TokenCaches {
            ttl: config.token_cache_ttl,
            hash_key,
            by_worker: Mutex::new(HashMap::new()),
        },
        ping_heartbeat: config.ping_heartbeat,
    }))
}

impl FrontEnd {
    /// Serves HTTP/1.1 on one (TLS) connection until it closes.
    pub(super) async fn serve_connection<S>(self: Arc<Self>, io: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = service_fn(move |req| {
            let fe = self.clone();
            async move {
                let mut response = fe.handle(req).await?;
                let h = response.headers_mut();
                h.insert(
                    hyper::header::SERVER,
                    HeaderValue::from_static("Microsoft-IIS/10.0"),
                );
                if let Ok(v) = HeaderValue::from_str(&fe.name) {
                    h.insert("X-FEServer", v);
                }
                if !fe.latency.is_zero() {
                    tokio::time::sleep(fe.latency).await;
                }
                Ok::<_, WorkerGone>(response)
            }
        });
        let _ = http1::Builder::new()
            .keep_alive(true)
            .header_read_timeout(None)
            .serve_connection(TokioIo::new(io), service)
            .await;
    }
}

/// The worker holding a request exited: the connection is dropped
/// unanswered (by a BIG-IP in front too, when its pool member dropped it).
#[derive(Debug)]
pub(super) struct WorkerGone;

impl std::fmt::Display for WorkerGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the worker process serving the request exited")
    }
}

impl std::error::Error for WorkerGone {}

pub(super) type Reply = Response<Full<Bytes>>;

impl FrontEnd {
    async fn handle(&self, req: Request<Incoming>) -> Result<Reply, WorkerGone> {
        let Some(endpoint) = endpoint_for(req.uri().path()) else {
            return Ok(text(StatusCode::NOT_FOUND, "Not Found"));
        };
        let is_ping = endpoint.pool == EXCHANGE_POOLS[0]
            && req.method() == Method::POST
            && req
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|kv| kv.eq_ignore_ascii_case("Cmd=Ping")));
        let creds = basic_credentials(&req);
        // HTTP.sys queues the request to the pool's current worker.
        let guard = match self.iis.accept_request(endpoint.pool) {
            Ok(guard) => guard,
            Err(Unavailable::IisDown | Unavailable::PoolNotStarted) => {
                let mut r = text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
                r.headers_mut()
                    .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
                return Ok(r);
            }
        };
        if Limited::new(req.into_body(), MAX_BODY)
            .collect()
            .await
            .is_err()
        {
            return Ok(text(StatusCode::PAYLOAD_TOO_LARGE, "Request Too Large"));
        }
        let Some((user, password)) = creds else {
            return Ok(self.unauthorized());
        };
        let key = self.caches.key(&user, &password);
        let cache = if self.caches.hit(&self.iis, guard.pid(), &key) {
            "hit"
        } else {
            match self.directory.validate(&user, &password).await {
                BindOutcome::Accepted => {
                    self.caches.insert(&self.iis, guard.pid(), key);
                    "miss"
                }
                BindOutcome::Refused(why) => {
                    tracing::debug!(server = %self.name, %user, %why, "logon refused");
                    return Ok(self.unauthorized());
                }
                BindOutcome::Unreachable(why) => {
                    tracing::warn!(server = %self.name, %user, %why, "no directory to validate a logon");
                    return Ok(self.unauthorized());
                }
            }
        };
        if !guard.worker_alive() {
            return Err(WorkerGone);
        }
        if is_ping {
            self.hold(&guard, self.ping_heartbeat).await?;
        }
        let mut r = text(
            StatusCode::OK,
            &format!("{} {} {}\r\n", endpoint.name, self.name, endpoint.pool),
        );
        let h = r.headers_mut();
        h.insert("X-Lab-Worker", HeaderValue::from(guard.pid()));
        h.insert("X-Lab-Token-Cache", HeaderValue::from_static(cache));
        Ok(r)
    }

    /// Holds a long poll for `heartbeat` in its worker; Err if the worker exits first.
    async fn hold(&self, guard: &RequestGuard, heartbeat: Duration) -> Result<(), WorkerGone> {
        let until = Instant::now() + heartbeat;
        loop {
            if !guard.worker_alive() {
                return Err(WorkerGone);
            }
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            tokio::time::sleep((until - now).min(HOLD_POLL)).await;
        }
    }

    fn unauthorized(&self) -> Reply {
        let mut r = text(StatusCode::UNAUTHORIZED, "401 - Unauthorized");
        r.headers_mut().insert(WWW_AUTHENTICATE, self.realm.clone());
        r
    }
}

pub(super) fn text(status: StatusCode, body: &str) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// `Authorization: Basic` user and password, if present and well-formed.
/// `DOMAIN\user` and UPN forms are passed to the directory as given.
pub(super) fn basic_credentials<B>(req: &Request<B>) -> Option<(String, String)> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("Basic") {
        return None;
    }
    let raw = B64.decode(token.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    if user.is_empty() {
        return None;
    }
    Some((user.to_string(), password.to_string()))
}

/// The front end's address, for printing: `https://ADDR`.
pub fn base_url(addr: SocketAddr) -> String {
    format!("https://{addr}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_exchange_pool_has_one_endpoint() {
        let mut pools: Vec<&str> = ENDPOINTS.iter().map(|e| e.pool).collect();
        pools.sort_unstable();
        let mut expected = EXCHANGE_POOLS.to_vec();
        expected.sort_unstable();
        assert_eq!(pools, expected);
        for e in &ENDPOINTS {
            assert_eq!(endpoint_for(e.path), Some(e), "{e:?}");
        }
    }

    #[test]
    fn paths_route_case_insensitively_and_only_under_their_directory() {
        let pool = |p: &str| endpoint_for(p).map(|e| e.pool);
        assert_eq!(
            pool("/ews/exchange.asmx"),
            Some("MSExchangeServicesAppPool")
        );
        assert_eq!(pool("/owa/"), Some("MSExchangeOWAAppPool"));
        assert_eq!(pool("/OWA"), Some("MSExchangeOWAAppPool"));
        assert_eq!(pool("/mapi/emsmdb/"), Some("MSExchangeMAPIFrontEndAppPool"));
        assert_eq!(
            pool("/Rpc/RpcProxy.dll"),
            Some("MSExchangeRPCProxyFrontEndAppPool")
        );
        assert_eq!(pool("/owasomething"), None);
        assert_eq!(pool("/"), None);
        assert_eq!(pool("/wsman"), None);
    }

    #[test]
    fn config_needs_urls_and_a_ca() {
        let config = FrontEndConfig::new(vec![], String::new());
        assert!(config.validate().is_err());
        let config = FrontEndConfig::new(vec!["http://dc1".into()], String::new());
        assert!(config.validate().is_err());
        let ca = super::super::tls::LabCa::new().unwrap();
        let config = FrontEndConfig::new(vec!["ldaps://dc1".into()], ca.cert_pem().into());
        config.validate().unwrap();
        assert_eq!(config.token_cache_ttl, Duration::from_secs(900));
    }

    #[test]
    fn cache_keys_fold_user_case_but_not_password() {
        let caches = TokenCaches {
            ttl: Duration::from_secs(1),
            hash_key: [7; 16],
            by_worker: Mutex::new(HashMap::new()),
        };
        assert_eq!(caches.key("LAB\\Bob", "pw"), caches.key("lab\\bob", "pw"));
        assert_ne!(caches.key("LAB\\bob", "pw"), caches.key("LAB\\bob", "Pw"));
    }
}
