//! Kerberos for the LDAP bind: SASL GSSAPI (RFC 4752) done here rather
//! than by ldap3, whose `gssapi` feature links the system's Kerberos at
//! build time (revoke loads it at run time: crates/revoke-gss).
//!
//! A task owns the connection to the DC: it binds (the two or three
//! BindRequests below), then relays ldap3's bytes through one end of a
//! socket pair. On plain LDAP every byte is sealed with the Kerberos
//! context (the SASL confidentiality layer), so AD and Samba accept
//! `unicodePwd` writes with no DC certificate; inside LDAPS/StartTLS the
//! bytes pass unchanged (AD refuses a SASL layer on top of TLS; Samba, by
//! default, refuses SASL binds inside TLS altogether: it needs `ldap server
//! require strong auth = allow_sasl_over_tls`).

use std::net::IpAddr;
#[cfg(unix)]
use std::sync::{Arc, Mutex};

#[cfg(unix)]
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::DirectoryError;
#[cfg(unix)]
use super::Security;
use super::{DirectoryAuth, DirectorySettings};
use crate::Password;

/// RFC 4752 §3.3 security layers.
const LAYER_NONE: u8 = 1;
const LAYER_CONFIDENTIALITY: u8 = 4;
/// The largest SASL buffer (or LDAP message during the bind) taken from
/// the DC; beyond it the connection is dropped instead of allocating.
const MAX_INCOMING: usize = 0x00ff_ffff;
/// Room left for the wrap token's header, confounder and checksum (60
/// bytes with AES) when cutting our plaintext to the DC's buffer size.
const WRAP_OVERHEAD: usize = 128;

/// The `ldap/<host>` name Kerberos needs: a DNS name, never an address
/// (the KDC knows services by name; there is no SPN for an IP address).
pub fn require_dns_name(host: &str) -> Result<(), DirectoryError> {
    if host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
        return Err(DirectoryError::Settings(format!(
            "{host} is an IP address: Kerberos needs the DC's DNS name (e.g. \
             ldap://dc1.corp.example.com), because tickets are issued for ldap/<DNS name>"
        )));
    }
    Ok(())
}

/// The Kerberos principal for logging on with `bind_user`'s password:
/// `sam@REALM` (a UPN's suffix upper-cased, or `[kerberos] realm`), or the
/// bare name, which the library completes with its default realm.
pub fn principal_for(bind_user: &str, realm: Option<&str>) -> Result<String, DirectoryError> {
    let principal = revoke_winrm::kerberos_principal(bind_user, realm);
    // A DN (CN=…) or an empty name part names no principal.
    if principal.is_empty() || principal.starts_with('@') || bind_user.contains('=') {
        return Err(DirectoryError::Settings(format!(
            "bind_user {:?} cannot name a Kerberos principal: with auth = \"kerberos\" \
             give the account as user@REALM, its UPN or DOMAIN\\user",
            bind_user.trim()
        )));
    }
    Ok(principal)
}

/// A connection bound with Kerberos: the ldap3 handle and the principal
/// the DC authenticated (for "who am I" where the DC cannot say).
pub struct Bound {
    pub ldap: ldap3::Ldap,
    pub principal: String,
}

/// Connects to `host`, binds with SASL GSSAPI and hands back an ldap3
/// handle whose traffic goes through the relay.
#[cfg(not(unix))]
pub async fn open(
    _settings: &DirectorySettings,
    _password: &Password,
    _host: &str,
) -> Result<Bound, DirectoryError> {
    Err(DirectoryError::Settings(
        "auth = \"kerberos\" for the directory needs a Unix-like system in this version of \
         revoke (the relay uses a socket pair); use auth = \"simple\" over LDAPS or StartTLS"
            .into(),
    ))
}

