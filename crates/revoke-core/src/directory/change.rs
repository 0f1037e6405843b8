//! The change itself: disable (optimistic, bit-preserving) or reset
//! (rotated twice, so the previous password dies at once). The same code
//! writes on the DC revoke starts from and, in the convergence gate, on a
//! DC that lags behind.

use std::collections::HashSet;

use ldap3::Mod;

use super::account::ACCOUNT_DISABLE;
use super::connection::{Connection, first};
use super::password::{GENERATED_LENGTH, generate_with_length, unicode_pwd};
use super::policy;
use super::{DirectoryError, describe_result};
use crate::Password;

/// What revoke does to each account. The new password of a reset is a
/// secret, not part of the plan: [`apply`] gets it from the run's secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Disable,
    Reset {
        must_change: bool,
    },
    /// Clears ACCOUNTDISABLE: the undo of a mistaken disable.
    Enable,
}

impl Change {
    pub fn name(&self) -> &'static str {
        match self {
            Change::Disable => "disable",
            Change::Reset { .. } => "reset",
            Change::Enable => "enable",
        }
    }

    /// Whether the run flushes the servers (and kills APM sessions) after
    /// the gate: not for `enable`, which leaves nothing cached to clear.
    pub fn flushes(&self) -> bool {
        !matches!(self, Change::Enable)
    }

    /// The attribute whose replication tells whether a DC has the change.
    pub fn attribute(&self) -> &'static str {
        match self {
            Change::Disable | Change::Enable => "userAccountControl",
            Change::Reset { .. } => "unicodePwd",
        }
    }

    /// A read-only DC gets this change's new secret only when asked for it
    /// (`replicateSingleObject` with `:SECRETS_ONLY`).
    pub fn moves_secret(&self) -> bool {
        matches!(self, Change::Reset { .. })
    }
}

/// The attributes that show whether a DC has the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    pub user_account_control: u32,
    pub pwd_last_set: String,
}

impl AccountState {
    pub async fn read(conn: &mut Connection, dn: &str) -> Result<Self, DirectoryError> {
        let entry = conn
            .read(dn, &["userAccountControl", "pwdLastSet"])
            .await?
            .ok_or_else(|| DirectoryError::Operation {
                what: format!("reading {dn}"),
                host: conn.host.clone(),
                reason: "the object does not exist on this DC (yet)".into(),
            })?;
        Ok(AccountState {
            user_account_control: first(&entry.attrs, "userAccountControl")
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0) as u32,
            pwd_last_set: first(&entry.attrs, "pwdLastSet").unwrap_or_default(),
        })
    }

    /// Does this DC's view carry the change written as `written`?
    pub fn has(&self, change: &Change, written: &AccountState) -> bool {
        match change {
            Change::Disable => self.user_account_control & ACCOUNT_DISABLE != 0,
            Change::Enable => self.user_account_control & ACCOUNT_DISABLE == 0,
            Change::Reset { .. } => self.pwd_last_set == written.pwd_last_set,
        }
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub before: AccountState,
    pub after: AccountState,
    /// Disable (enable) only: the account was disabled (enabled) already;
    /// nothing was written.
    pub already: bool,
    /// Something the change could not do although it was made (a reset
    /// whose must-change-password was refused), in words.
    pub note: Option<String>,
}

/// Applies `change` to `dn` on this connection's DC and reads it back; a
/// reset sets `new_password`.
pub async fn apply(
    conn: &mut Connection,
    dn: &str,
    change: &Change,
    new_password: Option<&Password>,
) -> Result<Applied, DirectoryError> {
    apply_stamped(conn, dn, change, new_password, None).await
}

