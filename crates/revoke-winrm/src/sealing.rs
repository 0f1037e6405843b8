//! MS-WSMV 2.2.9.1: a SOAP body sealed with the NTLM session, framed as
//! `multipart/encrypted; protocol="application/HTTP-SPNEGO-session-encrypted"`.
//!
//! A sealed body is two MIME parts between `--Encrypted Boundary` lines:
//!
//! ```text
//! --Encrypted Boundary\r\n
//! \tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n
//! \tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=<plaintext length>\r\n
//! --Encrypted Boundary\r\n
//! \tContent-Type: application/octet-stream\r\n
//! <u32 LE signature length = 16><signature><sealed bytes>--Encrypted Boundary--\r\n
//! ```
//!
//! Windows and pywinrm put the closing boundary straight after the sealed
//! bytes ([`Framing::Windows`]); winrm-rs 1.1.2 puts `\r\n` before it
//! ([`Framing::CrlfBeforeClose`]) and cannot read the Windows framing back,
//! while pywinrm cannot read winrm-rs's. [`unseal_body_framed`] reports which
//! one a request used so a server can answer in kind.
//!
//! Messages over 16 KiB that a client splits into several parts
//! (`multipart/x-multi-encrypted`, used by CredSSP only) are not supported:
//! [`unseal_body`] refuses them with an error.

use super::kerberos::{self, KerberosSeal};
use super::ntlm::{NtlmError, SessionSecurity};

/// What seals a connection's messages: NTLM's session keys, or a Kerberos
/// context. Both give a header and data as long as the message.
pub enum Sealer {
    // Boxed: two RC4 states make it far larger than a Kerberos handle.
    Ntlm(Box<SessionSecurity>),
    Kerberos(KerberosSeal),
}

/// A session that can seal and open message bodies.
pub trait MessageSeal {
    /// (header, encrypted bytes as long as `message`).
    fn seal_message(&mut self, message: &[u8]) -> Result<(Vec<u8>, Vec<u8>), NtlmError>;
    fn unseal_message(&mut self, header: &[u8], sealed: &[u8]) -> Result<Vec<u8>, NtlmError>;
}

impl MessageSeal for SessionSecurity {
    fn seal_message(&mut self, message: &[u8]) -> Result<(Vec<u8>, Vec<u8>), NtlmError> {
        let (signature, sealed) = self.seal(message);
        Ok((signature.to_vec(), sealed))
    }

    fn unseal_message(&mut self, header: &[u8], sealed: &[u8]) -> Result<Vec<u8>, NtlmError> {
        if header.len() != SIGNATURE_LEN {
            return Err(malformed("signature length is not 16"));
        }
        self.unseal(header, sealed)
    }
}

impl MessageSeal for Sealer {
    fn seal_message(&mut self, message: &[u8]) -> Result<(Vec<u8>, Vec<u8>), NtlmError> {
        match self {
            Sealer::Ntlm(ntlm) => ntlm.seal_message(message),
            Sealer::Kerberos(kerberos) => kerberos.seal(message),
        }
    }

    fn unseal_message(&mut self, header: &[u8], sealed: &[u8]) -> Result<Vec<u8>, NtlmError> {
        match self {
            Sealer::Ntlm(ntlm) => ntlm.unseal_message(header, sealed),
            Sealer::Kerberos(kerberos) => kerberos.unseal(header, sealed),
        }
    }
}

/// The Content-Type header value of a sealed message.
pub const SEALED_CONTENT_TYPE: &str = "multipart/encrypted;protocol=\"application/HTTP-SPNEGO-session-encrypted\";boundary=\"Encrypted Boundary\"";

const BOUNDARY_LINE: &[u8] = b"--Encrypted Boundary\r\n";
const CLOSING_BOUNDARY: &[u8] = b"--Encrypted Boundary--";
const PROTOCOL: &str = "application/HTTP-SPNEGO-session-encrypted";
const OCTET_STREAM: &str = "application/octet-stream";
/// An NTLM signature (MS-NLMP 2.2.2.9.1) is always 16 bytes.
const SIGNATURE_LEN: usize = 16;

