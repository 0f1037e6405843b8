//! The IIS commands an Exchange server understands (DOMAIN-NOTES §5), built
//! from validated input only, and the parsers for what they print.
//! STUB: interface only; the implementation replaces this file.

use thiserror::Error;

/// appcmd is not on PATH on Windows: always call it by its full path.
pub const APPCMD: &str = r"%windir%\system32\inetsrv\appcmd.exe";

/// The Exchange HTTP application pools whose workers cache logon tokens.
pub const EXCHANGE_POOLS: [&str; 5] = [
    "MSExchangeSyncAppPool",
    "MSExchangeServicesAppPool",
    "MSExchangeOWAAppPool",
    "MSExchangeRPCProxyFrontEndAppPool",
    "MSExchangeMAPIFrontEndAppPool",
];

/// Also serves Exchange clients on Exchange 2010 and 2007.
pub const LEGACY_POOL: &str = "DefaultAppPool";

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid application pool name {name:?}: {reason}")]
pub struct InvalidPoolName {
    pub name: String,
    pub reason: String,
}

/// An application pool name that is safe to put on a command line:
/// letters, digits, space, `.`, `_`, `-`; 1..=64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct PoolName(String);

impl PoolName {
    pub fn parse(name: &str) -> Result<Self, InvalidPoolName> {
        let _ = name;
        todo!()
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PoolName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Exchange version as read from AD (`serialNumber`) or the config, e.g. 15.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExchangeVersion {
    pub major: u32,
    pub minor: u32,
}

impl ExchangeVersion {
    /// Parses "15.1", "14.3" or AD's "Version 15.1 (Build 30225.42)".
    pub fn parse(text: &str) -> Option<Self> {
        let _ = text;
        todo!()
    }
    /// Exchange 2010 (14.x) and 2007 (8.x) also serve clients from DefaultAppPool.
    pub fn uses_default_app_pool(&self) -> bool {
        todo!()
    }
}

/// The default pools for a server of this version (unknown version: modern list).
pub fn default_pools(version: Option<ExchangeVersion>) -> Vec<PoolName> {
    let _ = version;
    todo!()
}

/// A remote command: what is sent as WinRM Command + Arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCommand {
    pub program: String,
    pub args: Vec<String>,
    /// Changes state on the server (recycle, iisreset): never sent in a dry run,
    /// never repeated blindly.
    pub mutating: bool,
}

impl RemoteCommand {
    /// The command line as cmd.exe sees it (program and arguments joined by spaces).
    pub fn command_line(&self) -> String {
        todo!()
    }
}

pub fn hostname() -> RemoteCommand {
    todo!()
}
pub fn list_apppools() -> RemoteCommand {
    todo!()
}
pub fn list_workers() -> RemoteCommand {
    todo!()
}
/// `appcmd recycle apppool /apppool.name:"NAME"`
pub fn recycle(pool: &PoolName) -> RemoteCommand {
    let _ = pool;
    todo!()
}
/// `iisreset /noforce`
pub fn iisreset() -> RemoteCommand {
    todo!()
}
/// `iisreset /status`
pub fn iisreset_status() -> RemoteCommand {
    todo!()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolState {
    Started,
    Stopped,
    Starting,
    Stopping,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPool {
    pub name: String,
    pub state: PoolState,
}

/// Parse `appcmd list apppool` output: `APPPOOL "NAME" (MgdVersion:..,MgdMode:..,state:Started)`.
pub fn parse_apppools(stdout: &str) -> Vec<AppPool> {
    let _ = stdout;
    todo!()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerProcess {
    pub pid: u32,
    pub pool: String,
}

/// Parse `appcmd list wp` output: `WP "PID" (applicationPool:NAME)`.
pub fn parse_workers(stdout: &str) -> Vec<WorkerProcess> {
    let _ = stdout;
    todo!()
}

/// The PIDs of one pool's workers, sorted.
pub fn pids_of(workers: &[WorkerProcess], pool: &str) -> Vec<u32> {
    let _ = (workers, pool);
    todo!()
}

/// The message appcmd printed when a command failed: the text inside
/// `ERROR ( message:... )` if present, else the trimmed stderr/stdout.
pub fn error_message(stdout: &str, stderr: &str) -> String {
    let _ = (stdout, stderr);
    todo!()
}

/// True when `iisreset /status` reports every listed service as Running.
pub fn iis_running(status_stdout: &str) -> bool {
    let _ = status_stdout;
    todo!()
}
