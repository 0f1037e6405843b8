//! How a lab is configured: [`LabConfig`] (servers, addresses, accounts,
//! timings, faults, the front end), its TOML form and its checks, and the
//! lab's defaults.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::{FaultSpec, FrontEndConfig};

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
    /// Accept Kerberos with the keys in this keytab (of `HTTP/exNN.<dns_domain>`).
    pub keytab: Option<std::path::PathBuf>,
    /// Accept NTLM (false: a hardened estate that allows Kerberos only).
    pub allow_ntlm: bool,
    /// The written revoke.toml names servers `exNN.<dns_domain>:PORT`
    /// (names resolve to the listen address through /etc/hosts) instead of
    /// by address: Kerberos needs names.
    pub named_servers: bool,
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
            keytab: None,
            allow_ntlm: true,
            named_servers: false,
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
    /// What the servers accept: "kerberos", "ntlm" (default: ntlm, plus
    /// kerberos when a keytab is given).
    auth: Option<Vec<LabAuth>>,
    /// Keys of `HTTP/exNN.<host_suffix>` (e.g. from `samba-tool domain exportkeytab`).
    keytab: Option<PathBuf>,
    /// Servers are `exNN.<host_suffix>` in the written revoke.toml (and this
    /// is the lab's DNS domain).
    host_suffix: Option<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum LabAuth {
    Kerberos,
    Ntlm,
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
            allow_ntlm: t.auth.as_ref().is_none_or(|a| a.contains(&LabAuth::Ntlm)),
            named_servers: t.host_suffix.is_some(),
            keytab: t.keytab,
        };
        let mut config = config;
        if let Some(suffix) = t.host_suffix {
            config.dns_domain = suffix;
        }
        if t.auth.is_some_and(|a| a.contains(&LabAuth::Kerberos)) && config.keytab.is_none() {
            bail!("auth includes \"kerberos\": give the servers' keys with keytab = \"FILE\"");
        }
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
        if !self.allow_ntlm && self.keytab.is_none() {
            bail!("a lab that refuses NTLM needs a keytab to accept Kerberos");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revoke_toml::toml_string;
    use crate::{Fault, tls};

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
    fn names_have_two_digits_minimum() {
        assert_eq!(server_name(0), "EX01");
        assert_eq!(server_name(9), "EX10");
        assert_eq!(server_name(199), "EX200");
    }
}
