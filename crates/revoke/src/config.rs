//! `revoke.toml` and the flags that override it, resolved into a [`FlushPlan`].
//! Every key is documented in docs/configuration.md.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::cli::{
    ChangeArgs, DirectoryArgs, DirectoryAuthKind, FlushOptions, RevocationArgs, WinrmArgs,
};
use crate::journal::JournalChoice;
use revoke_core::directory::change::Change;
use revoke_core::directory::connection::{DirectoryAuth, sasl};
use revoke_core::directory::convergence::DirectWrite;
use revoke_core::directory::{DirectoryError, DirectorySettings, Security};
use revoke_core::f5::{self, F5Device, F5Settings};
use revoke_core::iis::{ExchangeVersion, PoolName};
use revoke_core::plan::{FlushPlan, Method, PoolSelection, Target};
use revoke_core::residual::KerberosPolicy;
use revoke_core::revocation::RevocationPlan;
use revoke_winrm::{Auth, ClientSettings, Scheme};

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub servers: Vec<ServerEntry>,
    #[serde(default)]
    pub winrm: WinrmSection,
    #[serde(default)]
    pub flush: FlushSection,
    #[serde(default)]
    pub directory: DirectorySection,
    /// F5 BIG-IP APM devices whose sessions `disable` / `reset` kill.
    pub f5: Option<F5Section>,
    /// The domain's Kerberos policy, when it is not Windows' default: the
    /// report's `residual` times come from it.
    pub kerberos_policy: Option<KerberosPolicySection>,
    /// Rules for every change (`[policy] require_ticket`).
    #[serde(default)]
    pub policy: PolicySection,
    /// Where runs are journaled (docs/journal.md).
    #[serde(default)]
    pub journal: JournalSection,
    /// The Kerberos realm and KDC, when DNS and krb5.conf cannot find them.
    #[serde(default)]
    pub kerberos: KerberosSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KerberosSection {
    /// The realm (e.g. CORP.EXAMPLE.COM): revoke's own krb5.conf names it
    /// the default realm, and principals without a realm get it.
    pub realm: Option<String>,
    /// The KDC (`host` or `host:port`) of `realm` (usually a DC).
    pub kdc: Option<String>,
}

/// Where the user's own Kerberos configuration is, to be included by
/// revoke's: `$KRB5_CONFIG` (a colon-separated list) or `/etc/krb5.conf`.
fn existing_krb5_configs() -> Vec<PathBuf> {
    let listed = std::env::var_os("KRB5_CONFIG")
        .map(|v| std::env::split_paths(&v).collect::<Vec<_>>())
        .unwrap_or_else(|| vec![PathBuf::from("/etc/krb5.conf")]);
    listed.into_iter().filter(|p| p.is_file()).collect()
}

/// `[kerberos] realm` (and `kdc`) as a krb5.conf: revoke's settings first,
/// so they win, then the user's files, so other realms keep working.
pub fn krb5_conf(section: &KerberosSection, include: &[PathBuf]) -> Result<String, ConfigError> {
    let realm = section
        .realm
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let Some(realm) = realm else {
        return Err(invalid(
            "[kerberos] kdc needs realm: set realm = \"CORP.EXAMPLE.COM\" in [kerberos]",
        ));
    };
    let bad = |what: &str, value: &str| {
        value.is_empty()
            || value
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "{}=#;\"".contains(c))
            || value.contains(what)
    };
    let realm = realm.to_ascii_uppercase();
    if bad("/", &realm) {
        return Err(invalid(format!(
            "[kerberos] realm {realm:?} is not a realm name (e.g. CORP.EXAMPLE.COM)"
        )));
    }
    let domain = realm.to_ascii_lowercase();
    let mut text = format!(
        "# Written by revoke for this run ([kerberos] in its config file).\n\
         [libdefaults]\n    default_realm = {realm}\n    dns_lookup_realm = false\n    \
         dns_lookup_kdc = false\n    rdns = false\n\n[realms]\n    {realm} = {{\n"
    );
    if let Some(kdc) = section.kdc.as_deref().map(str::trim) {
        if bad("/", kdc) {
            return Err(invalid(format!(
                "[kerberos] kdc {kdc:?} is not a host or host:port"
            )));
        }
        text.push_str(&format!("        kdc = {kdc}\n"));
    }
    text.push_str(&format!(
        "    }}\n\n[domain_realm]\n    .{domain} = {realm}\n    {domain} = {realm}\n"
    ));
    for path in include {
        text.push_str(&format!("\ninclude {}\n", path.display()));
    }
    Ok(text)
}

/// A directory that holds revoke's krb5.conf for the run; removed on drop.
pub struct Krb5Dir(PathBuf);

