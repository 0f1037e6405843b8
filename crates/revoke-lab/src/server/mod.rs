//! The WinRM endpoint of a lab server over HTTP, as HTTP.sys serves it: the
//! HTTP and HTTPS listeners, the [`Runtime`] that owns every listener of a
//! lab (and the NeverAnswer and RefuseConnections faults), and `/wsman`'s
//! HTTP rules (POST only, body size, the `Server` header, latency). Who the
//! client is and how its messages are sealed is `auth`.

mod auth;
mod hostile;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::auth::ConnAuth;
use super::accounts::Accounts;
use super::faults::ServerFaults;
use super::iis::IisSim;
use super::shell::{ShellService, SoapReply};
use super::tls::ServerCert;
use super::{CommandLog, LoggedRequest, RequestLog};

/// Larger than WinRM's MaxEnvelopeSize (500 KB) once sealed and framed.
const MAX_BODY: usize = 1024 * 1024;
const SOAP_CONTENT_TYPE: &str = "application/soap+xml;charset=UTF-8";

/// What [`super::Lab::start`] knows about one server.
pub struct ServerSpec {
    pub name: String,
    pub accounts: Accounts,
    pub latency: Duration,
    /// Accepts Kerberos (the process has a keytab).
    pub kerberos: bool,
    /// Accepts NTLM.
    pub ntlm: bool,
    pub faults: ServerFaults,
    pub iis: IisSim,
    pub log: CommandLog,
    pub requests: RequestLog,
}

/// Shared by both listeners of one server.
struct Shared {
    accounts: Accounts,
    delay: Duration,
    shells: Arc<ShellService>,
    requests: RequestLog,
    /// The hostile-answer faults, each given once per server.
    hostile: hostile::Hostile,
    kerberos: bool,
    ntlm: bool,
    /// The WithholdApRep fault.
    withhold_ap_rep: bool,
    /// The WithholdSealing fault.
    withhold_sealing: bool,
}

/// Which listener a connection came in on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Listener {
    Http,
    /// With the channel-bindings hash of the server's leaf certificate.
    Https([u8; 16]),
}

/// One TCP connection to a server.
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
            shells: ShellService::new(
                machine,
                spec.iis,
                spec.log,
                spec.faults.shell_quota_fault,
                spec.faults.endless_output,
            ),
            requests: spec.requests,
            hostile: hostile::Hostile::new(&spec.faults),
            kerberos: spec.kerberos,
            ntlm: spec.ntlm,
            withhold_ap_rep: spec.faults.withhold_ap_rep,
            withhold_sealing: spec.faults.withhold_sealing,
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
            let mut response = hostile::body(handle(&conn, req).await);
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
    if let Some(action) = reply.action {
        r.extensions_mut().insert(AnsweredAction(action));
    }
    r
}

/// The WS-Management action a response answered, for the request log.
#[derive(Clone)]
struct AnsweredAction(String);

/// One request to `/wsman`: HTTP checks, the whole body, then `auth`. Every
/// POST is recorded in the server's request log.
async fn handle(conn: &Conn, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let at = std::time::SystemTime::now();
    let posted = req.uri().path() == "/wsman" && req.method() == Method::POST;
    let authorization = auth::describe(&auth::credentials(&req));
    let response = answer(conn, req).await;
    if posted {
        conn.shared.requests.record(LoggedRequest {
            at,
            authorization,
            action: response
                .extensions()
                .get::<AnsweredAction>()
                .map(|a| a.0.clone()),
            status: response.status().as_u16(),
        });
    }
    response
}

async fn answer(conn: &Conn, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() != "/wsman" {
        return empty(StatusCode::NOT_FOUND);
    }
    if req.method() != Method::POST {
        let mut r = empty(StatusCode::METHOD_NOT_ALLOWED);
        r.headers_mut()
            .insert(hyper::header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let creds = auth::credentials(&req);
    let sealed = auth::is_sealed(&req);
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
    auth::answer(conn, creds, &body, sealed).await
}
