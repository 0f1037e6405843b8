//! Where the secrets come from, gathered into one [`Secrets`] once the plan
//! is valid. The LDAP bind (`[directory] bind_user`), WinRM (`[winrm] user`)
//! and the BIG-IPs (`[f5] user`) may be different accounts; each distinct
//! account (names compared case-insensitively, as written) has one password,
//! from the first of:
//!
//! 1. its own variable: `$REVOKE_DIRECTORY_PASSWORD`, `$REVOKE_WINRM_PASSWORD`,
//!    `$REVOKE_F5_PASSWORD` (an account in two roles may take either);
//! 2. with `--password-stdin`, the next line of stdin, in the order
//!    directory, WinRM, F5 ([`Accounts::order`]);
//! 3. `$REVOKE_PASSWORD`, every account's password where it has no own variable;
//! 4. a prompt on the terminal that names the account and what it is for.
//!
//! So a password given for one account never goes where another logs on: the
//! BIG-IPs get the domain password only if `[f5] user` names that account.
//! A reset's new password is generated, or the line of stdin after those.
//! Never argv, never logs.
//!
//! Kerberos: where a part logs on with Kerberos (`[directory] auth =
//! "kerberos"`; WinRM's `negotiate` or `kerberos`) and the ticket cache
//! holds a ticket, that part needs no password: none is asked for and
//! `--password-stdin` gives it no line. The directory then binds with the
//! ticket even if a password variable is set; WinRM still takes a password
//! from its variable (or `$REVOKE_PASSWORD`), for an NTLM fallback.

use std::io::{BufRead, IsTerminal};
use std::sync::atomic::{AtomicBool, Ordering};

use revoke_core::Password;
use revoke_core::directory::password;
use revoke_core::secrets::{NewPasswords, Secrets};
use thiserror::Error;

/// Every account's password, where it has no variable of its own.
pub const PASSWORD_ENV: &str = "REVOKE_PASSWORD";
pub const DIRECTORY_PASSWORD_ENV: &str = "REVOKE_DIRECTORY_PASSWORD";
pub const WINRM_PASSWORD_ENV: &str = "REVOKE_WINRM_PASSWORD";
pub const F5_PASSWORD_ENV: &str = "REVOKE_F5_PASSWORD";

#[derive(Debug, Error)]
pub enum CredentialError {
    #[error("{}", missing_text(.0))]
    Missing(Vec<MissingAccount>),
    #[error(
        "--password-stdin: stdin held no password on line {line}, for {account}; \
         give one line per account, in this order: {order}"
    )]
    StdinShort {
        line: usize,
        account: String,
        order: String,
    },
    #[error(
        "{account} is the account of both the {first} and the {second}, but {first_variable} and \
         {second_variable} hold different passwords: one account has one password; set only one of them"
    )]
    Conflict {
        account: String,
        first: &'static str,
        second: &'static str,
        first_variable: &'static str,
        second_variable: &'static str,
    },
    #[error("--new-password-stdin was given but stdin held no new password{after}")]
    NoNewPassword { after: String },
    #[error(
        "--new-password-stdin gives one password, and this reset names {0} accounts: leave it \
         out (revoke generates one per account) and give --password-dir DIR"
    )]
    NewPasswordForSeveral(usize),
    #[error("--password-dir {path}: {problem}; nothing was contacted or changed")]
    PasswordDir {
        path: std::path::PathBuf,
        problem: String,
    },
    #[error("cannot create the password file {path} (it must not exist yet): {source}")]
    PasswordFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the password: {0}")]
    Io(#[from] std::io::Error),
}

/// An account without a password, and the variables that would give it one.
#[derive(Debug)]
pub struct MissingAccount {
    /// `revoke-op@corp.example.com (LDAP bind and WinRM)`.
    pub account: String,
    pub variables: Vec<&'static str>,
    /// It would have used a Kerberos ticket, but the cache holds none.
    pub no_ticket: bool,
}

/// Which parts may log on with a ticket instead of a password: set while
/// the settings are resolved (config.rs), read when the passwords are gathered.
static DIRECTORY_TICKETS: AtomicBool = AtomicBool::new(false);
static WINRM_TICKETS: AtomicBool = AtomicBool::new(false);
static WINRM_KERBEROS_ONLY: AtomicBool = AtomicBool::new(false);

/// `[directory] auth = "kerberos"`.
pub fn tickets_for_directory(on: bool) {
    DIRECTORY_TICKETS.store(on, Ordering::Relaxed);
}

/// `[winrm] auth` is `negotiate` or `kerberos` (`only`: `kerberos`).
pub fn tickets_for_winrm(on: bool, only: bool) {
    WINRM_TICKETS.store(on, Ordering::Relaxed);
    WINRM_KERBEROS_ONLY.store(only, Ordering::Relaxed);
}