#[cfg(unix)]
pub async fn open(
    settings: &DirectorySettings,
    password: &Password,
    host: &str,
) -> Result<Bound, DirectoryError> {
    let url = settings.url_for(host);
    require_dns_name(host)?;
    let DirectoryAuth::Kerberos { realm } = &settings.auth else {
        return Err(DirectoryError::Settings("not a Kerberos bind".into()));
    };
    let credential = if password.is_empty() {
        None // the ticket cache (kinit, KRB5CCNAME)
    } else {
        let principal = principal_for(&settings.bind_user, realm.as_deref())?;
        Some(password_credential(principal, password.clone(), &url, settings).await?)
    };
    // Inside TLS no SASL layer (AD refuses one there); on plain LDAP only
    // confidentiality will do.
    let layer = if settings.security == Security::Plain {
        LAYER_CONFIDENTIALITY
    } else {
        LAYER_NONE
    };
    let (stream, context, max_out, sealed) =
        tokio::time::timeout(settings.operation_timeout, async {
            let stream = connect(settings, host, &url).await?;
            bind(stream, host, credential, layer, &url, settings).await
        })
        .await
        .map_err(|_| DirectoryError::Unreachable {
            url: url.clone(),
            reason: "no answer within the operation timeout (connecting and the Kerberos bind)"
                .into(),
        })??;
    let principal = context
        .initiator_name()
        .map_err(|e| refused(&url, settings, e.to_string()))?;

    let (ours, theirs) = std::os::unix::net::UnixStream::pair()
        .map_err(|e| unreachable(&url, format!("creating the relay's socket pair: {e}")))?;
    ours.set_nonblocking(true)
        .map_err(|e| unreachable(&url, e.to_string()))?;
    let ours =
        tokio::net::UnixStream::from_std(ours).map_err(|e| unreachable(&url, e.to_string()))?;
    let relay_host = host.to_string();
    tokio::spawn(async move {
        let result = if !sealed {
            // No layer (inside TLS): the bytes pass as they are.
            let mut stream = stream;
            let mut ours = ours;
            tokio::io::copy_bidirectional(&mut stream, &mut ours)
                .await
                .map(|_| ())
        } else {
            relay_sealed(stream, ours, context, max_out).await
        };
        if let Err(e) = result {
            tracing::warn!("the Kerberos-sealed LDAP connection to {relay_host} ended: {e}");
        }
    });
    let ldap_settings = ldap3::LdapConnSettings::new()
        .set_std_stream(ldap3::StdStream::Unix(theirs))
        .set_conn_timeout(settings.operation_timeout);
    // ldapi: ldap3 takes the given Unix stream and ignores the path.
    let (conn, ldap) = ldap3::LdapConnAsync::with_settings(ldap_settings, "ldapi:///")
        .await
        .map_err(|e| DirectoryError::connecting(&url, &e))?;
    ldap3::drive!(conn);
    Ok(Bound { ldap, principal })
}

/// One ticket-granting ticket per principal and password for the whole
/// run: the gate opens a connection per DC, and each would otherwise log
/// on to the KDC again.
#[cfg(unix)]
type Logon = (String, Password, Arc<revoke_gss::Credential>);
#[cfg(unix)]
static LOGONS: Mutex<Vec<Logon>> = Mutex::new(Vec::new());

#[cfg(unix)]
async fn password_credential(
    principal: String,
    password: Password,
    url: &str,
    settings: &DirectorySettings,
) -> Result<Arc<revoke_gss::Credential>, DirectoryError> {
    let cached = |logons: &[Logon]| {
        logons
            .iter()
            .find(|(p, pw, _)| *p == principal && pw.expose() == password.expose())
            .map(|(_, _, c)| c.clone())
    };
    if let Some(credential) = cached(&LOGONS.lock().unwrap_or_else(|e| e.into_inner())) {
        return Ok(credential);
    }
    let (name, secret) = (principal.clone(), password.clone());
    // An AS exchange with the KDC: off the async threads.
    let credential = tokio::task::spawn_blocking(move || {
        revoke_gss::Credential::with_password(&name, secret.expose())
    })
    .await
    .map_err(|e| refused(url, settings, e.to_string()))?
    .map_err(|e| refused(url, settings, format!("as {principal}: {e}")))?;
    let credential = Arc::new(credential);
    LOGONS.lock().unwrap_or_else(|e| e.into_inner()).push((
        principal,
        password,
        credential.clone(),
    ));
    Ok(credential)
}

#[cfg(unix)]
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
#[cfg(unix)]
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

#[cfg(unix)]
fn unreachable(url: &str, reason: String) -> DirectoryError {
    DirectoryError::Unreachable {
        url: url.to_string(),
        reason,
    }
}

#[cfg(unix)]
fn refused(url: &str, settings: &DirectorySettings, reason: String) -> DirectoryError {
    DirectoryError::BindRefused {
        url: url.to_string(),
        user: format!("{} (Kerberos)", settings.bind_user),
        reason,
    }
}

