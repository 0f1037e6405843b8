//! A WS-Management (WinRM) client: run `cmd.exe` commands on Windows servers
//! over Windows' default listener (HTTP 5985, NTLM with every message sealed)
//! or over HTTPS (Basic or NTLM with channel bindings).
//!
//! The crate's `README.md` (next to its `Cargo.toml`) has a usage example,
//! the layers, the `acceptor` feature and the limits.
//!
//! Why not winrm-rs (which the tests use to prove the lab): its 1.1.2 release
//! (the last that builds on Rust 1.95) sends the first SOAP body of an NTLM
//! "sealed" session unencrypted, and Windows' default listener
//! (HTTP 5985, AllowUnencrypted=false) refuses exactly that. This client
//! authenticates with an empty body first, as pywinrm does, then seals every
//! message. It is kept in this one crate so that moving back to a fixed
//! winrm-rs is a local change.
//!
//! Layers, I/O-free first: [`ntlm`] (MS-NLMP messages and session keys),
//! [`sealing`] (MS-WSMV's encrypted MIME bodies), [`soap`] (the WS-Management
//! envelopes and their answers); then [`tls`] and the client, the only parts
//! that touch the network. The NTLM acceptor (the server side, for a
//! simulated WinRM server) is compiled only with the `acceptor` feature.

mod client;
mod error;
pub mod kerberos;
pub mod ntlm;
mod password;
pub mod sealing;
pub mod soap;
pub mod tls;

pub use client::{
    Auth, ClientSettings, CommandOutput, Connector, MAX_COMMAND_OUTPUT, MAX_RESPONSE_BODY,
    Mechanism, Scheme, Shell, WinrmClient, kerberos_principal,
};
pub use error::{WinrmError, sanitize};

pub use password::Password;
