//! `[directory] stamp`: the line revoke writes into an account's `info`.

use std::time::SystemTime;

use crate::directory::change::Change;
use crate::directory::guards::Operator;
use crate::directory::{Connection, DirectoryError, identity};

/// `NETBIOS\sAMAccountName` of the operator for the `info` stamp; the DN
/// where either cannot be read.
pub(super) async fn stamp_author(conn: &mut Connection, operator: &Operator) -> String {
    let sam = identity::resolve(conn, &operator.dn)
        .await
        .ok()
        .map(|account| account.sam);
    let netbios = identity::domain_names(conn).await.ok().and_then(|(n, _)| n);
    match (netbios, sam) {
        (Some(domain), Some(sam)) => format!("{domain}\\{sam}"),
        (None, Some(sam)) => sam,
        _ => operator.dn.clone(),
    }
}

/// With `[directory] stamp`, revoke's last line in the account's `info`
/// says what it last did: `disabled ... via revoke` means revoke disabled it.
pub(super) async fn stamped_disabled_by_revoke(
    conn: &mut Connection,
    dn: &str,
) -> Result<bool, DirectoryError> {
    let info = conn
        .read(dn, &["info"])
        .await?
        .and_then(|entry| crate::directory::connection::first(&entry.attrs, "info"))
        .unwrap_or_default();
    let last = info
        .lines()
        .rev()
        .find(|line| line.contains(" via revoke") && !line.starts_with("password reset "));
    Ok(last.is_some_and(|line| line.starts_with("disabled ")))
}

/// The line `[directory] stamp` appends to an account's `info`:
/// `disabled 2026-12-02T03:00Z by LAB\op via revoke, INC123 — reason`.
pub fn stamp_line(
    change: &Change,
    at: SystemTime,
    by: &str,
    ticket: Option<&str>,
    reason: Option<&str>,
) -> String {
    let done = match change {
        Change::Disable => "disabled",
        Change::Reset { .. } => "password reset",
        Change::Enable => "enabled",
    };
    // Minutes are enough for an audit line, and keep it short.
    let when = humantime::format_rfc3339_seconds(at).to_string();
    let when = format!("{}Z", &when[..16]);
    let mut line = format!("{done} {when} by {by} via revoke");
    if let Some(ticket) = ticket {
        line.push_str(&format!(", {ticket}"));
    }
    if let Some(reason) = reason {
        line.push_str(&format!(" — {reason}"));
    }
    line
}