#[cfg(unix)]
fn io_error(url: &str, error: std::io::Error) -> DirectoryError {
    DirectoryError::connecting(url, &ldap3::LdapError::Io { source: error })
}

/// TCP, then TLS for LDAPS or StartTLS.
#[cfg(unix)]
async fn connect(
    settings: &DirectorySettings,
    host: &str,
    url: &str,
) -> Result<Box<dyn Io>, DirectoryError> {
    let mut tcp = tokio::net::TcpStream::connect((host, settings.port))
        .await
        .map_err(|e| io_error(url, e))?;
    let _ = tcp.set_nodelay(true);
    if settings.security == Security::Plain {
        return Ok(Box::new(tcp));
    }
    if settings.security == Security::StartTls {
        // ExtendedRequest 1.3.6.1.4.1.1466.20037 (RFC 4511 §4.14.1).
        let oid = b"1.3.6.1.4.1.1466.20037";
        let mut request = vec![0x80, oid.len() as u8];
        request.extend_from_slice(oid);
        let message = ldap_message(1, 0x77, &request);
        tcp.write_all(&message)
            .await
            .map_err(|e| io_error(url, e))?;
        let response = read_message(&mut tcp).await.map_err(|e| io_error(url, e))?;
        let (rc, text, _) = parse_response(&response, 0x78)
            .map_err(|why| unreachable(url, format!("StartTLS: {why}")))?;
        if rc != 0 {
            return Err(unreachable(
                url,
                format!("StartTLS refused: {}", super::describe_result(rc, &text)),
            ));
        }
    }
    let config = crate::tls::client_config(settings.ca_file.as_deref(), false)
        .map_err(|e| DirectoryError::Settings(e.0))?;
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| DirectoryError::Settings(format!("{host}: {e}")))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| io_error(url, e))?;
    Ok(Box::new(tls))
}

/// The SASL GSSAPI exchange (RFC 4752 §3.1): Kerberos tokens until the
/// context is established, then the security-layer negotiation. Returns
/// the context and the largest wrapped buffer the DC takes.
#[cfg(unix)]
async fn bind(
    mut stream: Box<dyn Io>,
    host: &str,
    credential: Option<Arc<revoke_gss::Credential>>,
    layer: u8,
    url: &str,
    settings: &DirectorySettings,
) -> Result<(Box<dyn Io>, revoke_gss::Context, usize, bool), DirectoryError> {
    let kerberos = |e: revoke_gss::GssError| refused(url, settings, e.to_string());
    let host_owned = host.to_string();
    // Getting a service ticket talks to the KDC: off the async threads.
    let (mut initiator, mut token) = tokio::task::spawn_blocking(move || {
        revoke_gss::Initiator::new(
            "ldap",
            &host_owned,
            revoke_gss::Mechanism::Kerberos,
            credential,
            None,
        )
    })
    .await
    .map_err(|e| refused(url, settings, e.to_string()))?
    .map_err(kerberos)?;
    let mut message_id = 0;
    // Kerberos tokens (AP-REQ, AP-REP) until established.
    loop {
        let (rc, reply) = exchange(&mut stream, &mut message_id, &token, url, settings).await?;
        if initiator.is_established() {
            if rc != 14 {
                return Err(unreachable(
                    url,
                    "the DC ended the SASL bind before negotiating a security layer".into(),
                ));
            }
            let context = initiator.finish().map_err(kerberos)?;
            return negotiate(stream, context, reply, layer, url, settings, message_id).await;
        }
        if rc != 14 {
            return Err(unreachable(
                url,
                "the DC ended the SASL bind before the Kerberos exchange was complete".into(),
            ));
        }
        let (back, next) = tokio::task::spawn_blocking(move || {
            let next = initiator.step(Some(&reply));
            (initiator, next)
        })
        .await
        .map_err(|e| refused(url, settings, e.to_string()))?;
        initiator = back;
        token = next.map_err(kerberos)?.unwrap_or_default();
    }
}

