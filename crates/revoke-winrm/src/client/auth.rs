//! Authenticating a connection: Kerberos first (inside HTTP Negotiate,
//! with mutual authentication), NTLM where allowed, Basic per request;
//! and the credential every server's Kerberos context starts from.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::HeaderValue;
use hyper::{StatusCode, header};

use super::super::kerberos::KerberosSeal;
use super::super::ntlm::ClientContext;
use super::super::sealing::Sealer;
use super::super::{WinrmError, sanitize};
use super::{Answer, Auth, Connection, Connector, Mechanism, Scheme, SendError, WinrmClient};

pub(super) type KerberosCredential =
    Result<Option<Arc<revoke_gss::Credential>>, revoke_gss::GssError>;

/// Why Kerberos did not authenticate a connection.
enum KerberosFailure {
    /// Nothing was sent to the server (no ticket to be had, no library, an
    /// address instead of a name): `negotiate` may use NTLM instead.
    Unavailable(WinrmError),
    /// The server was sent a ticket and refused it, or did not prove itself:
    /// never a reason to try a weaker mechanism.
    Failed(WinrmError),
}

impl Connector {
    /// The ticket cache (or the logged-on user) if it holds a usable
    /// credential; else a ticket-granting ticket got with the password (an
    /// AS exchange); else why neither works.
    pub(super) async fn kerberos_credential(&self) -> KerberosCredential {
        let settings = self.settings.clone();
        let password = self.password.clone();
        self.kerberos
            .get_or_init(|| async move {
                let found = tokio::task::spawn_blocking(move || {
                    match revoke_gss::Credential::default_available() {
                        Ok(()) => Ok(None),
                        Err(e) if password.is_empty() => Err(e),
                        Err(_) => revoke_gss::Credential::with_password(
                            &kerberos_principal(&settings.user, settings.kerberos_realm.as_deref()),
                            password.expose(),
                        )
                        .map(|c| Some(Arc::new(c))),
                    }
                })
                .await;
                found.unwrap_or_else(|e| {
                    Err(revoke_gss::GssError {
                        kind: revoke_gss::ErrorKind::Other,
                        doing: "looking for Kerberos credentials",
                        detail: e.to_string(),
                    })
                })
            })
            .await
            .clone()
    }
}

impl WinrmClient {
    pub(super) async fn connect_and_authenticate(&self) -> Result<Connection, WinrmError> {
        let mut conn = self.connect().await?;
        let mechanism = match self.settings().auth {
            Auth::Basic => Mechanism::Basic,
            Auth::Ntlm => {
                self.ntlm(&mut conn, None).await?;
                Mechanism::Ntlm
            }
            Auth::Kerberos => match self.kerberos(&mut conn).await {
                Ok(()) => Mechanism::Kerberos,
                Err(KerberosFailure::Unavailable(e) | KerberosFailure::Failed(e)) => return Err(e),
            },
            Auth::Negotiate => match self.kerberos(&mut conn).await {
                Ok(()) => Mechanism::Kerberos,
                Err(KerberosFailure::Failed(e)) => return Err(e),
                Err(KerberosFailure::Unavailable(why)) if self.settings().allow_ntlm => {
                    tracing::debug!(server = %self.host, "Kerberos not used: {why}; trying NTLM");
                    self.ntlm(&mut conn, Some(why)).await?;
                    Mechanism::Ntlm
                }
                Err(KerberosFailure::Unavailable(why)) => {
                    return Err(WinrmError::Kerberos(format!(
                        "{why} (NTLM is not allowed: [winrm] allow_ntlm = false)"
                    )));
                }
            },
        };
        *self.mechanism.lock().expect("mechanism lock") = Some(mechanism);
        Ok(conn)
    }

