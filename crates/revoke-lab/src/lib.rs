//! The lab: a simulated Exchange estate that speaks real WinRM on loopback.

//!
//! Each simulated server is a WS-Management endpoint configured like a
//! Windows default listener (docs/windows-behaviour.md §4.2): HTTP with Negotiate only and
//! sealed messages, plus an HTTPS listener that also takes Basic. Behind the
//! shell resource sits [`iis::IisSim`], so what a client runs there answers
//! like appcmd/iisreset on an Exchange server.
//!
//! With a directory configured ([`LabConfig::front_end`]), each server also
//! serves Exchange's client endpoints (EWS, ActiveSync, OWA, MAPI, RPC) with
//! IIS's logon-token cache, which is where the stale-token bug lives.
//!
//! Modules: `config` (a lab's [`LabConfig`] and its TOML), `revoke_toml`
//! (the revoke.toml a lab writes for its client), `accounts` (who may log
//! on), `tls` (the lab CA and server certificates), `server` (the WinRM
//! listeners: HTTP, authentication, sealing), `shell` (the Windows Remote
//! Shell resource), `envelope` (SOAP in and out), `iis` (the simulated IIS
//! and the commands it answers), `faults` (what a [`Fault`] changes on a
//! server), `bigip` (a lab F5 BIG-IP's iControl REST for APM sessions and an
//! APM virtual server in front of the client endpoints, see
//! [`Lab::start_bigip`]), `frontend` (the client endpoints), `directory`
//! (the embedded AD-like directory).

mod accounts;
pub mod bigip;
mod config;
pub mod directory;
mod envelope;
mod faults;
pub mod frontend;
pub mod iis;
mod revoke_toml;
mod server;
mod shell;
mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};

pub use bigip::{BigIpConfig, LabBigIp, VirtualServerConfig};
pub use config::{LAB_DEFAULT_PASSWORD, LAB_DEFAULT_USER, LabConfig, server_name};
pub use faults::{Fault, FaultSpec};
pub use frontend::{ENDPOINTS, Endpoint, FrontEndConfig};
pub use revoke_toml::{EstateToml, LabTransport};

/// One program a client's command line started on a server (cmd.exe's own
/// `echo` and `call` start none), like a process-creation audit entry.
#[derive(Clone, Debug)]
pub struct LoggedCommand {
    pub at: SystemTime,
    /// The authenticated account, as `NETBIOS\user`.
    pub user: String,
    /// The program's command as the client's line spelled it, before
    /// `%VAR%` expansion: for a WinRM Command of one program, program and
    /// arguments joined by spaces; for a line of several commands joined by
    /// `&`, the part that started this program.
    pub command_line: String,
    /// Which WinRM Command (command line) of this server started it: 0 for
    /// the first one the server received, then 1, 2, ...
    pub shell_command: usize,
    /// None while the program runs (or if it was terminated).
    pub exit_code: Option<i32>,
}

/// The programs a server ran, in order. Cheap to clone; clones share entries.
#[derive(Clone, Default)]
pub struct CommandLog {
    entries: Arc<Mutex<Vec<LoggedCommand>>>,
    shell_commands: Arc<AtomicUsize>,
}

impl CommandLog {
    pub fn entries(&self) -> Vec<LoggedCommand> {
        self.entries.lock().expect("command log poisoned").clone()
    }

    /// A number for a new WinRM Command, in the order they arrive.
    pub(crate) fn next_shell_command(&self) -> usize {
        self.shell_commands.fetch_add(1, Ordering::Relaxed)
    }

    /// Records a started program; returns its index for [`CommandLog::finish`].
    pub(crate) fn start(&self, user: &str, shell_command: usize, command_line: String) -> usize {
        let mut entries = self.entries.lock().expect("command log poisoned");
        entries.push(LoggedCommand {
            at: SystemTime::now(),
            user: user.to_string(),
            command_line,
            shell_command,
            exit_code: None,
        });
        entries.len() - 1
    }

    pub(crate) fn finish(&self, index: usize, exit_code: i32) {
        if let Some(e) = self
            .entries
            .lock()
            .expect("command log poisoned")
            .get_mut(index)
        {
            e.exit_code = Some(exit_code);
        }
    }
}

