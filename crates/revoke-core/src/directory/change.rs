//! The change itself: disable (optimistic, bit-preserving) or reset
//! (rotated twice, so the previous password dies at once). The same code
//! writes on the DC revoke starts from and, in the convergence gate, on a
//! DC that lags behind.

use std::collections::HashSet;

use ldap3::Mod;

use super::account::ACCOUNT_DISABLE;
use super::connection::{Connection, first};
use super::password::{generate, unicode_pwd};
use super::{DirectoryError, describe_result};
use crate::Password;

/// What revoke does to each account. The new password of a reset is a
/// secret, not part of the plan: [`apply`] gets it from the run's secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Disable,
    Reset { must_change: bool },
}

impl Change {
    pub fn name(&self) -> &'static str {
        match self {
            Change::Disable => "disable",
            Change::Reset { .. } => "reset",
        }
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
            Change::Reset { .. } => self.pwd_last_set == written.pwd_last_set,
        }
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub before: AccountState,
    pub after: AccountState,
    /// Disable only: the account was disabled already; nothing was written.
    pub already: bool,
}

/// Applies `change` to `dn` on this connection's DC and reads it back; a
/// reset sets `new_password`.
pub async fn apply(
    conn: &mut Connection,
    dn: &str,
    change: &Change,
    new_password: Option<&Password>,
) -> Result<Applied, DirectoryError> {
    match (change, new_password) {
        (Change::Disable, _) => disable(conn, dn, None).await,
        (Change::Reset { must_change }, Some(password)) => {
            reset(conn, dn, password, *must_change).await
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
    mut observed: Option<AccountState>,
) -> Result<Applied, DirectoryError> {
    for _attempt in 0..2 {
        let before = match observed.take() {
            Some(state) => state,
            None => AccountState::read(conn, dn).await?,
        };
        if before.user_account_control & ACCOUNT_DISABLE != 0 {
            return Ok(Applied {
                after: before.clone(),
                before,
                already: true,
            });
        }
        let old = before.user_account_control;
        let new = old | ACCOUNT_DISABLE;
        let mods = vec![
            Mod::Delete(attr("userAccountControl"), set(signed(old))),
            Mod::Add(attr("userAccountControl"), set(signed(new))),
        ];
        let result = conn.modify(dn, mods).await?;
        match result.rc {
            0 => {
                let after = AccountState::read(conn, dn).await?;
                if after.user_account_control & ACCOUNT_DISABLE == 0 {
                    return Err(refused(
                        conn,
                        "disabling",
                        dn,
                        "the write was accepted but the account still reads as enabled".into(),
                    ));
                }
                return Ok(Applied {
                    before,
                    after,
                    already: false,
                });
            }
            // noSuchAttribute: the old value is gone, changed concurrently.
            16 => continue,
            rc => {
                return Err(refused(
                    conn,
                    "disabling",
                    dn,
                    describe_result(rc, &result.text),
                ));
            }
        }
    }
    Err(refused(
        conn,
        "disabling",
        dn,
        "userAccountControl changed twice while revoke was writing it; check who else is editing the account and run again".into(),
    ))
}

async fn reset(
    conn: &mut Connection,
    dn: &str,
    password: &Password,
    must_change: bool,
) -> Result<Applied, DirectoryError> {
    let before = AccountState::read(conn, dn).await?;
    // One reset leaves the previous password working for a while (the old
    // password window, docs/windows-behaviour.md §2.8); a second one pushes it out.
    let throwaway = generate();
    replace(
        conn,
        dn,
        "unicodePwd",
        unicode_pwd(&throwaway),
        "resetting the password (first rotation)",
    )
    .await?;
    replace(
        conn,
        dn,
        "unicodePwd",
        unicode_pwd(password),
        "setting the new password (second rotation)",
    )
    .await
    .map_err(|e| match e {
        DirectoryError::Operation { what, host, reason } => DirectoryError::Operation {
            what,
            host,
            reason: format!(
                "{reason}; the old password is already dead (the account now has a random \
                     password nobody knows), but the new one was not set"
            ),
        },
        other => other,
    })?;
    if must_change {
        replace(
            conn,
            dn,
            "pwdLastSet",
            b"0".to_vec(),
            "setting must-change-password",
        )
        .await?;
    }
    let after = AccountState::read(conn, dn).await?;
    Ok(Applied {
        before,
        after,
        already: false,
    })
}

async fn replace(
    conn: &mut Connection,
    dn: &str,
    attribute: &str,
    value: Vec<u8>,
    what: &str,
) -> Result<(), DirectoryError> {
    let result = conn
        .modify(dn, vec![Mod::Replace(attr(attribute), set(value))])
        .await?;
    if result.rc != 0 {
        let mut reason = describe_result(result.rc, &result.text);
        if result.rc == 19 && attribute == "unicodePwd" {
            reason.push_str(
                " — the password does not meet the domain's policy (length, complexity or history)",
            );
        }
        return Err(refused(conn, what, dn, reason));
    }
    Ok(())
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
