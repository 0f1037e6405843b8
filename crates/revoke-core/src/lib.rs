//! The core of `revoke`: what a run does, with no terminal and no lab.
//!
//! - [`plan`]: what a flush will do, server by server.
//! - [`iis`]: the IIS commands an Exchange server understands, and their output.
//! - [`exchange`]: the job on one server (over [`revoke_winrm`]).
//! - [`orchestrate`]: every server's job at once: concurrency, waves, timeouts, retries.
//! - [`directory`]: Active Directory over LDAP: resolve, guard, change, the convergence gate, discovery.
//! - [`f5`]: F5 BIG-IP APM sessions over iControl REST.
//! - [`revocation`]: `disable` / `reset`: prepare (read-only), then execute (change → gate → flush + F5).
//! - [`events`]: what the core tells its consumers, as domain values.
//! - [`journal`]: the durable record of every run that changes something (JSON lines).
//! - [`retry`]: `revoke retry`: what an earlier run left open, without changing an account again.
//! - [`secrets`]: the passwords a run needs, apart from its plan.
//! - [`residual`]: what a `disable` / `reset` cannot close (Kerberos tickets, cached logons, certificates), and until when.
//! - [`doctor`]: `revoke doctor`'s checks: directory, servers, BIG-IPs, each with its fix.
//! - [`report`]: the consumer that builds the [`report::RunReport`] (the JSON document).

pub mod directory;
pub mod doctor;
pub mod events;
pub mod exchange;
pub mod f5;
pub mod iis;
pub mod journal;
pub mod orchestrate;
pub mod plan;
pub mod report;
pub mod residual;
pub mod retry;
pub mod revocation;
pub mod secrets;
pub mod timestamp;

pub use revoke_winrm::{Password, tls};
