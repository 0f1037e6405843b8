//! What a run will do: the servers, how to reach them, and what to run on each.

use std::time::Duration;

use crate::iis::{self, ExchangeVersion, PoolName};
use revoke_winrm::ClientSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Recycle the listed application pools (overlapped: no outage).
    Recycle,
    /// `iisreset /noforce`: every site on the server is down for a few seconds.
    Iisreset,
}

impl Method {
    pub const ALL: [Method; 2] = [Method::Recycle, Method::Iisreset];

    /// As the command line, the config file and the report spell it.
    pub fn name(self) -> &'static str {
        match self {
            Method::Recycle => "recycle",
            Method::Iisreset => "iisreset",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One Exchange server to flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// Known Exchange version (config or, later, AD): decides DefaultAppPool.
    pub version: Option<ExchangeVersion>,
    /// How the operator refers to it: `host`, or `host:port` if not the default port.
    pub label: String,
}

/// Which pools to recycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolSelection {
    /// The Exchange pools for each server's version (docs/windows-behaviour.md §1.4).
    ExchangeDefaults,
    /// Exactly these, on every server.
    Listed(Vec<PoolName>),
}

#[derive(Debug, Clone)]
pub struct FlushPlan {
    pub targets: Vec<Target>,
    /// WinRM port for servers named without one, and for those found in AD.
    pub default_port: u16,
    pub method: Method,
    pub pools: PoolSelection,
    /// At most this many servers are handled at once (`--parallel`; by
    /// default every server, up to 1,024). iisreset's waves come on top.
    pub parallel: usize,
    /// Covers everything done on one server.
    pub timeout: Duration,
    /// iisreset only: how many servers may be down at once.
    pub max_unavailable: usize,
    /// Transient failures before anything mutating was sent are retried this often.
    pub retries: u32,
    /// How long to wait, after a recycle, for the old worker processes (and
    /// the tokens they cache) to exit. Windows' shutdownTimeLimit is 90 s.
    pub drain_timeout: Duration,
    pub dry_run: bool,
    pub connection: ClientSettings,
}

impl FlushPlan {
    /// The pools to recycle on one server.
    pub fn pools_for(&self, target: &Target) -> Vec<PoolName> {
        match &self.pools {
            PoolSelection::ExchangeDefaults => iis::default_pools(target.version),
            PoolSelection::Listed(pools) => pools.clone(),
        }
    }

    /// How many servers are handled at once: `parallel`, but never more
    /// than there are servers (and at least one).
    pub fn concurrency(&self) -> usize {
        self.parallel.clamp(1, self.targets.len().max(1))
    }

    /// iisreset goes in waves of `max_unavailable` servers, in target order;
    /// recycle has a single wave with everyone.
    pub fn waves(&self) -> Vec<Vec<usize>> {
        let all: Vec<usize> = (0..self.targets.len()).collect();
        match self.method {
            Method::Recycle => vec![all],
            Method::Iisreset => all
                .chunks(self.max_unavailable.max(1))
                .map(|c| c.to_vec())
                .collect(),
        }
    }
}