/// Where the closing boundary goes relative to the sealed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// `<sealed>--Encrypted Boundary--\r\n`: what Windows and pywinrm send,
    /// and the only form pywinrm can read.
    #[default]
    Windows,
    /// `<sealed>\r\n--Encrypted Boundary--\r\n`: what winrm-rs 1.1.2 sends,
    /// and the only form it can read.
    CrlfBeforeClose,
}

/// True when a Content-Type header says the body is sealed.
///
/// `multipart/x-multi-encrypted` counts as sealed too, so that it reaches
/// [`unseal_body`] and fails there clearly instead of being read as XML.
pub fn is_sealed(content_type: &str) -> bool {
    let lower = content_type.to_ascii_lowercase();
    (lower.contains("multipart/encrypted") || lower.contains("multipart/x-multi-encrypted"))
        && lower.contains(&PROTOCOL.to_ascii_lowercase())
}

/// Seal a SOAP envelope and frame it (the body to send with [`SEALED_CONTENT_TYPE`]).
pub fn seal_body(security: &mut SessionSecurity, soap: &[u8]) -> Vec<u8> {
    seal_body_framed(security, soap, Framing::Windows)
}

/// [`seal_body`] with an explicit [`Framing`], for a server answering a
/// client that only reads its own framing.
pub fn seal_body_framed(security: &mut SessionSecurity, soap: &[u8], framing: Framing) -> Vec<u8> {
    seal_body_with(security, soap, framing).expect("NTLM sealing cannot fail")
}

/// Seal and frame with any [`MessageSeal`] (Kerberos sealing can fail).
pub fn seal_body_with<S: MessageSeal + ?Sized>(
    security: &mut S,
    soap: &[u8],
    framing: Framing,
) -> Result<Vec<u8>, NtlmError> {
    let (signature, sealed) = security.seal_message(soap)?;
    let mut body = Vec::with_capacity(soap.len() + 256);
    body.extend_from_slice(BOUNDARY_LINE);
    body.extend_from_slice(format!("\tContent-Type: {PROTOCOL}\r\n").as_bytes());
    body.extend_from_slice(
        format!(
            "\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={}\r\n",
            soap.len()
        )
        .as_bytes(),
    );
    body.extend_from_slice(BOUNDARY_LINE);
    body.extend_from_slice(format!("\tContent-Type: {OCTET_STREAM}\r\n").as_bytes());
    body.extend_from_slice(&(signature.len() as u32).to_le_bytes());
    body.extend_from_slice(&signature);
    body.extend_from_slice(&sealed);
    if framing == Framing::CrlfBeforeClose {
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(CLOSING_BOUNDARY);
    body.extend_from_slice(b"\r\n");
    Ok(body)
}

/// Unframe and unseal a body; checks the declared original length.
pub fn unseal_body<S: MessageSeal + ?Sized>(
    security: &mut S,
    body: &[u8],
) -> Result<Vec<u8>, NtlmError> {
    unseal_body_framed(security, body).map(|(soap, _)| soap)
}

/// [`unseal_body`], also telling which [`Framing`] the sender used.
pub fn unseal_body_framed<S: MessageSeal + ?Sized>(
    security: &mut S,
    body: &[u8],
) -> Result<(Vec<u8>, Framing), NtlmError> {
    let parts = SealedParts::parse(body)?;
    let soap = security.unseal_message(parts.signature, parts.sealed)?;
    if soap.len() != parts.original_length {
        return Err(malformed(
            "unsealed length differs from OriginalContent Length",
        ));
    }
    Ok((soap, parts.framing))
}

fn malformed(what: &str) -> NtlmError {
    NtlmError::Malformed(format!("sealed body: {what}"))
}

/// The pieces of a sealed body, located but not yet unsealed.
#[derive(Debug)]
struct SealedParts<'a> {
    original_length: usize,
    signature: &'a [u8],
    sealed: &'a [u8],
    framing: Framing,
}

