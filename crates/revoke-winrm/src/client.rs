//! One WinRM session with one server: a single HTTP/1.1 connection (NTLM
//! authenticates the connection, not the request), a remote shell on it, and
//! commands run one after another. A command costs Command, Receive (more
//! while it runs and prints) and Signal; the last one's Signal is left to the
//! shell's Delete.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_rustls::TlsConnector;

use super::ntlm::{ClientContext, SessionSecurity};
use super::{Password, WinrmError, sealing, soap};

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
    /// NTLM inside HTTP Negotiate: Windows' default, works over plain HTTP
    /// because every message is sealed.
    Negotiate,
    /// Only over HTTPS (Basic is off by default on Windows).
    Basic,
    Kerberos,
}

impl Auth {
    pub const ALL: [Auth; 3] = [Auth::Negotiate, Auth::Basic, Auth::Kerberos];

    /// As configuration spells it.
    pub fn name(self) -> &'static str {
        match self {
            Auth::Negotiate => "negotiate",
            Auth::Basic => "basic",
            Auth::Kerberos => "kerberos",
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
            (_, Auth::Kerberos) => Err(WinrmError::Settings(
                "Kerberos is not supported by this build of revoke yet; use auth = \"negotiate\" \
                 (NTLM, sealed over HTTP) or auth = \"basic\" over HTTPS"
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
}

struct Connection {
    sender: SendRequest<Full<Bytes>>,
    /// The server's certificate (HTTPS), for NTLM channel bindings.
    peer_certificate: Option<Vec<u8>>,
    /// Present once NTLM authenticated this connection over plain HTTP.
    sealing: Option<SessionSecurity>,
}

/// What a command printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
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
            )
            .await?;
        Ok(Shell {
            client: self,
            id: soap::parse_shell_id(&xml)?,
            unsignalled: std::sync::Mutex::new(None),
        })
    }

    /// Send one SOAP request and return the response envelope.
    async fn call(
        &self,
        action: &str,
        shell_id: Option<&str>,
        body: &str,
        options: &[(&str, &str)],
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
        // A kept-alive connection the server has since closed, or one whose
        // NTLM context it dropped (401), gets one fresh connection: in both
        // cases the server did not act on the request.
        for attempt in 0..2 {
            let reused = guard.is_some();
            let conn = match guard.as_mut() {
                Some(c) if !c.sender.is_closed() => c,
                _ => {
                    *guard = None;
                    guard.insert(self.connect_and_authenticate().await?)
                }
            };
            let answer = self.send_envelope(conn, &xml).await?;
            match answer.status {
                StatusCode::OK => return self.open_body(conn, &answer),
                StatusCode::UNAUTHORIZED if reused && attempt == 0 => {
                    *guard = None;
                    continue;
                }
                StatusCode::UNAUTHORIZED => {
                    *guard = None;
                    return Err(WinrmError::AuthRejected(self.settings().user.clone()));
                }
                status => {
                    let text = self.open_body(conn, &answer).unwrap_or_default();
                    if let Some(fault) = soap::parse_fault(&text) {
                        return Err(fault);
                    }
                    *guard = None;
                    return Err(WinrmError::Http {
                        status: status.as_u16(),
                        detail: text
                            .chars()
                            .take(200)
                            .collect::<String>()
                            .trim()
                            .to_string(),
                    });
                }
            }
        }
        Err(WinrmError::AuthRejected(self.settings().user.clone()))
    }

    /// The plain-text envelope of a response (unsealed when sealed).
    fn open_body(&self, conn: &mut Connection, answer: &Answer) -> Result<String, WinrmError> {
        let bytes = if sealing::is_sealed(&answer.content_type) {
            let security = conn.sealing.as_mut().ok_or_else(|| {
                WinrmError::Protocol("sealed response on a connection without NTLM".into())
            })?;
            sealing::unseal_body(security, &answer.body)
                .map_err(|e| WinrmError::Protocol(format!("cannot unseal the response: {e}")))?
        } else if conn.sealing.is_some() && !answer.body.is_empty() {
            // Sealing was negotiated: an unsealed answer could have been forged.
            return Err(WinrmError::Protocol(
                "the server answered in clear text on a sealed session".into(),
            ));
        } else {
            answer.body.to_vec()
        };
        String::from_utf8(bytes).map_err(|_| WinrmError::Protocol("response is not UTF-8".into()))
    }

