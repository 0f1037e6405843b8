//! Each account's line in the report: planned, changed or failed, with
//! what its flags mean for the change.

use crate::directory::account::ACCOUNT_DISABLE;
use crate::directory::change::{Applied, Change};
use crate::directory::{UserAccount, uac_flag_names};
use crate::events::{UserOutcome, UserStatus};

pub(super) fn verb(change: &Change) -> &'static str {
    match change {
        Change::Disable => "disabling",
        Change::Reset { .. } => "resetting the password of",
        Change::Enable => "enabling",
    }
}

fn outcome(
    input: &str,
    account: &UserAccount,
    status: UserStatus,
    after: u32,
    message: Option<String>,
) -> UserOutcome {
    UserOutcome {
        input: input.to_string(),
        dn: account.dn.clone(),
        sam_account_name: account.sam.clone(),
        user_principal_name: account.upn.clone(),
        display_name: account.display_name.clone(),
        status,
        user_account_control_before: account.user_account_control,
        user_account_control_after: after,
        flags_before: uac_flag_names(account.user_account_control),
        flags_after: uac_flag_names(after),
        message,
    }
}

pub(super) fn planned(input: &str, account: &UserAccount, change: &Change) -> UserOutcome {
    let (after, message) = match change {
        Change::Disable if account.is_disabled() => (
            account.user_account_control,
            "already disabled: nothing to write; the flush would still run".to_string(),
        ),
        Change::Disable => (
            account.user_account_control | ACCOUNT_DISABLE,
            "would write userAccountControl".to_string(),
        ),
        Change::Enable if !account.is_disabled() => (
            account.user_account_control,
            "already enabled: nothing to write".to_string(),
        ),
        Change::Enable => (
            account.user_account_control & !ACCOUNT_DISABLE,
            "would clear ACCOUNTDISABLE in userAccountControl".to_string(),
        ),
        Change::Reset { must_change, .. } => (
            account.user_account_control,
            format!(
                "would set the password twice (a random throwaway, then the new one){}",
                if *must_change {
                    " and pwdLastSet = 0"
                } else {
                    ""
                }
            ),
        ),
    };
    let message = with_warnings(Some(message), account, change);
    outcome(input, account, UserStatus::Planned, after, message)
}

/// What the account's own flags mean for this change (docs/windows-behaviour.md §2.26).
fn warnings(account: &UserAccount, change: &Change) -> Vec<&'static str> {
    const PASSWD_CANT_CHANGE: u32 = 0x40;
    const DONT_EXPIRE_PASSWORD: u32 = 0x1_0000;
    const SMARTCARD_REQUIRED: u32 = 0x4_0000;
    let uac = account.user_account_control;
    let mut out = Vec::new();
    if let Change::Reset { must_change } = change {
        if *must_change && uac & DONT_EXPIRE_PASSWORD != 0 {
            out.push(
                "warning: the account's password never expires (DONT_EXPIRE_PASSWORD), which makes \
                 must-change-password moot: AD does not ask for a new password at logon",
            );
        }
        if *must_change && uac & PASSWD_CANT_CHANGE != 0 {
            out.push(
                "warning: the account may not change its password (PASSWD_CANT_CHANGE), so \
                 must-change-password is a dead end: the user cannot log on until an administrator \
                 sets a password",
            );
        }
        if uac & SMARTCARD_REQUIRED != 0 {
            out.push(
                "warning: the account logs on with a smart card (SMARTCARD_REQUIRED): a reset does \
                 not stop smart-card logons; disable the account or revoke the certificate",
            );
        }
    }
    out
}

fn with_warnings(
    message: Option<String>,
    account: &UserAccount,
    change: &Change,
) -> Option<String> {
    let mut parts: Vec<String> = message.into_iter().collect();
    parts.extend(warnings(account, change).into_iter().map(String::from));
    (!parts.is_empty()).then(|| parts.join("; "))
}

pub(super) fn changed(
    input: &str,
    account: &UserAccount,
    change: &Change,
    applied: &Applied,
) -> UserOutcome {
    let before = &applied.before;
    let mut account = account.clone();
    // The fresh read made while writing is more current than the one at resolve time.
    account.user_account_control = before.user_account_control;
    let (status, message) = match change {
        Change::Disable if applied.already => (
            UserStatus::AlreadyDisabled,
            Some("was already disabled; nothing written, the flush still runs".to_string()),
        ),
        Change::Disable => (UserStatus::Disabled, None),
        Change::Enable if applied.already => (
            UserStatus::AlreadyEnabled,
            Some("was already enabled; nothing written".to_string()),
        ),
        Change::Enable => (UserStatus::Enabled, None),
        Change::Reset { .. } => (UserStatus::Reset, None),
    };
    let message = match (message, &applied.note) {
        (Some(message), Some(note)) => Some(format!("{message}; {note}")),
        (message, note) => message.or_else(|| note.clone()),
    };
    let message = with_warnings(message, &account, change);
    outcome(
        input,
        &account,
        status,
        applied.after.user_account_control,
        message,
    )
}

pub(super) fn failed_outcome(input: &str, account: &UserAccount, message: String) -> UserOutcome {
    outcome(
        input,
        account,
        UserStatus::Failed,
        account.user_account_control,
        Some(message),
    )
}