/// One HTTP request a server's WinRM listeners received: every POST to
/// `/wsman`, the NTLM handshake's empty-bodied legs included.
#[derive(Clone, Debug)]
pub struct LoggedRequest {
    pub at: SystemTime,
    /// What the `Authorization` header carried: `"Negotiate NEGOTIATE"`,
    /// `"Negotiate AUTHENTICATE"` (or `NTLM ...`), `"Basic"`, or nothing (a
    /// request on an already authenticated connection).
    pub authorization: Option<String>,
    /// The WS-Management action answered, last path segment (`"Create"`,
    /// `"Command"`, `"Receive"`, `"Signal"`, `"Delete"`); None for a request
    /// that carried no SOAP (a handshake leg, a refusal).
    pub action: Option<String>,
    pub status: u16,
}

/// The HTTP requests a server received, in order. Cheap to clone; clones
/// share entries.
#[derive(Clone, Default)]
pub struct RequestLog {
    entries: Arc<Mutex<Vec<LoggedRequest>>>,
}

impl RequestLog {
    pub fn entries(&self) -> Vec<LoggedRequest> {
        self.entries.lock().expect("request log poisoned").clone()
    }

    /// How many requests were received (each one is a round trip).
    pub fn len(&self) -> usize {
        self.entries.lock().expect("request log poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn record(&self, request: LoggedRequest) {
        self.entries
            .lock()
            .expect("request log poisoned")
            .push(request);
    }
}

/// One simulated Exchange server.
pub struct LabServer {
    pub name: String,
    pub http_addr: SocketAddr,
    pub https_addr: SocketAddr,
    /// The client front end (HTTPS, lab CA), when the lab has one.
    pub front_end_addr: Option<SocketAddr>,
    pub iis: iis::IisSim,
    /// The programs clients ran.
    pub log: CommandLog,
    /// The HTTP requests clients sent (round trips).
    pub requests: RequestLog,
}

impl LabServer {
    /// `https://ADDR/PATH` of one client endpoint, when the lab has a front end.
    pub fn front_end_url(&self, endpoint: &Endpoint) -> Option<String> {
        self.front_end_addr
            .map(|a| format!("{}{}", frontend::base_url(a), endpoint.path))
    }
}

/// A running lab. Dropping it without [`Lab::shutdown`] also stops the
/// listeners (their tasks end when the shutdown signal's sender is dropped).
pub struct Lab {
    servers: Vec<LabServer>,
    ca: tls::LabCa,
    dns_domain: String,
    ca_pem: String,
    /// `NETBIOS\user`, as the generated revoke.toml names the admin.
    admin_logon: String,
    /// revoke.toml names servers instead of giving addresses.
    named_servers: bool,
    /// The servers refuse NTLM: revoke.toml says `auth = "kerberos"`.
    kerberos_only: bool,
    front_end: Option<FrontEndConfig>,
    runtime: server::Runtime,
}

impl Lab {
    /// Binds every listener and starts serving; returns once all accept.
    pub async fn start(config: LabConfig) -> anyhow::Result<Lab> {
        config.validate()?;
        if let Some(keytab) = &config.keytab {
            // Process-wide in MIT krb5: every lab of this process uses it.
            revoke_gss::use_keytab(keytab)
                .with_context(|| format!("using the keytab {}", keytab.display()))?;
        }
        let ca = tls::LabCa::new().context("creating the lab CA")?;
        let mut runtime = server::Runtime::new();
        let mut servers = Vec::with_capacity(config.servers);
        for i in 0..config.servers {
            let name = server_name(i);
            let faults = faults::ServerFaults::for_server(&name, &config.faults);
            let mut iis_config = iis::IisSimConfig::exchange(&name);
            iis_config.recycle_time = config.recycle_time;
            iis_config.drain_time = config.drain_time;
            iis_config.iisreset_downtime = config.iisreset_downtime;
            // Front-end requests are what keep a recycled worker busy.
            iis_config.exit_when_idle = config.front_end.is_some();
            faults.apply_to_iis(&mut iis_config);
            let iis = iis::IisSim::new(iis_config);
            let log = CommandLog::default();
            let requests = RequestLog::default();
            let (http_port, https_port) = if config.base_port == 0 {
                (0, 0)
            } else {
                let base = config.base_port + 2 * i as u16;
                (base, base + 1)
            };
            let cert = ca
                .issue_server(&name, &config.dns_domain, config.listen)
                .with_context(|| format!("issuing the certificate of {name}"))?;
            let front_end_tls = cert.server_config()?;
            let refuse = faults.refuse_connections;
            let never_answer = faults.never_answer;
            let latency = config.latency + faults.extra_latency;
            let spec = server::ServerSpec {
                name: name.clone(),
                accounts: accounts::Accounts::new(&config, &name),
                latency: config.latency,
                kerberos: config.keytab.is_some(),
                ntlm: config.allow_ntlm,
                faults,
                iis: iis.clone(),
                log: log.clone(),
                requests: requests.clone(),
            };
            let (http_addr, https_addr) = runtime
                .start_server(
                    spec,
                    SocketAddr::new(config.listen, http_port),
                    SocketAddr::new(config.listen, https_port),
                    cert,
                )
                .await
                .with_context(|| format!("starting {name}"))?;
            let front_end_addr = match &config.front_end {
                None => None,
                Some(fe) => {
                    let port = if config.base_port == 0 {
                        0
                    } else {
                        config.base_port + 2 * config.servers as u16 + i as u16
                    };
                    let addr = SocketAddr::new(config.listen, port);
                    let spec = frontend::FrontEndSpec {
                        name: name.clone(),
                        index: i,
                        fqdn: format!("{}.{}", name.to_lowercase(), config.dns_domain),
                        iis: iis.clone(),
                        latency,
                    };
                    let front_end = frontend::build(spec, fe)?;
                    Some(if refuse {
                        runtime.reserve(addr)?
                    } else {
                        start_front_end(&mut runtime, addr, front_end_tls, front_end, never_answer)
                            .await
                            .with_context(|| format!("starting the front end of {name}"))?
                    })
                }
            };
            servers.push(LabServer {
                name,
                http_addr,
                https_addr,
                front_end_addr,
                iis,
                log,
                requests,
            });
        }
        Ok(Lab {
            servers,
            ca_pem: ca.cert_pem().to_string(),
            ca,
            dns_domain: config.dns_domain.clone(),
            admin_logon: format!("{}\\{}", config.netbios_domain, config.admin_user),
            named_servers: config.named_servers,
            kerberos_only: !config.allow_ntlm,
            front_end: config.front_end.clone(),
            runtime,
        })
    }

