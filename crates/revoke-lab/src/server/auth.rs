//! Authentication and message sealing on a lab server's WinRM listeners,
//! as HTTP.sys and the WinRM service do it by default:
//!
//! - HTTP listener: `WWW-Authenticate: Negotiate` only (Basic is off by
//!   default), AllowUnencrypted=false: after NTLM, SOAP bodies must be sealed.
//! - HTTPS listener: Negotiate (with channel bindings from the leaf
//!   certificate, checked when the client sends them) and `Basic realm="WSMAN"`;
//!   plaintext bodies are fine over TLS.
//!
//! NTLM authenticates the TCP connection, not the request: the context and
//! its SessionSecurity live in [`ConnAuth`], one per connection, like HTTP.sys.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Request, Response, StatusCode};
use revoke_winrm::kerberos::KerberosSeal;
use revoke_winrm::ntlm::ServerContext;
use revoke_winrm::sealing::{self, Sealer};

use super::super::envelope::WsmanFault;
use super::hostile::{self, Twist};
use super::{Conn, Listener, empty, soap_response};

/// Authentication state of one TCP connection.
pub(super) enum ConnAuth {
    None,
    /// NEGOTIATE answered with a CHALLENGE; waiting for AUTHENTICATE.
    Challenged(Box<ServerContext>),
    /// Kerberos (SPNEGO) needs another leg: the acceptor so far.
    KerberosPending(Box<revoke_gss::Acceptor>),
    /// NTLM or Kerberos done: who, and what seals this connection's messages.
    Authenticated {
        user: String,
        security: Box<Sealer>,
    },
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

/// What a request's `Authorization` header offers.
pub(super) enum Credentials {
    None,
    Basic(String, String),
    /// Scheme as sent ("Negotiate" or "NTLM") and the raw NTLMSSP token.
    Ntlm(String, Vec<u8>),
    /// A `Negotiate` token that is not raw NTLMSSP: SPNEGO (Kerberos).
    Spnego(Vec<u8>),
    Unusable,
}

pub(super) fn credentials(req: &Request<Incoming>) -> Credentials {
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
        if scheme.eq_ignore_ascii_case("Negotiate") && !raw.starts_with(b"NTLMSSP\0") {
            return Credentials::Spnego(raw);
        }
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

/// How the request log names what `Authorization` carried.
pub(super) fn describe(credentials: &Credentials) -> Option<String> {
    match credentials {
        Credentials::None => None,
        Credentials::Basic(..) => Some("Basic".into()),
        Credentials::Ntlm(scheme, token) => {
            let leg = match token.get(8) {
                Some(1) => "NEGOTIATE",
                Some(3) => "AUTHENTICATE",
                _ => "?",
            };
            Some(format!("{scheme} {leg}"))
        }
        Credentials::Spnego(_) => Some("Negotiate Kerberos".into()),
        Credentials::Unusable => Some("unusable".into()),
    }
}

/// Is the body sealed, by its Content-Type (`sealing::is_sealed`)?
pub(super) fn is_sealed(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(sealing::is_sealed)
}

/// The answer to a request whose body has been read: authenticate (Basic,
/// or one NTLM leg), or use the connection's NTLM context, then hand the
/// (unsealed) SOAP to the shell service.
pub(super) async fn answer(
    conn: &Conn,
    creds: Credentials,
    body: &[u8],
    sealed: bool,
) -> Response<Full<Bytes>> {
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
            soap_response(shared.shells.handle(body, &user).await)
        }
        Credentials::Ntlm(..) if !shared.ntlm => unauthorized(conn.listener),
        Credentials::Spnego(token) => kerberos_leg(conn, &token, body, sealed).await,
        Credentials::Ntlm(scheme, token) => {
            let msg_type = u32::from_le_bytes([token[8], token[9], token[10], token[11]]);
            match msg_type {
                1 => {
                    // A new NEGOTIATE restarts authentication on this connection.
                    let mut ctx = ServerContext::new(shared.accounts.identity());
                    if shared.withhold_sealing {
                        ctx = ctx.without_sealing();
                    }
                    let mut ctx = Box::new(ctx);
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
                    authenticated_body(conn, body, sealed).await
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
            authenticated_body(conn, body, sealed).await
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
        security: Box::new(Sealer::Ntlm(Box::new(security))),
    };
    true
}

/// One leg of Kerberos inside Negotiate, with the keys of the lab's keytab
/// (MIT's acceptor finds the key of whichever `HTTP/<name>` the ticket is
/// for). The final answer carries the AP-REP that lets the client check
/// this server holds that key.
async fn kerberos_leg(
    conn: &Conn,
    token: &[u8],
    body: &[u8],
    sealed: bool,
) -> Response<Full<Bytes>> {
    let shared = &conn.shared;
    if !shared.kerberos {
        return unauthorized(conn.listener);
    }
    let mut acceptor = {
        let mut auth = conn.auth.lock().expect("conn auth poisoned");
        match std::mem::replace(&mut *auth, ConnAuth::None) {
            ConnAuth::KerberosPending(acceptor) => acceptor,
            _ => Box::new(revoke_gss::Acceptor::new()),
        }
    };
    let reply = match acceptor.step(token) {
        Ok(reply) => reply,
        Err(e) => {
            eprintln!("lab: Kerberos logon refused: {e}");
            return unauthorized(conn.listener);
        }
    };
    let header = reply.map(|t| format!("Negotiate {}", B64.encode(t)));
    if !acceptor.is_established() {
        let r = unauthorized_with(header.as_deref());
        *conn.auth.lock().expect("conn auth poisoned") = ConnAuth::KerberosPending(acceptor);
        return r;
    }
    let user = acceptor
        .peer()
        .and_then(|principal| shared.accounts.kerberos_user(principal));
    let Some(user) = user else {
        eprintln!(
            "lab: Kerberos principal {} is not this server's administrator",
            acceptor.peer().unwrap_or("?")
        );
        return unauthorized(conn.listener);
    };
    let context = match acceptor.finish() {
        Ok(context) => context,
        Err(_) => return unauthorized(conn.listener),
    };
    *conn.auth.lock().expect("conn auth poisoned") = ConnAuth::Authenticated {
        user,
        security: Box::new(Sealer::Kerberos(KerberosSeal::new(context))),
    };
    let mut r = authenticated_body(conn, body, sealed).await;
    let header = header.filter(|_| !shared.withhold_ap_rep);
    if let Some(value) = header.and_then(|h| HeaderValue::from_str(&h).ok()) {
        r.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    r
}

/// 401 carrying a continuation token (or just `Negotiate`).
fn unauthorized_with(header: Option<&str>) -> Response<Full<Bytes>> {
    let mut r = empty(StatusCode::UNAUTHORIZED);
    let value = header.unwrap_or("Negotiate");
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    r
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
            match sealing::unseal_body(security.as_mut(), body) {
                Ok(s) => s,
                Err(_) => return empty(StatusCode::BAD_REQUEST),
            }
        } else if conn.listener == Listener::Http {
            // AllowUnencrypted=false: plaintext SOAP over HTTP is refused even
            // from an authenticated connection.
            let relates = super::super::envelope::parse_request(body)
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
    let request = super::super::envelope::parse_request(&soap).ok();
    let twist = shared.hostile.twist(request.as_ref(), sealed);
    match twist {
        Twist::HugeBody => return hostile::huge_response(),
        Twist::Unsealed200 => return empty(StatusCode::OK),
        _ => {}
    }
    let reply = shared.shells.handle(&soap, &user).await;
    if twist == Twist::Silence {
        // The command ran; the answer never comes (longer than any test).
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        return empty(StatusCode::INTERNAL_SERVER_ERROR);
    }
    if twist == Twist::Reply401 {
        // The command ran; the answer says authentication failed.
        let mut r = unauthorized(conn.listener);
        if let Some(action) = reply.action {
            r.extensions_mut().insert(super::AnsweredAction(action));
        }
        return r;
    }
    if !sealed {
        return soap_response(reply);
    }
    let mut auth = conn.auth.lock().expect("conn auth poisoned");
    let ConnAuth::Authenticated { security, .. } = &mut *auth else {
        return unauthorized(conn.listener);
    };
    let Ok(mut framed) = sealing::seal_body_with(
        security.as_mut(),
        reply.xml.as_bytes(),
        sealing::Framing::Windows,
    ) else {
        return empty(StatusCode::INTERNAL_SERVER_ERROR);
    };
    if twist == Twist::BadSignature {
        hostile::break_signature(&mut framed);
    }
    let mut r = Response::new(Full::new(Bytes::from(framed)));
    if let Some(action) = reply.action {
        r.extensions_mut().insert(super::AnsweredAction(action));
    }
    *r.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(sealing::SEALED_CONTENT_TYPE),
    );
    r
}