impl<'a> SealedParts<'a> {
    fn parse(body: &'a [u8]) -> Result<Self, NtlmError> {
        let rest = body
            .strip_prefix(BOUNDARY_LINE)
            .ok_or_else(|| malformed("does not start with --Encrypted Boundary"))?;
        let header_end =
            find(rest, BOUNDARY_LINE).ok_or_else(|| malformed("no second --Encrypted Boundary"))?;
        let original_length = parse_first_part(&rest[..header_end])?;
        let data = parse_octet_stream_header(&rest[header_end + BOUNDARY_LINE.len()..])?;

        let (len_field, data) = split(data, 4, "no signature length")?;
        let signature_len = u32::from_le_bytes(len_field.try_into().expect("4 bytes"));
        // 16 with NTLM, 60 with Kerberos and AES; checked by the session.
        let signature_len = signature_len as usize;
        if !(SIGNATURE_LEN..=kerberos::MAX_HEADER).contains(&signature_len) {
            return Err(malformed("signature length is not 16"));
        }
        let (signature, data) = split(data, signature_len, "signature cut short")?;
        // The sealed bytes are exactly as long as the plaintext (RC4 is a
        // stream cipher): the declared length says where they end, which
        // keeps ciphertext that happens to end in \r\n unambiguous.
        let (sealed, trailer) = split(
            data,
            original_length,
            "shorter than its OriginalContent Length",
        )?;
        let framing = parse_trailer(trailer)?;
        Ok(SealedParts {
            original_length,
            signature,
            sealed,
            framing,
        })
    }
}

/// The first part's headers: the protocol and the plaintext's length.
fn parse_first_part(headers: &[u8]) -> Result<usize, NtlmError> {
    let text = std::str::from_utf8(headers).map_err(|_| malformed("headers are not text"))?;
    let mut protocol_ok = false;
    let mut length = None;
    for line in text.split("\r\n").map(str::trim).filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| malformed("header line without a colon"))?;
        let value = value.trim();
        if name.trim().eq_ignore_ascii_case("Content-Type") {
            protocol_ok = value.eq_ignore_ascii_case(PROTOCOL);
        } else if name.trim().eq_ignore_ascii_case("OriginalContent") {
            length = Some(original_length(value)?);
        }
    }
    if !protocol_ok {
        return Err(malformed(
            "first part is not application/HTTP-SPNEGO-session-encrypted",
        ));
    }
    length.ok_or_else(|| malformed("no OriginalContent Length"))
}

/// `Length=<n>` from `type=application/soap+xml;charset=UTF-8;Length=<n>`.
fn original_length(value: &str) -> Result<usize, NtlmError> {
    value
        .split(';')
        .filter_map(|param| param.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("Length"))
        .and_then(|(_, n)| n.trim().parse().ok())
        .ok_or_else(|| malformed("OriginalContent has no valid Length"))
}

/// Skip the second part's `Content-Type: application/octet-stream` line.
fn parse_octet_stream_header(part: &[u8]) -> Result<&[u8], NtlmError> {
    let line_end = find(part, b"\r\n").ok_or_else(|| malformed("second part has no header"))?;
    let line = std::str::from_utf8(&part[..line_end])
        .map_err(|_| malformed("second part header is not text"))?;
    let is_octet_stream = line.split_once(':').is_some_and(|(name, value)| {
        name.trim().eq_ignore_ascii_case("Content-Type")
            && value.trim().eq_ignore_ascii_case(OCTET_STREAM)
    });
    if !is_octet_stream {
        return Err(malformed("second part is not application/octet-stream"));
    }
    Ok(&part[line_end + 2..])
}