/// The roles that would log on with a ticket.
#[derive(Debug, Default, Clone, Copy)]
struct Tickets {
    directory: bool,
    winrm: bool,
    /// `auth = "kerberos"` for WinRM: a missing password is then worth a
    /// word about kinit (with `negotiate` NTLM users would only be confused).
    winrm_only: bool,
    /// The cache holds a ticket.
    available: bool,
}

impl Tickets {
    fn wanted(self, role: Role) -> bool {
        match role {
            Role::Directory => self.directory,
            Role::Winrm => self.winrm,
            Role::F5 => false,
        }
    }

    /// Kerberos was chosen for the role, so "no ticket" is worth saying.
    fn chosen(self, role: Role) -> bool {
        match role {
            Role::Directory => self.directory,
            Role::Winrm => self.winrm_only,
            Role::F5 => false,
        }
    }

    /// The role logs on with the ticket and needs no password.
    fn covers(self, role: Role) -> bool {
        self.available && self.wanted(role)
    }
}

fn missing_text(missing: &[MissingAccount]) -> String {
    let how = format!(
        "({PASSWORD_ENV} gives one password to every account without its own variable; \
         --password-stdin reads one line per account, in the order of this list; \
         on a terminal revoke asks for each)"
    );
    let set = |m: &MissingAccount| m.variables.join(" or ");
    let kinit = |m: &MissingAccount| match m.no_ticket {
        true => " (no Kerberos ticket to use instead: run kinit, or give the password)",
        false => "",
    };
    match missing {
        [one] => format!(
            "no password for {}{}: set {} (or {PASSWORD_ENV}), pipe it with --password-stdin, \
             or run on a terminal to be prompted; nothing was contacted or changed",
            one.account,
            kinit(one),
            set(one)
        ),
        many => format!(
            "no password for these accounts (nothing was contacted or changed):\n{}\n{how}",
            many.iter()
                .map(|m| format!("  - {}{}: set {}", m.account, kinit(m), set(m)))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// What an account is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Directory,
    Winrm,
    F5,
}

impl Role {
    fn words(self) -> &'static str {
        match self {
            Role::Directory => "LDAP bind",
            Role::Winrm => "WinRM",
            Role::F5 => "BIG-IP",
        }
    }

    fn setting(self) -> &'static str {
        match self {
            Role::Directory => "[directory] bind_user",
            Role::Winrm => "[winrm] user",
            Role::F5 => "[f5] user",
        }
    }

    fn variable(self) -> &'static str {
        match self {
            Role::Directory => DIRECTORY_PASSWORD_ENV,
            Role::Winrm => WINRM_PASSWORD_ENV,
            Role::F5 => F5_PASSWORD_ENV,
        }
    }
}

/// The accounts a command logs on as, by role; None: it does not use that
/// part (a flush of listed servers binds to no directory).
#[derive(Debug, Default, Clone, Copy)]
pub struct Accounts<'a> {
    pub directory: Option<&'a str>,
    pub winrm: Option<&'a str>,
    pub f5: Option<&'a str>,
}

/// One account and every role it plays.
#[derive(Debug, PartialEq, Eq)]
struct Account {
    name: String,
    roles: Vec<Role>,
}

impl Account {
    /// `revoke-op@corp.example.com (LDAP bind and WinRM)`.
    fn describe(&self) -> String {
        let words: Vec<&str> = self.roles.iter().map(|r| r.words()).collect();
        let roles = match words.as_slice() {
            [] => String::new(),
            [one] => one.to_string(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
        };
        format!("{} ({roles})", self.name)
    }
}

impl Accounts<'_> {
    /// The distinct accounts in the documented order (the directory's, the
    /// WinRM one, the BIG-IPs'): the same name in two roles (ignoring case,
    /// as AD and Windows do) is one account, in the place of its first role.
    /// Names are compared as written: `CORP\op` and `op@corp.example.com`
    /// are two accounts to revoke.
    fn order(&self) -> Vec<Account> {
        let mut accounts: Vec<Account> = Vec::new();
        let roles = [
            (Role::Directory, self.directory),
            (Role::Winrm, self.winrm),
            (Role::F5, self.f5),
        ];
        for (role, name) in roles {
            let Some(name) = name.map(str::trim) else {
                continue;
            };
            match accounts.iter_mut().find(|a| same_account(&a.name, name)) {
                Some(account) => account.roles.push(role),
                None => accounts.push(Account {
                    name: name.to_string(),
                    roles: vec![role],
                }),
            }
        }
        accounts
    }
}