/// One BindRequest and its BindResponse: (resultCode, serverSaslCreds).
#[cfg(unix)]
async fn exchange(
    stream: &mut Box<dyn Io>,
    message_id: &mut u32,
    creds: &[u8],
    url: &str,
    settings: &DirectorySettings,
) -> Result<(u32, Vec<u8>), DirectoryError> {
    *message_id += 1;
    let request = bind_request(*message_id, creds);
    stream
        .write_all(&request)
        .await
        .map_err(|e| io_error(url, e))?;
    let response = read_message(stream).await.map_err(|e| io_error(url, e))?;
    let (rc, text, server_creds) = parse_response(&response, 0x61)
        .map_err(|why| unreachable(url, format!("the SASL bind: {why}")))?;
    // 14: saslBindInProgress; 0: done. Anything else is a refusal.
    if rc != 0 && rc != 14 {
        return Err(refused(url, settings, super::describe_result(rc, &text)));
    }
    Ok((rc, server_creds.unwrap_or_default()))
}

/// RFC 4752 §3.1's last two messages: the DC offers layers and its buffer
/// size (signed), revoke chooses confidentiality (or none inside TLS) and
/// says its own buffer size.
#[cfg(unix)]
async fn negotiate(
    mut stream: Box<dyn Io>,
    mut context: revoke_gss::Context,
    offer: Vec<u8>,
    wanted: u8,
    url: &str,
    settings: &DirectorySettings,
    mut message_id: u32,
) -> Result<(Box<dyn Io>, revoke_gss::Context, usize, bool), DirectoryError> {
    let kerberos = |e: revoke_gss::GssError| refused(url, settings, e.to_string());
    let offer = context.open_signed(&offer).map_err(kerberos)?;
    if offer.len() != 4 {
        return Err(unreachable(
            url,
            format!(
                "the DC's SASL security-layer offer is {} bytes, not 4",
                offer.len()
            ),
        ));
    }
    let layers = offer[0];
    let server_max = u32::from_be_bytes([0, offer[1], offer[2], offer[3]]) as usize;
    if layers & wanted == 0 {
        let why = if wanted == LAYER_NONE {
            format!("the DC offers no SASL bind without a security layer (offered 0x{layers:02x})")
        } else {
            format!(
                "the DC does not offer the SASL confidentiality layer (offered 0x{layers:02x}): \
                 revoke will not send LDAP unsealed; use LDAPS or StartTLS"
            )
        };
        return Err(unreachable(url, why));
    }
    if wanted == LAYER_CONFIDENTIALITY && server_max <= WRAP_OVERHEAD {
        return Err(unreachable(
            url,
            format!("the DC's SASL buffer size ({server_max} bytes) is too small"),
        ));
    }
    // Our choice and our receive buffer size (0 when no layer: RFC 4752 §3.3);
    // no authorization identity: act as the authenticated principal.
    let our_max = if wanted == LAYER_NONE {
        0
    } else {
        MAX_INCOMING as u32
    };
    let size = our_max.to_be_bytes();
    let choice = [wanted, size[1], size[2], size[3]];
    let answer = context.sign(&choice).map_err(kerberos)?;
    let (rc, _) = exchange(&mut stream, &mut message_id, &answer, url, settings).await?;
    if rc != 0 {
        return Err(unreachable(
            url,
            "the DC did not complete the SASL bind after the security-layer choice".into(),
        ));
    }
    Ok((stream, context, server_max, wanted == LAYER_CONFIDENTIALITY))
}

