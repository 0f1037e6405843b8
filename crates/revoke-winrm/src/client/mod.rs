//! One WinRM session with one server: a single HTTP/1.1 connection (Kerberos
//! or NTLM authenticates the connection, not the request), a remote shell on
//! it, and commands run one after another. A command costs Command, Receive
//! (more while it runs and prints) and Signal; the last one's Signal is left
//! to the shell's Delete.
//!
//! Here: the settings, the connection and its requests (send, read within
//! caps, resend only what is safe). `auth`: who the client is to the server.
//! `shell`: the remote shell and its commands.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_rustls::TlsConnector;

use zeroize::Zeroizing;

use super::sealing::Sealer;
use super::{Password, WinrmError, sanitize, sealing, soap};

mod auth;
mod shell;

use auth::KerberosCredential;
pub use auth::kerberos_principal;
pub use shell::Shell;

/// What sealing adds around an envelope (MIME boundaries and part headers,
/// the signature and its length): well under this.
const SEALING_OVERHEAD: usize = 2048;

/// The largest HTTP answer body the client reads: the largest envelope it
/// asks for ([`soap::MAX_ENVELOPE_SIZE`]) and its sealing. A larger one is
/// refused without reading further, so a server (or anyone on the path of
/// plain HTTP) cannot make the client hold an answer without end.
pub const MAX_RESPONSE_BODY: usize = soap::MAX_ENVELOPE_SIZE + SEALING_OVERHEAD;

/// The most output (stdout and stderr together) kept for one command. The
/// commands revoke runs print a few KiB; one that prints more than this is
/// ended (Signal terminate) and its server fails.
pub const MAX_COMMAND_OUTPUT: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub const ALL: [Scheme; 2] = [Scheme::Http, Scheme::Https];

    /// As URLs and configuration spell it.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 5985,
            Scheme::Https => 5986,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    /// HTTP Negotiate: Kerberos when a ticket for `HTTP/<host>` can be had,
    /// else NTLM if [`ClientSettings::allow_ntlm`]. Windows' default; works
    /// over plain HTTP because every message is sealed.
    Negotiate,
    /// Kerberos only (inside Negotiate): mutual authentication, sealed.
    Kerberos,
    /// NTLM only (inside Negotiate).
    Ntlm,
    /// Only over HTTPS (Basic is off by default on Windows).
    Basic,
}

impl Auth {
    pub const ALL: [Auth; 4] = [Auth::Negotiate, Auth::Kerberos, Auth::Ntlm, Auth::Basic];

    /// As configuration spells it.
    pub fn name(self) -> &'static str {
        match self {
            Auth::Negotiate => "negotiate",
            Auth::Kerberos => "kerberos",
            Auth::Ntlm => "ntlm",
            Auth::Basic => "basic",
        }
    }

    /// Whether Kerberos is tried (first) with this setting.
    pub fn tries_kerberos(self) -> bool {
        matches!(self, Auth::Negotiate | Auth::Kerberos)
    }
}

/// The mechanism that authenticated a connection, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mechanism {
    Kerberos,
    Ntlm,
    Basic,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Kerberos => "kerberos",
            Mechanism::Ntlm => "ntlm",
            Mechanism::Basic => "basic",
        }
    }
}

/// How to reach and authenticate to every server of a run. The password
/// is not part of it: it is given to [`Connector::new`].
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub scheme: Scheme,
    pub auth: Auth,
    /// `DOMAIN\user`, `user@domain` or `user`.
    pub user: String,
    pub ca_file: Option<PathBuf>,
    pub accept_invalid_certs: bool,
    pub connect_timeout: Duration,
    /// WS-Management OperationTimeout: how long one Receive may wait for output.
    pub operation_timeout: Duration,
    /// May `negotiate` fall back to NTLM when Kerberos cannot be used?
    pub allow_ntlm: bool,
    /// The Kerberos realm of `user` when it has none (`DOMAIN\\user`, `user`);
    /// else the library's default realm (krb5.conf).
    pub kerberos_realm: Option<String>,
}