fn same_account(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// The `REVOKE_*PASSWORD` variables, read once when revoke starts and
/// removed from its environment (see [`Environment::take`]). Empty is unset.
#[derive(Default)]
pub struct Environment {
    all: Option<Password>,
    directory: Option<Password>,
    winrm: Option<Password>,
    f5: Option<Password>,
}

impl Environment {
    /// Reads the password variables and removes them from the process
    /// environment, so no child process inherits them and nothing later in
    /// the run reads them again. (`/proc/PID/environ` still shows the
    /// environment revoke was started with, to the same user and root: the
    /// docs prefer a prompt or `--password-stdin`.)
    ///
    /// Call it first thing in `main`, before any thread is started: changing
    /// the environment while another thread may read it is undefined
    /// behaviour, which is why `remove_var` is unsafe.
    pub fn take() -> Self {
        let read = |name: &str| {
            let value = std::env::var_os(name)?;
            // SAFETY: called from the first line of `main`, before the tokio
            // runtime, the logger or anything else starts a thread, so no
            // other thread can be reading the environment.
            unsafe { std::env::remove_var(name) };
            let value = value.into_string().ok()?;
            (!value.is_empty()).then(|| Password::new(value))
        };
        Environment {
            all: read(PASSWORD_ENV),
            directory: read(DIRECTORY_PASSWORD_ENV),
            winrm: read(WINRM_PASSWORD_ENV),
            f5: read(F5_PASSWORD_ENV),
        }
    }

    fn own(&self, role: Role) -> Option<&Password> {
        match role {
            Role::Directory => self.directory.as_ref(),
            Role::Winrm => self.winrm.as_ref(),
            Role::F5 => self.f5.as_ref(),
        }
    }
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Environment(<redacted>)")
    }
}

/// Where a reset's new password comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewPassword {
    /// 28 characters from the OS's CSPRNG.
    Generate,
    /// The next line of stdin (after the accounts' lines, if they are read there too).
    Stdin,
}

/// A reset's new passwords: where they come from, and for which accounts
/// (as typed; one password each).
#[derive(Debug, Clone, Copy)]
pub struct NewPasswordsFor<'a> {
    pub source: NewPassword,
    pub accounts: &'a [String],
}

/// Everything secret a run needs: one password per distinct account in
/// `accounts`, and a reset's new passwords, one per account reset.
pub fn gather(
    accounts: &Accounts,
    environment: &Environment,
    from_stdin: bool,
    new_password: Option<NewPasswordsFor>,
) -> Result<Secrets, CredentialError> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let mut lines = stdin.lock();
    let mut prompt = |text: &str| rpassword::prompt_password(text);
    let mut tickets = Tickets {
        directory: DIRECTORY_TICKETS.load(Ordering::Relaxed) && accounts.directory.is_some(),
        winrm: WINRM_TICKETS.load(Ordering::Relaxed) && accounts.winrm.is_some(),
        winrm_only: WINRM_KERBEROS_ONLY.load(Ordering::Relaxed) && accounts.winrm.is_some(),
        available: false,
    };
    if tickets.directory || tickets.winrm {
        // Looks in the cache only; contacts nothing.
        match revoke_core::directory::connection::sasl::ticket_available() {
            Ok(()) => tickets.available = true,
            Err(why) => tracing::debug!("no Kerberos ticket to log on with: {why}"),
        }
    }
    let mut sources = Sources {
        environment,
        stdin: &mut lines,
        from_stdin,
        prompt: terminal.then_some(&mut prompt as &mut Prompt),
        tickets,
    };
    resolve(accounts, &mut sources, new_password)
}

/// Asks the operator for a password, showing this text.
type Prompt<'p> = dyn FnMut(&str) -> std::io::Result<String> + 'p;

/// Where passwords can come from (the terminal and stdin are parameters so
/// the rules can be tested without either).
struct Sources<'a> {
    environment: &'a Environment,
    stdin: &'a mut dyn BufRead,
    from_stdin: bool,
    /// None: stdin is not a terminal, nobody to ask.
    prompt: Option<&'a mut Prompt<'a>>,
    tickets: Tickets,
}

