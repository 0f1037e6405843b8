//! Where the operator's password comes from: `--password-stdin`,
//! `$REVOKE_PASSWORD`, or a prompt on a terminal. Never argv, never logs.

use std::io::{BufRead, IsTerminal};

use thiserror::Error;

use crate::winrm::Password;

pub const PASSWORD_ENV: &str = "REVOKE_PASSWORD";

#[derive(Debug, Error)]
pub enum CredentialError {
    #[error("--password-stdin was given but stdin held no password")]
    EmptyStdin,
    #[error("cannot read the password: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "no password for {user}: pipe it with --password-stdin, set {PASSWORD_ENV}, or run on a terminal to be prompted"
    )]
    NoSource { user: String },
}

pub fn password(user: &str, from_stdin: bool) -> Result<Password, CredentialError> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let value = line.trim_end_matches(['\r', '\n']).to_string();
        if value.is_empty() {
            return Err(CredentialError::EmptyStdin);
        }
        return Ok(Password::new(value));
    }
    if let Ok(value) = std::env::var(PASSWORD_ENV)
        && !value.is_empty()
    {
        return Ok(Password::new(value));
    }
    if std::io::stdin().is_terminal() {
        let value = rpassword::prompt_password(format!("Password for {user}: "))?;
        if !value.is_empty() {
            return Ok(Password::new(value));
        }
    }
    Err(CredentialError::NoSource {
        user: user.to_string(),
    })
}
