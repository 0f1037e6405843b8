//! The confirmation a terminal run of `disable` / `reset` asks for before
//! anything is written: who exactly, where, and what will be flushed.

use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write};

use thiserror::Error;

use revoke_core::directory::uac_flag_names;
use revoke_core::revocation::Prepared;

#[derive(Debug, Error)]
pub enum ConfirmError {
    #[error(
        "refusing to change AD without confirmation: there is no terminal to ask on. \
         Check the accounts with --dry-run, then run again with --yes"
    )]
    NoTerminal,
    #[error("not confirmed: nothing was changed")]
    Declined,
    #[error("cannot read the answer: {0}")]
    Io(#[from] std::io::Error),
}

/// Proceeds on `--yes`; else asks on the terminal; without one, refuses.
pub fn confirm(prepared: &Prepared, yes: bool) -> Result<(), ConfirmError> {
    if yes {
        return Ok(());
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(ConfirmError::NoTerminal);
    }
    let mut stderr = std::io::stderr().lock();
    write!(stderr, "{}Proceed? [y/N] ", summary(prepared))?;
    stderr.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(ConfirmError::Declined),
    }
}

/// What is about to happen, in the words the operator checks.
pub fn summary(prepared: &Prepared) -> String {
    let mut out = String::new();
    let what = match prepared.change().name() {
        "disable" => "DISABLE",
        "enable" => "ENABLE",
        _ => "RESET THE PASSWORD OF",
    };
    let _ = writeln!(
        out,
        "About to {what} in AD (writing on {}):",
        prepared.source_host()
    );
    for (_, account) in &prepared.accounts {
        let _ = writeln!(
            out,
            "  {}  {}\n    {}\n    now: {} ({})",
            account.sam,
            account
                .display_name
                .as_deref()
                .unwrap_or("(no display name)"),
            account.dn,
            if account.is_disabled() {
                "disabled"
            } else {
                "enabled"
            },
            uac_flag_names(account.user_account_control).join(", ")
        );
    }
    let dcs: Vec<&str> = prepared
        .domain_controllers
        .iter()
        .map(|dc| dc.host.as_str())
        .collect();
    let _ = writeln!(
        out,
        "then wait until {} domain controller(s) have it: {}",
        dcs.len(),
        dcs.join(", ")
    );
    if !prepared.flushes() {
        return out;
    }
    let servers = prepared.servers();
    let _ = writeln!(
        out,
        "then flush {} Exchange server(s): {}",
        servers.len(),
        servers.join(", ")
    );
    let f5 = prepared.f5_devices();
    if !f5.is_empty() {
        let _ = writeln!(
            out,
            "and kill their APM sessions on {} BIG-IP(s): {}",
            f5.len(),
            f5.join(", ")
        );
    }
    out
}
