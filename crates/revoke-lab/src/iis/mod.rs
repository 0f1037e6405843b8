//! A simulated IIS with Exchange's application pools, answering the commands
//! of `revoke_core::iis` with Windows' output text and exit codes.
//!
//! - `model`: the IIS itself: pools, worker processes (overlapped recycle,
//!   drain), the iisreset outage, and the requests workers hold.
//! - `command`: cmd.exe in front of it, as a WinRM `cmd` shell runs a
//!   command line: `%VAR%` expansion, `&`/`&&`/`||`, `echo` and `call`, and
//!   the programs `appcmd.exe` (only by its full path: inetsrv is not on
//!   PATH), `iisreset.exe` and `hostname.exe`; anything else gets cmd's "is
//!   not recognized" error. A command line in; output on a [`Console`] (or a
//!   [`CommandResult`]) out.
//!
//! Time comes from `tokio::time`, and worker liveness is computed from
//! deadlines (birth, death) rather than by background tasks, so a paused or
//! real clock both give consistent answers and nothing needs cleaning up.

mod cmd_line;
mod command;
mod model;
#[cfg(test)]
mod tests;

pub use command::{Captured, CommandResult, Console};
pub use model::{IisSim, IisSimConfig, RequestGuard, Unavailable};

/// Simulators and helpers shared by the model's and the commands' tests.
#[cfg(test)]
mod fixtures {
    use std::time::Duration;

    use revoke_core::iis::{PoolName, PoolState, RemoteCommand};

    use super::{CommandResult, IisSim, IisSimConfig};

    pub const APPCMD: &str = r"%windir%\system32\inetsrv\appcmd.exe";
    pub const SYNC: &str = "MSExchangeSyncAppPool";

    pub fn s(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| (*a).to_owned()).collect()
    }

    /// A server with instant commands and the given drain and reset times.
    pub fn sim_with(drain_ms: u64, reset_ms: u64) -> IisSim {
        let mut config = IisSimConfig::exchange("EX01");
        config.recycle_time = Duration::ZERO;
        config.drain_time = Duration::from_millis(drain_ms);
        config.iisreset_downtime = Duration::from_millis(reset_ms);
        config.pools.push(("My Pool".into(), PoolState::Started));
        config
            .pools
            .push(("StoppedPool".into(), PoolState::Stopped));
        config.failing_pools = vec!["MSExchangeOWAAppPool".into()];
        IisSim::new(config)
    }

    pub fn sim() -> IisSim {
        sim_with(60_000, 60_000)
    }

    /// Instant commands; a recycled worker exits once it has no request left.
    pub fn idle_exiting(drain_ms: u64, reset_ms: u64) -> IisSim {
        let mut config = IisSimConfig::exchange("EX01");
        config.recycle_time = Duration::ZERO;
        config.drain_time = Duration::from_millis(drain_ms);
        config.iisreset_downtime = Duration::from_millis(reset_ms);
        config.exit_when_idle = true;
        IisSim::new(config)
    }

    pub async fn run(sim: &IisSim, cmd: &RemoteCommand) -> CommandResult {
        sim.execute(&cmd.program, &cmd.args).await
    }

    pub fn pool(name: &str) -> PoolName {
        PoolName::parse(name).unwrap()
    }
}
