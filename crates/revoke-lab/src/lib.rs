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
//! Modules: `accounts` (who may log on), `tls` (the lab CA and server
//! certificates), `server` (HTTP, authentication, sealing), `shell` (the
//! Windows Remote Shell resource), `envelope` (SOAP in and out), `faults`
//! (what a [`Fault`] changes on a server), `bigip` (a lab F5 BIG-IP's
//! iControl REST for APM sessions and an APM virtual server in front of the
//! client endpoints, see [`Lab::start_bigip`]), `frontend`
//! (the client endpoints).

mod accounts;
pub mod bigip;
pub mod directory;
mod envelope;
mod faults;
pub mod frontend;
pub mod iis;
mod server;
mod shell;
mod tls;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use serde::Deserialize;

pub use bigip::{BigIpConfig, LabBigIp, VirtualServerConfig};
pub use faults::{Fault, FaultSpec};
pub use frontend::{ENDPOINTS, Endpoint, FrontEndConfig};

/// The lab's administrator account (an administrator of every simulated server).
pub const LAB_DEFAULT_USER: &str = "revoke-admin";
/// Documented lab default; the lab never writes it into any file.
pub const LAB_DEFAULT_PASSWORD: &str = "Lab-Passw0rd!";

/// How a lab is laid out and how its servers behave.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// Number of servers, named EX01, EX02, ... (two digits minimum).
    pub servers: usize,
    pub listen: IpAddr,
    /// 0 = OS-chosen ports; else server i (0-based): HTTP = base+2i, HTTPS = base+2i+1.
    pub base_port: u16,
    pub admin_user: String,
    pub admin_password: String,
    pub netbios_domain: String,
    pub dns_domain: String,
    /// Added before every HTTP response (including 401s).
    pub latency: Duration,
    pub recycle_time: Duration,
    pub drain_time: Duration,
    pub iisreset_downtime: Duration,
    pub faults: Vec<FaultSpec>,
    /// The client front end and the directory it validates users against;
    /// None: no front end. Its port: OS-chosen, or base + 2*servers + i.
    pub front_end: Option<FrontEndConfig>,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig {
            servers: 8,
            listen: IpAddr::V4(Ipv4Addr::LOCALHOST),
            base_port: 0,
            admin_user: LAB_DEFAULT_USER.to_string(),
            admin_password: LAB_DEFAULT_PASSWORD.to_string(),
            netbios_domain: "LAB".to_string(),
            dns_domain: "lab.example.test".to_string(),
            latency: Duration::ZERO,
            recycle_time: Duration::from_millis(200),
            drain_time: Duration::from_secs(1),
            iisreset_downtime: Duration::from_secs(2),
            faults: Vec::new(),
            front_end: None,
        }
    }
}

/// The TOML form of [`LabConfig`]; every key optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabToml {
    servers: Option<usize>,
    listen: Option<IpAddr>,
    base_port: Option<u16>,
    admin_user: Option<String>,
    admin_password: Option<String>,
    netbios_domain: Option<String>,
    dns_domain: Option<String>,
    latency_ms: Option<u64>,
    recycle_ms: Option<u64>,
    drain_ms: Option<u64>,
    iisreset_ms: Option<u64>,
    #[serde(default)]
    fault: Vec<FaultSpec>,
    front_end: Option<FrontEndToml>,
}

/// `[front_end]` of the lab's TOML.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontEndToml {
    directory: Vec<String>,
    directory_ca_file: PathBuf,
    token_cache_s: Option<u64>,
    ping_heartbeat_ms: Option<u64>,
}

impl FrontEndToml {
    fn into_config(self) -> anyhow::Result<FrontEndConfig> {
        let path = &self.directory_ca_file;
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the directory CA {}", path.display()))?;
        let mut config = FrontEndConfig::new(self.directory, pem);
        if let Some(s) = self.token_cache_s {
            config.token_cache_ttl = Duration::from_secs(s);
        }
        if let Some(ms) = self.ping_heartbeat_ms {
            config.ping_heartbeat = Duration::from_millis(ms);
        }
        Ok(config)
    }
}

