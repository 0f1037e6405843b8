//! A simulated IIS with Exchange's application pools, answering the commands
//! of `crate::iis` with Windows' output text and exit codes.
//! STUB: interface only; the implementation replaces this file.

use std::time::Duration;

use crate::iis::{PoolState, WorkerProcess};

#[derive(Debug, Clone)]
pub struct IisSimConfig {
    /// What `hostname` prints, e.g. "EX01".
    pub hostname: String,
    /// Pools present on the server, in `appcmd list apppool` order.
    pub pools: Vec<(String, PoolState)>,
    /// How long `appcmd recycle apppool` takes before it answers.
    pub recycle_time: Duration,
    /// How long an old worker keeps running after a recycle.
    pub drain_time: Duration,
    /// How long `iisreset /noforce` keeps IIS down.
    pub iisreset_downtime: Duration,
    /// Pools whose recycle fails with "Access is denied" (exit code 5).
    pub failing_pools: Vec<String>,
}

impl IisSimConfig {
    /// An Exchange 2016-style server: the five Exchange pools plus DefaultAppPool, all started.
    pub fn exchange(hostname: &str) -> Self {
        let _ = hostname;
        todo!()
    }
}

/// What a command printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandResult {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
}

/// One simulated server's IIS. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct IisSim {
    _private: (),
}

impl IisSim {
    pub fn new(config: IisSimConfig) -> Self {
        let _ = config;
        todo!()
    }
    /// Run a command as cmd.exe would: `program` and `args` as WinRM sent them.
    pub async fn execute(&self, program: &str, args: &[String]) -> CommandResult {
        let _ = (program, args);
        todo!()
    }
    /// The worker processes alive now.
    pub fn workers(&self) -> Vec<WorkerProcess> {
        todo!()
    }
}
