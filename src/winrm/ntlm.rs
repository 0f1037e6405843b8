//! NTLMv2 (MS-NLMP) for both ends of a WinRM connection: the client side used
//! by [`crate::winrm`], and the acceptor side used by the lab's WinRM server.
//! STUB: interface only; the implementation replaces this file.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NtlmError {
    #[error("malformed NTLM message: {0}")]
    Malformed(String),
    #[error("logon failure: unknown user name or bad password")]
    LogonFailure,
    #[error("message integrity check failed")]
    BadMic,
    #[error("channel binding mismatch")]
    ChannelBindings,
    #[error("sealed message rejected: {0}")]
    BadSignature(String),
}

/// NT one-way function (MD4 of the UTF-16LE password).
pub fn nt_hash(password: &str) -> [u8; 16] {
    let _ = password;
    todo!()
}

/// MD5 of the gss_channel_bindings_struct for `tls-server-end-point` (RFC 5929),
/// given the server certificate in DER.
pub fn channel_bindings_hash(server_cert_der: &[u8]) -> [u8; 16] {
    let _ = server_cert_der;
    todo!()
}

/// Which side of the connection a [`SessionSecurity`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// Signing and sealing state after authentication (one per connection).
pub struct SessionSecurity {
    _private: (),
}

impl SessionSecurity {
    /// Seal an outgoing message: returns (16-byte signature, encrypted message).
    pub fn seal(&mut self, message: &[u8]) -> ([u8; 16], Vec<u8>) {
        let _ = message;
        todo!()
    }
    /// Unseal an incoming message, checking its signature and sequence number.
    pub fn unseal(&mut self, signature: &[u8], sealed: &[u8]) -> Result<Vec<u8>, NtlmError> {
        let _ = (signature, sealed);
        todo!()
    }
}

/// Client side of the handshake.
pub struct ClientContext {
    _private: (),
}

impl ClientContext {
    /// `user` is a sAMAccountName or a UPN; `domain` may be empty.
    pub fn new(user: &str, domain: &str, password: &str) -> Self {
        let _ = (user, domain, password);
        todo!()
    }
    /// The NEGOTIATE message (type 1).
    pub fn negotiate(&mut self) -> Vec<u8> {
        todo!()
    }
    /// The AUTHENTICATE message (type 3) for the server's CHALLENGE (type 2),
    /// with the session security to seal messages on this connection.
    pub fn authenticate(
        &mut self,
        challenge: &[u8],
        channel_bindings: Option<[u8; 16]>,
    ) -> Result<(Vec<u8>, SessionSecurity), NtlmError> {
        let _ = (challenge, channel_bindings);
        todo!()
    }
}

/// Names the acceptor advertises in its CHALLENGE's target info.
#[derive(Debug, Clone)]
pub struct ServerIdentity {
    pub netbios_domain: String,
    pub netbios_computer: String,
    pub dns_domain: String,
    pub dns_computer: String,
}

/// Who authenticated, as the AUTHENTICATE message named them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser {
    pub user: String,
    pub domain: String,
}

/// Acceptor side of the handshake (one per connection).
pub struct ServerContext {
    _private: (),
}

impl ServerContext {
    pub fn new(identity: ServerIdentity) -> Self {
        let _ = identity;
        todo!()
    }
    /// Answer a NEGOTIATE with a CHALLENGE.
    pub fn challenge(&mut self, negotiate: &[u8]) -> Result<Vec<u8>, NtlmError> {
        let _ = negotiate;
        todo!()
    }
    /// Verify an AUTHENTICATE. `nt_hash_of` returns the NT hash of the named
    /// account if it exists. `expected_bindings` is checked only when the client
    /// sent channel bindings (Windows' CbtHardeningLevel=Relaxed).
    pub fn authenticate(
        &mut self,
        authenticate: &[u8],
        nt_hash_of: &dyn Fn(&str, &str) -> Option<[u8; 16]>,
        expected_bindings: Option<[u8; 16]>,
    ) -> Result<(AuthenticatedUser, SessionSecurity), NtlmError> {
        let _ = (authenticate, nt_hash_of, expected_bindings);
        todo!()
    }
}