    pub fn servers(&self) -> &[LabServer] {
        &self.servers
    }

    /// Case-insensitive, like a Windows host name.
    pub fn server(&self, name: &str) -> Option<&LabServer> {
        self.servers
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }

    /// The front end's settings, if the lab serves one.
    pub fn config_front_end(&self) -> Option<&FrontEndConfig> {
        self.front_end.as_ref()
    }

    /// A lab BIG-IP (APM sessions over iControl REST) on its own port, its
    /// certificate from this lab's CA. With a virtual server whose pool is
    /// empty, the pool is every server's front end. It runs until dropped.
    pub async fn start_bigip(&self, mut config: BigIpConfig) -> anyhow::Result<LabBigIp> {
        if let Some(vs) = config.virtual_server.as_mut()
            && vs.pool.is_empty()
        {
            vs.pool = self
                .servers
                .iter()
                .filter_map(|s| s.front_end_addr)
                .collect();
            if vs.pool.is_empty() {
                bail!("an APM virtual server needs the lab's front end ([front_end])");
            }
        }
        LabBigIp::start(config, &self.ca, &self.dns_domain).await
    }

    /// PEM of the lab CA that signed every server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Stops listening and drops every connection.
    pub async fn shutdown(self) {
        self.runtime.shutdown().await;
    }
}

/// Binds a server's front-end listener and serves TLS on it.
async fn start_front_end(
    runtime: &mut server::Runtime,
    addr: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    front_end: Arc<frontend::FrontEnd>,
    never_answer: bool,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    runtime.spawn_listener(listener, never_answer, move |stream, _| {
        let acceptor = acceptor.clone();
        let front_end = front_end.clone();
        async move {
            if let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(30), acceptor.accept(stream)).await
            {
                front_end.serve_connection(tls).await;
            }
        }
    });
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lab_can_move_between_tasks() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Lab>();
        send_sync::<LabServer>();
        send_sync::<CommandLog>();
        send_sync::<RequestLog>();
    }
}
