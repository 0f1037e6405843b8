//! Where the secrets come from, gathered into one [`Secrets`] once the plan
//! is valid: the operator's password (`--password-stdin`,
//! `$REVOKE_PASSWORD`, or a prompt on a terminal), the BIG-IPs'
//! (`$REVOKE_F5_PASSWORD`, else the operator's) and a reset's new password
//! (generated, or from stdin). Never argv, never logs.

use std::io::{BufRead, IsTerminal};

use revoke_core::Password;
use revoke_core::directory::password;
use revoke_core::secrets::Secrets;
use thiserror::Error;

pub const PASSWORD_ENV: &str = "REVOKE_PASSWORD";
/// The BIG-IPs' password, when it is not the operator's.
pub const F5_PASSWORD_ENV: &str = "REVOKE_F5_PASSWORD";

#[derive(Debug, Error)]
pub enum CredentialError {
    #[error("--password-stdin was given but stdin held no password")]
    EmptyStdin,
    #[error("--new-password-stdin was given but stdin held no new password")]
    NoNewPassword,
    #[error("cannot create the password file {path} (it must not exist yet): {source}")]
    PasswordFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the password: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "no password for {user}: pipe it with --password-stdin, set {PASSWORD_ENV}, or run on a terminal to be prompted"
    )]
    NoSource { user: String },
}

/// Where a reset's new password comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewPassword {
    /// 28 characters from the OS's CSPRNG.
    Generate,
    /// The next line of stdin (after the operator's, if that is read there too).
    Stdin,
}

/// Everything secret a run needs. `user` is whom the prompt names.
pub fn gather(
    user: &str,
    from_stdin: bool,
    new_password: Option<NewPassword>,
) -> Result<Secrets, CredentialError> {
    let operator = password(user, from_stdin)?;
    let new_password = match new_password {
        None => None,
        Some(NewPassword::Generate) => Some(password::generate()),
        Some(NewPassword::Stdin) => Some(new_password_from_stdin()?),
    };
    Ok(Secrets {
        f5: f5_password(&operator),
        operator,
        new_password,
    })
}

fn password(user: &str, from_stdin: bool) -> Result<Password, CredentialError> {
    if from_stdin {
        return stdin_line();
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

/// `[f5]`: `$REVOKE_F5_PASSWORD` if set, else the operator's password.
fn f5_password(operator: &Password) -> Password {
    match std::env::var(F5_PASSWORD_ENV) {
        Ok(value) if !value.is_empty() => Password::new(value),
        _ => operator.clone(),
    }
}

/// The next line of stdin, without its line ending.
fn stdin_line() -> Result<Password, CredentialError> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let value = line.trim_end_matches(['\r', '\n']).to_string();
    if value.is_empty() {
        return Err(CredentialError::EmptyStdin);
    }
    Ok(Password::new(value))
}

/// `reset --new-password-stdin`: the user's new password, from the next line
/// of stdin (the line after the operator's when `--password-stdin` is given too).
fn new_password_from_stdin() -> Result<Password, CredentialError> {
    stdin_line().map_err(|e| match e {
        CredentialError::EmptyStdin => CredentialError::NoNewPassword,
        other => other,
    })
}

/// After `reset`: the new password goes to the password file, or — if
/// revoke generated it and no file was asked for — to the terminal, once.
/// If the reset did not happen, the file is removed.
pub fn hand_over(
    password: &Password,
    file: Option<PasswordFile>,
    reset_done: bool,
    generated: bool,
    user: &str,
) -> std::io::Result<()> {
    match (file, reset_done) {
        (Some(file), true) => file.write(password),
        (Some(file), false) => {
            file.discard();
            Ok(())
        }
        (None, true) if generated && std::io::stderr().is_terminal() => {
            eprintln!(
                "New password for {user} (shown once, stored nowhere; clear the screen once noted):\n  {}",
                password.expose()
            );
            Ok(())
        }
        (None, true) if generated => {
            eprintln!(
                "note: the new password was not shown (no terminal, no --password-file); \
                 set another one when the user needs the account again"
            );
            Ok(())
        }
        (None, _) => Ok(()),
    }
}

/// Where `reset --password-file` puts the new password. Created before
/// anything is changed, so a bad path fails while nothing has happened.
pub struct PasswordFile {
    path: std::path::PathBuf,
    file: std::fs::File,
}

impl PasswordFile {
    pub fn create(path: &std::path::Path) -> Result<Self, CredentialError> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(path)
            .map_err(|source| CredentialError::PasswordFile {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn write(mut self, password: &Password) -> std::io::Result<()> {
        use std::io::Write;
        writeln!(self.file, "{}", password.expose())?;
        self.file.sync_all()
    }

    /// The reset did not happen: leave no empty file behind.
    pub fn discard(self) {
        drop(self.file);
        let _ = std::fs::remove_file(&self.path);
    }
}
