//! HTTP side of a lab server: listeners, per-connection authentication and
//! message sealing, as HTTP.sys and the WinRM service do it by default.
//!
//! - HTTP listener: `WWW-Authenticate: Negotiate` only (Basic is off by
//!   default), AllowUnencrypted=false: after NTLM, SOAP bodies must be sealed.
//! - HTTPS listener: Negotiate (with channel bindings from the leaf
//!   certificate, checked when the client sends them) and `Basic realm="WSMAN"`;
//!   plaintext bodies are fine over TLS.
//!
//! NTLM authenticates the TCP connection, not the request: the context and
//! its SessionSecurity live in [`ConnAuth`], one per connection, like HTTP.sys.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::CommandLog;
use super::accounts::Accounts;
use super::envelope::WsmanFault;
use super::faults::ServerFaults;
use super::iis::IisSim;
use super::shell::{ShellService, SoapReply};
use super::tls::ServerCert;
use revoke_winrm::ntlm::{ServerContext, SessionSecurity};
use revoke_winrm::sealing;

/// Larger than WinRM's MaxEnvelopeSize (500 KB) once sealed and framed.
const MAX_BODY: usize = 1024 * 1024;
const SOAP_CONTENT_TYPE: &str = "application/soap+xml;charset=UTF-8";

/// What [`super::Lab::start`] knows about one server.
pub struct ServerSpec {
    pub name: String,
    pub accounts: Accounts,
    pub latency: Duration,
    pub faults: ServerFaults,
    pub iis: IisSim,
    pub log: CommandLog,
}

/// Shared by both listeners of one server.
struct Shared {
    accounts: Accounts,
    delay: Duration,
    shells: Arc<ShellService>,
}

/// Which listener a connection came in on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Listener {
    Http,
    /// With the channel-bindings hash of the server's leaf certificate.
    Https([u8; 16]),
}

/// Authentication state of one TCP connection.
enum ConnAuth {
    None,
    /// NEGOTIATE answered with a CHALLENGE; waiting for AUTHENTICATE.
    Challenged(Box<ServerContext>),
    /// NTLM done: who, and the keys that seal this connection's messages.
    Authenticated {
        user: String,
        security: Box<SessionSecurity>,
    },
}

struct Conn {
    shared: Arc<Shared>,
    listener: Listener,
    auth: Mutex<ConnAuth>,
}

/// Every listener of a lab, and the switch that stops them.
pub struct Runtime {
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Ports held for RefuseConnections servers: bound, never listening,
    /// so connecting gets a RST (connection refused) and nobody else takes them.
    reserved: Vec<TcpSocket>,
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    pub fn new() -> Self {
        Runtime {
            shutdown: watch::channel(false).0,
            tasks: Vec::new(),
            reserved: Vec::new(),
        }
    }

    /// Binds both listeners of a server; returns their addresses.
    pub async fn start_server(
        &mut self,
        spec: ServerSpec,
        http: SocketAddr,
        https: SocketAddr,
        cert: ServerCert,
    ) -> anyhow::Result<(SocketAddr, SocketAddr)> {
        if spec.faults.refuse_connections {
            let a = self.reserve(http)?;
            let b = self.reserve(https)?;
            return Ok((a, b));
        }
        let http_listener = TcpListener::bind(http)
            .await
            .with_context(|| format!("binding {http}"))?;
        let https_listener = TcpListener::bind(https)
            .await
            .with_context(|| format!("binding {https}"))?;
        let addrs = (http_listener.local_addr()?, https_listener.local_addr()?);
        let cbt = revoke_winrm::ntlm::channel_bindings_hash(cert.leaf_der());
        let acceptor = tokio_rustls::TlsAcceptor::from(cert.server_config()?);
        let machine = format!(
            "{}.{}",
            spec.name.to_lowercase(),
            spec.accounts.identity().dns_domain
        );
        let shared = Arc::new(Shared {
            accounts: spec.accounts.rejecting_all(spec.faults.reject_credentials),
            delay: spec.latency + spec.faults.extra_latency,
            shells: ShellService::new(machine, spec.iis, spec.log, spec.faults.shell_quota_fault),
        });
        let never_answer = spec.faults.never_answer;
        self.tasks.push(tokio::spawn(accept_loop(
            http_listener,
            self.shutdown.subscribe(),
            never_answer,
            {
                let shared = shared.clone();
                move |stream, _| serve(stream, shared.clone(), Listener::Http)
            },
        )));
        self.tasks.push(tokio::spawn(accept_loop(
            https_listener,
            self.shutdown.subscribe(),
            never_answer,
            move |stream, _| {
                let acceptor = acceptor.clone();
                let shared = shared.clone();
                async move {
                    // A client that never finishes the handshake only holds
                    // its own task.
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(Duration::from_secs(30), acceptor.accept(stream)).await
                    {
                        serve(tls, shared, Listener::Https(cbt)).await;
                    }
                }
            },
        )));
        Ok(addrs)
    }