fn resolve(
    accounts: &Accounts,
    sources: &mut Sources,
    new_password: Option<NewPasswordsFor>,
) -> Result<Secrets, CredentialError> {
    let order = accounts.order();
    let tickets = sources.tickets;
    // An account all of whose roles log on with the ticket needs no password.
    let ticketed = |a: &Account| a.roles.iter().all(|r| tickets.covers(*r));
    let mut passwords: Vec<Option<Password>> = Vec::with_capacity(order.len());
    // Lines of stdin go to the accounts without their own variable, in order.
    let on_stdin: Vec<&Account> = order
        .iter()
        .filter(|a| {
            !ticketed(a)
                && own_variable(a, sources.environment)
                    .ok()
                    .flatten()
                    .is_none()
        })
        .collect();
    let mut line = 0;
    for account in &order {
        if let Some(own) = own_variable(account, sources.environment)? {
            passwords.push(Some(own.clone()));
            continue;
        }
        if ticketed(account) {
            // Only a variable may still give one (WinRM's NTLM fallback).
            passwords.push(sources.environment.all.clone());
            continue;
        }
        if sources.from_stdin {
            line += 1;
            match stdin_line(sources.stdin)? {
                Some(password) => passwords.push(Some(password)),
                None => {
                    return Err(CredentialError::StdinShort {
                        line,
                        account: account.describe(),
                        order: numbered(&on_stdin),
                    });
                }
            }
            continue;
        }
        if let Some(all) = &sources.environment.all {
            passwords.push(Some(all.clone()));
            continue;
        }
        match sources.prompt.as_mut() {
            Some(prompt) => {
                let value = prompt(&format!("Password for {}: ", account.describe()))?;
                passwords.push((!value.is_empty()).then(|| Password::new(value)));
            }
            None => passwords.push(None),
        }
    }
    let missing: Vec<MissingAccount> = order
        .iter()
        .zip(&passwords)
        .filter(|(account, p)| p.is_none() && !ticketed(account))
        .map(|(account, _)| MissingAccount {
            account: account.describe(),
            variables: account.roles.iter().map(|r| r.variable()).collect(),
            no_ticket: account.roles.iter().any(|r| tickets.chosen(*r)),
        })
        .collect();
    if !missing.is_empty() {
        return Err(CredentialError::Missing(missing));
    }
    let password_of = |role: Role| {
        // The directory binds with the ticket when there is one (an empty
        // password tells the bind to use the cache).
        if role == Role::Directory && tickets.covers(role) {
            return Secrets::unused();
        }
        order
            .iter()
            .zip(&passwords)
            .find(|(a, _)| a.roles.contains(&role))
            .and_then(|(_, p)| p.clone())
            .unwrap_or_else(Secrets::unused)
    };
    let mut new_passwords = NewPasswords::default();
    match new_password {
        None => {}
        // Each account its own, never one shared by several.
        Some(NewPasswordsFor {
            source: NewPassword::Generate,
            accounts,
        }) => {
            for account in accounts {
                new_passwords.insert(account, password::generate());
            }
        }
        Some(NewPasswordsFor {
            source: NewPassword::Stdin,
            accounts,
        }) => match (stdin_line(sources.stdin)?, accounts) {
            (Some(password), [account]) => new_passwords.insert(account, password),
            (Some(_), _) => return Err(CredentialError::NewPasswordForSeveral(accounts.len())),
            (None, _) => {
                let after = match line {
                    0 => String::new(),
                    n => format!(" (on line {}, after the accounts' passwords)", n + 1),
                };
                return Err(CredentialError::NoNewPassword { after });
            }
        },
    }
    Ok(Secrets {
        operator: password_of(Role::Directory),
        winrm: password_of(Role::Winrm),
        f5: password_of(Role::F5),
        new_passwords,
    })
}

/// The account's own variable, if one of its roles' is set; two that differ
/// are an error (one account, one password).
fn own_variable<'e>(
    account: &Account,
    environment: &'e Environment,
) -> Result<Option<&'e Password>, CredentialError> {
    let mut found: Option<(Role, &Password)> = None;
    for role in &account.roles {
        let Some(password) = environment.own(*role) else {
            continue;
        };
        match found {
            Some((first, earlier)) if earlier.expose() != password.expose() => {
                return Err(CredentialError::Conflict {
                    account: account.name.clone(),
                    first: first.setting(),
                    second: role.setting(),
                    first_variable: first.variable(),
                    second_variable: role.variable(),
                });
            }
            Some(_) => {}
            None => found = Some((*role, password)),
        }
    }
    Ok(found.map(|(_, p)| p))
}