    /// Kerberos inside HTTP Negotiate: the AP-REQ with an empty body, then the server's AP-REP in the
    /// 200's `WWW-Authenticate`, which proves the server holds the key of
    /// `HTTP/<host>` (mutual authentication). Over HTTP the context then
    /// seals every message; over HTTPS the ticket is bound to the
    /// certificate seen (channel bindings).
    async fn kerberos(&self, conn: &mut Connection) -> Result<(), KerberosFailure> {
        use KerberosFailure::{Failed, Unavailable};
        if self.host.parse::<std::net::IpAddr>().is_ok() {
            return Err(Unavailable(WinrmError::Kerberos(format!(
                "Kerberos needs the server's DNS name (HTTP/<name> is its service principal), \
                 not the address {}",
                self.host
            ))));
        }
        let credential = self
            .connector
            .kerberos_credential()
            .await
            .map_err(|e| Unavailable(kerberos_error(e)))?;
        let bindings = conn.peer_certificate.as_deref().map(|der| {
            revoke_gss::tls_server_end_point(&super::super::ntlm::certificate_hash(der))
        });
        let host = self.host.clone();
        // A few service-ticket requests at a time: with every server's at
        // once, MIT's ticket cache (written by each) stalls some of them for
        // a second (docs/performance.md). The semaphore is never closed.
        let permit = TICKET_REQUESTS.acquire().await.ok();
        let (initiator, token) = blocking(move || {
            revoke_gss::Initiator::new(
                "HTTP",
                &host,
                // Raw Kerberos tokens in `Negotiate`, as requests-kerberos
                // sends them and Windows' Negotiate accepts: a credential got
                // with a password is Kerberos-only, and SPNEGO would add
                // nothing here (there is no other mechanism to choose).
                revoke_gss::Mechanism::Kerberos,
                credential,
                bindings,
            )
        })
        .await
        .map_err(Unavailable)?;
        drop(permit);

        let engine = &base64::engine::general_purpose::STANDARD;
        let answer = self
            .empty_post(conn, format!("Negotiate {}", engine.encode(&token)))
            .await
            .map_err(Failed)?;
        let reply = negotiate_token(&answer.www_authenticate);
        match answer.status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => {
                // A KRB-ERROR inside the answer says why (clock skew, …).
                if let Some(reply) = reply {
                    blocking_step(initiator, reply).await.map_err(Failed)?;
                }
                return Err(Failed(WinrmError::Kerberos(format!(
                    "the server refused the Kerberos ticket for HTTP/{} (HTTP 401): its key \
                     may not match the KDC's (keytab or computer account out of step), its \
                     clock may be off by more than 5 minutes, or it does not accept Kerberos",
                    self.host
                ))));
            }
            status => {
                return Err(Failed(WinrmError::Http {
                    status: status.as_u16(),
                    detail: "while authenticating with Kerberos".into(),
                }));
            }
        }
        let Some(reply) = reply else {
            return Err(Failed(WinrmError::Kerberos(format!(
                "the server accepted the ticket but did not prove it is HTTP/{} (no AP-REP in \
                 its answer): it may not be the real server",
                self.host
            ))));
        };
        let context = blocking_step(initiator, reply)
            .await
            .map_err(Failed)?
            .finish()
            .map_err(|e| Failed(kerberos_error(e)))?;
        if self.settings().scheme == Scheme::Http {
            conn.sealing = Some(Sealer::Kerberos(KerberosSeal::new(context)));
        }
        Ok(())
    }

    /// NTLM over HTTP Negotiate, with empty bodies: Windows refuses a SOAP
    /// body that is not sealed, and nothing can be sealed before the
    /// AUTHENTICATE message (this is what pywinrm does too). `instead_of`
    /// is why Kerberos was not used, when NTLM is the fallback.
    async fn ntlm(
        &self,
        conn: &mut Connection,
        instead_of: Option<WinrmError>,
    ) -> Result<(), WinrmError> {
        if self.connector.password.is_empty() {
            return Err(WinrmError::Settings(match instead_of {
                Some(why) => format!(
                    "Kerberos could not be used ({why}), and NTLM needs the password of {}: \
                     none was given",
                    self.settings().user
                ),
                None => format!(
                    "NTLM needs the password of {}: none was given",
                    self.settings().user
                ),
            }));
        }
        let (user, domain) = self.settings().ntlm_identity();
        // MsvAvTargetName, as Windows' SSPI and pyspnego send it: the SPN
        // the client means to authenticate to.
        let mut ntlm = ClientContext::new(user, domain, self.connector.password.expose())
            .with_target_name(&format!("HTTP/{}", self.host));
        let seal = self.settings().scheme == Scheme::Http;
        if seal {
            ntlm.require_sealing();
        }
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
                        sanitize(&first.www_authenticate.join(", "))
                    ))
                }
            })?;

        let bindings = conn
            .peer_certificate
            .as_deref()
            .map(super::super::ntlm::channel_bindings_hash);
        let (authenticate, security) = ntlm
            .authenticate(&challenge, bindings)
            .map_err(|e| WinrmError::Protocol(format!("NTLM: {e}")))?;
        let second = self
            .empty_post(conn, format!("Negotiate {}", engine.encode(authenticate)))
            .await?;
        match second.status {
            StatusCode::OK => {
                if seal {
                    conn.sealing = Some(Sealer::Ntlm(Box::new(security)));
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
        let mut authorization = HeaderValue::from_str(&authorization)
            .map_err(|e| WinrmError::Protocol(e.to_string()))?;
        authorization.set_sensitive(true);
        let request = self
            .request_builder()
            .header(header::AUTHORIZATION, authorization)
            .header(header::CONTENT_LENGTH, "0")
            .body(Full::new(Bytes::new()))
            .map_err(|e| WinrmError::Protocol(e.to_string()))?;
        self.ready(conn).await?;
        self.exchange(conn, request)
            .await
            .map_err(|(SendError::Unwritten(e) | SendError::Written(e))| e)
    }
}

/// The Kerberos principal for a password logon as `user` (`DOMAIN\\user`,
/// `user@suffix` or `user`): `user@REALM` with the configured realm, else a
/// UPN's suffix upper-cased (a UPN suffix need not be the realm: the
/// configured realm wins), else the bare name, which the library completes
/// with its default realm.
pub fn kerberos_principal(user: &str, realm: Option<&str>) -> String {
    let user = user.trim();
    let (name, suffix) = match user.split_once('\\') {
        Some((_, name)) => (name, None),
        None => match user.rsplit_once('@') {
            Some((name, suffix)) => (name, Some(suffix)),
            None => (user, None),
        },
    };
    match (realm, suffix) {
        (Some(realm), _) | (None, Some(realm)) => format!("{name}@{}", realm.to_ascii_uppercase()),
        (None, None) => name.to_string(),
    }
}

fn kerberos_error(error: revoke_gss::GssError) -> WinrmError {
    WinrmError::Kerberos(error.to_string())
}

/// The token of a `WWW-Authenticate: Negotiate <token>` header, if any.
fn negotiate_token(www_authenticate: &[String]) -> Option<Vec<u8>> {
    www_authenticate.iter().find_map(|v| {
        let (scheme, token) = v.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("Negotiate")
            .then(|| {
                base64::engine::general_purpose::STANDARD
                    .decode(token.trim())
                    .ok()
            })
            .flatten()
    })
}

/// GSSAPI calls may read files and ask the KDC: off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, revoke_gss::GssError> + Send + 'static,
) -> Result<T, WinrmError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| WinrmError::Kerberos(e.to_string()))?
        .map_err(kerberos_error)
}