impl Drop for Krb5Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// With `[kerberos]` in the config file: writes revoke's krb5.conf into a
/// private (0700) directory and points `KRB5_CONFIG` at it, so every
/// Kerberos call of the run (the LDAP bind, WinRM) finds the realm's KDC.
/// The environment changes, so call it before any thread starts (`main`).
/// A config file that cannot be read is left to the command to report.
pub fn kerberos_environment(config_flag: Option<&Path>) -> Result<Option<Krb5Dir>, ConfigError> {
    let Ok(Some((_, file))) = load(config_flag) else {
        return Ok(None);
    };
    let section = &file.kerberos;
    if section.realm.is_none() && section.kdc.is_none() {
        return Ok(None);
    }
    let text = krb5_conf(section, &existing_krb5_configs())?;
    let dir = std::env::temp_dir().join(format!(
        "revoke-krb5-{}-{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default()
    ));
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(&dir)
        .map_err(|e| invalid(format!("[kerberos]: cannot create {}: {e}", dir.display())))?;
    let guard = Krb5Dir(dir.clone());
    let path = dir.join("krb5.conf");
    std::fs::write(&path, text)
        .map_err(|e| invalid(format!("[kerberos]: cannot write {}: {e}", path.display())))?;
    // SAFETY: called from `main` before the runtime, the logger or anything
    // else starts a thread, so no other thread reads the environment.
    unsafe { std::env::set_var("KRB5_CONFIG", &path) };
    Ok(Some(guard))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalSection {
    /// The journal file [default: <state dir>/revoke/journal.jsonl].
    pub path: Option<PathBuf>,
}

/// `--no-journal`, else `--journal FILE`, else `[journal] path` (relative
/// to the config file), else the user's state directory.
pub fn journal_choice(
    flag: Option<&Path>,
    no_journal: bool,
    loaded: &Loaded,
) -> Result<JournalChoice, ConfigError> {
    if no_journal {
        return Ok(JournalChoice::Off);
    }
    flag.map(Path::to_path_buf)
        .or_else(|| {
            loaded
                .file
                .journal
                .path
                .as_ref()
                .map(|p| relative_to(&loaded.dir, p))
        })
        .or_else(crate::journal::default_path)
        .map(JournalChoice::At)
        .ok_or_else(|| {
            invalid(
                "no place for the journal: this system has no user state directory; give \
                 --journal FILE or set path in the [journal] section of the config file",
            )
        })
}

/// An `enable` run: the directory only, nothing is flushed (its flush plan
/// has no servers and is never run).
pub fn enable_plan(
    users: Vec<String>,
    change_args: &ChangeArgs,
    dry_run: bool,
    loaded: &Loaded,
) -> Result<RevocationPlan, ConfigError> {
    // `--ticket` / `--reason` / `[directory] stamp` as for disable and reset.
    let labels = labels(change_args, loaded)?;
    let directory = build_required_directory(
        &change_args.directory,
        loaded,
        "no directory to enable the account in",
    );
    let replication_timeout = match change_args.no_wait_replication {
        true => Ok(None),
        false => replication_timeout(change_args.replication_timeout, loaded).map(Some),
    };
    let direct_write = direct_write(change_args.direct_write, loaded);
    match (directory, replication_timeout, direct_write) {
        (Ok(directory), Ok(replication_timeout), Ok(direct_write)) => Ok(RevocationPlan {
            change: Change::Enable,
            users,
            directory,
            replication_timeout,
            direct_write,
            allow_privileged: change_args.allow_privileged,
            flush: FlushPlan {
                targets: Vec::new(),
                default_port: Scheme::Http.default_port(),
                method: Method::Recycle,
                pools: PoolSelection::ExchangeDefaults,
                parallel: 1,
                timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
                max_unavailable: 1,
                retries: 0,
                drain_timeout: Duration::from_secs(DEFAULT_DRAIN_TIMEOUT_SECS),
                dry_run,
                connection: ClientSettings {
                    scheme: Scheme::Http,
                    auth: Auth::Negotiate,
                    user: String::new(),
                    ca_file: None,
                    accept_invalid_certs: false,
                    connect_timeout: Duration::from_secs(DEFAULT_CONNECT_TIMEOUT_SECS),
                    operation_timeout: Duration::from_secs(DEFAULT_OPERATION_TIMEOUT_SECS),
                    allow_ntlm: true,
                    kerberos_realm: None,
                },
            },
            f5: None,
            ticket: labels.ticket,
            reason: labels.reason,
            stamp: labels.stamp,
            enable_guard: None,
        }),
        (directory, replication_timeout, direct_write) => Err(loaded.explain(all_of(
            [
                directory.err(),
                replication_timeout.err(),
                direct_write.err(),
            ]
            .into_iter()
            .flatten()
            .collect(),
        ))),
    }
}

/// The Default Domain Policy's Kerberos Policy, copied by the operator:
/// LDAP cannot read it (docs/windows-behaviour.md §8.10).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KerberosPolicySection {
    /// "Maximum lifetime for service ticket" (MaxServiceAge), minutes.
    pub max_service_ticket_minutes: Option<u64>,
    /// "Maximum lifetime for user ticket" (MaxTicketAge), hours.
    pub max_user_ticket_hours: Option<u64>,
    /// "Maximum lifetime for user ticket renewal" (MaxRenewAge), days.
    pub max_user_ticket_renewal_days: Option<u64>,
}