/// After the bind with the confidentiality layer (plain LDAP): ldap3's bytes sealed to the DC as SASL
/// buffers (4-byte big-endian length, then a wrap token), the DC's buffers
/// opened back to ldap3. Whichever side ends first ends both.
#[cfg(unix)]
async fn relay_sealed(
    stream: Box<dyn Io>,
    local: tokio::net::UnixStream,
    context: revoke_gss::Context,
    server_max: usize,
) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    let context = Arc::new(Mutex::new(context));
    let (mut dc_read, mut dc_write) = tokio::io::split(stream);
    let (mut local_read, mut local_write) = local.into_split();
    let gss = |e: revoke_gss::GssError| Error::new(ErrorKind::InvalidData, e.to_string());
    let chunk = server_max.saturating_sub(WRAP_OVERHEAD).min(64 * 1024);

    let seal_context = context.clone();
    let outgoing = async move {
        let mut buffer = zeroize::Zeroizing::new(vec![0u8; chunk]);
        loop {
            let n = local_read.read(&mut buffer).await?;
            if n == 0 {
                return Ok::<_, Error>(());
            }
            // Wrapping is local computation (no KDC), so it runs here.
            let token = seal_context
                .lock()
                .map_err(|_| Error::other("poisoned"))?
                .seal(&buffer[..n])
                .map_err(gss)?;
            if token.len() > server_max {
                return Err(Error::new(
                    ErrorKind::InvalidData,
                    "a sealed buffer exceeds the DC's SASL buffer size",
                ));
            }
            let mut frame = (token.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(&token);
            dc_write.write_all(&frame).await?;
        }
    };
    let incoming = async move {
        loop {
            let mut length = [0u8; 4];
            match dc_read.read_exact(&mut length).await {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok::<_, Error>(()),
                Err(e) => return Err(e),
            }
            let length = u32::from_be_bytes(length) as usize;
            if length > MAX_INCOMING {
                return Err(Error::new(
                    ErrorKind::InvalidData,
                    format!(
                        "the DC sent a SASL buffer of {length} bytes (more than {MAX_INCOMING})"
                    ),
                ));
            }
            let mut token = vec![0u8; length];
            dc_read.read_exact(&mut token).await?;
            let plain = context
                .lock()
                .map_err(|_| Error::other("poisoned"))?
                .open(&token)
                .map_err(gss)?;
            local_write.write_all(&plain).await?;
        }
    };
    tokio::select! {
        result = outgoing => result,
        result = incoming => result,
    }
}

/// An LDAPMessage: SEQUENCE { messageID, protocolOp (tag `op`) }.
fn ldap_message(id: u32, op: u8, body: &[u8]) -> Vec<u8> {
    let mut content = tlv(0x02, &integer(id));
    content.extend(tlv(op, body));
    tlv(0x30, &content)
}

/// BindRequest v3, empty name, SASL "GSSAPI" with `creds` (always present:
/// the empty token after the Kerberos exchange is part of RFC 4752).
fn bind_request(id: u32, creds: &[u8]) -> Vec<u8> {
    let mut sasl = tlv(0x04, b"GSSAPI");
    sasl.extend(tlv(0x04, creds));
    let mut body = tlv(0x02, &[3]);
    body.extend(tlv(0x04, b""));
    body.extend(tlv(0xa3, &sasl));
    ldap_message(id, 0x60, &body)
}

fn integer(value: u32) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let mut start = bytes.iter().position(|&b| b != 0).unwrap_or(3);
    if bytes[start] & 0x80 != 0 {
        start -= 1; // keep it positive
    }
    bytes[start..].to_vec()
}

fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u32).to_be_bytes();
        let start = bytes.iter().position(|&b| b != 0).unwrap_or(3);
        out.push(0x80 | (4 - start) as u8);
        out.extend_from_slice(&bytes[start..]);
    }
    out.extend_from_slice(value);
    out
}

/// One whole LDAPMessage from the stream (before any layer), capped.
#[cfg(unix)]
async fn read_message<R: AsyncRead + Unpin + ?Sized>(stream: &mut R) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind};
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await?;
    if head[0] != 0x30 {
        return Err(Error::new(ErrorKind::InvalidData, "not an LDAP message"));
    }
    let mut message = head.to_vec();
    let length = if head[1] & 0x80 == 0 {
        head[1] as usize
    } else {
        let count = (head[1] & 0x7f) as usize;
        if count == 0 || count > 4 {
            return Err(Error::new(ErrorKind::InvalidData, "bad BER length"));
        }
        let mut bytes = vec![0u8; count];
        stream.read_exact(&mut bytes).await?;
        message.extend_from_slice(&bytes);
        bytes.iter().fold(0usize, |acc, &b| (acc << 8) | b as usize)
    };
    if length > MAX_INCOMING {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("an LDAP message of {length} bytes (more than {MAX_INCOMING})"),
        ));
    }
    let start = message.len();
    message.resize(start + length, 0);
    stream.read_exact(&mut message[start..]).await?;
    Ok(message)
}

/// A BER element: (tag, content, rest).
fn element(data: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let bad = || "a malformed answer".to_string();
    let (&tag, rest) = data.split_first().ok_or_else(bad)?;
    let (&first, mut rest) = rest.split_first().ok_or_else(bad)?;
    let length = if first & 0x80 == 0 {
        first as usize
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 || rest.len() < count {
            return Err(bad());
        }
        let (bytes, after) = rest.split_at(count);
        rest = after;
        bytes.iter().fold(0usize, |acc, &b| (acc << 8) | b as usize)
    };
    if rest.len() < length {
        return Err(bad());
    }
    let (content, rest) = rest.split_at(length);
    Ok((tag, content, rest))
}