/// Feed the server's token to the context; the context back when it took it.
async fn blocking_step(
    mut initiator: revoke_gss::Initiator,
    token: Vec<u8>,
) -> Result<revoke_gss::Initiator, WinrmError> {
    blocking(move || initiator.step(Some(&token)).map(|_| initiator)).await
}

/// How many Kerberos contexts may take their first step (where the library
/// gets and stores the service ticket) at once.
static TICKET_REQUESTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_logon_names_the_principal_with_the_right_realm() {
        assert_eq!(
            kerberos_principal(r"CORP\alice", Some("corp.example")),
            "alice@CORP.EXAMPLE"
        );
        assert_eq!(
            kerberos_principal("alice@corp.example", None),
            "alice@CORP.EXAMPLE"
        );
        // A UPN suffix is not always the realm: the configured realm wins.
        assert_eq!(
            kerberos_principal("alice@corp.example", Some("OTHER")),
            "alice@OTHER"
        );
        assert_eq!(kerberos_principal(r"CORP\alice", None), "alice");
    }

    #[test]
    fn the_ap_rep_is_read_from_a_negotiate_header_only() {
        let header = |v: &str| vec![v.to_string()];
        assert_eq!(
            negotiate_token(&header("Negotiate oRQwEqADCgEA"))
                .unwrap()
                .len(),
            9
        );
        assert_eq!(negotiate_token(&header("Negotiate")), None);
        assert_eq!(negotiate_token(&header("Kerberos oRQwEqADCgEA")), None);
        assert_eq!(negotiate_token(&header("Negotiate !!!")), None);
    }
}
