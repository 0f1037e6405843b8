//! The WS-Management client `revoke` uses to run commands on Exchange servers.
//!
//! Why not winrm-rs (which the tests use to prove the lab): its 1.1.2 release
//! (the last that builds on Rust 1.95) sends the first SOAP body of an NTLM
//! "sealed" session unencrypted, and Windows' default listener
//! (HTTP 5985, AllowUnencrypted=false) refuses exactly that. This client
//! authenticates with an empty body first, as pywinrm does, then seals every
//! message. It is kept behind this one module so that moving back to a fixed
//! winrm-rs is a local change.

mod client;
mod error;
pub mod ntlm;
pub mod sealing;
pub mod soap;
mod tls;

pub use client::{Auth, ClientSettings, CommandOutput, Connector, Scheme, Shell, WinrmClient};
pub use error::WinrmError;

/// A password that never prints itself.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn new(value: String) -> Self {
        Self(value)
    }
    /// The clear text, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}