/// `[kerberos_policy]`, or Windows' defaults without it (the report says which).
pub fn kerberos_policy(loaded: &Loaded) -> Result<KerberosPolicy, ConfigError> {
    match &loaded.file.kerberos_policy {
        None => Ok(KerberosPolicy::default()),
        Some(section) => KerberosPolicy::configured(
            section.max_service_ticket_minutes,
            section.max_user_ticket_hours,
            section.max_user_ticket_renewal_days,
        )
        .map_err(invalid),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct F5Section {
    /// `"host"` or `"host:port"` (port 443 by default).
    #[serde(default)]
    pub devices: Vec<String>,
    pub user: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub accept_invalid_certs: Option<bool>,
    /// Seconds, per HTTP request.
    pub timeout: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySection {
    /// ldaps://HOST[:PORT], or ldap://HOST[:PORT] with starttls.
    pub url: Option<String>,
    pub starttls: Option<bool>,
    pub ca_file: Option<PathBuf>,
    pub bind_user: Option<String>,
    /// "simple" (a simple bind over TLS) or "kerberos" (SASL GSSAPI; on
    /// plain ldap:// every message is sealed) [default: simple].
    pub auth: Option<DirectoryAuthKind>,
    /// Plain LDAP, no TLS: the password crosses the network in clear text.
    pub insecure_plain_ldap: Option<bool>,
    /// Writable DCs to check after a change (host names) [default: from AD].
    pub domain_controllers: Option<Vec<String>>,
    /// The Global Catalog of a multi-domain forest: ldaps://HOST[:3269] or
    /// ldap://HOST[:3268] (StartTLS) [default: url's host on 3269 / 3268].
    pub global_catalog: Option<String>,
    /// Seconds to wait for every DC to have the change.
    pub replication_timeout: Option<u64>,
    /// "auto" or "never": may a lagging writable DC get the change written directly?
    pub direct_write: Option<String>,
    /// Seconds for connecting and for each LDAP operation.
    pub operation_timeout: Option<u64>,
    /// Append a line (what, when, who, ticket, reason) to each changed
    /// account's `info`, in the same modify as the change.
    pub stamp: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// A change without `--ticket` is refused before anything is contacted.
    pub require_ticket: Option<bool>,
}

/// What a change is labelled with: `--ticket`, `--reason`, and whether
/// `[directory] stamp` writes them into the account's `info`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    pub ticket: Option<String>,
    pub reason: Option<String>,
    pub stamp: bool,
}

/// The longest `--ticket` and `--reason`: they go into one line of the
/// account's `info`, which holds 1,024 characters in all.
const MAX_TICKET_CHARS: usize = 64;
const MAX_REASON_CHARS: usize = 256;

/// `--ticket` / `--reason` checked (one line of printable text each, not
/// too long), and `[policy] require_ticket` applied: checked offline, so a
/// missing ticket stops the run before a password is asked for.
pub fn labels(change_args: &ChangeArgs, loaded: &Loaded) -> Result<Labels, ConfigError> {
    let check = |flag: &str,
                 value: &Option<String>,
                 max: usize|
     -> Result<Option<String>, String> {
        let Some(value) = value else { return Ok(None) };
        let value = value.trim();
        if value.is_empty() {
            return Err(format!(
                "--{flag} is empty: give the text, or leave the flag out"
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(format!(
                "--{flag} holds a line break or another control character: it must be one line of text"
            ));
        }
        let length = value.chars().count();
        if length > max {
            return Err(format!(
                "--{flag} has {length} characters; at most {max} (it goes into one line of the account's info)"
            ));
        }
        Ok(Some(value.to_string()))
    };
    let ticket = check("ticket", &change_args.ticket, MAX_TICKET_CHARS);
    let reason = check("reason", &change_args.reason, MAX_REASON_CHARS);
    let required = loaded.file.policy.require_ticket.unwrap_or(false);
    let mut problems = Vec::new();
    match &ticket {
        Ok(None) if required => problems.push(invalid(
            "[policy] require_ticket = true: give the change request this run belongs to with              --ticket ID (e.g. --ticket INC123); nothing was contacted or changed",
        )),
        Err(e) => problems.push(invalid(e.clone())),
        _ => {}
    }
    if let Err(e) = &reason {
        problems.push(invalid(e.clone()));
    }
    if !problems.is_empty() {
        return Err(loaded.explain(all_of(problems)));
    }
    Ok(Labels {
        ticket: ticket.unwrap_or_default(),
        reason: reason.unwrap_or_default(),
        stamp: loaded.file.directory.stamp.unwrap_or(false),
    })
}

/// `"host"`, `"host:port"`, or `{ host = "...", port = 5985, version = "14.3" }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ServerEntry {
    Address(String),
    Detailed {
        host: String,
        port: Option<u16>,
        version: Option<String>,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WinrmSection {
    pub scheme: Option<Scheme>,
    pub port: Option<u16>,
    pub auth: Option<Auth>,
    /// May `negotiate` fall back to NTLM when no Kerberos ticket can be had
    /// [default: true].
    pub allow_ntlm: Option<bool>,
    pub user: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub accept_invalid_certs: Option<bool>,
    /// Seconds.
    pub connect_timeout: Option<u64>,
    /// Seconds a single Receive may wait for output (WS-Management OperationTimeout).
    pub operation_timeout: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlushSection {
    pub method: Option<Method>,
    pub pools: Option<Vec<String>>,
    pub parallel: Option<usize>,
    /// Seconds, per server.
    pub timeout: Option<u64>,
    pub max_unavailable: Option<usize>,
    pub retries: Option<u32>,
    /// Seconds to wait for the old worker processes to exit after a recycle.
    pub drain_timeout: Option<u64>,
}

/// `--parallel` when neither the flag nor the config sets it: every server at
/// once (a recycle takes no server down, docs/performance.md), up to this
/// documented upper bound of 1,024 servers at a time. iisreset still goes in
/// waves of `--max-unavailable`.
pub const DEFAULT_PARALLEL: usize = 1024;
pub const DEFAULT_TIMEOUT_SECS: u64 = 120;
pub const DEFAULT_RETRIES: u32 = 2;
/// IIS's default shutdownTimeLimit: an old worker drains at most this long.
pub const DEFAULT_DRAIN_TIMEOUT_SECS: u64 = 90;
pub const DEFAULT_REPLICATION_TIMEOUT_SECS: u64 = 60;
const DEFAULT_LDAP_TIMEOUT_SECS: u64 = 15;
const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;
const DEFAULT_OPERATION_TIMEOUT_SECS: u64 = 20;

/// Where the config file is: `--config`, else `$REVOKE_CONFIG`, else the
/// platform config directory. `required` is false only for the last one.
pub fn locate(flag: Option<&Path>) -> Option<(PathBuf, bool)> {
    if let Some(path) = flag {
        return Some((path.to_path_buf(), true));
    }
    if let Some(path) = std::env::var_os("REVOKE_CONFIG").filter(|p| !p.is_empty()) {
        return Some((PathBuf::from(path), true));
    }
    dirs::config_dir().map(|dir| (dir.join("revoke").join("revoke.toml"), false))
}

/// Read the config file, if there is one to read.
pub fn load(flag: Option<&Path>) -> Result<Option<(PathBuf, ConfigFile)>, ConfigError> {
    let Some((path, required)) = locate(flag) else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    let file = parse(&text).map_err(|message| ConfigError::Parse {
        path: path.clone(),
        message,
    })?;
    Ok(Some((path, file)))
}

pub fn parse(text: &str) -> Result<ConfigFile, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim().to_string())
}

/// Flags over file over defaults. No secret: the password is gathered once
/// the plan is known to be valid.
/// `targets` comes out empty only if `discoverable` (a directory is
/// configured): the caller then finds the servers in AD.
pub fn flush_plan(
    args: &FlushOptions,
    winrm_args: &WinrmArgs,
    loaded: &Loaded,
    discoverable: bool,
) -> Result<FlushPlan, ConfigError> {
    build_flush_plan(args, winrm_args, loaded, discoverable).map_err(|e| loaded.explain(e))
}

fn build_flush_plan(
    args: &FlushOptions,
    winrm_args: &WinrmArgs,
    loaded: &Loaded,
    discoverable: bool,
) -> Result<FlushPlan, ConfigError> {
    let (base_dir, file) = (&loaded.dir, &loaded.file);
    let winrm = &file.winrm;
    let scheme = winrm_args.scheme.or(winrm.scheme).unwrap_or(Scheme::Http);
    let default_port = winrm_args
        .port
        .or(winrm.port)
        .unwrap_or(scheme.default_port());

    let targets = match &args.servers {
        Some(list) => list
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| parse_address(s, default_port, None))
            .collect::<Result<Vec<_>, _>>()?,
        None => file
            .servers
            .iter()
            .map(|entry| match entry {
                ServerEntry::Address(a) => parse_address(a, default_port, None),
                ServerEntry::Detailed {
                    host,
                    port,
                    version,
                } => {
                    let version = version
                        .as_deref()
                        .map(|v| {
                            ExchangeVersion::parse(v).ok_or_else(|| {
                                invalid(format!(
                                    "server {host}: version {v:?} is not an Exchange version (e.g. \"15.1\" or \"14.3\")"
                                ))
                            })
                        })
                        .transpose()?;
                    let address = match port {
                        // An IPv6 host needs brackets, or its port reads as
                        // part of the address ("::1:5985" is an address).
                        Some(p) if host.contains(':') && !host.starts_with('[') => {
                            format!("[{host}]:{p}")
                        }
                        Some(p) => format!("{host}:{p}"),
                        None => host.clone(),
                    };
                    parse_address(&address, default_port, version)
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let no_targets = targets.is_empty() && !discoverable;
    let targets = dedupe(targets);

    let pools = if !args.pools.is_empty() {
        PoolSelection::Listed(parse_pools(&args.pools)?)
    } else if let Some(pools) = &file.flush.pools {
        PoolSelection::Listed(parse_pools(pools)?)
    } else {
        PoolSelection::ExchangeDefaults
    };

    let flush = &file.flush;
    let parallel = args.parallel.or(flush.parallel).unwrap_or(DEFAULT_PARALLEL);
    if parallel == 0 {
        return Err(invalid("--parallel must be at least 1"));
    }
    let timeout = args
        .timeout
        .or(flush.timeout)
        .unwrap_or(DEFAULT_TIMEOUT_SECS);
    if timeout == 0 {
        return Err(invalid("--timeout must be at least 1 second"));
    }
    let max_unavailable = args.max_unavailable.or(flush.max_unavailable).unwrap_or(1);
    if max_unavailable == 0 {
        return Err(invalid("--max-unavailable must be at least 1"));
    }

    let user = winrm_args
        .user
        .clone()
        .or_else(|| winrm.user.clone())
        .filter(|u| !u.trim().is_empty());
    // Both missing are said at once, not one per run.
    let user = match (no_targets, user) {
        (false, Some(user)) => user,
        (true, Some(_)) => return Err(no_servers()),
        (false, None) => return Err(no_winrm_user()),
        (true, None) => return Err(all_of(vec![no_servers(), no_winrm_user()])),
    };
    let ca_file = winrm_args
        .ca_file
        .clone()
        .or_else(|| winrm.ca_file.as_ref().map(|p| relative_to(base_dir, p)));
    let auth = winrm_args.auth.or(winrm.auth).unwrap_or(Auth::Negotiate);
    // A ticket in the cache stands in for the WinRM password (credentials.rs).
    crate::credentials::tickets_for_winrm(
        matches!(auth, Auth::Negotiate | Auth::Kerberos),
        auth == Auth::Kerberos,
    );
    let connection = ClientSettings {
        scheme,
        auth,
        user,
        ca_file,
        accept_invalid_certs: winrm.accept_invalid_certs.unwrap_or(false),
        connect_timeout: Duration::from_secs(
            winrm
                .connect_timeout
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT_SECS)
                .max(1),
        ),
        operation_timeout: Duration::from_secs(
            winrm
                .operation_timeout
                .unwrap_or(DEFAULT_OPERATION_TIMEOUT_SECS)
                .max(1),
        ),
        allow_ntlm: winrm.allow_ntlm.unwrap_or(true),
        kerberos_realm: kerberos_realm(loaded),
    };
    connection.validate().map_err(|e| {
        invalid(
            e.to_string()
                .trim_start_matches("invalid settings: ")
                .to_string(),
        )
    })?;
    // Kerberos-only cannot reach a server named by its address (its SPN is
    // HTTP/<DNS name>): say so now rather than fail every server later.
    if connection.auth == Auth::Kerberos
        && let Some(address) = targets
            .iter()
            .find(|t| t.host.parse::<std::net::IpAddr>().is_ok())
    {
        return Err(invalid(format!(
            "auth = \"kerberos\" needs the servers' DNS names (the service principal is \
             HTTP/<name>), but {} is an address: list the servers by name, or use \
             auth = \"negotiate\"",
            address.host
        )));
    }

    Ok(FlushPlan {
        targets,
        default_port,
        method: args.method.or(flush.method).unwrap_or(Method::Recycle),
        pools,
        parallel,
        timeout: Duration::from_secs(timeout),
        max_unavailable,
        retries: flush.retries.unwrap_or(DEFAULT_RETRIES),
        drain_timeout: Duration::from_secs(
            args.drain_timeout
                .or(flush.drain_timeout)
                .unwrap_or(DEFAULT_DRAIN_TIMEOUT_SECS),
        ),
        dry_run: args.dry_run,
        connection,
    })
}

/// A config file as loaded, or the empty one.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The file's directory: relative paths in it are relative to it.
    pub dir: Option<PathBuf>,
    pub file: ConfigFile,
    /// No file was given and none was found here: said with any settings error.
    pub looked_for: Option<PathBuf>,
}

impl Loaded {
    /// The config file `--config` names, else the default one if it exists.
    pub fn load(flag: Option<&Path>) -> Result<Self, ConfigError> {
        match load(flag)? {
            Some(found) => Ok(Self::from(Some(found))),
            None => Ok(Loaded {
                looked_for: locate(flag).map(|(path, _)| path),
                ..Loaded::default()
            }),
        }
    }

    /// A settings error, and where revoke looked for a config file if it
    /// found none (the likely reason a setting is missing).
    fn explain(&self, error: ConfigError) -> ConfigError {
        match (&self.looked_for, error) {
            (Some(path), ConfigError::Invalid(message)) => invalid(format!(
                "{message}\n(no config file was read: none at {}; give --config FILE or set REVOKE_CONFIG)",
                path.display()
            )),
            (_, error) => error,
        }
    }

    fn from(loaded: Option<(PathBuf, ConfigFile)>) -> Self {
        match loaded {
            Some((path, file)) => Loaded {
                dir: path.parent().map(Path::to_path_buf),
                file,
                looked_for: None,
            },
            None => Loaded::default(),
        }
    }
}

/// Relative to the config file, not to wherever revoke was started.
fn relative_to(base_dir: &Option<PathBuf>, path: &Path) -> PathBuf {
    match base_dir {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

/// The error for a run that has no server to flush and no way to find one.
fn no_winrm_user() -> ConfigError {
    invalid(
        "no WinRM user: give --user DOMAIN\\user or set user in the [winrm] section of the config file",
    )
}

/// Several problems in one error, so a run says everything that is missing.
fn all_of(problems: Vec<ConfigError>) -> ConfigError {
    match <[ConfigError; 1]>::try_from(problems) {
        Ok([one]) => one,
        Err(problems) => invalid(format!(
            "{} problems with the settings:\n  - {}",
            problems.len(),
            problems
                .iter()
                .map(|p| p.to_string().replace('\n', "\n    "))
                .collect::<Vec<_>>()
                .join("\n  - ")
        )),
    }
}

fn no_servers() -> ConfigError {
    invalid(
        "no servers to flush: give --servers HOST[,HOST...], list them in the config file \
         (servers = [\"ex01.corp.example.com\"]), or configure [directory] so revoke finds them in AD",
    )
}

/// The directory settings, which `why` needs: an error saying how to give them if none are configured.
pub fn required_directory(
    args: &DirectoryArgs,
    loaded: &Loaded,
    why: &str,
) -> Result<DirectorySettings, ConfigError> {
    build_required_directory(args, loaded, why).map_err(|e| loaded.explain(e))
}

fn build_required_directory(
    args: &DirectoryArgs,
    loaded: &Loaded,
    why: &str,
) -> Result<DirectorySettings, ConfigError> {
    directory_settings(args, loaded)?.ok_or_else(|| {
        invalid(format!(
            "{why}: give --directory ldaps://dc1.corp.example.com \
             or set url in the [directory] section of the config file"
        ))
    })
}

/// The directory settings, if a directory is configured (flag or file).
pub fn directory_settings(
    args: &DirectoryArgs,
    loaded: &Loaded,
) -> Result<Option<DirectorySettings>, ConfigError> {
    let section = &loaded.file.directory;
    let Some(url) = args.directory.clone().or_else(|| section.url.clone()) else {
        return Ok(None);
    };
    let starttls = args.starttls || section.starttls.unwrap_or(false);
    let kind = args
        .directory_auth
        .or(section.auth)
        .unwrap_or(DirectoryAuthKind::Simple);
    let kerberos = kind == DirectoryAuthKind::Kerberos;
    // Kerberos seals plain LDAP itself: no password crosses the network.
    let plain = section.insecure_plain_ldap.unwrap_or(false) || kerberos;
    let (host, port, security) =
        DirectorySettings::parse_url(&url, starttls, plain).map_err(|e| match e {
            DirectoryError::Settings(m) => invalid(m),
            other => invalid(other.to_string()),
        })?;
    let auth = match kind {
        DirectoryAuthKind::Simple => DirectoryAuth::Simple,
        DirectoryAuthKind::Kerberos => {
            let named = |e: DirectoryError| match e {
                DirectoryError::Settings(m) => invalid(format!("directory URL {url:?}: {m}")),
                other => invalid(other.to_string()),
            };
            sasl::require_dns_name(&host).map_err(named)?;
            if let Some(list) = &section.domain_controllers {
                for dc in list {
                    sasl::require_dns_name(dc.trim()).map_err(|e| match e {
                        DirectoryError::Settings(m) => {
                            invalid(format!("[directory] domain_controllers: {m}"))
                        }
                        other => invalid(other.to_string()),
                    })?;
                }
            }
            DirectoryAuth::Kerberos {
                realm: kerberos_realm(loaded),
            }
        }
    };
    crate::credentials::tickets_for_directory(kerberos);
    if kerberos && security == Security::Plain {
        tracing::debug!("directory: Kerberos over plain LDAP, every message sealed");
    }
    let bind_user = args
        .bind_user
        .clone()
        .or_else(|| section.bind_user.clone())
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| {
            invalid("no directory bind user: give --bind-user user@corp.example.com or set bind_user in [directory]")
        })?;
    let domain_controllers = match &section.domain_controllers {
        Some(list)
            if list
                .iter()
                .any(|h| h.trim().is_empty() || h.contains(['/', ' '])) =>
        {
            return Err(invalid(
                "[directory] domain_controllers must be host names, e.g. [\"dc1.corp.example.com\"]",
            ));
        }
        Some(list) if list.is_empty() => None,
        other => other.clone(),
    };
    Ok(Some(DirectorySettings {
        host,
        port,
        security,
        ca_file: args.directory_ca_file.clone().or_else(|| {
            section
                .ca_file
                .as_ref()
                .map(|p| relative_to(&loaded.dir, p))
        }),
        bind_user,
        domain_controllers,
        operation_timeout: Duration::from_secs(
            section
                .operation_timeout
                .unwrap_or(DEFAULT_LDAP_TIMEOUT_SECS)
                .max(1),
        ),
        global_catalog: section.global_catalog.clone(),
        auth,
    }))
}

/// `[kerberos] realm`, upper-cased as realms are written.
fn kerberos_realm(loaded: &Loaded) -> Option<String> {
    loaded
        .file
        .kerberos
        .realm
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_ascii_uppercase)
}

/// A `disable` / `reset` run: the directory is required; servers may be
/// left to discovery.
pub fn revocation_plan(
    change: Change,
    users: Vec<String>,
    args: &RevocationArgs,
    loaded: &Loaded,
) -> Result<RevocationPlan, ConfigError> {
    let change_args = &args.change;
    // A missing or malformed ticket first: it says nothing about the rest.
    let labels = labels(change_args, loaded)?;
    // Every part is checked, and every problem said at once.
    let directory = build_required_directory(
        &change_args.directory,
        loaded,
        "no directory to change the account in",
    );
    let replication_timeout = match change_args.no_wait_replication {
        true => Ok(None),
        false => replication_timeout(change_args.replication_timeout, loaded).map(Some),
    };
    let direct_write = direct_write(change_args.direct_write, loaded);
    let flush = build_flush_plan(&args.flush, &args.winrm, loaded, true);
    let f5 = f5_settings(loaded);
    match (directory, replication_timeout, direct_write, flush, f5) {
        (Ok(directory), Ok(replication_timeout), Ok(direct_write), Ok(flush), Ok(f5)) => {
            Ok(RevocationPlan {
                change,
                users,
                directory,
                replication_timeout,
                direct_write,
                allow_privileged: change_args.allow_privileged,
                flush,
                f5,
                ticket: labels.ticket,
                reason: labels.reason,
                stamp: labels.stamp,
                enable_guard: None,
            })
        }
        (directory, replication_timeout, direct_write, flush, f5) => Err(loaded.explain(all_of(
            [
                directory.err(),
                replication_timeout.err(),
                direct_write.err(),
                flush.err(),
                f5.err(),
            ]
            .into_iter()
            .flatten()
            .collect(),
        ))),
    }
}

/// The `[f5]` section, if there is one.
pub fn f5_settings(loaded: &Loaded) -> Result<Option<F5Settings>, ConfigError> {
    let Some(section) = &loaded.file.f5 else {
        return Ok(None);
    };
    let mut devices: Vec<F5Device> = Vec::new();
    for text in &section.devices {
        let target = parse_address(text, f5::DEFAULT_PORT, None)
            .map_err(|e| invalid(format!("[f5] devices: {e}")))?;
        let duplicate = devices
            .iter()
            .any(|d| d.host.eq_ignore_ascii_case(&target.host) && d.port == target.port);
        if !duplicate {
            devices.push(F5Device {
                host: target.host,
                port: target.port,
                label: target.label,
            });
        }
    }
    if devices.is_empty() {
        return Err(invalid(
            "[f5] lists no devices: devices = [\"bigip1.corp.example.com\"], or remove the section",
        ));
    }
    let user = section
        .user
        .clone()
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| invalid("no F5 user: set user in the [f5] section of the config file"))?;
    let timeout = section.timeout.unwrap_or(f5::DEFAULT_TIMEOUT_SECS);
    if timeout == 0 {
        return Err(invalid("[f5] timeout must be at least 1 second"));
    }
    Ok(Some(F5Settings {
        devices,
        user,
        ca_file: section
            .ca_file
            .as_ref()
            .map(|p| relative_to(&loaded.dir, p)),
        accept_invalid_certs: section.accept_invalid_certs.unwrap_or(false),
        timeout: Duration::from_secs(timeout),
    }))
}

/// `--direct-write` over `[directory] direct_write` over auto.
fn direct_write(flag: Option<DirectWrite>, loaded: &Loaded) -> Result<DirectWrite, ConfigError> {
    if let Some(policy) = flag {
        return Ok(policy);
    }
    match loaded.file.directory.direct_write.as_deref() {
        None => Ok(DirectWrite::default()),
        Some(text) => DirectWrite::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| {
                invalid(format!(
                    "[directory] direct_write = {text:?}: use \"auto\" or \"never\""
                ))
            }),
    }
}

/// `--replication-timeout` over `[directory] replication_timeout` over 60 s.
pub fn replication_timeout(flag: Option<u64>, loaded: &Loaded) -> Result<Duration, ConfigError> {
    let secs = flag
        .or(loaded.file.directory.replication_timeout)
        .unwrap_or(DEFAULT_REPLICATION_TIMEOUT_SECS);
    if secs == 0 {
        return Err(invalid(
            "--replication-timeout must be at least 1 second (use --no-wait-replication to skip the wait)",
        ));
    }
    Ok(Duration::from_secs(secs))
}

fn parse_pools(names: &[String]) -> Result<Vec<PoolName>, ConfigError> {
    let mut pools = Vec::new();
    for name in names {
        let pool = PoolName::parse(name).map_err(|e| invalid(format!("{e}; nothing was sent")))?;
        // IIS pool names are case-insensitive: one pool, however spelled.
        if !pools
            .iter()
            .any(|p: &PoolName| p.as_str().eq_ignore_ascii_case(pool.as_str()))
        {
            pools.push(pool);
        }
    }
    Ok(pools)
}

/// `host`, `host:port`, `[v6]:port` or a bare IPv6 address.
fn parse_address(
    text: &str,
    default_port: u16,
    version: Option<ExchangeVersion>,
) -> Result<Target, ConfigError> {
    let text = text.trim();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| invalid(format!("server {text:?}: missing ']'")))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(invalid(format!("server {text:?}: unexpected {after:?}"))),
        };
        (host.to_string(), port)
    } else if text.matches(':').count() > 1 {
        (text.to_string(), None)
    } else {
        match text.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (text.to_string(), None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
            invalid(format!(
                "server {text:?}: port {p:?} is not a number from 1 to 65535"
            ))
        })?,
        None => default_port,
    };
    let is_ip = host.parse::<std::net::IpAddr>().is_ok();
    let valid_name = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
        && !host.starts_with(['-', '.']);
    if !is_ip && !valid_name {
        return Err(invalid(format!(
            "server {text:?} is not a host name or IP address (letters, digits, '.', '-', '_')"
        )));
    }
    let label = if port == default_port {
        host.clone()
    } else if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(Target {
        host,
        port,
        version,
        label,
    })
}