impl LabConfig {
    /// Reads a lab description (keys: servers, listen, base_port, admin_user,
    /// admin_password, latency_ms, recycle_ms, drain_ms, iisreset_ms, [[fault]],
    /// [front_end]).
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let t: LabToml = toml::from_str(text).context("invalid lab configuration")?;
        let d = LabConfig::default();
        let ms = Duration::from_millis;
        let config = LabConfig {
            servers: t.servers.unwrap_or(d.servers),
            listen: t.listen.unwrap_or(d.listen),
            base_port: t.base_port.unwrap_or(d.base_port),
            admin_user: t.admin_user.unwrap_or(d.admin_user),
            admin_password: t.admin_password.unwrap_or(d.admin_password),
            netbios_domain: t.netbios_domain.unwrap_or(d.netbios_domain),
            dns_domain: t.dns_domain.unwrap_or(d.dns_domain),
            latency: t.latency_ms.map(ms).unwrap_or(d.latency),
            recycle_time: t.recycle_ms.map(ms).unwrap_or(d.recycle_time),
            drain_time: t.drain_ms.map(ms).unwrap_or(d.drain_time),
            iisreset_downtime: t.iisreset_ms.map(ms).unwrap_or(d.iisreset_downtime),
            faults: t.fault,
            front_end: t.front_end.map(FrontEndToml::into_config).transpose()?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Catches what would otherwise fail later and less clearly.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.servers == 0 {
            bail!("a lab needs at least one server");
        }
        if self.base_port != 0 {
            let per_server = if self.front_end.is_some() { 3 } else { 2 };
            let last = u32::from(self.base_port) + per_server * self.servers as u32 - 1;
            if last > u32::from(u16::MAX) {
                bail!(
                    "base_port {} leaves no room for {} servers ({per_server} ports each)",
                    self.base_port,
                    self.servers
                );
            }
        }
        if let Some(front_end) = &self.front_end {
            front_end.validate()?;
        }
        if self.admin_user.is_empty() || self.admin_user.contains(['\\', '@', ':']) {
            bail!("admin_user must be a plain account name (no domain, no '@', no ':')");
        }
        let names: Vec<String> = (0..self.servers).map(server_name).collect();
        for spec in &self.faults {
            if !names.iter().any(|n| n.eq_ignore_ascii_case(&spec.server)) {
                bail!(
                    "fault for unknown server {:?} (the lab has {}..{})",
                    spec.server,
                    names[0],
                    names[names.len() - 1]
                );
            }
        }
        Ok(())
    }
}

/// The name of server `i` (0-based): EX01, EX02, ... EX100.
pub fn server_name(i: usize) -> String {
    format!("EX{:02}", i + 1)
}

/// Which listener and authentication a generated revoke.toml uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabTransport {
    /// Windows' default: HTTP, Negotiate (NTLM), sealed messages.
    Http,
    HttpsBasic,
    HttpsNegotiate,
}

impl LabTransport {
    pub const ALL: [LabTransport; 3] = [
        LabTransport::Http,
        LabTransport::HttpsBasic,
        LabTransport::HttpsNegotiate,
    ];

    /// As `revoke lab --transport` spells it.
    pub fn name(self) -> &'static str {
        match self {
            LabTransport::Http => "http",
            LabTransport::HttpsBasic => "https-basic",
            LabTransport::HttpsNegotiate => "https-negotiate",
        }
    }
}

/// One command a client ran on a server.
#[derive(Clone, Debug)]
pub struct LoggedCommand {
    pub at: SystemTime,
    /// The authenticated account, as `NETBIOS\user`.
    pub user: String,
    /// Program and arguments joined by spaces.
    pub command_line: String,
    /// None while the command runs (or if it was terminated).
    pub exit_code: Option<i32>,
}

/// The commands a server ran, in order. Cheap to clone; clones share entries.
#[derive(Clone, Default)]
pub struct CommandLog {
    entries: Arc<Mutex<Vec<LoggedCommand>>>,
}

impl CommandLog {
    pub fn entries(&self) -> Vec<LoggedCommand> {
        self.entries.lock().expect("command log poisoned").clone()
    }