impl ClientSettings {
    /// Check what can be checked before touching the network.
    pub fn validate(&self) -> Result<(), WinrmError> {
        match (self.scheme, self.auth) {
            (Scheme::Http, Auth::Basic) => Err(WinrmError::Settings(
                "Basic authentication over plain HTTP would send the password in clear text \
                 (and Windows refuses it by default); use scheme = \"https\" or auth = \"negotiate\""
                    .into(),
            )),
            (_, Auth::Ntlm) if !self.allow_ntlm => Err(WinrmError::Settings(
                "auth = \"ntlm\" but allow_ntlm = false: use auth = \"kerberos\" (or \"negotiate\")"
                    .into(),
            )),
            _ if self.scheme == Scheme::Http && self.ca_file.is_some() => {
                Err(WinrmError::Settings(
                    "ca_file is set but scheme is \"http\": a CA file only applies to HTTPS".into(),
                ))
            }
            _ => Ok(()),
        }
    }

    /// `(user, domain)` as NTLM wants them.
    fn ntlm_identity(&self) -> (&str, &str) {
        match self.user.split_once('\\') {
            Some((domain, user)) => (user, domain),
            None => (self.user.as_str(), ""),
        }
    }
}

/// Shared by every server of a run: settings and the TLS configuration.
#[derive(Clone)]
pub struct Connector {
    settings: Arc<ClientSettings>,
    password: Password,
    tls: Option<TlsConnector>,
    /// The Kerberos credential every server's context starts from, found
    /// once: `None` inside means the default one (the ticket cache).
    kerberos: Arc<tokio::sync::OnceCell<KerberosCredential>>,
}

impl Connector {
    pub fn new(settings: ClientSettings, password: Password) -> Result<Self, WinrmError> {
        settings.validate()?;
        let tls = match settings.scheme {
            Scheme::Https => Some(TlsConnector::from(
                crate::tls::client_config(
                    settings.ca_file.as_deref(),
                    settings.accept_invalid_certs,
                )
                .map_err(|e| WinrmError::Settings(e.0))?,
            )),
            Scheme::Http => None,
        };
        Ok(Self {
            settings: Arc::new(settings),
            password,
            tls,
            kerberos: Arc::default(),
        })
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// A client for one server; nothing is sent until the first request.
    pub fn client(&self, host: &str, port: u16) -> WinrmClient {
        let scheme = self.settings.scheme.name();
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        WinrmClient {
            connector: self.clone(),
            host: host.to_string(),
            port,
            url: format!("{scheme}://{authority}/wsman"),
            authority,
            connection: Mutex::new(None),
            mechanism: std::sync::Mutex::new(None),
        }
    }
}

/// The WinRM client for one server.
pub struct WinrmClient {
    connector: Connector,
    host: String,
    port: u16,
    url: String,
    authority: String,
    connection: Mutex<Option<Connection>>,
    /// What authenticated the last connection, for the report.
    mechanism: std::sync::Mutex<Option<Mechanism>>,
}

struct Connection {
    sender: SendRequest<Full<Bytes>>,
    /// The server's certificate (HTTPS), for channel bindings.
    peer_certificate: Option<Vec<u8>>,
    /// Present once NTLM or Kerberos authenticated this connection over plain HTTP.
    sealing: Option<Sealer>,
}

/// What a command printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
}

/// Why a request got no usable answer, and whether it may have reached the server.
enum SendError {
    /// Nothing of the request was written (the connection was found closed):
    /// sending it on a new connection is safe.
    Unwritten(WinrmError),
    /// The request may have been written, in part or whole.
    Written(WinrmError),
}

struct Answer {
    status: StatusCode,
    www_authenticate: Vec<String>,
    content_type: String,
    body: Bytes,
}

impl WinrmClient {
    pub fn endpoint(&self) -> &str {
        &self.url
    }

    /// What authenticated the connection (once one was made).
    pub fn mechanism(&self) -> Option<Mechanism> {
        *self.mechanism.lock().expect("mechanism lock")
    }