/// `1. revoke-op@corp.example.com (LDAP bind and WinRM), 2. revoke-f5 (BIG-IP)`.
fn numbered(accounts: &[&Account]) -> String {
    accounts
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{}. {}", i + 1, a.describe()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The next line of stdin without its line ending; None at the end of
/// stdin or on an empty line.
fn stdin_line(stdin: &mut dyn BufRead) -> Result<Option<Password>, CredentialError> {
    let mut line = String::new();
    stdin.read_line(&mut line)?;
    // Trimmed in place: no second copy of the secret.
    let len = line.trim_end_matches(['\r', '\n']).len();
    line.truncate(len);
    Ok((!line.is_empty()).then(|| Password::new(line)))
}

/// Where a reset's new passwords go.
pub enum Destination {
    /// `--password-file`: one account's password.
    File(PasswordFile),
    /// `--password-dir`: one file per account, named by its sAMAccountName.
    Dir(PasswordDir),
    /// Neither: a generated password is shown once on a terminal.
    Terminal,
}

/// An account the reset changed: as typed (its password's key) and its
/// sAMAccountName (its file's name, and how it is shown).
#[derive(Debug, Clone)]
pub struct ResetAccount {
    pub input: String,
    pub sam: String,
}

/// After `reset`: each reset account's new password goes to its file, or —
/// if revoke generated it and no file was asked for — to the terminal,
/// once. A password file whose reset did not happen is removed; an account
/// whose reset failed gets no file.
pub fn hand_over(
    passwords: &NewPasswords,
    reset: &[ResetAccount],
    destination: Destination,
    generated: bool,
) -> std::io::Result<()> {
    let terminal = std::io::stderr().is_terminal();
    let of = |account: &ResetAccount| passwords.get(&account.input);
    match destination {
        Destination::File(file) => match reset.first().and_then(of) {
            Some(password) => file.write(password),
            None => {
                file.discard();
                Ok(())
            }
        },
        Destination::Dir(dir) => {
            let mut unsaved: Vec<(&ResetAccount, String)> = Vec::new();
            for account in reset {
                let Some(password) = of(account) else {
                    continue;
                };
                if let Err(error) = dir.write(&account.sam, password) {
                    unsaved.push((account, error.to_string()));
                }
            }
            if unsaved.is_empty() {
                return Ok(());
            }
            // The accounts are reset already: a password that has no file
            // is shown rather than lost, where someone can see it.
            if terminal && generated {
                show(
                    unsaved
                        .iter()
                        .filter_map(|(a, _)| Some((a.sam.as_str(), of(a)?))),
                    "could not be saved in --password-dir",
                );
            }
            Err(std::io::Error::other(format!(
                "the new password of {} could not be written to {}: {}. {}",
                unsaved
                    .iter()
                    .map(|(a, _)| a.sam.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                dir.path.display(),
                unsaved[0].1,
                match terminal && generated {
                    true => "It is shown above instead",
                    false =>
                        "Those accounts have a password nobody knows: reset them again when they are needed",
                }
            )))
        }
        Destination::Terminal if !generated || reset.is_empty() => Ok(()),
        Destination::Terminal if terminal => {
            show(
                reset.iter().filter_map(|a| Some((a.sam.as_str(), of(a)?))),
                "shown once, stored nowhere; clear the screen once noted",
            );
            Ok(())
        }
        Destination::Terminal => {
            eprintln!(
                "note: the new password was not shown (no terminal, no --password-file or \
                 --password-dir); set another one when the user needs the account again"
            );
            Ok(())
        }
    }
}

/// New passwords on stderr (a terminal), each with its account.
fn show<'p>(passwords: impl Iterator<Item = (&'p str, &'p Password)>, note: &str) {
    let passwords: Vec<(&str, &Password)> = passwords.collect();
    match passwords.as_slice() {
        [(user, password)] => {
            eprintln!("New password for {user} ({note}):\n  {}", password.expose())
        }
        many => {
            eprintln!("New passwords ({note}):");
            for (user, password) in many {
                eprintln!("  {user}: {}", password.expose());
            }
        }
    }
}

/// `reset --password-dir`: a private directory (0700, the operator's own)
/// that receives one 0600 file per account, named by its sAMAccountName.
/// Checked, or created, before anything is changed.
pub struct PasswordDir {
    path: std::path::PathBuf,
}

impl PasswordDir {
    /// Checks that `path` is a directory only its owner — the operator — can
    /// enter, or creates it so; and that no file is there yet for a name in
    /// `accounts` that is a sAMAccountName as typed (`alice`, `LAB\alice`):
    /// other names are only known once resolved, and are checked when written.
    pub fn prepare(path: &std::path::Path, accounts: &[String]) -> Result<Self, CredentialError> {
        let problem = |problem: String| CredentialError::PasswordDir {
            path: path.to_path_buf(),
            problem,
        };
        match std::fs::metadata(path) {
            Ok(meta) if !meta.is_dir() => {
                return Err(problem("it exists and is not a directory".into()));
            }
            Ok(meta) => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::{MetadataExt, PermissionsExt};
                    let mode = meta.permissions().mode() & 0o777;
                    if mode & 0o077 != 0 {
                        return Err(problem(format!(
                            "others can enter it (mode {mode:o}): new passwords go only into a \
                             private directory; chmod 700 it, or name a new one (revoke creates it 0700)"
                        )));
                    }
                    // SAFETY: getuid has no preconditions and cannot fail.
                    let me = unsafe { libc::getuid() };
                    if meta.uid() != me {
                        return Err(problem(format!(
                            "it belongs to uid {}, not to you (uid {me}): use a directory of your own",
                            meta.uid()
                        )));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut builder = std::fs::DirBuilder::new();
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
                builder
                    .create(path)
                    .map_err(|e| problem(format!("cannot create it: {e}")))?;
            }
            Err(e) => return Err(problem(format!("cannot read it: {e}"))),
        }
        let dir = PasswordDir {
            path: path.to_path_buf(),
        };
        let taken: Vec<&str> = accounts
            .iter()
            .filter_map(|input| typed_sam(input))
            .filter(|sam| dir.file(sam).is_ok_and(|f| f.exists()))
            .collect();
        if !taken.is_empty() {
            return Err(problem(format!(
                "it already holds a file for {}: revoke never overwrites a password file; move \
                 it away or use another directory",
                taken.join(", ")
            )));
        }
        Ok(dir)
    }

    /// DIR/<sam>, refusing a name that is not one file name.
    fn file(&self, sam: &str) -> std::io::Result<std::path::PathBuf> {
        if sam.is_empty() || sam == "." || sam == ".." || sam.contains(['/', '\\', '\0']) {
            return Err(std::io::Error::other(format!(
                "{sam:?} cannot be a file name"
            )));
        }
        Ok(self.path.join(sam))
    }

    /// Creates DIR/<sam> (0600, never over an existing file) with the password.
    fn write(&self, sam: &str, password: &Password) -> std::io::Result<()> {
        let path = self.file(sam)?;
        let file = PasswordFile::create(&path).map_err(|e| std::io::Error::other(e.to_string()))?;
        file.write(password)
    }
}

/// The sAMAccountName in `alice` or `LAB\alice`; None for a UPN, a mail
/// address or a DN, whose sAMAccountName only the directory knows.
fn typed_sam(input: &str) -> Option<&str> {
    let name = input.rsplit('\\').next().unwrap_or(input).trim();
    (!name.is_empty() && !name.contains(['@', '=', ','])).then_some(name)
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

#[cfg(test)]
mod tests {
    use super::*;

    const OP: &str = "revoke-op@lab.example.test";

    fn env(
        all: Option<&str>,
        directory: Option<&str>,
        winrm: Option<&str>,
        f5: Option<&str>,
    ) -> Environment {
        let p = |v: Option<&str>| v.map(|v| Password::new(v.into()));
        Environment {
            all: p(all),
            directory: p(directory),
            winrm: p(winrm),
            f5: p(f5),
        }
    }

    /// Resolves with `stdin` (read only if `from_stdin`) and a prompt that
    /// answers from `answers`, recording what it asked.
    fn run(
        accounts: &Accounts,
        environment: &Environment,
        from_stdin: bool,
        stdin: &str,
        answers: Option<&[&str]>,
        new_password: Option<NewPassword>,
    ) -> (Result<Secrets, CredentialError>, Vec<String>) {
        let mut asked = Vec::new();
        let mut left: Vec<String> = answers
            .unwrap_or_default()
            .iter()
            .map(|a| a.to_string())
            .collect();
        left.reverse();
        let mut prompt = |text: &str| {
            asked.push(text.to_string());
            Ok(left.pop().unwrap_or_default())
        };
        let mut input = std::io::Cursor::new(stdin.as_bytes().to_vec());
        let mut sources = Sources {
            environment,
            stdin: &mut input,
            from_stdin,
            prompt: answers.is_some().then_some(&mut prompt as &mut Prompt),
            tickets: Tickets::default(),
        };
        let one = ["alice".to_string()];
        let new_password = new_password.map(|source| NewPasswordsFor {
            source,
            accounts: &one,
        });
        let result = resolve(accounts, &mut sources, new_password);
        (result, asked)
    }

    fn all_three<'a>(winrm: &'a str, f5: &'a str) -> Accounts<'a> {
        Accounts {
            directory: Some(OP),
            winrm: Some(winrm),
            f5: Some(f5),
        }
    }

    fn got(secrets: &Secrets) -> [&str; 3] {
        [
            secrets.operator.expose(),
            secrets.winrm.expose(),
            secrets.f5.expose(),
        ]
    }

    #[test]
    fn the_same_name_in_two_roles_is_one_account_in_the_place_of_its_first() {
        let accounts = all_three("REVOKE-OP@lab.example.test", "revoke-f5");
        let order = accounts.order();
        assert_eq!(order.len(), 2);
        assert_eq!(
            order[0].describe(),
            "revoke-op@lab.example.test (LDAP bind and WinRM)"
        );
        assert_eq!(order[1].describe(), "revoke-f5 (BIG-IP)");
        // Written differently: two accounts.
        assert_eq!(all_three("LAB\\revoke-op", "revoke-f5").order().len(), 3);
        let one = all_three(" revoke-op@LAB.example.test", OP).order();
        assert_eq!(one.len(), 1);
        assert_eq!(
            one[0].describe(),
            format!("{OP} (LDAP bind, WinRM and BIG-IP)")
        );
    }

    #[test]
    fn stdin_gives_one_line_per_distinct_account_then_the_new_password() {
        let accounts = all_three("LAB\\revoke-winrm", "revoke-f5");
        let (secrets, asked) = run(
            &accounts,
            &env(Some("from-env"), None, None, None),
            true,
            "dir\r\nwinrm\nf5\nnew\n",
            Some(&[]),
            Some(NewPassword::Stdin),
        );
        let secrets = secrets.unwrap();
        assert_eq!(got(&secrets), ["dir", "winrm", "f5"]);
        assert_eq!(secrets.new_passwords.get("alice").unwrap().expose(), "new");
        assert!(asked.is_empty());

        // An account with its own variable takes no line.
        let (secrets, _) = run(
            &accounts,
            &env(None, None, Some("winrm-env"), None),
            true,
            "dir\nf5\n",
            None,
            None,
        );
        assert_eq!(got(&secrets.unwrap()), ["dir", "winrm-env", "f5"]);

        // Too few lines: which one, for whom, and the whole order.
        let (err, _) = run(
            &accounts,
            &env(None, None, None, None),
            true,
            "dir\n",
            None,
            None,
        );
        let err = err.unwrap_err().to_string();
        assert!(
            err.contains("line 2, for LAB\\revoke-winrm (WinRM)"),
            "{err}"
        );
        assert!(
            err.contains(&format!(
                "1. {OP} (LDAP bind), 2. LAB\\revoke-winrm (WinRM), 3. revoke-f5 (BIG-IP)"
            )),
            "{err}"
        );
        let (err, _) = run(
            &accounts,
            &env(None, None, None, None),
            true,
            "a\nb\nc\n",
            None,
            Some(NewPassword::Stdin),
        );
        let err = err.unwrap_err().to_string();
        assert!(err.contains("on line 4"), "{err}");
    }

    #[test]
    fn revoke_password_is_every_account_s_without_its_own_variable() {
        let accounts = all_three("LAB\\revoke-winrm", "revoke-f5");
        let (secrets, _) = run(
            &accounts,
            &env(Some("all"), None, None, None),
            false,
            "",
            None,
            None,
        );
        assert_eq!(got(&secrets.unwrap()), ["all", "all", "all"]);
        let (secrets, _) = run(
            &accounts,
            &env(Some("all"), Some("d"), None, Some("f")),
            false,
            "",
            None,
            None,
        );
        assert_eq!(got(&secrets.unwrap()), ["d", "all", "f"]);
        // The variables of the roles an account plays are its own.
        let shared = all_three(OP, "revoke-f5");
        let (secrets, _) = run(
            &shared,
            &env(None, None, Some("w"), Some("f")),
            false,
            "",
            None,
            None,
        );
        assert_eq!(got(&secrets.unwrap()), ["w", "w", "f"]);
        let (err, _) = run(
            &shared,
            &env(None, Some("d"), Some("w"), None),
            false,
            "",
            None,
            None,
        );
        let err = err.unwrap_err().to_string();
        assert!(
            err.contains(
                "REVOKE_DIRECTORY_PASSWORD and REVOKE_WINRM_PASSWORD hold different passwords"
            ),
            "{err}"
        );
    }

    #[test]
    fn the_domain_password_never_goes_to_another_account() {
        let accounts = all_three(OP, "revoke-f5");
        // The domain account's variable, nothing for the BIG-IPs' user.
        let (err, _) = run(
            &accounts,
            &env(None, Some("domain"), None, None),
            false,
            "",
            None,
            None,
        );
        let err = err.unwrap_err().to_string();
        assert!(
            err.starts_with("no password for revoke-f5 (BIG-IP): set REVOKE_F5_PASSWORD"),
            "{err}"
        );
        // Prompted: one question per account, each naming it.
        let (secrets, asked) = run(
            &accounts,
            &env(None, None, None, None),
            false,
            "",
            Some(&["domain", "f5"]),
            None,
        );
        assert_eq!(got(&secrets.unwrap()), ["domain", "domain", "f5"]);
        assert_eq!(
            asked,
            [
                format!("Password for {OP} (LDAP bind and WinRM): "),
                "Password for revoke-f5 (BIG-IP): ".to_string()
            ]
        );
        // Unless [f5] user names that account.
        let (secrets, _) = run(
            &all_three(OP, OP),
            &env(None, Some("domain"), None, None),
            false,
            "",
            None,
            None,
        );
        assert_eq!(got(&secrets.unwrap()), ["domain", "domain", "domain"]);
    }

    #[test]
    fn nothing_to_read_names_every_account_and_its_variable() {
        let accounts = all_three("LAB\\revoke-winrm", "revoke-f5");
        let (err, _) = run(
            &accounts,
            &env(None, None, None, Some("f")),
            false,
            "",
            None,
            None,
        );
        let err = err.unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "  - {OP} (LDAP bind): set REVOKE_DIRECTORY_PASSWORD\n"
            )),
            "{err}"
        );
        assert!(
            err.contains("  - LAB\\revoke-winrm (WinRM): set REVOKE_WINRM_PASSWORD\n"),
            "{err}"
        );
        assert!(!err.contains("revoke-f5"), "{err}");
        assert!(
            err.contains("REVOKE_PASSWORD") && err.contains("--password-stdin"),
            "{err}"
        );
        // An empty answer at the prompt is no password.
        let flush = Accounts {
            winrm: Some("LAB\\revoke-winrm"),
            ..Accounts::default()
        };
        let (err, _) = run(
            &flush,
            &env(None, None, None, None),
            false,
            "",
            Some(&[""]),
            None,
        );
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("REVOKE_WINRM_PASSWORD")
        );
        // A role the run does not use gets no password at all.
        let (secrets, _) = run(
            &flush,
            &env(Some("all"), None, None, None),
            false,
            "",
            None,
            None,
        );
        assert_eq!(got(&secrets.unwrap()), ["", "all", ""]);
    }

    #[test]
    fn each_account_of_a_reset_gets_its_own_generated_password() {
        let accounts = Accounts {
            directory: Some(OP),
            ..Accounts::default()
        };
        let three = ["alice".to_string(), "LAB\\bob".into(), "carol@lab".into()];
        let environment = env(Some("op"), None, None, None);
        // No terminal; `stdin` as given.
        let resolve_with = |stdin: &[u8], source: NewPassword| {
            let mut input = std::io::Cursor::new(stdin.to_vec());
            let mut sources = Sources {
                environment: &environment,
                stdin: &mut input,
                from_stdin: false,
                prompt: None,
                tickets: Tickets::default(),
            };
            let accounts_for = NewPasswordsFor {
                source,
                accounts: &three,
            };
            resolve(&accounts, &mut sources, Some(accounts_for))
        };
        let secrets = resolve_with(b"", NewPassword::Generate).unwrap();
        let got: Vec<&str> = three
            .iter()
            .map(|a| secrets.new_passwords.get(a).unwrap().expose())
            .collect();
        assert_eq!(got.len(), 3);
        assert!(
            got[0] != got[1] && got[1] != got[2] && got[0] != got[2],
            "shared"
        );
        // One line of stdin cannot serve several accounts.
        let err = resolve_with(b"new\n", NewPassword::Stdin).unwrap_err();
        assert!(err.to_string().contains("names 3 accounts"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn the_password_dir_is_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        // Created 0700 when missing.
        let fresh = tmp.path().join("new");
        PasswordDir::prepare(&fresh, &[]).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // Refused when others can enter it.
        let open = tmp.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = PasswordDir::prepare(&open, &[]).err().unwrap().to_string();
        assert!(err.contains("others can enter it (mode 755)"), "{err}");
        // A file already there for a name typed as a sAMAccountName.
        std::fs::write(fresh.join("bob"), "old").unwrap();
        let err = PasswordDir::prepare(&fresh, &["alice".into(), "LAB\\bob".into()])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("already holds a file for bob"), "{err}");
        // Written 0600, one file per account; never over an existing one.
        let dir = PasswordDir::prepare(&fresh, &["alice@lab".into()]).unwrap();
        dir.write("alice", &Password::new("pw-a".into())).unwrap();
        let written = fresh.join("alice");
        assert_eq!(std::fs::read_to_string(&written).unwrap(), "pw-a\n");
        let mode = std::fs::metadata(&written).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(dir.write("bob", &Password::new("pw-b".into())).is_err());
        assert_eq!(std::fs::read_to_string(fresh.join("bob")).unwrap(), "old");
        assert!(dir.write("../x", &Password::new("p".into())).is_err());
    }

    #[test]
    fn a_ticket_stands_in_for_the_kerberos_parts_passwords_only() {
        let accounts = Accounts {
            directory: Some("op@lab"),
            winrm: Some("LAB\\svc"),
            f5: Some("f5admin"),
        };
        let environment = env(None, Some("dir-pw"), None, None);
        let run = |tickets: Tickets, stdin: Option<&str>| {
            let mut input = std::io::Cursor::new(stdin.unwrap_or_default().as_bytes().to_vec());
            let mut sources = Sources {
                environment: &environment,
                stdin: &mut input,
                from_stdin: stdin.is_some(),
                prompt: None,
                tickets,
            };
            resolve(&accounts, &mut sources, None)
        };
        let with = Tickets {
            directory: true,
            winrm: true,
            winrm_only: false,
            available: true,
        };
        // Only the BIG-IP's account takes a line; the directory binds with
        // the ticket though its variable is set; WinRM has no password.
        let secrets = run(with, Some("f5-pw\n")).unwrap();
        assert!(secrets.operator.is_empty());
        assert!(secrets.winrm.is_empty());
        assert_eq!(secrets.f5.expose(), "f5-pw");
        // No ticket in the cache: the passwords are needed as before (the
        // directory's from its variable). WinRM's negotiate is NTLM to many:
        // no word about kinit for it (the directory's: kerberos_ldap.rs).
        let none = Tickets {
            available: false,
            ..with
        };
        let error = run(none, None).unwrap_err().to_string();
        assert!(error.contains("LAB\\svc (WinRM): set"), "{error}");
        assert!(!error.contains("kinit"), "{error}");
        let secrets = run(none, Some("winrm-pw\nf5-pw\n")).unwrap();
        assert_eq!(secrets.operator.expose(), "dir-pw");
        assert_eq!(secrets.winrm.expose(), "winrm-pw");
    }
}