/// [`apply`], and with `stamp` appends that line to the account's `info`
/// in the same modify as the change (for a reset: the first rotation's), so
/// the change and its audit line are written together or not at all. An
/// account already in the wanted state is not written, so not stamped.
pub async fn apply_stamped(
    conn: &mut Connection,
    dn: &str,
    change: &Change,
    new_password: Option<&Password>,
    stamp: Option<&str>,
) -> Result<Applied, DirectoryError> {
    match (change, new_password) {
        (Change::Disable, _) => set_disabled_stamped(conn, dn, None, true, stamp).await,
        (Change::Enable, _) => set_disabled_stamped(conn, dn, None, false, stamp).await,
        (Change::Reset { must_change }, Some(password)) => {
            reset(conn, dn, password, *must_change, stamp).await
        }
        (Change::Reset { .. }, None) => Err(DirectoryError::Settings(
            "a reset needs the new password, and none was given".into(),
        )),
    }
}

/// Disables `dn`, starting from `observed` (the state the caller last read)
/// if given, else from a fresh read.
///
/// Delete-exact-old-value + add-new in one modify: if someone changed the
/// attribute since it was read, the delete fails instead of overwriting
/// their change; revoke reads again and tries once more.
pub async fn disable(
    conn: &mut Connection,
    dn: &str,
    observed: Option<AccountState>,
) -> Result<Applied, DirectoryError> {
    set_disabled(conn, dn, observed, true).await
}

/// Sets (`disabled`) or clears ACCOUNTDISABLE, every other bit as it was,
/// with the same optimistic concurrency as [`disable`].
async fn set_disabled(
    conn: &mut Connection,
    dn: &str,
    observed: Option<AccountState>,
    disabled: bool,
) -> Result<Applied, DirectoryError> {
    set_disabled_stamped(conn, dn, observed, disabled, None).await
}

/// [`set_disabled`], with an `info` line in the same modify.
async fn set_disabled_stamped(
    conn: &mut Connection,
    dn: &str,
    mut observed: Option<AccountState>,
    disabled: bool,
    stamp: Option<&str>,
) -> Result<Applied, DirectoryError> {
    let (doing, still) = match disabled {
        true => ("disabling", "enabled"),
        false => ("enabling", "disabled"),
    };
    for _attempt in 0..2 {
        let before = match observed.take() {
            Some(state) => state,
            None => AccountState::read(conn, dn).await?,
        };
        if (before.user_account_control & ACCOUNT_DISABLE != 0) == disabled {
            return Ok(Applied {
                after: before.clone(),
                before,
                already: true,
                note: None,
            });
        }
        let old = before.user_account_control;
        let new = match disabled {
            true => old | ACCOUNT_DISABLE,
            false => old & !ACCOUNT_DISABLE,
        };
        let mut mods = vec![
            Mod::Delete(attr("userAccountControl"), set(signed(old))),
            Mod::Add(attr("userAccountControl"), set(signed(new))),
        ];
        if let Some(line) = stamp {
            mods.push(info_stamp(conn, dn, line).await?);
        }
        let result = conn.modify(dn, mods).await?;
        match result.rc {
            0 => {
                let after = AccountState::read(conn, dn).await?;
                if (after.user_account_control & ACCOUNT_DISABLE != 0) != disabled {
                    return Err(refused(
                        conn,
                        doing,
                        dn,
                        format!("the write was accepted but the account still reads as {still}"),
                    ));
                }
                return Ok(Applied {
                    before,
                    after,
                    already: false,
                    note: None,
                });
            }
            // noSuchAttribute: the old value is gone, changed concurrently.
            16 => continue,
            rc => {
                return Err(refused(conn, doing, dn, describe_result(rc, &result.text)));
            }
        }
    }
    Err(refused(
        conn,
        doing,
        dn,
        "userAccountControl changed twice while revoke was writing it; check who else is editing the account and run again".into(),
    ))
}