    async fn send_envelope(&self, conn: &mut Connection, xml: &str) -> Result<Answer, WinrmError> {
        let mut builder = self.request_builder();
        let body = if let Some(security) = conn.sealing.as_mut() {
            builder = builder.header(header::CONTENT_TYPE, sealing::SEALED_CONTENT_TYPE);
            sealing::seal_body(security, xml.as_bytes())
        } else {
            builder = builder.header(header::CONTENT_TYPE, "application/soap+xml;charset=UTF-8");
            xml.as_bytes().to_vec()
        };
        if self.settings().auth == Auth::Basic {
            builder = builder.header(header::AUTHORIZATION, self.basic_authorization());
        }
        let request = builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| WinrmError::Protocol(e.to_string()))?;
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

    fn basic_authorization(&self) -> String {
        let pair = format!(
            "{}:{}",
            self.settings().user,
            self.connector.password.expose()
        );
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    /// Send a request and read the whole answer, within the request timeout.
    async fn exchange(
        &self,
        conn: &mut Connection,
        request: Request<Full<Bytes>>,
    ) -> Result<Answer, WinrmError> {
        let timeout = self.request_timeout();
        let work = async {
            conn.sender
                .ready()
                .await
                .map_err(|e| WinrmError::ConnectionLost(e.to_string()))?;
            let response: Response<hyper::body::Incoming> = conn
                .sender
                .send_request(request)
                .await
                .map_err(|e| WinrmError::ConnectionLost(describe_hyper(&e)))?;
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
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| WinrmError::ConnectionLost(describe_hyper(&e)))?
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
            .map_err(|_| WinrmError::NoAnswer(timeout.as_secs()))?
    }

    async fn connect_and_authenticate(&self) -> Result<Connection, WinrmError> {
        let mut conn = self.connect().await?;
        if self.settings().auth == Auth::Negotiate {
            self.negotiate(&mut conn).await?;
        }
        Ok(conn)
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

    /// NTLM over HTTP Negotiate, with empty bodies: Windows refuses a SOAP
    /// body that is not sealed, and nothing can be sealed before the
    /// AUTHENTICATE message (this is what pywinrm does too).
    async fn negotiate(&self, conn: &mut Connection) -> Result<(), WinrmError> {
        let (user, domain) = self.settings().ntlm_identity();
        let mut ntlm = ClientContext::new(user, domain, self.connector.password.expose());
        let engine = &base64::engine::general_purpose::STANDARD;

        let first = self
            .empty_post(
                conn,
                format!("Negotiate {}", engine.encode(ntlm.negotiate())),
            )
            .await?;
        if first.status != StatusCode::UNAUTHORIZED {
            return Err(WinrmError::Protocol(format!(
                "expected an NTLM challenge (HTTP 401), got HTTP {}",
                first.status.as_u16()
            )));
        }
        let challenge = first
            .www_authenticate
            .iter()
            .find_map(|v| {
                let (scheme, token) = v.split_once(' ')?;
                (scheme.eq_ignore_ascii_case("Negotiate") || scheme.eq_ignore_ascii_case("NTLM"))
                    .then(|| engine.decode(token.trim()).ok())
                    .flatten()
            })
            .ok_or_else(|| {
                if first.www_authenticate.is_empty() {
                    WinrmError::Protocol("the server offered no authentication scheme".into())
                } else {
                    WinrmError::Protocol(format!(
                        "the server does not offer Negotiate (it offers: {})",
                        first.www_authenticate.join(", ")
                    ))
                }
            })?;

        let bindings = conn
            .peer_certificate
            .as_deref()
            .map(super::ntlm::channel_bindings_hash);
        let (authenticate, security) = ntlm
            .authenticate(&challenge, bindings)
            .map_err(|e| WinrmError::Protocol(format!("NTLM: {e}")))?;
        let second = self
            .empty_post(conn, format!("Negotiate {}", engine.encode(authenticate)))
            .await?;
        match second.status {
            StatusCode::OK => {
                if self.settings().scheme == Scheme::Http {
                    conn.sealing = Some(security);
                }
                Ok(())
            }
            StatusCode::UNAUTHORIZED => Err(WinrmError::AuthRejected(self.settings().user.clone())),
            status => Err(WinrmError::Http {
                status: status.as_u16(),
                detail: "while authenticating".into(),
            }),
        }
    }

    async fn empty_post(
        &self,
        conn: &mut Connection,
        authorization: String,
    ) -> Result<Answer, WinrmError> {
        let request = self
            .request_builder()
            .header(header::AUTHORIZATION, authorization)
            .header(header::CONTENT_LENGTH, "0")
            .body(Full::new(Bytes::new()))
            .map_err(|e| WinrmError::Protocol(e.to_string()))?;
        self.exchange(conn, request).await
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

/// A remote cmd shell on one server.
pub struct Shell<'c> {
    client: &'c WinrmClient,
    id: String,
    /// The last command that ended and was not yet released with a Signal:
    /// released before the next command starts, or by the shell's Delete.
    unsignalled: std::sync::Mutex<Option<String>>,
}

impl Shell<'_> {
    /// Run one command to completion and collect its output.
    pub async fn run(&self, program: &str, args: &[String]) -> Result<CommandOutput, WinrmError> {
        self.run_observed(program, args, |_, _| {}).await
    }

    /// Run one command to completion and collect its output; `progress` is
    /// told the command's stdout and stderr so far whenever a Receive brought
    /// more (a server answers a Receive as soon as the command printed
    /// something, MS-WSMV 3.1.4.14), so a caller can act on the output of a
    /// long command line before it ends.
    pub async fn run_observed(
        &self,
        program: &str,
        args: &[String],
        mut progress: impl FnMut(&str, &str),
    ) -> Result<CommandOutput, WinrmError> {
        self.release_previous().await;
        let client = self.client;
        let xml = client
            .call(
                soap::ACTION_COMMAND,
                Some(&self.id),
                &soap::command_body(program, args),
                &[
                    ("WINRS_CONSOLEMODE_STDIN", "TRUE"),
                    ("WINRS_SKIP_CMD_SHELL", "FALSE"),
                ],
            )
            .await?;
        let command_id = soap::parse_command_id(&xml)?;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let exit_code = loop {
            let received = match client
                .call(
                    soap::ACTION_RECEIVE,
                    Some(&self.id),
                    &soap::receive_body(&command_id),
                    &[("WSMAN_CMDSHELL_OPTION_KEEPALIVE", "TRUE")],
                )
                .await
            {
                Ok(xml) => soap::parse_receive(&xml)?,
                // Still running after OperationTimeout: ask again.
                Err(WinrmError::Fault {
                    wsman_code: Some(soap::FAULT_CODE_OPERATION_TIMEOUT),
                    ..
                }) => continue,
                Err(e) => return Err(e),
            };
            if !received.stdout.is_empty() || !received.stderr.is_empty() {
                stdout.extend(received.stdout);
                stderr.extend(received.stderr);
                progress(
                    &String::from_utf8_lossy(&stdout),
                    &String::from_utf8_lossy(&stderr),
                );
            }
            if let Some(code) = received.exit_code {
                break code;
            }
        };
        // Its result is in hand; the Signal that releases it on the server is
        // sent before the next command (see `release_previous`).
        *self.unsignalled.lock().expect("unsignalled command") = Some(command_id);
        Ok(CommandOutput {
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            exit_code,
        })
    }

    /// Releases the previous command's resources on the server with
    /// Signal(terminate): MS-WSMV 3.1.4.14 says a final Signal MUST be sent
    /// for a command of a Text-based Command Shell after all its output was
    /// received, even though the Receive already said Done (pywinrm's
    /// `cleanup_command` does the same). Only the last command of a shell
    /// goes without: the shell's Delete right after it frees every resource
    /// of the shell, commands included (MS-WSMV 3.1.4.4.1), so that Signal
    /// would be a round trip for nothing.
    async fn release_previous(&self) {
        let previous = self.unsignalled.lock().expect("unsignalled command").take();
        if let Some(command_id) = previous {
            // The result is in hand either way; a failure here changes nothing.
            let _ = self
                .client
                .call(
                    soap::ACTION_SIGNAL,
                    Some(&self.id),
                    &soap::signal_body(&command_id),
                    &[],
                )
                .await;
        }
    }

    /// Delete the shell (and with it the last command, see `release_previous`).
    pub async fn close(self) -> Result<(), WinrmError> {
        self.client
            .call(soap::ACTION_DELETE, Some(&self.id), "", &[])
            .await
            .map(|_| ())
    }
}