/// What follows the sealed bytes: the closing boundary, in either framing.
fn parse_trailer(trailer: &[u8]) -> Result<Framing, NtlmError> {
    let (framing, rest) = match trailer.strip_prefix(b"\r\n") {
        Some(rest) => (Framing::CrlfBeforeClose, rest),
        None => (Framing::Windows, trailer),
    };
    if let Some(after) = rest.strip_prefix(CLOSING_BOUNDARY)
        && (after.is_empty() || after == b"\r\n")
    {
        return Ok(framing);
    }
    if rest.starts_with(BOUNDARY_LINE) {
        return Err(malformed(
            "more than one encrypted part (multipart/x-multi-encrypted) is not supported",
        ));
    }
    Err(malformed(
        "sealed data does not end at OriginalContent Length with the closing boundary",
    ))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn split<'a>(data: &'a [u8], at: usize, what: &str) -> Result<(&'a [u8], &'a [u8]), NtlmError> {
    if data.len() < at {
        return Err(malformed(what));
    }
    Ok(data.split_at(at))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(feature = "acceptor")]
    use crate::ntlm::{AuthenticatedUser, ServerContext, nt_hash};
    use crate::ntlm::{ClientContext, Side};

    const SOAP: &[u8] =
        b"<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body/></s:Envelope>";

    fn pair(key: u8) -> (SessionSecurity, SessionSecurity) {
        (
            SessionSecurity::from_exported_key([key; 16], Side::Client),
            SessionSecurity::from_exported_key([key; 16], Side::Server),
        )
    }

    #[test]
    fn seal_body_has_the_pywinrm_layout() {
        let (mut client, _) = pair(1);
        let body = seal_body(&mut client, SOAP);
        let head = format!(
            "--Encrypted Boundary\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n\
             \tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={}\r\n\
             --Encrypted Boundary\r\n\tContent-Type: application/octet-stream\r\n",
            SOAP.len()
        );
        assert!(body.starts_with(head.as_bytes()));
        let binary = &body[head.len()..];
        assert_eq!(&binary[..4], &16u32.to_le_bytes());
        assert_eq!(
            binary.len(),
            4 + 16 + SOAP.len() + b"--Encrypted Boundary--\r\n".len()
        );
        assert!(body.ends_with(b"--Encrypted Boundary--\r\n"));
        // The same bytes seal() gives.
        let (mut reference, _) = pair(1);
        let (sig, sealed) = reference.seal(SOAP);
        assert_eq!(&binary[4..20], &sig);
        assert_eq!(&binary[20..20 + SOAP.len()], sealed.as_slice());
    }

    #[test]
    fn round_trip_both_ways_in_both_framings() {
        let (mut client, mut server) = pair(2);
        for framing in [Framing::Windows, Framing::CrlfBeforeClose, Framing::Windows] {
            let body = seal_body_framed(&mut client, SOAP, framing);
            assert_eq!(
                unseal_body_framed(&mut server, &body).unwrap(),
                (SOAP.to_vec(), framing)
            );
            let body = seal_body_framed(&mut server, b"reply", framing);
            assert_eq!(unseal_body(&mut client, &body).unwrap(), b"reply");
        }
    }

    /// Ciphertext ending in \r\n must not be mistaken for the winrm-rs framing.
    #[test]
    fn ciphertext_ending_in_crlf_is_unambiguous() {
        // Sealing zeros reveals the keystream; pick a plaintext whose
        // ciphertext ends in \r\n under it.
        let (_, keystream) =
            SessionSecurity::from_exported_key([8; 16], Side::Client).seal(&vec![0; SOAP.len()]);
        let mut soap = SOAP.to_vec();
        let n = soap.len();
        soap[n - 2] = keystream[n - 2] ^ b'\r';
        soap[n - 1] = keystream[n - 1] ^ b'\n';
        let (mut client, mut server) = pair(8);
        let body = seal_body(&mut client, &soap);
        assert!(find(&body, b"\r\n--Encrypted Boundary--").is_some());
        assert_eq!(
            unseal_body_framed(&mut server, &body).unwrap(),
            (soap, Framing::Windows)
        );
    }

    /// The body winrm-rs 1.1.2's `seal_body` builds: its NtlmSession output
    /// (signature || ciphertext) and `\r\n` before the closing boundary.
    fn winrm_rs_body(session: &mut winrm_rs::NtlmSession, soap: &[u8]) -> Vec<u8> {
        let mut body = format!(
            "--Encrypted Boundary\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n\
             \tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={}\r\n\
             --Encrypted Boundary\r\n\tContent-Type: application/octet-stream\r\n",
            soap.len()
        )
        .into_bytes();
        body.extend_from_slice(&16u32.to_le_bytes());
        body.extend_from_slice(&session.seal(soap));
        body.extend_from_slice(b"\r\n--Encrypted Boundary--\r\n");
        body
    }

    #[test]
    fn accepts_winrm_rs_bodies_and_answers_in_kind() {
        let key = [3; 16];
        let mut theirs = winrm_rs::NtlmSession::from_auth(&key);
        let mut server = SessionSecurity::from_exported_key(key, Side::Server);
        for i in 0..3 {
            let soap = format!("<s:Envelope>{i}</s:Envelope>");
            let body = winrm_rs_body(&mut theirs, soap.as_bytes());
            let (got, framing) = unseal_body_framed(&mut server, &body).unwrap();
            assert_eq!(
                (got.as_slice(), framing),
                (soap.as_bytes(), Framing::CrlfBeforeClose)
            );
            // winrm-rs reads everything between the signature and "\r\n--Encrypted
            // Boundary--" as ciphertext; mirror that to prove the reply is readable.
            let reply = seal_body_framed(&mut server, b"<reply/>", framing);
            let start = find(&reply, b"octet-stream\r\n").unwrap() + 14 + 4;
            let end = find(&reply, b"\r\n--Encrypted Boundary--").unwrap();
            assert_eq!(theirs.unseal(&reply[start..end]).unwrap(), b"<reply/>");
        }
    }

    #[test]
    fn length_mismatch_is_refused() {
        let (mut client, mut server) = pair(4);
        let body = seal_body(&mut client, SOAP);
        let text = format!("Length={}", SOAP.len());
        for wrong in [SOAP.len() - 1, SOAP.len() + 1, 0] {
            let tampered = replace(&body, text.as_bytes(), format!("Length={wrong}").as_bytes());
            assert!(
                matches!(
                    unseal_body(&mut server, &tampered),
                    Err(NtlmError::Malformed(_))
                ),
                "{wrong}"
            );
        }
        // Nothing was consumed: the genuine body still unseals.
        assert_eq!(unseal_body(&mut server, &body).unwrap(), SOAP);
    }

    #[test]
    fn multi_part_bodies_are_refused() {
        let (mut client, mut server) = pair(5);
        let mut body = seal_body(&mut client, SOAP);
        body.truncate(body.len() - b"--Encrypted Boundary--\r\n".len());
        body.extend_from_slice(&seal_body(&mut client, SOAP));
        let err = unseal_body(&mut server, &body).unwrap_err();
        assert!(err.to_string().contains("x-multi-encrypted"), "{err}");
    }

    #[test]
    fn tampered_ciphertext_is_bad_signature() {
        let (mut client, mut server) = pair(6);
        let mut body = seal_body(&mut client, SOAP);
        let at = body.len() - 30;
        body[at] ^= 1;
        assert!(matches!(
            unseal_body(&mut server, &body),
            Err(NtlmError::BadSignature(_))
        ));
    }

    #[test]
    fn malformed_framing_is_an_error_never_a_panic() {
        let (mut client, _) = pair(7);
        let body = seal_body(&mut client, SOAP);
        // Only the final \r\n may go missing.
        let without_crlf = body.len() - 2;
        for len in 0..without_crlf {
            let (_, mut server) = pair(7);
            assert!(
                unseal_body(&mut server, &body[..len]).is_err(),
                "length {len}"
            );
        }
        let (_, mut server) = pair(7);
        assert_eq!(
            unseal_body(&mut server, &body[..without_crlf]).unwrap(),
            SOAP
        );
        let cases: [(&[u8], &[u8]); 5] = [
            (
                b"HTTP-SPNEGO-session-encrypted",
                b"HTTP-Kerberos-session-encrypted",
            ),
            (b"octet-stream", b"soap+xml"),
            (b"Length=", b"Lenght="),
            (&16u32.to_le_bytes(), &17u32.to_le_bytes()),
            (
                b"--Encrypted Boundary--\r\n",
                b"--Encrypted Boundary--\r\nextra",
            ),
        ];
        for (from, to) in cases {
            let (_, mut server) = pair(7);
            let tampered = replace(&body, from, to);
            assert!(
                matches!(
                    unseal_body(&mut server, &tampered),
                    Err(NtlmError::Malformed(_))
                ),
                "{to:?}"
            );
        }
        let (_, mut server) = pair(7);
        for garbage in [
            &b""[..],
            b"--Encrypted Boundary\r\n",
            b"\xff\xfe--Encrypted Boundary\r\n--Encrypted Boundary\r\n",
        ] {
            assert!(unseal_body(&mut server, garbage).is_err());
        }
        let huge = replace(
            &body,
            format!("Length={}", SOAP.len()).as_bytes(),
            b"Length=18446744073709551615",
        );
        assert!(unseal_body(&mut server, &huge).is_err());
    }

    #[test]
    fn is_sealed_recognises_the_content_types() {
        assert!(is_sealed(SEALED_CONTENT_TYPE));
        assert!(is_sealed(
            "Multipart/Encrypted; protocol=\"application/http-spnego-session-encrypted\"; boundary=\"Encrypted Boundary\""
        ));
        assert!(is_sealed(
            "multipart/x-multi-encrypted;protocol=\"application/HTTP-SPNEGO-session-encrypted\";boundary=\"Encrypted Boundary\""
        ));
        assert!(!is_sealed("application/soap+xml;charset=UTF-8"));
        assert!(!is_sealed(
            "multipart/encrypted;protocol=\"application/HTTP-CredSSP-session-encrypted\""
        ));
    }

    fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let at = find(haystack, from).expect("pattern present");
        [&haystack[..at], to, &haystack[at + from.len()..]].concat()
    }

    // ---- interop with pywinrm and pyspnego (the installed Python packages) --

    mod python {
        use std::io::{BufRead, BufReader, Write};
        use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

        const PYTHON: &str = "/work/main/.venv/bin/python";

        /// Talks to the peer below in hex lines. Modes: `client` is a
        /// pyspnego NTLM client sealing with pywinrm's Encryption class;
        /// `server` is a pyspnego NTLM acceptor.
        const PEER: &str = r#"
import os, sys, types
import requests, spnego
from requests_ntlm.requests_ntlm import ShimSessionSecurity
from winrm.encryption import Encryption

def send(b):
    print(b.hex(), flush=True)

def recv():
    return bytes.fromhex(sys.stdin.readline().strip())

mode, user, password = sys.argv[1:4]
if mode == "client":
    ctx = spnego.client(user, password, hostname="exch01", service="http", protocol="ntlm",
                        options=spnego.NegotiateOptions.use_ntlm)
    send(ctx.step())
    send(ctx.step(recv()))
    fake = types.SimpleNamespace(auth=types.SimpleNamespace(session_security=ShimSessionSecurity(ctx)))
    enc = Encryption(fake, "ntlm")
    for i in range(3):
        msg = ("<s:Envelope>pywinrm %d</s:Envelope>" % i).encode() * (i * 50 + 1)
        req = enc.prepare_encrypted_request(requests.Session(), "http://exch01:5985/wsman", msg)
        send(req.headers["Content-Type"].encode())
        send(req.body)
        reply = recv()
        resp = types.SimpleNamespace(headers={"Content-Type": req.headers["Content-Type"]}, content=reply,
                                     request=types.SimpleNamespace(url="http://exch01:5985/wsman"))
        send(enc.parse_encrypted_response(resp))
else:
    ctx = spnego.server(protocol="ntlm")
    send(ctx.step(recv()))
    ctx.step(recv())
    send(b"complete" if ctx.complete else b"incomplete")
    for i in range(3):
        send(ctx.unwrap(recv()).data)
        send(ctx.wrap(("reply %d" % i).encode(), encrypt=True).data)
"#;

        pub struct Peer {
            child: Child,
            stdin: ChildStdin,
            stdout: BufReader<ChildStdout>,
        }

        impl Peer {
            /// None (and the test skips) when the project's venv is absent.
            pub fn start(
                mode: &str,
                user: &str,
                password: &str,
                envs: &[(&str, &str)],
            ) -> Option<Peer> {
                if !std::path::Path::new(PYTHON).exists() {
                    eprintln!("skipping: {PYTHON} not found");
                    return None;
                }
                let mut child = Command::new(PYTHON)
                    .args(["-c", PEER, mode, user, password])
                    .envs(envs.iter().copied())
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("start python");
                let stdin = child.stdin.take().unwrap();
                let stdout = BufReader::new(child.stdout.take().unwrap());
                Some(Peer {
                    child,
                    stdin,
                    stdout,
                })
            }

            pub fn send(&mut self, bytes: &[u8]) {
                let line: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                writeln!(self.stdin, "{line}").expect("write to python");
            }

            pub fn recv(&mut self) -> Vec<u8> {
                let mut line = String::new();
                self.stdout.read_line(&mut line).expect("read from python");
                if line.trim().is_empty() {
                    let mut err = String::new();
                    let _ = std::io::Read::read_to_string(
                        self.child.stderr.as_mut().unwrap(),
                        &mut err,
                    );
                    panic!("python peer stopped:\n{err}");
                }
                let line = line.trim();
                (0..line.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&line[i..i + 2], 16).expect("hex from python"))
                    .collect()
            }
        }

        impl Drop for Peer {
            fn drop(&mut self) {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }

    #[cfg(feature = "acceptor")]
    use crate::ntlm::testing::server_identity as identity;

    /// pywinrm's client (pyspnego NTLM + its Encryption framing) against our
    /// acceptor and sealing, with a UPN and an empty domain.
    #[cfg(feature = "acceptor")]
    #[test]
    fn pywinrm_client_against_our_server() {
        let Some(mut py) = python::Peer::start("client", "alice@corp.example", "S3cret!", &[])
        else {
            return;
        };
        let mut server = ServerContext::new(identity());
        let challenge = server.challenge(&py.recv()).unwrap();
        py.send(&challenge);
        let lookup = |user: &str, domain: &str| {
            (user == "alice@corp.example" && domain.is_empty()).then(|| nt_hash("S3cret!"))
        };
        let (who, mut security) = server.authenticate(&py.recv(), &lookup, None).unwrap();
        assert_eq!(
            who,
            AuthenticatedUser {
                user: "alice@corp.example".into(),
                domain: String::new()
            }
        );
        for i in 0..3 {
            let content_type = String::from_utf8(py.recv()).unwrap();
            assert!(is_sealed(&content_type), "{content_type}");
            assert_eq!(content_type, SEALED_CONTENT_TYPE);
            let (soap, framing) = unseal_body_framed(&mut security, &py.recv()).unwrap();
            assert_eq!(framing, Framing::Windows);
            let expected = format!("<s:Envelope>pywinrm {i}</s:Envelope>").repeat(i * 50 + 1);
            assert_eq!(soap, expected.as_bytes());
            py.send(&seal_body_framed(
                &mut security,
                format!("<reply>{i}</reply>").as_bytes(),
                framing,
            ));
            assert_eq!(py.recv(), format!("<reply>{i}</reply>").as_bytes());
        }
    }

    /// Our client against pyspnego's NTLM acceptor, then sealing both ways.
    #[test]
    fn our_client_against_pyspnego_server() {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("ntlm-users");
        std::fs::write(&users, "CORP:alice:S3cret!\n").unwrap();
        let Some(mut py) = python::Peer::start(
            "server",
            "",
            "",
            &[("NTLM_USER_FILE", users.to_str().unwrap())],
        ) else {
            return;
        };
        let mut client = ClientContext::new("alice", "CORP", "S3cret!");
        py.send(&client.negotiate());
        let (authenticate, mut security) = client.authenticate(&py.recv(), None).unwrap();
        py.send(&authenticate);
        assert_eq!(py.recv(), b"complete");
        for i in 0..3 {
            let (sig, sealed) = security.seal(format!("request {i}").as_bytes());
            py.send(&[sig.as_slice(), &sealed].concat());
            assert_eq!(py.recv(), format!("request {i}").as_bytes());
            let wrapped = py.recv();
            assert_eq!(
                security.unseal(&wrapped[..16], &wrapped[16..]).unwrap(),
                format!("reply {i}").as_bytes()
            );
        }
    }
}
