//! How `revoke` ends: the exit codes the README documents, decided here and
//! only here, from how the run ended.

use std::process::ExitCode;

use revoke_core::events::UserStatus;

use crate::run::{Ended, Finished};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: everything ended ok (or, in a dry run, was planned).
    Ok,
    /// 1: nothing was attempted (bad usage, config or credentials), or the
    /// change in AD failed, so nothing was flushed.
    NothingAttempted,
    /// 2: the run happened but something is not ok: read the report.
    SomeNotOk,
    /// 3: a guard refused an account: nothing was changed.
    Refused,
    /// 130: interrupted (Ctrl-C); the report says what finished.
    Interrupted,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::NothingAttempted => 1,
            Exit::SomeNotOk => 2,
            Exit::Refused => 3,
            Exit::Interrupted => 130,
        }
    }

    /// How a run that happened ends (also the journal's `run-finished`).
    pub fn of_finished(finished: &Finished) -> Exit {
        Exit::of_run(finished)
    }

    fn of_run(finished: &Finished) -> Exit {
        if finished.interrupted {
            Exit::Interrupted
        } else if finished.report.has_user(UserStatus::Failed)
            && !finished.report.has_changed_user()
        {
            // The AD change failed for every account, so nothing was flushed.
            Exit::NothingAttempted
        } else if finished.report.all_ok() {
            Exit::Ok
        } else {
            Exit::SomeNotOk
        }
    }
}

impl From<&Ended> for Exit {
    fn from(ended: &Ended) -> Exit {
        match ended {
            Ended::Done => Exit::Ok,
            Ended::Refused => Exit::Refused,
            Ended::Problems => Exit::SomeNotOk,
            Ended::Ran(finished) => Exit::of_run(finished),
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}