    /// Serves `on_conn` on every connection `listener` accepts, until
    /// shutdown (the lab's other listeners, e.g. the client front end).
    pub(super) fn spawn_listener<F, Fut>(
        &mut self,
        listener: TcpListener,
        never_answer: bool,
        on_conn: F,
    ) where
        F: Fn(TcpStream, SocketAddr) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.push(tokio::spawn(accept_loop(
            listener,
            self.shutdown.subscribe(),
            never_answer,
            on_conn,
        )));
    }

    /// Holds `addr` without listening: connecting to it is refused.
    pub(super) fn reserve(&mut self, addr: SocketAddr) -> anyhow::Result<SocketAddr> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket
            .bind(addr)
            .with_context(|| format!("reserving {addr}"))?;
        let local = socket.local_addr()?;
        self.reserved.push(socket);
        Ok(local)
    }

    /// Stops accepting and drops every open connection.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Accepts until shutdown; each connection runs in its own task and is
/// dropped (socket closed) when shutdown is signalled.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    never_answer: bool,
    on_conn: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let stop_signal = shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let mut stop = stop_signal.clone();
                if never_answer {
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = swallow(stream) => {}
                            _ = stop.wait_for(|s| *s) => {}
                        }
                    });
                } else {
                    let fut = on_conn(stream, peer);
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = fut => {}
                            _ = stop.wait_for(|s| *s) => {}
                        }
                    });
                }
            }
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
}

/// NeverAnswer: read whatever comes, answer nothing, until the peer leaves.
async fn swallow(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

async fn serve<S>(io: S, shared: Arc<Shared>, listener: Listener)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = Arc::new(Conn {
        shared,
        listener,
        auth: Mutex::new(ConnAuth::None),
    });
    let service = service_fn(move |req| {
        let conn = conn.clone();
        async move {
            let mut response = handle(&conn, req).await;
            // HTTP.sys names itself on every answer, 401s included.
            response.headers_mut().insert(
                hyper::header::SERVER,
                HeaderValue::from_static("Microsoft-HTTPAPI/2.0"),
            );
            if !conn.shared.delay.is_zero() {
                tokio::time::sleep(conn.shared.delay).await;
            }
            Ok::<_, Infallible>(response)
        }
    });
    let _ = http1::Builder::new()
        .keep_alive(true)
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(io), service)
        .await;
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

fn soap_response(reply: SoapReply) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(reply.xml)));
    *r.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(SOAP_CONTENT_TYPE));
    r
}

/// 401 offering what this listener accepts (Windows defaults).
fn unauthorized(listener: Listener) -> Response<Full<Bytes>> {
    let mut r = empty(StatusCode::UNAUTHORIZED);
    let h = r.headers_mut();
    h.append(WWW_AUTHENTICATE, HeaderValue::from_static("Negotiate"));
    if matches!(listener, Listener::Https(_)) {
        h.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"WSMAN\""),
        );
    }
    r
}

/// 401 carrying the NTLM CHALLENGE, under the scheme the client used. Only
/// this one header: clients (winrm-rs) read the first WWW-Authenticate.
fn challenge(scheme: &str, token: &[u8]) -> Response<Full<Bytes>> {
    let mut r = empty(StatusCode::UNAUTHORIZED);
    let value = format!("{scheme} {}", B64.encode(token));
    if let Ok(v) = HeaderValue::from_str(&value) {
        r.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    r
}

enum Credentials {
    None,
    Basic(String, String),
    /// Scheme as sent ("Negotiate" or "NTLM") and the raw NTLMSSP token.
    Ntlm(String, Vec<u8>),
    Unusable,
}

fn credentials(req: &Request<Incoming>) -> Credentials {
    let Some(value) = req.headers().get(AUTHORIZATION) else {
        return Credentials::None;
    };
    let Ok(value) = value.to_str() else {
        return Credentials::Unusable;
    };
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value, ""));
    let Ok(raw) = B64.decode(token.trim()) else {
        return Credentials::Unusable;
    };
    if scheme.eq_ignore_ascii_case("Basic") {
        let text = String::from_utf8_lossy(&raw);
        return match text.split_once(':') {
            Some((u, p)) => Credentials::Basic(u.to_string(), p.to_string()),
            None => Credentials::Unusable,
        };
    }
    if scheme.eq_ignore_ascii_case("Negotiate") || scheme.eq_ignore_ascii_case("NTLM") {
        // Raw NTLMSSP only; SPNEGO-wrapped tokens (Kerberos clients) are not
        // understood by the lab.
        if raw.starts_with(b"NTLMSSP\0") && raw.len() >= 12 {
            let scheme = if scheme.eq_ignore_ascii_case("NTLM") {
                "NTLM"
            } else {
                "Negotiate"
            };
            return Credentials::Ntlm(scheme.to_string(), raw);
        }
    }
    Credentials::Unusable
}

