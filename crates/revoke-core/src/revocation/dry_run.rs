//! What a dry run says of each DC: what it has now, and what the gate
//! will do there.

use super::RevocationPlan;
use std::time::Instant;

use crate::directory::account::ACCOUNT_DISABLE;
use crate::directory::change::AccountState;
use crate::directory::convergence::{DirectWrite, FORCED_REPLICATION_GRACE};
use crate::directory::topology::DomainController;
use crate::directory::{Connection, DirectorySettings, UserAccount};
use crate::events::{DcOutcome, DcStatus};
use crate::secrets::Secrets;

/// Dry run: what the gate will try on this DC.
pub(super) fn what_the_gate_will_do(
    plan: &RevocationPlan,
    dc: &DomainController,
    is_source: bool,
    cached: &[&(String, UserAccount)],
) -> String {
    if is_source {
        return "the change is written here".to_string();
    }
    if plan.replication_timeout.is_none() {
        return "will not be checked (--no-wait-replication)".to_string();
    }
    if dc.read_only {
        if cached.is_empty() {
            return "read-only, holds none of these passwords: low risk, not waited for"
                .to_string();
        }
        return "read-only, holds the password: will be asked to replicate and waited for, \
                never written"
            .to_string();
    }
    match plan.direct_write {
        DirectWrite::Auto => format!(
            "will be asked to replicate; if it refuses or lags {} s, the change is written here \
             directly (--direct-write auto)",
            FORCED_REPLICATION_GRACE.as_secs()
        ),
        DirectWrite::Never => {
            "will be asked to replicate and waited for (--direct-write never)".to_string()
        }
    }
}

/// Dry run: what one DC currently says about each account it matters for,
/// and what the gate will do there.
pub(super) async fn dry_run_view(
    settings: &DirectorySettings,
    secrets: &Secrets,
    dc: &DomainController,
    accounts: &[&(String, UserAccount)],
    will: String,
) -> DcOutcome {
    let started = Instant::now();
    let now = if accounts.is_empty() {
        String::new()
    } else {
        match Connection::open_host(settings, &secrets.operator, &dc.host).await {
            Ok(mut conn) => {
                let mut parts = Vec::new();
                for (_, account) in accounts {
                    parts.push(match AccountState::read(&mut conn, &account.dn).await {
                        Ok(state) => format!(
                            "{} {} ({})",
                            account.sam,
                            if state.user_account_control & ACCOUNT_DISABLE != 0 {
                                "disabled"
                            } else {
                                "enabled"
                            },
                            state.user_account_control
                        ),
                        Err(error) => format!("{}: {error}", account.sam),
                    });
                }
                conn.close().await;
                format!("currently sees {}; ", parts.join(", "))
            }
            Err(error) => format!("cannot check it now: {error}; "),
        }
    };
    DcOutcome::now(
        &dc.host,
        DcStatus::Planned,
        started.elapsed(),
        Some(format!("{now}{will}")),
    )
    .read_only(dc.read_only)
}
