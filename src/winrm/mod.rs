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

pub use client::{Auth, ClientSettings, CommandOutput, Connector, Scheme, Shell, WinrmClient};
pub use error::WinrmError;

pub use crate::credentials::Password;
