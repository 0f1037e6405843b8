//! The wire: one LDAP session per connection (ldap3_proto's codec over
//! tokio), LDAPS from the first byte or plain LDAP with StartTLS.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::Ordering;

use ldap3_proto::LdapCodec;
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindResponse, LdapExtendedResponse, LdapMsg, LdapOp, LdapPartialAttribute,
    LdapResult as WireResult, LdapResultCode, LdapSearchResultEntry, LdapSearchResultReference,
    LdapSearchScope,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::Framed;

use super::access::Bound;
use super::domain::{Domain, Modification};
use super::store::{Entry, LdapError};

pub const STARTTLS_OID: &str = "1.3.6.1.4.1.1466.20037";
const WHOAMI_OID: &str = "1.3.6.1.4.1.4203.1.11.3";

struct Session {
    dc: usize,
    tls: bool,
    bound: Bound,
    /// The Global Catalog port: the whole forest, partial attributes, read-only.
    gc: bool,
}

enum Next {
    Closed,
    StartTls,
}

/// An LDAPS connection: TLS first, then LDAP.
pub async fn serve_ldaps(
    domain: Arc<Domain>,
    dc: usize,
    gc: bool,
    acceptor: TlsAcceptor,
    tcp: TcpStream,
) {
    let Ok(tls) = acceptor.accept(tcp).await else {
        return;
    };
    let mut session = Session {
        dc,
        tls: true,
        bound: Bound::default(),
        gc,
    };
    let mut framed = Framed::new(tls, LdapCodec::default());
    let _ = run(&domain, &mut session, &mut framed, false).await;
}

/// A plain LDAP connection, which StartTLS may upgrade.
pub async fn serve_plain(
    domain: Arc<Domain>,
    dc: usize,
    gc: bool,
    acceptor: TlsAcceptor,
    tcp: TcpStream,
) {
    let mut session = Session {
        dc,
        tls: false,
        bound: Bound::default(),
        gc,
    };
    let mut framed = Framed::new(tcp, LdapCodec::default());
    if let Ok(Next::StartTls) = run(&domain, &mut session, &mut framed, true).await {
        let tcp = framed.into_inner();
        let Ok(tls) = acceptor.accept(tcp).await else {
            return;
        };
        session.tls = true;
        // RFC 4513 §3.1.5: StartTLS ends the previous authentication.
        session.bound = Bound::default();
        let mut framed = Framed::new(tls, LdapCodec::default());
        let _ = run(&domain, &mut session, &mut framed, false).await;
    }
}

async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    domain: &Arc<Domain>,
    session: &mut Session,
    framed: &mut Framed<S, LdapCodec>,
    starttls_allowed: bool,
) -> std::io::Result<Next> {
    while let Some(msg) = framed.next().await {
        let msg = msg?;
        let id = msg.msgid;
        match msg.op {
            LdapOp::UnbindRequest => return Ok(Next::Closed),
            LdapOp::ExtendedRequest(req) if req.name == STARTTLS_OID => {
                let res = if starttls_allowed {
                    result(0, "")
                } else {
                    result(
                        1,
                        "00000000: LdapErr: TLS is already active on this connection",
                    )
                };
                let ok = res.code == LdapResultCode::Success;
                framed
                    .send(LdapMsg::new(
                        id,
                        LdapOp::ExtendedResponse(LdapExtendedResponse {
                            res,
                            name: Some(STARTTLS_OID.to_string()),
                            value: None,
                        }),
                    ))
                    .await?;
                if ok {
                    return Ok(Next::StartTls);
                }
            }
            op => {
                for reply in handle(domain, session, id, op, &msg.ctrl) {
                    framed.feed(reply).await?;
                }
                framed.flush().await?;
            }
        }
    }
    Ok(Next::Closed)
}

fn code(n: u32) -> LdapResultCode {
    use LdapResultCode::*;
    match n {
        0 => Success,
        1 => OperationsError,
        2 => ProtocolError,
        4 => SizeLimitExceeded,
        7 => AuthMethodNotSupported,
        8 => StrongerAuthRequired,
        10 => Referral,
        16 => NoSuchAttribute,
        17 => UndefinedAttributeType,
        19 => ConstraintViolation,
        20 => AttributeOrValueExists,
        21 => InvalidAttributeSyntax,
        32 => NoSuchObject,
        34 => InvalidDNSyntax,
        49 => InvalidCredentials,
        50 => InsufficentAccessRights,
        53 => UnwillingToPerform,
        64 => NamingViolation,
        65 => ObjectClassViolation,
        66 => NotAllowedOnNonLeaf,
        68 => EntryAlreadyExists,
        _ => Other,
    }
}

fn result(n: u32, message: &str) -> WireResult {
    WireResult {
        code: code(n),
        matcheddn: String::new(),
        message: message.to_string(),
        referral: Vec::new(),
    }
}

fn from_error(e: &LdapError) -> WireResult {
    result(e.code, &e.message)
}

