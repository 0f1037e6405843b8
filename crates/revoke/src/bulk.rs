//! Several accounts in one run: the list from the command line and
//! `--from-file`, and the checks that keep stdin for one purpose. Every
//! account of the list is then resolved and guarded before any is changed
//! (`revocation::prepare`), so one refusal changes nothing.

use std::io::BufRead;
use std::path::Path;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum BulkError {
    #[error("cannot read the account list {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the account list {0} names no account (one per line; lines starting with # and blank \
         lines are skipped); nothing was contacted or changed"
    )]
    Empty(String),
    #[error(
        "--from-file - reads the accounts from stdin, and {0} reads a password from stdin too: \
         stdin can serve only one of them. Put the accounts in a file (--from-file FILE), or give \
         the passwords another way ($REVOKE_DIRECTORY_PASSWORD and the other variables, or a \
         prompt on the terminal); nothing was contacted or changed"
    )]
    StdinTwice(&'static str),
    #[error("{0}; nothing was contacted or changed")]
    Usage(String),
}

/// Whether `--from-file` reads stdin.
pub fn reads_stdin(from_file: Option<&Path>) -> bool {
    from_file.is_some_and(|p| p == Path::new("-"))
}

/// Refuses `--from-file -` together with a flag that reads a password from
/// stdin: the accounts would eat the passwords' lines or the other way round.
pub fn check_stdin(
    from_file: Option<&Path>,
    stdin_flags: &[(bool, &'static str)],
) -> Result<(), BulkError> {
    if !reads_stdin(from_file) {
        return Ok(());
    }
    match stdin_flags.iter().find(|(given, _)| *given) {
        Some((_, flag)) => Err(BulkError::StdinTwice(flag)),
        None => Ok(()),
    }
}

/// The accounts as typed on the command line, then those of `--from-file`
/// (`-`: stdin), in order. Duplicates stay: the run resolves each name and
/// changes each account once.
pub fn account_list(users: &[String], from_file: Option<&Path>) -> Result<Vec<String>, BulkError> {
    let mut all: Vec<String> = users.to_vec();
    let Some(path) = from_file else {
        return Ok(all);
    };
    let shown = match reads_stdin(from_file) {
        true => "on stdin".to_string(),
        false => path.display().to_string(),
    };
    let read = |source| BulkError::Read {
        path: shown.clone(),
        source,
    };
    let listed = match reads_stdin(from_file) {
        true => parse(std::io::stdin().lock()).map_err(read)?,
        false => {
            let file = std::fs::File::open(path).map_err(read)?;
            parse(std::io::BufReader::new(file)).map_err(read)?
        }
    };
    if listed.is_empty() {
        return Err(BulkError::Empty(shown));
    }
    all.extend(listed);
    Ok(all)
}

/// One account per line, surrounding blanks trimmed; blank lines and lines
/// whose first character is `#` are skipped. Only whole lines are comments:
/// `#` may be part of an account name or DN.
fn parse(input: impl BufRead) -> std::io::Result<Vec<String>> {
    let mut accounts = Vec::new();
    for line in input.lines() {
        let line = line?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        accounts.push(line.to_string());
    }
    Ok(accounts)
}

/// `reset` of several accounts: one new password per account, so neither
/// one password from stdin nor one password file.
pub fn check_reset(
    accounts: usize,
    new_password_stdin: bool,
    password_file: bool,
) -> Result<(), BulkError> {
    if accounts <= 1 {
        return Ok(());
    }
    if new_password_stdin {
        return Err(BulkError::Usage(format!(
            "--new-password-stdin gives one password, and this reset names {accounts} accounts: \
             revoke does not give several accounts the same password. Leave it out (revoke \
             generates one per account) and give --password-dir DIR to receive them"
        )));
    }
    if password_file {
        return Err(BulkError::Usage(format!(
            "--password-file holds one account's password, and this reset names {accounts} \
             accounts: give --password-dir DIR instead (one file per account, named by its \
             sAMAccountName)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_blank_lines_are_skipped_and_names_trimmed() {
        let text =
            "# leavers, December\nalice\n\n  LAB\\bob  \r\n#carol\nCN=x\\#1,OU=Staff,DC=lab\n";
        assert_eq!(
            parse(std::io::Cursor::new(text)).unwrap(),
            ["alice", "LAB\\bob", "CN=x\\#1,OU=Staff,DC=lab"]
        );
    }

    #[test]
    fn stdin_serves_one_purpose() {
        let dash = Path::new("-");
        let err = check_stdin(
            Some(dash),
            &[(false, "--password-stdin"), (true, "--new-password-stdin")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("--new-password-stdin reads a password from stdin too"),
            "{err}"
        );
        check_stdin(Some(Path::new("list.txt")), &[(true, "--password-stdin")]).unwrap();
        check_stdin(Some(dash), &[(false, "--password-stdin")]).unwrap();
    }

    #[test]
    fn several_accounts_need_several_passwords() {
        check_reset(1, true, true).unwrap();
        let err = check_reset(3, true, false).unwrap_err().to_string();
        assert!(
            err.contains("names 3 accounts") && err.contains("--password-dir"),
            "{err}"
        );
        let err = check_reset(2, false, true).unwrap_err().to_string();
        assert!(err.contains("--password-dir DIR instead"), "{err}");
    }
}
