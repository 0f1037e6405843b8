//! NTLMv2 (MS-NLMP) for both ends of a WinRM connection: the client side used
//! by [`crate::WinrmClient`], and (with the `acceptor` feature) the acceptor
//! side used by the lab's WinRM server.
//!
//! Only NTLMv2 with extended session security is spoken, which is what every
//! supported Windows release negotiates. The three messages are raw NTLMSSP
//! tokens (no SPNEGO wrapping), as WinRM clients put them after `Negotiate `
//! or `NTLM ` in the HTTP `Authorization` header.
//!
//! After authentication both ends hold a [`SessionSecurity`] that seals and
//! unseals messages (MS-NLMP 3.4.3, with key exchange and 128-bit keys).
//!
//! Layers, none of which does I/O, each using only those before it:
//! `crypto` (MS-NLMP 3.3.2 and 3.4 primitives), `wire` (the message codec,
//! 2.2), `session` (signing and sealing, 3.4), `channel_binding` (RFC 5929
//! tls-server-end-point), then the two ends: `client` and `acceptor`.

#[cfg(feature = "acceptor")]
mod acceptor;
mod channel_binding;
mod client;
mod crypto;
mod session;
#[cfg(test)]
pub(crate) mod testing;
mod wire;

use thiserror::Error;

#[cfg(feature = "acceptor")]
pub use acceptor::{AuthenticatedUser, ServerContext, ServerIdentity};
pub use channel_binding::{
    certificate_hash, channel_bindings_hash, channel_bindings_hash_from_cert_hash,
};
pub use client::ClientContext;
pub use crypto::nt_hash;
pub use session::{SessionSecurity, Side};

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
    /// The server's CHALLENGE did not grant what sealing needs.
    #[error(
        "the server did not grant {0}, which sealing every message needs: refusing to send \
         commands over plain HTTP without it (check the server's NTLM security settings, or use HTTPS)"
    )]
    SealingNotGranted(String),
}

fn malformed(what: impl Into<String>) -> NtlmError {
    NtlmError::Malformed(what.into())
}