fn outcome(r: Result<(), LdapError>) -> WireResult {
    match r {
        Ok(()) => result(0, ""),
        Err(e) => from_error(&e),
    }
}

/// What Samba answers an anonymous connection that asks for more than the rootDSE.
fn bind_first() -> LdapError {
    LdapError::new(1, "00002020: Operation unavailable without authentication")
}

/// Result 10 pointing at the naming context that holds the DN, as AD words it.
fn referral(url: String) -> WireResult {
    let mut res = result(
        10,
        "0000202B: RefErr: DSID-0310084A, data 0, 1 access points",
    );
    res.referral = vec![url];
    res
}

/// The lab's Global Catalog port serves reads only: revoke writes on a DC
/// of the account's own domain, never through the GC.
fn gc_read_only() -> LdapError {
    LdapError::new(
        53,
        "the lab's Global Catalog port is read-only: write on a DC of the object's domain",
    )
}

fn wire_entry(e: &Entry) -> LdapSearchResultEntry {
    LdapSearchResultEntry {
        dn: e.dn.clone(),
        attributes: e
            .attrs()
            .map(|a| LdapPartialAttribute {
                atype: a.name.clone(),
                vals: a.values.clone(),
            })
            .collect(),
    }
}

fn handle(
    domain: &Arc<Domain>,
    session: &mut Session,
    id: i32,
    op: LdapOp,
    controls: &[LdapControl],
) -> Vec<LdapMsg> {
    let dc = session.dc;
    let anonymous = session.bound.dn.is_none();
    let reply = |op| vec![LdapMsg::new(id, op)];
    match op {
        LdapOp::BindRequest(req) => {
            let res = if req.version != 3 {
                session.bound = Bound::default();
                result(2, "only LDAPv3 is supported")
            } else {
                match req.cred {
                    LdapBindCred::Simple(password) => {
                        match domain.bind(dc, &req.dn, &password, session.tls) {
                            Ok(bound) => {
                                session.bound = bound;
                                result(0, "")
                            }
                            Err(e) => {
                                session.bound = Bound::default();
                                from_error(&e)
                            }
                        }
                    }
                    _ => result(7, "the lab directory supports simple binds only (no SASL)"),
                }
            };
            reply(LdapOp::BindResponse(LdapBindResponse {
                res,
                saslcreds: None,
            }))
        }
        LdapOp::SearchRequest(req) => {
            if req.base.is_empty() && req.scope == LdapSearchScope::Base {
                let root = domain.root_dse(dc);
                let root = project_root(&root, &req.attrs);
                return vec![
                    LdapMsg::new(id, LdapOp::SearchResultEntry(wire_entry(&root))),
                    LdapMsg::new(id, LdapOp::SearchResultDone(result(0, ""))),
                ];
            }
            if anonymous {
                return reply(LdapOp::SearchResultDone(from_error(&bind_first())));
            }
            if !session.gc
                && let Some(url) = domain.referral(dc, &req.base)
            {
                return reply(LdapOp::SearchResultDone(referral(url)));
            }
            let paged = controls.iter().find_map(|c| match c {
                LdapControl::SimplePagedResults { size, cookie } => Some((*size, cookie.clone())),
                _ => None,
            });
            let found = if session.gc {
                domain.gc_search(&req.base, &req.scope, &req.filter, &req.attrs)
            } else {
                domain.search(dc, &req.base, &req.scope, &req.filter, &req.attrs)
            };
            match found {
                Ok(entries) => {
                    let max_page = domain.max_page_size.load(Ordering::Relaxed).max(1);
                    let size_limit = usize::try_from(req.sizelimit)
                        .ok()
                        .filter(|n| *n > 0)
                        .unwrap_or(usize::MAX);
                    // A page resumes where the cookie says (an offset: the
                    // entries come in a stable order).
                    let (start, page) = match &paged {
                        Some((size, cookie)) => {
                            let start = std::str::from_utf8(cookie)
                                .ok()
                                .and_then(|c| c.parse::<usize>().ok())
                                .unwrap_or(0);
                            let size = usize::try_from(*size).ok().filter(|n| *n > 0);
                            (start, size.unwrap_or(max_page).min(max_page))
                        }
                        None => (0, usize::MAX),
                    };
                    let rest = entries.len().saturating_sub(start);
                    // Without paging AD hands out MaxPageSize entries, then
                    // result 4 (docs/windows-behaviour.md §2.20).
                    let take = rest.min(page).min(size_limit).min(max_page);
                    let mut out: Vec<LdapMsg> = entries
                        .iter()
                        .skip(start)
                        .take(take)
                        .map(|e| LdapMsg::new(id, LdapOp::SearchResultEntry(wire_entry(e))))
                        .collect();
                    if start == 0 && !session.gc {
                        for url in domain.references(dc, &req.base, &req.scope) {
                            out.push(LdapMsg::new(
                                id,
                                LdapOp::SearchResultReference(LdapSearchResultReference {
                                    uris: vec![url],
                                }),
                            ));
                        }
                    }
                    let done = if rest > take && (paged.is_none() || take >= size_limit) {
                        result(4, "size limit exceeded")
                    } else {
                        result(0, "")
                    };
                    let ctrl = match &paged {
                        Some(_) => {
                            let next = start + take;
                            let cookie =
                                if next < entries.len() && done.code == LdapResultCode::Success {
                                    next.to_string().into_bytes()
                                } else {
                                    Vec::new()
                                };
                            vec![LdapControl::SimplePagedResults { size: 0, cookie }]
                        }
                        None => Vec::new(),
                    };
                    out.push(LdapMsg::new_with_ctrls(
                        id,
                        LdapOp::SearchResultDone(done),
                        ctrl,
                    ));
                    out
                }
                Err(e) => {
                    let mut res = from_error(&e);
                    if e.code == 32 {
                        res.matcheddn = e
                            .message
                            .split("best match of: '")
                            .nth(1)
                            .map(|m| m.trim_end_matches('\'').to_string())
                            .unwrap_or_default();
                    }
                    reply(LdapOp::SearchResultDone(res))
                }
            }
        }
        LdapOp::ModifyRequest(req) => {
            if anonymous {
                return reply(LdapOp::ModifyResponse(from_error(&bind_first())));
            }
            if session.gc {
                return reply(LdapOp::ModifyResponse(from_error(&gc_read_only())));
            }
            if let Some(url) = domain.referral(dc, &req.dn) {
                return reply(LdapOp::ModifyResponse(referral(url)));
            }
            let changes: Vec<Modification> = req
                .changes
                .into_iter()
                .map(|m| Modification {
                    op: m.operation,
                    attr: m.modification.atype,
                    values: m.modification.vals,
                })
                .collect();
            let r = domain.modify(dc, &session.bound, &req.dn, &changes, session.tls);
            reply(LdapOp::ModifyResponse(outcome(r)))
        }
        LdapOp::AddRequest(req) => {
            if anonymous {
                return reply(LdapOp::AddResponse(from_error(&bind_first())));
            }
            if session.gc {
                return reply(LdapOp::AddResponse(from_error(&gc_read_only())));
            }
            let attrs = req
                .attributes
                .into_iter()
                .map(|a| (a.atype, a.vals))
                .collect();
            let r = domain.add(dc, &session.bound, &req.dn, attrs, session.tls);
            reply(LdapOp::AddResponse(outcome(r)))
        }
        LdapOp::DelRequest(dn) => {
            if anonymous {
                return reply(LdapOp::DelResponse(from_error(&bind_first())));
            }
            if session.gc {
                return reply(LdapOp::DelResponse(from_error(&gc_read_only())));
            }
            let r = domain.delete(dc, &session.bound, &dn);
            reply(LdapOp::DelResponse(outcome(r)))
        }
        LdapOp::ModifyDNRequest(_) => reply(LdapOp::ModifyDNResponse(result(
            53,
            "the lab directory does not rename objects",
        ))),
        LdapOp::CompareRequest(_) => reply(LdapOp::CompareResult(result(
            53,
            "the lab directory does not implement compare",
        ))),
        LdapOp::AbandonRequest(_) => Vec::new(),
        LdapOp::ExtendedRequest(req) if req.name == WHOAMI_OID => {
            // AD words it `u:DOMAIN\sam` (RFC 4532 §2, docs/windows-behaviour.md §2.21).
            let who = session
                .bound
                .dn
                .as_ref()
                .map(|dn| {
                    let sam = domain
                        .data(dc)
                        .get(dn)
                        .and_then(|e| e.first("sAMAccountName"));
                    match sam {
                        Some(sam) => format!("u:{}\\{sam}", domain.netbios),
                        None => format!("dn:{dn}"),
                    }
                })
                .unwrap_or_default();
            reply(LdapOp::ExtendedResponse(LdapExtendedResponse {
                res: result(0, ""),
                name: None,
                value: Some(who.into_bytes()),
            }))
        }
        LdapOp::ExtendedRequest(req) => reply(LdapOp::ExtendedResponse(LdapExtendedResponse {
            res: result(2, &format!("unsupported extended operation {}", req.name)),
            name: None,
            value: None,
        })),
        _ => reply(LdapOp::ExtendedResponse(LdapExtendedResponse {
            res: result(2, "unexpected operation"),
            name: None,
            value: None,
        })),
    }
}

/// The rootDSE attributes asked for (all of them with none or `*`).
fn project_root(root: &Entry, attrs: &[String]) -> Entry {
    if attrs.is_empty() || attrs.iter().any(|a| a == "*" || a == "+") {
        return root.clone();
    }
    let mut out = Entry::new("");
    for attr in root.attrs() {
        if attrs.iter().any(|a| a.eq_ignore_ascii_case(&attr.name)) {
            out.set(&attr.name, attr.values.clone());
        }
    }
    out
}