async fn reset(
    conn: &mut Connection,
    dn: &str,
    password: &Password,
    must_change: bool,
    stamp: Option<&str>,
) -> Result<Applied, DirectoryError> {
    let before = AccountState::read(conn, dn).await?;
    let minimum = policy::minimum_length(conn, dn).await?;
    let given = password.expose().chars().count();
    if given < minimum.characters {
        return Err(refused(
            conn,
            "resetting the password of",
            dn,
            format!(
                "nothing was written: the new password has {given} characters and {} requires \
                 at least {}; give a longer one with --new-password-stdin",
                minimum.source, minimum.characters
            ),
        ));
    }
    // One reset leaves the previous password working for NTLM network logons
    // for a while (the old password window, docs/windows-behaviour.md §2.8);
    // a second one pushes it out. The throwaway meets the policy's length;
    // a refusal (result 19) gets one more, fresh throwaway.
    let throwaway_length = GENERATED_LENGTH.max(minimum.characters);
    // The stamp rides on the first rotation: AD takes a unicodePwd replace
    // together with other attributes in one atomic modify
    // (docs/windows-behaviour.md §2.27), so a refused stamp (no right to
    // write info) leaves the password untouched.
    let extra = match stamp {
        Some(line) => vec![info_stamp(conn, dn, line).await?],
        None => Vec::new(),
    };
    let mut first = replace_with(
        conn,
        dn,
        "unicodePwd",
        unicode_pwd(&generate_with_length(throwaway_length)),
        extra.clone(),
        "resetting the password (first rotation) of",
    )
    .await;
    if matches!(&first, Err(Refusal { code: 19, .. })) {
        // A policy revoke could not read: a longer one (AD takes up to 256).
        first = replace_with(
            conn,
            dn,
            "unicodePwd",
            unicode_pwd(&generate_with_length(RETRY_LENGTH.max(throwaway_length))),
            extra,
            "resetting the password (first rotation, second try) of",
        )
        .await;
    }
    first.map_err(|r| r.error)?;
    replace(
        conn,
        dn,
        "unicodePwd",
        unicode_pwd(password),
        "setting the new password (second rotation) of",
    )
    .await
    .map_err(|refusal| match refusal.error {
        DirectoryError::Operation { what, host, reason } => DirectoryError::Operation {
            what,
            host,
            reason: format!(
                "{reason}. The first rotation was done (the account has a random password \
                 nobody knows), the second was not: the password from before the reset may \
                 still work for NTLM network logons for up to OldPasswordAllowedPeriod (60 \
                 minutes by default); run the reset again"
            ),
        },
        other => other,
    })?;
    // The password is reset by now: a refused must-change does not undo that.
    let mut note = None;
    if must_change
        && let Err(refusal) = replace(
            conn,
            dn,
            "pwdLastSet",
            b"0".to_vec(),
            "setting must-change-password on",
        )
        .await
    {
        note = Some(format!(
            "the password was reset, but must-change-password was not set: {}",
            refusal.error
        ));
    }
    let after = AccountState::read(conn, dn).await?;
    Ok(Applied {
        before,
        after,
        already: false,
        note,
    })
}

/// The throwaway's length after a refusal: longer than any policy in use.
const RETRY_LENGTH: usize = 128;

/// A refused replace: the LDAP result code, and the error in words.
struct Refusal {
    code: u32,
    error: DirectoryError,
}

async fn replace(
    conn: &mut Connection,
    dn: &str,
    attribute: &str,
    value: Vec<u8>,
    what: &str,
) -> Result<(), Refusal> {
    replace_with(conn, dn, attribute, value, Vec::new(), what).await
}

/// [`replace`], with more modifications in the same modify.
async fn replace_with(
    conn: &mut Connection,
    dn: &str,
    attribute: &str,
    value: Vec<u8>,
    extra: Vec<Mod<Vec<u8>>>,
    what: &str,
) -> Result<(), Refusal> {
    let mut mods = vec![Mod::Replace(attr(attribute), set(value))];
    mods.extend(extra);
    let result = conn
        .modify(dn, mods)
        .await
        .map_err(|error| Refusal { code: 0, error })?;
    if result.rc != 0 {
        let mut reason = describe_result(result.rc, &result.text);
        if result.rc == 19 && attribute == "unicodePwd" {
            // An administrator's reset is not checked against the history
            // (docs/windows-behaviour.md §8.8): only length and complexity.
            reason
                .push_str(" — the password does not meet the domain's length or complexity policy");
        }
        return Err(Refusal {
            code: result.rc,
            error: refused(conn, what, dn, reason),
        });
    }
    Ok(())
}