/// An LDAPResult-shaped response with tag `op`: (resultCode,
/// diagnosticMessage, serverSaslCreds [7] if present).
fn parse_response(message: &[u8], op: u8) -> Result<(u32, String, Option<Vec<u8>>), String> {
    let (tag, content, _) = element(message)?;
    if tag != 0x30 {
        return Err("not an LDAP message".into());
    }
    let (_, _id, rest) = element(content)?;
    let (tag, body, _) = element(rest)?;
    if tag != op {
        return Err(format!("an unexpected answer (tag 0x{tag:02x})"));
    }
    let (_, code, rest) = element(body)?;
    let rc = code.iter().fold(0u32, |acc, &b| (acc << 8) | b as u32);
    let (_, _matched, rest) = element(rest)?;
    let (_, text, mut rest) = element(rest)?;
    let text = String::from_utf8_lossy(text).into_owned();
    let mut creds = None;
    while !rest.is_empty() {
        let (tag, value, after) = element(rest)?;
        if tag == 0x87 {
            creds = Some(value.to_vec());
        }
        rest = after;
    }
    Ok((rc, text, creds))
}

/// Whether the ticket cache holds a ticket to log on with (looks only;
/// contacts nothing). The error says why not.
pub fn ticket_available() -> Result<(), String> {
    revoke_gss::Credential::default_available().map_err(|e| e.to_string())
}

/// Whether `settings` asks for Kerberos.
pub fn is_kerberos(settings: &DirectorySettings) -> bool {
    matches!(settings.auth, DirectoryAuth::Kerberos { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bind_request_is_what_ldap_servers_read() {
        // Checked against ldap3_proto's decoder shape by hand: SEQUENCE,
        // id 1, [APPLICATION 0] { 3, "", [3] { "GSSAPI", creds } }.
        let request = bind_request(1, b"\x01\x02");
        assert_eq!(
            request,
            [
                0x30, 0x18, 0x02, 0x01, 0x01, 0x60, 0x13, 0x02, 0x01, 0x03, 0x04, 0x00, 0xa3, 0x0c,
                0x04, 0x06, b'G', b'S', b'S', b'A', b'P', b'I', 0x04, 0x02, 0x01, 0x02
            ]
        );
        let long = bind_request(200, &[7u8; 300]);
        let (tag, content, rest) = element(&long).unwrap();
        assert_eq!((tag, rest.len()), (0x30, 0));
        assert_eq!(element(content).unwrap().1, &[0x00, 0xc8]);
    }

    #[test]
    fn bind_responses_give_their_code_and_sasl_credentials() {
        // BindResponse: 14 saslBindInProgress, "", "", serverSaslCreds "ab".
        let body = [
            0x0a, 0x01, 0x0e, 0x04, 0x00, 0x04, 0x00, 0x87, 0x02, b'a', b'b',
        ];
        let message = ldap_message(2, 0x61, &body);
        assert_eq!(
            parse_response(&message, 0x61).unwrap(),
            (14, String::new(), Some(b"ab".to_vec()))
        );
        assert!(parse_response(&message, 0x78).is_err());
        assert!(parse_response(&message[..6], 0x61).is_err());
    }

    #[test]
    fn principals_and_addresses() {
        let p = |u, r| principal_for(u, r).map_err(|e| e.to_string());
        assert_eq!(
            p("op@lab.example.test", None).unwrap(),
            "op@LAB.EXAMPLE.TEST"
        );
        assert_eq!(
            p("op@corp.example", Some("AD.CORP.EXAMPLE")).unwrap(),
            "op@AD.CORP.EXAMPLE"
        );
        assert_eq!(p("LAB\\op", None).unwrap(), "op");
        assert_eq!(
            p("LAB\\op", Some("lab.example.test")).unwrap(),
            "op@LAB.EXAMPLE.TEST"
        );
        assert!(
            p("CN=op,DC=lab", None)
                .unwrap_err()
                .contains("Kerberos principal")
        );
        assert!(
            require_dns_name("10.0.0.1")
                .unwrap_err()
                .to_string()
                .contains("DNS name")
        );
        assert!(require_dns_name("::1").is_err());
        assert!(require_dns_name("dc1.lab.example.test").is_ok());
    }
}