    /// Records a started command; returns its index for [`CommandLog::finish`].
    pub(crate) fn start(&self, user: &str, command_line: String) -> usize {
        let mut entries = self.entries.lock().expect("command log poisoned");
        entries.push(LoggedCommand {
            at: SystemTime::now(),
            user: user.to_string(),
            command_line,
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

/// One simulated Exchange server.
pub struct LabServer {
    pub name: String,
    pub http_addr: SocketAddr,
    pub https_addr: SocketAddr,
    /// The client front end (HTTPS, lab CA), when the lab has one.
    pub front_end_addr: Option<SocketAddr>,
    pub iis: iis::IisSim,
    pub log: CommandLog,
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
    front_end: Option<FrontEndConfig>,
    runtime: server::Runtime,
}

impl Lab {
    /// Binds every listener and starts serving; returns once all accept.
    pub async fn start(config: LabConfig) -> anyhow::Result<Lab> {
        config.validate()?;
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
                faults,
                iis: iis.clone(),
                log: log.clone(),
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
            });
        }
        Ok(Lab {
            servers,
            ca_pem: ca.cert_pem().to_string(),
            ca,
            dns_domain: config.dns_domain.clone(),
            admin_logon: format!("{}\\{}", config.netbios_domain, config.admin_user),
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

    /// Text of a revoke.toml pointing at the lab. Never contains the password.
    pub fn revoke_toml(&self, transport: LabTransport, ca_file: Option<&Path>) -> String {
        let https = !matches!(transport, LabTransport::Http);
        let mut out = format!(
            "# Written by `revoke lab`: {} simulated Exchange servers on loopback.\nservers = [\n",
            self.servers.len()
        );
        for s in &self.servers {
            let addr = if https { s.https_addr } else { s.http_addr };
            out.push_str(&format!("  \"{addr}\",\n"));
        }
        out.push_str("]\n\n[winrm]\n");
        out.push_str(if https {
            "scheme = \"https\"\n"
        } else {
            "scheme = \"http\"\n"
        });
        out.push_str(if transport == LabTransport::HttpsBasic {
            "auth = \"basic\"\n"
        } else {
            "auth = \"negotiate\"\n"
        });
        out.push_str(&format!("user = {}\n", toml_string(&self.admin_logon)));
        if https && let Some(ca) = ca_file {
            out.push_str(&format!(
                "ca_file = {}\n",
                toml_string(&ca.display().to_string())
            ));
        }
        out
    }

    /// Writes `revoke.toml` and `lab-ca.pem` into `dir`; returns the revoke.toml path.
    pub fn write_config(&self, dir: &Path, transport: LabTransport) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let dir = std::path::absolute(dir)?;
        let ca_path = dir.join("lab-ca.pem");
        std::fs::write(&ca_path, &self.ca_pem)?;
        let toml_path = dir.join("revoke.toml");
        std::fs::write(&toml_path, self.revoke_toml(transport, Some(&ca_path)))?;
        Ok(toml_path)
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

/// A TOML basic string (quotes and backslashes escaped).
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_toml_reads_keys_and_faults() {
        let c = LabConfig::from_toml(
            r#"
servers = 3
latency_ms = 20
recycle_ms = 50
[[fault]]
server = "EX02"
kind = "refuse-connections"
[[fault]]
server = "EX03"
kind = "slow"
latency_ms = 500
[[fault]]
server = "EX03"
kind = "pool-stopped"
pool = "MSExchangeOWAAppPool"
"#,
        )
        .unwrap();
        assert_eq!(c.servers, 3);
        assert_eq!(c.latency, Duration::from_millis(20));
        assert_eq!(c.recycle_time, Duration::from_millis(50));
        assert_eq!(c.drain_time, Duration::from_secs(1));
        assert_eq!(c.faults.len(), 3);
        assert!(matches!(c.faults[0].fault, Fault::RefuseConnections));
        assert!(matches!(c.faults[1].fault, Fault::Slow { latency_ms: 500 }));
        assert!(
            matches!(&c.faults[2].fault, Fault::PoolStopped { pool } if pool == "MSExchangeOWAAppPool")
        );
    }

    #[test]
    fn from_toml_rejects_unknown_server_and_keys() {
        assert!(
            LabConfig::from_toml(
                "servers = 2\n[[fault]]\nserver = \"EX09\"\nkind = \"never-answer\"\n"
            )
            .is_err()
        );
        assert!(LabConfig::from_toml("srevers = 2\n").is_err());
        assert!(
            LabConfig::from_toml("[[fault]]\nserver = \"EX01\"\nkind = \"explode\"\n").is_err()
        );
    }

    #[test]
    fn from_toml_reads_the_front_end() {
        let dir = tempfile::TempDir::new().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, tls::LabCa::new().unwrap().cert_pem()).unwrap();
        let text = format!(
            "servers = 2\nbase_port = 20000\n[front_end]\ndirectory = [\"ldaps://dc1\", \"ldap://dc2\"]\n\
             directory_ca_file = {}\ntoken_cache_s = 60\nping_heartbeat_ms = 1500\n",
            toml_string(&ca.display().to_string())
        );
        let c = LabConfig::from_toml(&text).unwrap();
        let fe = c.front_end.expect("[front_end]");
        assert_eq!(fe.directory_urls, ["ldaps://dc1", "ldap://dc2"]);
        assert_eq!(fe.token_cache_ttl, Duration::from_secs(60));
        assert_eq!(fe.ping_heartbeat, Duration::from_millis(1500));
        assert!(LabConfig::from_toml("[front_end]\ndirectory = []\n").is_err());
        // Three ports per server with a front end.
        let text = text.replace("base_port = 20000", "base_port = 65531");
        assert!(LabConfig::from_toml(&text).is_err());
        assert!(LabConfig::default().front_end.is_none());
    }

    #[test]
    fn a_lab_can_move_between_tasks() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Lab>();
        send_sync::<LabServer>();
        send_sync::<CommandLog>();
    }

    #[test]
    fn names_have_two_digits_minimum() {
        assert_eq!(server_name(0), "EX01");
        assert_eq!(server_name(9), "EX10");
        assert_eq!(server_name(199), "EX200");
    }

    #[test]
    fn toml_strings_escape_backslashes() {
        assert_eq!(toml_string("LAB\\revoke-admin"), "\"LAB\\\\revoke-admin\"");
    }
}