/// The longest `info` revoke writes: the attribute's rangeUpper in AD's
/// schema (docs/windows-behaviour.md §2.27).
pub const INFO_MAX_CHARS: usize = 1024;

/// The modification that appends `line` to the account's `info` (Notes),
/// keeping what was there: info is one text value, so the old text plus a
/// new line replaces it. Oldest lines go first when it would be too long.
async fn info_stamp(
    conn: &mut Connection,
    dn: &str,
    line: &str,
) -> Result<Mod<Vec<u8>>, DirectoryError> {
    let old = conn
        .read(dn, &["info"])
        .await?
        .and_then(|entry| first(&entry.attrs, "info"));
    let value = stamped_info(old.as_deref(), line);
    Ok(Mod::Replace(attr("info"), set(value.into_bytes())))
}

/// `old` with `line` appended on a line of its own (CRLF, as Active
/// Directory Users and Computers writes the Notes box), cut from the front
/// to [`INFO_MAX_CHARS`] at a line boundary; a line alone longer than that
/// is cut at its end.
pub fn stamped_info(old: Option<&str>, line: &str) -> String {
    let line: String = line.chars().take(INFO_MAX_CHARS).collect();
    let mut lines: Vec<&str> = old
        .unwrap_or_default()
        .split("\r\n")
        .flat_map(|l| l.split('\n'))
        .filter(|l| !l.is_empty())
        .collect();
    let length = |lines: &[&str]| {
        lines.iter().map(|l| l.chars().count() + 2).sum::<usize>() + line.chars().count()
    };
    while !lines.is_empty() && length(&lines) > INFO_MAX_CHARS {
        lines.remove(0);
    }
    lines.push(&line);
    lines.join("\r\n")
}

fn refused(conn: &Connection, what: &str, dn: &str, reason: String) -> DirectoryError {
    DirectoryError::Operation {
        what: format!("{what} {dn}"),
        host: conn.host.clone(),
        reason,
    }
}

fn attr(name: &str) -> Vec<u8> {
    name.as_bytes().to_vec()
}

fn set(value: Vec<u8>) -> HashSet<Vec<u8>> {
    HashSet::from([value])
}

/// AD stores userAccountControl as a signed 32-bit integer.
fn signed(value: u32) -> Vec<u8> {
    (value as i32).to_string().into_bytes()
}

#[cfg(test)]
mod stamp_tests {
    use super::{INFO_MAX_CHARS, stamped_info};

    #[test]
    fn the_stamp_is_appended_and_the_oldest_lines_go_when_info_is_full() {
        assert_eq!(stamped_info(None, "disabled x"), "disabled x");
        assert_eq!(
            stamped_info(Some("HR: leaver\r\n"), "disabled x"),
            "HR: leaver\r\ndisabled x"
        );
        assert_eq!(stamped_info(Some("a\nb"), "c"), "a\r\nb\r\nc");
        let old = (0..40)
            .map(|i| format!("line {i:02} {}", "x".repeat(30)))
            .collect::<Vec<_>>()
            .join("\r\n");
        let new = stamped_info(Some(&old), "the stamp");
        assert!(new.chars().count() <= INFO_MAX_CHARS, "{}", new.len());
        assert!(new.ends_with("\r\nthe stamp"), "{new}");
        assert!(new.contains("line 39"), "the newest old line stays");
        assert!(!new.contains("line 00"), "the oldest goes");
        let long = "y".repeat(2000);
        assert_eq!(
            stamped_info(Some("old"), &long).chars().count(),
            INFO_MAX_CHARS
        );
    }
}
