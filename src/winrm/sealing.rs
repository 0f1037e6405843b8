//! MS-WSMV 2.2.9.1: a SOAP body sealed with the NTLM session, framed as
//! `multipart/encrypted; protocol="application/HTTP-SPNEGO-session-encrypted"`.
//! STUB: interface only; the implementation replaces this file.

use super::ntlm::{NtlmError, SessionSecurity};

/// The Content-Type header value of a sealed message.
pub const SEALED_CONTENT_TYPE: &str = "multipart/encrypted;protocol=\"application/HTTP-SPNEGO-session-encrypted\";boundary=\"Encrypted Boundary\"";

/// True when a Content-Type header says the body is sealed.
pub fn is_sealed(content_type: &str) -> bool {
    let _ = content_type;
    todo!()
}

/// Seal a SOAP envelope and frame it (the body to send with [`SEALED_CONTENT_TYPE`]).
pub fn seal_body(security: &mut SessionSecurity, soap: &[u8]) -> Vec<u8> {
    let _ = (security, soap);
    todo!()
}

/// Unframe and unseal a body; checks the declared original length.
pub fn unseal_body(security: &mut SessionSecurity, body: &[u8]) -> Result<Vec<u8>, NtlmError> {
    let _ = (security, body);
    todo!()
}
