//! `revoke`: close the window in which a disabled or reset account can still
//! read a mailbox through Exchange's cached logon tokens.
//!
//! The library is organised one concern per module; `main.rs` only wires them
//! into the pipeline parse → plan → run → report.
//!
//! - [`cli`]: the command line.
//! - [`config`]: `revoke.toml` plus flags, resolved into a [`plan::FlushPlan`].
//! - [`credentials`]: where the operator's password comes from (never argv).
//! - [`iis`]: the IIS commands an Exchange server understands, and their output.
//! - [`winrm`]: the WS-Management client (NTLM with message sealing, Basic over TLS).
//! - [`plan`]: what a run will do, server by server.
//! - [`exchange`]: the job on one server.
//! - [`f5`]: kills a user's F5 BIG-IP APM sessions over iControl REST.
//! - [`orchestrate`]: runs the plan concurrently and emits [`events::Event`]s.
//! - [`run`]: connects the core to its consumers, handles Ctrl-C.
//! - [`report`]: consumers of those events: progress display, table, JSON.
//! - [`lab`]: a simulated Exchange estate that speaks real WinRM (tests, demo).
//!   Production modules never depend on it.

pub mod cli;
pub mod config;
pub mod confirm;
pub mod credentials;
pub mod demo;
pub mod directory;
pub mod events;
pub mod exchange;
pub mod exit;
pub mod f5;
pub mod iis;
pub mod lab;
pub mod orchestrate;
pub mod plan;
pub mod report;
pub mod revocation;
pub mod run;
pub mod tls;
pub mod winrm;