    fn settings(&self) -> &ClientSettings {
        &self.connector.settings
    }

    fn request_timeout(&self) -> Duration {
        self.settings().operation_timeout + Duration::from_secs(10)
    }

    /// Open a remote shell (this connects and authenticates).
    pub async fn open_shell(&self) -> Result<Shell<'_>, WinrmError> {
        let xml = self
            .call(
                soap::ACTION_CREATE,
                None,
                soap::CREATE_SHELL_BODY,
                &[("WINRS_NOPROFILE", "TRUE"), ("WINRS_CODEPAGE", "65001")],
                None,
            )
            .await?;
        Ok(Shell {
            client: self,
            id: soap::parse_shell_id(&xml)?,
            unsignalled: std::sync::Mutex::new(None),
        })
    }

    /// Send one SOAP request and return the response envelope.
    ///
    /// `once` names a command that changes the server: such a request is
    /// sent at most once, and any failure after it may have been written
    /// becomes [`WinrmError::MayHaveRun`]. Other requests are sent once more
    /// on a new connection when the server answered 401 on a kept-alive one
    /// (its NTLM context expired). The HTTP status line is not sealed, so a
    /// 401 proves nothing about whether the server acted on the request.
    ///
    /// After any failure other than a SOAP fault read from a trustworthy
    /// answer, the connection is dropped with its NTLM context: its RC4
    /// keystreams and sequence numbers may have moved.
    async fn call(
        &self,
        action: &str,
        shell_id: Option<&str>,
        body: &str,
        options: &[(&str, &str)],
        once: Option<&str>,
    ) -> Result<String, WinrmError> {
        let message_id = format!("uuid:{}", uuid::Uuid::new_v4().as_hyphenated());
        let xml = soap::Request {
            to: &self.url,
            action,
            message_id: &message_id,
            shell_id,
            operation_timeout_secs: self.settings().operation_timeout.as_secs().max(1),
            options,
            body,
        }
        .to_xml();

        let mut guard = self.connection.lock().await;
        let mut resent = false;
        let error = loop {
            let reused = guard.as_ref().is_some_and(|c| !c.sender.is_closed());
            if !reused {
                *guard = None;
                // Nothing of this request was written: errors are as they are.
                *guard = Some(self.connect_and_authenticate().await?);
            }
            let conn = guard.as_mut().expect("connected above");
            let answer = match self.send_envelope(conn, &xml).await {
                Ok(answer) => answer,
                Err(SendError::Unwritten(e)) => {
                    *guard = None;
                    if resent {
                        return Err(e);
                    }
                    resent = true;
                    continue;
                }
                Err(SendError::Written(e)) => {
                    *guard = None;
                    break e;
                }
            };
            match answer.status {
                StatusCode::OK => match self.open_body(conn, &answer) {
                    Ok(text) => return Ok(text),
                    Err(e) => {
                        *guard = None;
                        break e;
                    }
                },
                StatusCode::UNAUTHORIZED => {
                    *guard = None;
                    if once.is_some() {
                        // Not the server's word: the status line is not sealed.
                        break WinrmError::Http {
                            status: 401,
                            detail: String::new(),
                        };
                    }
                    if reused && !resent {
                        resent = true;
                        continue;
                    }
                    break WinrmError::AuthRejected(self.settings().user.clone());
                }
                status => {
                    let opened = self.open_body(conn, &answer);
                    if let Some(fault) = opened.as_deref().ok().and_then(soap::parse_fault) {
                        // The service's own (sealed or TLS-protected) refusal:
                        // it did not act, and the connection is in step.
                        return Err(fault);
                    }
                    *guard = None;
                    let detail = opened.unwrap_or_default();
                    break WinrmError::Http {
                        status: status.as_u16(),
                        detail: sanitize(&detail.chars().take(200).collect::<String>()),
                    };
                }
            }
        };
        Err(match once {
            Some(command) => may_have_run(command, error),
            None => error,
        })
    }

    /// The plain-text envelope of a response (unsealed when sealed). On a
    /// sealed session every answer must be sealed, empty ones included: an
    /// unsealed one could come from anyone on the path.
    fn open_body(&self, conn: &mut Connection, answer: &Answer) -> Result<String, WinrmError> {
        let bytes = if let Some(security) = conn.sealing.as_mut() {
            if !sealing::is_sealed(&answer.content_type) {
                return Err(WinrmError::Protocol(format!(
                    "the server answered HTTP {} without sealing on a sealed session \
                     (anyone on the network path can forge such an answer)",
                    answer.status.as_u16()
                )));
            }
            sealing::unseal_body(security, &answer.body)
                .map_err(|e| WinrmError::Protocol(format!("cannot unseal the response: {e}")))?
        } else if sealing::is_sealed(&answer.content_type) {
            return Err(WinrmError::Protocol(
                "sealed response on a connection that is not sealed".into(),
            ));
        } else {
            answer.body.to_vec()
        };
        String::from_utf8(bytes).map_err(|_| WinrmError::Protocol("response is not UTF-8".into()))
    }

    async fn send_envelope(&self, conn: &mut Connection, xml: &str) -> Result<Answer, SendError> {
        // Before sealing: a closed connection costs no keystream.
        self.ready(conn).await.map_err(SendError::Unwritten)?;
        let mut builder = self.request_builder();
        let body = if let Some(security) = conn.sealing.as_mut() {
            builder = builder.header(header::CONTENT_TYPE, sealing::SEALED_CONTENT_TYPE);
            sealing::seal_body_with(security, xml.as_bytes(), sealing::Framing::Windows).map_err(
                |e| SendError::Unwritten(WinrmError::Protocol(format!("cannot seal: {e}"))),
            )?
        } else {
            builder = builder.header(header::CONTENT_TYPE, "application/soap+xml;charset=UTF-8");
            xml.as_bytes().to_vec()
        };
        if self.settings().auth == Auth::Basic {
            builder = builder.header(
                header::AUTHORIZATION,
                self.basic_authorization().map_err(SendError::Unwritten)?,
            );
        }
        let request = builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| SendError::Unwritten(WinrmError::Protocol(e.to_string())))?;
        self.exchange(conn, request).await
    }

    fn request_builder(&self) -> hyper::http::request::Builder {
        Request::post("/wsman")
            .header(header::HOST, &self.authority)
            .header(
                header::USER_AGENT,
                concat!("revoke/", env!("CARGO_PKG_VERSION")),
            )
    }

    /// `Basic base64(user:password)`, built in buffers that are wiped when
    /// dropped and marked sensitive (hyper keeps it out of its debug output
    /// and HPACK tables). The copy inside the `HeaderValue` itself cannot be
    /// wiped; it lives until the request is written.
    fn basic_authorization(&self) -> Result<HeaderValue, WinrmError> {
        let user = &self.settings().user;
        let password = self.connector.password.expose();
        let mut pair = Zeroizing::new(String::with_capacity(user.len() + 1 + password.len()));
        pair.push_str(user);
        pair.push(':');
        pair.push_str(password);
        let mut value = Zeroizing::new(String::with_capacity(6 + pair.len().div_ceil(3) * 4));
        value.push_str("Basic ");
        base64::engine::general_purpose::STANDARD.encode_string(pair.as_bytes(), &mut value);
        let mut header = HeaderValue::from_str(&value).map_err(|_| {
            WinrmError::Settings("the user name cannot be sent in an HTTP header".into())
        })?;
        header.set_sensitive(true);
        Ok(header)
    }

    /// Waits until the connection can take a request; fails (nothing
    /// written) when the server has closed it.
    async fn ready(&self, conn: &mut Connection) -> Result<(), WinrmError> {
        let timeout = self.request_timeout();
        tokio::time::timeout(timeout, conn.sender.ready())
            .await
            .map_err(|_| WinrmError::NoAnswer(timeout.as_secs()))?
            .map_err(|e| WinrmError::ConnectionLost(e.to_string()))
    }

    /// Send a request and read the whole answer, within the request timeout
    /// and at most [`MAX_RESPONSE_BODY`] bytes of it.
    async fn exchange(
        &self,
        conn: &mut Connection,
        request: Request<Full<Bytes>>,
    ) -> Result<Answer, SendError> {
        let timeout = self.request_timeout();
        let work = async {
            let response: Response<hyper::body::Incoming> = conn
                .sender
                .try_send_request(request)
                .await
                .map_err(|mut e| {
                    // hyper hands the request back when none of it was written.
                    let unwritten = e.take_message().is_some();
                    let error = WinrmError::ConnectionLost(describe_hyper(e.error()));
                    if unwritten {
                        SendError::Unwritten(error)
                    } else {
                        SendError::Written(error)
                    }
                })?;
            let status = response.status();
            let www_authenticate = response
                .headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok().map(String::from))
                .collect();
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let too_large = WinrmError::ResponseTooLarge {
                limit: MAX_RESPONSE_BODY,
            };
            let declared = response
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if declared.is_some_and(|n| n > MAX_RESPONSE_BODY as u64) {
                return Err(SendError::Written(too_large));
            }
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BODY)
                .collect()
                .await
                .map_err(|e| {
                    SendError::Written(if e.downcast_ref::<LengthLimitError>().is_some() {
                        too_large
                    } else {
                        WinrmError::ConnectionLost(describe_hyper(e.as_ref()))
                    })
                })?
                .to_bytes();
            Ok(Answer {
                status,
                www_authenticate,
                content_type,
                body,
            })
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| SendError::Written(WinrmError::NoAnswer(timeout.as_secs())))?
    }

    async fn connect(&self) -> Result<Connection, WinrmError> {
        let connect_timeout = self.settings().connect_timeout;
        // Resolved apart from connecting, so a name that does not resolve is
        // told apart from a host that does not answer.
        let addresses: Vec<std::net::SocketAddr> = tokio::time::timeout(
            connect_timeout,
            tokio::net::lookup_host((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| WinrmError::NameNotResolved(self.host.clone()))?
        .map_err(|_| WinrmError::NameNotResolved(self.host.clone()))?
        .collect();
        let tcp = tokio::time::timeout(connect_timeout, TcpStream::connect(addresses.as_slice()))
            .await
            .map_err(|_| {
                WinrmError::Unreachable(format!(
                    "no TCP connection within {} s",
                    connect_timeout.as_secs()
                ))
            })?
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    WinrmError::ConnectionRefused(format!("nothing listens on port {}", self.port))
                }
                _ => WinrmError::Unreachable(e.to_string()),
            })?;
        let _ = tcp.set_nodelay(true);

        match &self.connector.tls {
            None => self.handshake_http(TokioIo::new(tcp), None).await,
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| WinrmError::Settings(format!("bad host name: {e}")))?;
                let stream = tokio::time::timeout(connect_timeout, tls.connect(name, tcp))
                    .await
                    .map_err(|_| WinrmError::Tls("TLS handshake timed out".into()))?
                    .map_err(|e| WinrmError::Tls(e.to_string()))?;
                let peer = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.as_ref().to_vec());
                self.handshake_http(TokioIo::new(stream), peer).await
            }
        }
    }

    async fn handshake_http<S>(
        &self,
        io: TokioIo<S>,
        peer_certificate: Option<Vec<u8>>,
    ) -> Result<Connection, WinrmError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| WinrmError::ConnectionLost(describe_hyper(&e)))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Connection {
            sender,
            peer_certificate,
            sealing: None,
        })
    }
}

/// A failure after a command that changes the server may have been sent.
fn may_have_run(command: &str, error: WinrmError) -> WinrmError {
    match error {
        WinrmError::MayHaveRun { .. } => error,
        error => WinrmError::MayHaveRun {
            command: command.to_string(),
            reason: error.to_string(),
        },
    }
}

fn describe_hyper(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}