async fn handle(conn: &Conn, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() != "/wsman" {
        return empty(StatusCode::NOT_FOUND);
    }
    if req.method() != Method::POST {
        let mut r = empty(StatusCode::METHOD_NOT_ALLOWED);
        r.headers_mut()
            .insert(hyper::header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let creds = credentials(&req);
    let sealed = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(sealing::is_sealed);
    // Read the whole body before answering, so that the connection (and
    // with it the NTLM context) stays usable after a 401.
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let mut r = empty(StatusCode::PAYLOAD_TOO_LARGE);
            r.headers_mut()
                .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
    };
    let shared = &conn.shared;

    match creds {
        Credentials::Basic(user, password) => {
            // Basic is off on the HTTP listener (Windows default).
            if conn.listener == Listener::Http || !shared.accounts.check_basic(&user, &password) {
                return unauthorized(conn.listener);
            }
            if sealed {
                return empty(StatusCode::BAD_REQUEST);
            }
            let user = shared.accounts.canonical();
            soap_response(shared.shells.handle(&body, &user).await)
        }
        Credentials::Ntlm(scheme, token) => {
            let msg_type = u32::from_le_bytes([token[8], token[9], token[10], token[11]]);
            match msg_type {
                1 => {
                    // A new NEGOTIATE restarts authentication on this connection.
                    let mut ctx = Box::new(ServerContext::new(shared.accounts.identity()));
                    let reply = ctx.challenge(&token);
                    let mut auth = conn.auth.lock().expect("conn auth poisoned");
                    match reply {
                        Ok(ch) => {
                            *auth = ConnAuth::Challenged(ctx);
                            challenge(&scheme, &ch)
                        }
                        Err(_) => {
                            *auth = ConnAuth::None;
                            unauthorized(conn.listener)
                        }
                    }
                }
                3 => {
                    if !accept_authenticate(conn, &token) {
                        return unauthorized(conn.listener);
                    }
                    authenticated_body(conn, &body, sealed).await
                }
                _ => unauthorized(conn.listener),
            }
        }
        Credentials::None => {
            let authed = matches!(
                *conn.auth.lock().expect("conn auth poisoned"),
                ConnAuth::Authenticated { .. }
            );
            if !authed {
                // Includes a sealed body on a connection without a context.
                return unauthorized(conn.listener);
            }
            authenticated_body(conn, &body, sealed).await
        }
        Credentials::Unusable => unauthorized(conn.listener),
    }
}

/// Checks an AUTHENTICATE against this connection's CHALLENGE; on success
/// the connection is authenticated (and its sealing keys set).
fn accept_authenticate(conn: &Conn, token: &[u8]) -> bool {
    let expected_cbt = match conn.listener {
        Listener::Https(cbt) => Some(cbt),
        Listener::Http => None,
    };
    let mut auth = conn.auth.lock().expect("conn auth poisoned");
    let ConnAuth::Challenged(mut ctx) = std::mem::replace(&mut *auth, ConnAuth::None) else {
        return false;
    };
    let accounts = &conn.shared.accounts;
    let Ok((_who, security)) = ctx.authenticate(
        token,
        &|u: &str, d: &str| accounts.nt_hash_of(u, d),
        expected_cbt,
    ) else {
        return false;
    };
    *auth = ConnAuth::Authenticated {
        user: accounts.canonical(),
        security: Box::new(security),
    };
    true
}

/// A request on an NTLM-authenticated connection.
async fn authenticated_body(conn: &Conn, body: &[u8], sealed: bool) -> Response<Full<Bytes>> {
    let shared = &conn.shared;
    if body.is_empty() {
        // What pywinrm sends on the AUTHENTICATE leg to set up sealing.
        return empty(StatusCode::OK);
    }
    let (user, soap) = {
        let mut auth = conn.auth.lock().expect("conn auth poisoned");
        let ConnAuth::Authenticated { user, security } = &mut *auth else {
            return unauthorized(conn.listener);
        };
        let soap = if sealed {
            match sealing::unseal_body(security, body) {
                Ok(s) => s,
                Err(_) => return empty(StatusCode::BAD_REQUEST),
            }
        } else if conn.listener == Listener::Http {
            // AllowUnencrypted=false: plaintext SOAP over HTTP is refused even
            // from an authenticated connection.
            let relates = super::envelope::parse_request(body)
                .ok()
                .and_then(|r| r.message_id);
            return soap_response(
                shared
                    .shells
                    .fault_reply(&WsmanFault::unencrypted_refused(), relates.as_deref()),
            );
        } else {
            body.to_vec()
        };
        (user.clone(), soap)
    };
    let reply = shared.shells.handle(&soap, &user).await;
    if !sealed {
        return soap_response(reply);
    }
    let mut auth = conn.auth.lock().expect("conn auth poisoned");
    let ConnAuth::Authenticated { security, .. } = &mut *auth else {
        return unauthorized(conn.listener);
    };
    let framed = sealing::seal_body(security, reply.xml.as_bytes());
    let mut r = Response::new(Full::new(Bytes::from(framed)));
    *r.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(sealing::SEALED_CONTENT_TYPE),
    );
    r
}