/// The same server listed twice would be flushed twice at once.
fn dedupe(targets: Vec<Target>) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::with_capacity(targets.len());
    for target in targets {
        let duplicate = out
            .iter()
            .any(|t| t.host.eq_ignore_ascii_case(&target.host) && t.port == target.port);
        if duplicate {
            tracing::warn!(
                "server {} is listed more than once; flushing it once",
                target.label
            );
        } else {
            out.push(target);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_default_and_explicit_ports() {
        let t = parse_address("ex01.corp.example.com", 5985, None).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.label.as_str()),
            ("ex01.corp.example.com", 5985, "ex01.corp.example.com")
        );
        let t = parse_address("127.0.0.1:40001", 5985, None).unwrap();
        assert_eq!((t.port, t.label.as_str()), (40001, "127.0.0.1:40001"));
        let t = parse_address("[::1]:5986", 5985, None).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 5986));
        assert!(parse_address("ex01:0", 5985, None).is_err());
        assert!(parse_address("ex01:http", 5985, None).is_err());
        assert!(parse_address("ex 01", 5985, None).is_err());
        assert!(parse_address("ex01;rm", 5985, None).is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = parse("[winrm]\nschema = \"http\"\n").unwrap_err();
        assert!(err.contains("schema"), "{err}");
        let ok = parse(
            "servers = [\"a\", { host = \"b\", port = 5986, version = \"14.3\" }]\n[winrm]\nscheme = \"https\"\nauth = \"basic\"\n[flush]\nmethod = \"iisreset\"\n",
        )
        .unwrap();
        assert_eq!(ok.servers.len(), 2);
        assert_eq!(ok.flush.method, Some(Method::Iisreset));
    }

    #[test]
    fn example_config_parses_and_plans() {
        let file =
            parse(include_str!("../../../examples/revoke.toml")).expect("examples/revoke.toml");
        assert_eq!(file.servers.len(), 3);
        assert_eq!(file.winrm.user.as_deref(), Some("CORP\\svc-revoke"));
        let args = <crate::cli::Cli as clap::Parser>::try_parse_from(["revoke", "flush"]).unwrap();
        let crate::cli::Command::Flush(args) = args.command else {
            unreachable!()
        };
        let loaded = Loaded::from(Some((PathBuf::from("/etc/revoke/revoke.toml"), file)));
        let plan = flush_plan(&args.flush, &args.winrm, &loaded, false).unwrap();
        let directory = directory_settings(&DirectoryArgs::default(), &loaded)
            .unwrap()
            .expect("[directory] is configured");
        assert_eq!(
            (directory.host.as_str(), directory.port),
            ("dc1.corp.example.com", 636)
        );
        assert_eq!(directory.bind_user, "svc-revoke@corp.example.com");
        assert_eq!(
            replication_timeout(None, &loaded).unwrap(),
            Duration::from_secs(60)
        );
        assert_eq!(plan.targets[1].port, 5986);
        let f5 = f5_settings(&loaded).unwrap().expect("[f5] is configured");
        let devices: Vec<(&str, u16, &str)> = f5
            .devices
            .iter()
            .map(|d| (d.host.as_str(), d.port, d.label.as_str()))
            .collect();
        assert_eq!(
            devices,
            [
                ("bigip1.corp.example.com", 443, "bigip1.corp.example.com"),
                ("10.0.0.5", 8443, "10.0.0.5:8443")
            ]
        );
        assert_eq!(f5.user, "svc-revoke");
        assert_eq!(
            f5.ca_file.as_deref(),
            Some(Path::new("/etc/revoke/f5-ca.pem"))
        );
        assert!(!f5.accept_invalid_certs);
        assert_eq!(f5.timeout, Duration::from_secs(30));
        // Exchange 2010 gets DefaultAppPool as well.
        let legacy = plan.pools_for(&plan.targets[2]);
        assert!(legacy.iter().any(|p| p.as_str() == "DefaultAppPool"));
        assert!(
            !plan
                .pools_for(&plan.targets[0])
                .iter()
                .any(|p| p.as_str() == "DefaultAppPool")
        );
    }

    #[test]
    fn f5_section_is_checked() {
        let loaded = |text: &str| {
            Loaded::from(Some((
                PathBuf::from("/r/revoke.toml"),
                parse(text).unwrap(),
            )))
        };
        assert!(f5_settings(&Loaded::default()).unwrap().is_none());
        let err = f5_settings(&loaded("[f5]\nuser = \"a\"\n")).unwrap_err();
        assert!(err.to_string().contains("no devices"), "{err}");
        let err = f5_settings(&loaded("[f5]\ndevices = [\"b1\"]\n")).unwrap_err();
        assert!(err.to_string().contains("no F5 user"), "{err}");
        let err = f5_settings(&loaded("[f5]\ndevices = [\"b 1\"]\nuser = \"a\"\n")).unwrap_err();
        assert!(err.to_string().starts_with("[f5] devices"), "{err}");
        let err = f5_settings(&loaded(
            "[f5]\ndevices = [\"b1\"]\nuser = \"a\"\ntimeout = 0\n",
        ))
        .unwrap_err();
        assert!(err.to_string().contains("timeout"), "{err}");
        assert!(parse("[f5]\ndevice = [\"b1\"]\n").is_err());
        let f5 = f5_settings(&loaded(
            "[f5]\ndevices = [\"B1\", \"b1:443\", \"[::1]:8443\"]\nuser = \"a\"\nca_file = \"/abs/ca.pem\"\naccept_invalid_certs = true\ntimeout = 5\n",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(f5.devices.len(), 2, "{:?}", f5.devices);
        assert_eq!(f5.devices[1].label, "[::1]:8443");
        assert_eq!(f5.ca_file.as_deref(), Some(Path::new("/abs/ca.pem")));
        assert!(f5.accept_invalid_certs);
        assert_eq!(f5.timeout, Duration::from_secs(5));
    }

    #[test]
    fn kerberos_policy_is_the_default_unless_configured() {
        use revoke_core::residual::PolicySource;
        let loaded = |text: &str| {
            Loaded::from(Some((
                PathBuf::from("/r/revoke.toml"),
                parse(text).unwrap(),
            )))
        };
        let default = kerberos_policy(&Loaded::default()).unwrap();
        assert_eq!(default.source, PolicySource::Defaults);
        let p = kerberos_policy(&loaded(
            "[kerberos_policy]\nmax_service_ticket_minutes = 240\nmax_user_ticket_hours = 4\n",
        ))
        .unwrap();
        assert_eq!(p.source, PolicySource::Config);
        assert_eq!(p.max_service_ticket, Duration::from_secs(240 * 60));
        let err = kerberos_policy(&loaded(
            "[kerberos_policy]\nmax_service_ticket_minutes = 900\n",
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("max_service_ticket_minutes"),
            "{err}"
        );
        assert!(parse("[kerberos_policy]\nmax_service_ticket_hours = 10\n").is_err());
    }

    #[test]
    fn ipv6_host_with_a_port_keeps_both() {
        let file = parse(
            "servers = [{ host = \"::1\", port = 5985 }, { host = \"[fe80::1]\", port = 5986 }]\n\
             [winrm]\nuser = 'LAB\\x'\n",
        )
        .unwrap();
        let cli = <crate::cli::Cli as clap::Parser>::try_parse_from(["revoke", "flush"]).unwrap();
        let crate::cli::Command::Flush(args) = cli.command else {
            unreachable!()
        };
        let loaded = Loaded::from(Some((PathBuf::from("/r.toml"), file)));
        let plan = flush_plan(&args.flush, &args.winrm, &loaded, false).unwrap();
        let got: Vec<(&str, u16)> = plan
            .targets
            .iter()
            .map(|t| (t.host.as_str(), t.port))
            .collect();
        assert_eq!(got, [("::1", 5985), ("fe80::1", 5986)]);
    }

    #[test]
    fn duplicates_are_flushed_once() {
        let a = parse_address("EX01", 5985, None).unwrap();
        let b = parse_address("ex01", 5985, None).unwrap();
        let c = parse_address("ex01:5986", 5985, None).unwrap();
        assert_eq!(dedupe(vec![a, b, c]).len(), 2);
    }

    #[test]
    fn kerberos_section_writes_a_krb5_conf_that_wins_and_includes_the_users() {
        let section = KerberosSection {
            realm: Some("corp.example.com".into()),
            kdc: Some("dc1.corp.example.com:88".into()),
        };
        let text = krb5_conf(&section, &[PathBuf::from("/etc/krb5.conf")]).unwrap();
        assert!(text.contains("default_realm = CORP.EXAMPLE.COM"), "{text}");
        assert!(text.contains("dns_lookup_kdc = false"), "{text}");
        assert!(text.contains("kdc = dc1.corp.example.com:88"), "{text}");
        assert!(
            text.contains(".corp.example.com = CORP.EXAMPLE.COM"),
            "{text}"
        );
        // The user's file last: the first value of a relation wins in MIT's profile.
        assert!(
            text.trim_end().ends_with("include /etc/krb5.conf"),
            "{text}"
        );
        let no_realm = KerberosSection {
            realm: None,
            kdc: Some("dc1".into()),
        };
        assert!(
            krb5_conf(&no_realm, &[])
                .unwrap_err()
                .to_string()
                .contains("needs realm")
        );
        let injected = KerberosSection {
            realm: Some("CORP\n[realms]".into()),
            kdc: None,
        };
        assert!(krb5_conf(&injected, &[]).is_err());
    }

    #[test]
    fn directory_auth_kerberos_allows_plain_ldap_by_name_only() {
        let loaded = |text: &str| Loaded {
            file: parse(text).unwrap(),
            ..Loaded::default()
        };
        let args = DirectoryArgs::default();
        let ok = loaded(
            "[directory]\nurl = \"ldap://dc1.corp.example\"\nauth = \"kerberos\"\nbind_user = \"op@corp.example\"\n",
        );
        let settings = directory_settings(&args, &ok).unwrap().unwrap();
        assert_eq!(settings.security, Security::Plain);
        assert_eq!(settings.auth, DirectoryAuth::Kerberos { realm: None });
        let ip = loaded(
            "[directory]\nurl = \"ldap://10.0.0.1\"\nauth = \"kerberos\"\nbind_user = \"op@corp.example\"\n",
        );
        let error = directory_settings(&args, &ip).unwrap_err().to_string();
        assert!(
            error.contains("Kerberos needs the DC's DNS name"),
            "{error}"
        );
        // Simple binds still refuse plain LDAP.
        let simple = loaded(
            "[directory]\nurl = \"ldap://dc1.corp.example\"\nbind_user = \"op@corp.example\"\n",
        );
        assert!(directory_settings(&args, &simple).is_err());
        assert!(
            parse("[directory]\nauth = \"ntlm\"\n")
                .unwrap_err()
                .contains("simple")
        );
    }
}
