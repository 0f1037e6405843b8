//! The command line.

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};

use revoke_core::directory::convergence::DirectWrite;
use revoke_core::plan::Method;
use revoke_winrm::{Auth, Scheme};

#[derive(Debug, Parser)]
#[command(
    name = "revoke",
    version,
    about = "Close the window in which a disabled or reset account keeps reading mail through Exchange",
    long_about = "When an account is disabled or its password reset, Exchange's IIS keeps the \
                  user's logon token cached, so phones and Outlook keep working for hours. \
                  revoke flushes those caches on every Exchange server at once, over WinRM."
)]
pub struct Cli {
    /// More detail on stderr (-v: debug, -vv: trace). Passwords are never logged.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Disable accounts in AD, wait until every DC has it, then flush every Exchange server.
    Disable(DisableArgs),
    /// Reset a password in AD (twice, so the old one dies), wait for every DC, then flush.
    Reset(ResetArgs),
    /// List the Exchange servers found in AD (--check: probe WinRM on each).
    Servers(ServersArgs),
    /// Recycle the Exchange application pools (or iisreset) on every server.
    Flush(FlushArgs),
    /// Enable accounts revoke disabled (undo a mistaken disable): the same checks, journal and wait for every DC; no flush.
    Enable(EnableArgs),
    /// What revoke did, from the journal: one line per run, or one run in full (revoke history RUN_ID).
    History(HistoryArgs),
    /// Finish what a run left open (servers not flushed, DCs not confirmed, BIG-IPs not clean); never changes an account again.
    Retry(RetryArgs),
    /// Check, changing nothing, everything a run needs: the config, the passwords, each DC, each Exchange server, each BIG-IP.
    Doctor(DoctorArgs),
    /// Print the shell completion script (e.g. `revoke completions bash > /etc/bash_completion.d/revoke`).
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (revoke.1 and one per command) into a directory.
    Man {
        /// Where to write them, e.g. /usr/local/share/man/man1.
        #[arg(value_name = "DIR")]
        dir: std::path::PathBuf,
    },
    /// Run a simulated Exchange estate on loopback until Ctrl-C.
    #[cfg(feature = "lab")]
    Lab(LabArgs),
    /// Start an in-process lab and flush it: see what revoke does in seconds.
    #[cfg(feature = "lab")]
    Demo(DemoArgs),
}

impl Command {
    /// The `--config` of a command that may use Kerberos (Some(None): the
    /// default file); None for commands that log on nowhere.
    pub fn kerberos_config(&self) -> Option<Option<&std::path::Path>> {
        let flag = match self {
            Command::Disable(a) => &a.revocation.run.config,
            Command::Reset(a) => &a.revocation.run.config,
            Command::Retry(a) => &a.revocation.run.config,
            Command::Servers(a) => &a.run.config,
            Command::Flush(a) => &a.run.config,
            Command::Enable(a) => &a.run.config,
            Command::Doctor(a) => &a.config,
            _ => return None,
        };
        Some(flag.as_deref())
    }
}

/// How revoke binds to the directory (`--directory-auth`, `[directory] auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectoryAuthKind {
    /// A simple bind with the password, over LDAPS or StartTLS.
    Simple,
    /// SASL GSSAPI with a Kerberos ticket (kinit) or the password; plain ldap:// is sealed.
    Kerberos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
}

/// Where the directory is and how revoke treats it (override `[directory]`).
#[derive(Debug, Args, Default)]
pub struct DirectoryArgs {
    /// A domain controller to start from: ldaps://HOST[:PORT], or ldap://HOST[:PORT] with --starttls.
    #[arg(long, value_name = "URL")]
    pub directory: Option<String>,
    /// Upgrade an ldap:// connection with StartTLS before binding.
    #[arg(long)]
    pub starttls: bool,
    /// CA certificate(s) in PEM that sign the domain controllers' certificates.
    #[arg(long, value_name = "FILE")]
    pub directory_ca_file: Option<PathBuf>,
    /// The account for the LDAP bind (UPN; password: $REVOKE_DIRECTORY_PASSWORD) [default: [directory] bind_user].
    #[arg(long, value_name = "UPN")]
    pub bind_user: Option<String>,
    /// simple (bind with the password over LDAPS/StartTLS) or kerberos (the ticket cache, else the password; ldap:// is sealed) [default: [directory] auth, else simple].
    #[arg(long, value_enum, value_name = "AUTH")]
    pub directory_auth: Option<DirectoryAuthKind>,
}

/// How the account change is made and confirmed.
#[derive(Debug, Args)]
pub struct ChangeArgs {
    #[command(flatten)]
    pub directory: DirectoryArgs,
    /// Give up waiting for the domain controllers after this many seconds [default: 60].
    #[arg(long, value_name = "SECS")]
    pub replication_timeout: Option<u64>,
    /// Do not wait until every domain controller has the change before flushing.
    #[arg(long)]
    pub no_wait_replication: bool,
    /// A writable DC that lags or refuses forced replication: auto writes the change there directly, never only waits [default: [directory] direct_write, else auto].
    #[arg(long, value_name = "POLICY", value_parser = direct_write())]
    pub direct_write: Option<DirectWrite>,
    /// Allow accounts with adminCount=1 or in privileged groups.
    #[arg(long)]
    pub allow_privileged: bool,
    /// The change request this run belongs to (e.g. INC123): in the report, the journal and, with [directory] stamp, the account's info [required with [policy] require_ticket].
    #[arg(long, value_name = "ID")]
    pub ticket: Option<String>,
    /// Why, in a few words: in the report, the journal and, with [directory] stamp, the account's info.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Do not ask for confirmation (needed when there is no terminal to ask on).
    #[arg(long, short)]
    pub yes: bool,
}

/// Everything `disable` and `reset` share: the change, then the flush.
#[derive(Debug, Args)]
pub struct RevocationArgs {
    #[command(flatten)]
    pub change: ChangeArgs,
    #[command(flatten)]
    pub journal: JournalArgs,
    #[command(flatten)]
    pub flush: FlushOptions,
    #[command(flatten)]
    pub winrm: WinrmArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct DisableArgs {
    /// The accounts: sAMAccountName, DOMAIN\name, UPN, mail address or DN.
    #[arg(required_unless_present = "from_file", value_name = "USER")]
    pub users: Vec<String>,
    /// Also the accounts in this file, one per line (# comments and blank lines ignored; - for stdin).
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
    #[command(flatten)]
    pub revocation: RevocationArgs,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The accounts: sAMAccountName, DOMAIN\name, UPN, mail address or DN.
    #[arg(required_unless_present = "from_file", value_name = "USER")]
    pub users: Vec<String>,
    /// Also the accounts in this file, one per line (# comments and blank lines ignored; - for stdin).
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
    /// Generate the new password (the default): 28 characters from the OS's CSPRNG.
    #[arg(long, conflicts_with = "new_password_stdin")]
    pub generate: bool,
    /// Read the new password from stdin (the line after the accounts' passwords, if --password-stdin is given too). One account only.
    #[arg(long)]
    pub new_password_stdin: bool,
    /// The user must change the password at next logon (pwdLastSet = 0).
    #[arg(long)]
    pub must_change: bool,
    /// Write the new password to this file (created, mode 0600; must not exist). One account only.
    #[arg(long, value_name = "FILE", conflicts_with = "password_dir")]
    pub password_file: Option<PathBuf>,
    /// Write each account's new password to DIR/<sAMAccountName> (created, mode 0600; must not exist). DIR must be private (0700) or is created so.
    #[arg(long, value_name = "DIR")]
    pub password_dir: Option<PathBuf>,
    #[command(flatten)]
    pub revocation: RevocationArgs,
}

#[derive(Debug, Args)]
pub struct ServersArgs {
    /// Connect to each server over WinRM and authenticate (runs `hostname`).
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub directory: DirectoryArgs,
    #[command(flatten)]
    pub winrm: WinrmArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct FlushArgs {
    #[command(flatten)]
    pub journal: JournalArgs,
    #[command(flatten)]
    pub flush: FlushOptions,
    #[command(flatten)]
    pub winrm: WinrmArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub directory: DirectoryArgs,
    #[command(flatten)]
    pub winrm: WinrmArgs,
    /// Config file [default: $REVOKE_CONFIG, else <config dir>/revoke/revoke.toml].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Read the passwords from stdin, one line per distinct account, as for disable (see `revoke disable --help`).
    #[arg(long)]
    pub password_stdin: bool,
    /// human: a table of the checks and their fixes; json: the same as a JSON document (docs/operations.md).
    #[arg(long, value_enum, default_value = "human")]
    pub output: OutputFormat,
}

/// Where a run that changes something is recorded (docs/journal.md).
#[derive(Debug, Args, Default)]
pub struct JournalArgs {
    /// The journal file (JSON lines, created 0600) [default: [journal] path, else <state dir>/revoke/journal.jsonl].
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Do not journal this run (the report says so): a run killed midway then leaves no record, and `enable` cannot tell which accounts revoke disabled.
    #[arg(long, conflicts_with = "journal")]
    pub no_journal: bool,
}

#[derive(Debug, Args)]
pub struct EnableArgs {
    /// The accounts: sAMAccountName, DOMAIN\name, UPN, mail address or DN.
    #[arg(required = true, value_name = "USER")]
    pub users: Vec<String>,
    /// Enable an account although neither the journal nor revoke's stamp in its info shows revoke disabled it.
    #[arg(long)]
    pub force: bool,
    /// Resolve, check and look, change nothing: show what would be enabled where.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub change: ChangeArgs,
    #[command(flatten)]
    pub journal: JournalArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// One run in full: what was done and what not.
    #[arg(value_name = "RUN_ID")]
    pub run_id: Option<String>,
    /// Only the last N runs [default: 20].
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
    /// Only runs that changed this account (sAMAccountName, UPN, DN, or as typed).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// human: lines of text; json: the runs' records folded per run.
    #[arg(long, value_enum, default_value = "human")]
    pub output: OutputFormat,
    /// The journal file [default: [journal] path, else <state dir>/revoke/journal.jsonl].
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Config file, for its [journal] path [default: $REVOKE_CONFIG, else <config dir>/revoke/revoke.toml].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The run to finish, from the journal (revoke history lists them).
    #[arg(value_name = "RUN_ID", required_unless_present = "report")]
    pub run_id: Option<String>,
    /// Take the run from its JSON report (docs/report.md) instead of the journal.
    #[arg(long, value_name = "FILE", conflicts_with = "run_id")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub revocation: RevocationArgs,
}

/// What a flush does, and where (override `[flush]` and `servers`).
#[derive(Debug, Args, Default)]
pub struct FlushOptions {
    /// Servers to flush (overrides the config file): HOST, HOST:PORT, comma-separated.
    #[arg(long, value_name = "HOST[,HOST...]")]
    pub servers: Option<Vec<String>>,
    /// recycle: the listed application pools (no outage); iisreset: restart IIS, in waves.
    #[arg(long, value_parser = method())]
    pub method: Option<Method>,
    /// Application pool to recycle (repeatable) [default: the Exchange pools].
    #[arg(long = "pool", value_name = "NAME")]
    pub pools: Vec<String>,
    /// Servers handled at the same time [default: every server, up to 1024].
    #[arg(long, value_name = "N")]
    pub parallel: Option<usize>,
    /// Give up on a server after this many seconds [default: 120].
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// iisreset: how many servers may be restarting at once [default: 1].
    #[arg(long, value_name = "N")]
    pub max_unavailable: Option<usize>,
    /// Wait this long for the old worker processes to exit after a recycle [default: 90].
    #[arg(long, value_name = "SECS")]
    pub drain_timeout: Option<u64>,
    /// Connect and look, change nothing: show what would be run where.
    #[arg(long)]
    pub dry_run: bool,
}

/// How to reach the Exchange servers (override `[winrm]`).
#[derive(Debug, Args, Default)]
pub struct WinrmArgs {
    /// WinRM user (DOMAIN\user or user@domain; password: $REVOKE_WINRM_PASSWORD) [default: [winrm] user].
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// http (Windows' default listener, every message sealed) or https [default: [winrm] scheme, else http].
    #[arg(long, value_parser = scheme())]
    pub scheme: Option<Scheme>,
    /// WinRM port of servers named without one [default: 5985 for http, 5986 for https].
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// negotiate (Kerberos with a ticket, else NTLM if [winrm] allow_ntlm; sealed over http), kerberos (only), ntlm (only) or basic (https only) [default: [winrm] auth, else negotiate].
    #[arg(long, value_parser = auth())]
    pub auth: Option<Auth>,
    /// CA certificate(s) in PEM that sign the servers' HTTPS certificates.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

/// Where the settings and the password come from, and how the result is shown.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Config file [default: $REVOKE_CONFIG, else <config dir>/revoke/revoke.toml].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Read the passwords from stdin, one line per distinct account, in this
    /// order: [directory] bind_user, [winrm] user, [f5] user [else
    /// $REVOKE_PASSWORD, else a prompt per account on the terminal].
    ///
    /// Only the accounts the command logs on as take a line, and an account
    /// whose own variable is set ($REVOKE_DIRECTORY_PASSWORD,
    /// $REVOKE_WINRM_PASSWORD, $REVOKE_F5_PASSWORD) takes none. The same name
    /// in two places (compared ignoring case, as written: DOMAIN\user and a
    /// UPN are two names) is one account and one line. `reset
    /// --new-password-stdin` reads the line after these.
    #[arg(long)]
    pub password_stdin: bool,
    /// human: progress on stderr and a table on stdout; json: the report (docs/report.md) on stdout.
    #[arg(long, value_enum, default_value = "human")]
    pub output: OutputFormat,
    /// No progress display.
    #[arg(long, short)]
    pub quiet: bool,
    /// Show every pool of every server in the human report.
    #[arg(long)]
    pub detail: bool,
}

/// A parser for an enum of another crate that names its own values, so each
/// name is spelled once, where the enum is defined.
fn named<T: Copy + Send + Sync + 'static>(
    all: &'static [T],
    name: fn(T) -> &'static str,
) -> impl TypedValueParser<Value = T> {
    let values = all
        .iter()
        .map(move |v| clap::builder::PossibleValue::new(name(*v)));
    PossibleValuesParser::new(values).map(move |chosen| {
        *all.iter()
            .find(|v| name(**v) == chosen)
            .expect("clap only passes a listed value")
    })
}

fn method() -> impl TypedValueParser<Value = Method> {
    named(&Method::ALL, Method::name)
}

fn direct_write() -> impl TypedValueParser<Value = DirectWrite> {
    named(&DirectWrite::ALL, DirectWrite::name)
}

fn scheme() -> impl TypedValueParser<Value = Scheme> {
    named(&Scheme::ALL, Scheme::name)
}

fn auth() -> impl TypedValueParser<Value = Auth> {
    named(&Auth::ALL, Auth::name)
}

#[cfg(feature = "lab")]
fn lab_transport() -> impl TypedValueParser<Value = revoke_lab::LabTransport> {
    use revoke_lab::LabTransport;
    named(&LabTransport::ALL, LabTransport::name)
}

#[cfg(feature = "lab")]
#[derive(Debug, Args)]
pub struct LabArgs {
    /// Number of simulated Exchange servers [default: 8].
    #[arg(long)]
    pub servers: Option<usize>,
    /// Address to listen on (loopback only is sensible) [default: 127.0.0.1].
    #[arg(long)]
    pub listen: Option<std::net::IpAddr>,
    /// First port (server i listens on P+2i for HTTP, P+2i+1 for HTTPS) [default: any free].
    #[arg(long, value_name = "P")]
    pub base_port: Option<u16>,
    /// Write a revoke.toml pointing at the lab (and lab-ca.pem beside it).
    #[arg(long, value_name = "FILE")]
    pub write_config: Option<PathBuf>,
    /// Which listener the written config uses: http (NTLM, sealed; Windows' default), https-basic, https-negotiate.
    #[arg(long, value_parser = lab_transport(), default_value = "http")]
    pub transport: revoke_lab::LabTransport,
    /// Lab settings and faults (see docs/lab.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Account the lab accepts [default: revoke-admin].
    #[arg(long)]
    pub admin_user: Option<String>,
    /// Its password [default: the documented lab password]. A lab secret, not a real one.
    #[arg(long)]
    pub admin_password: Option<String>,
    /// Added to every HTTP response, in milliseconds.
    #[arg(long)]
    pub latency_ms: Option<u64>,
    /// How long each app pool recycle takes, in milliseconds.
    #[arg(long)]
    pub recycle_ms: Option<u64>,
    /// Serve Exchange's client endpoints (EWS, ActiveSync, OWA, MAPI, RPC),
    /// validating Basic logons with LDAP binds against this directory
    /// (ldaps://HOST, or ldap://HOST with StartTLS). Repeat for more DCs.
    #[arg(long, value_name = "URL", requires = "directory_ca")]
    pub directory: Vec<String>,
    /// PEM file of the CA that signed the directory's certificates.
    #[arg(long, value_name = "FILE", requires = "directory")]
    pub directory_ca: Option<PathBuf>,
    /// The whole estate: an embedded AD (two DCs, sample users), the servers' client front ends
    /// against it and a lab BIG-IP; writes a complete revoke.toml (--write-config, default
    /// lab/revoke.toml) and prints the users and passwords to try.
    #[arg(long, conflicts_with_all = ["directory", "directory_ca"])]
    pub embedded_directory: bool,
    /// Accept Kerberos with the keys in FILE (of HTTP/exNN.DOMAIN, e.g. from
    /// `samba-tool domain exportkeytab`).
    #[arg(long, value_name = "FILE")]
    pub keytab: Option<PathBuf>,
    /// Name the servers exNN.DOMAIN in the written config (Kerberos needs
    /// names; map them to the listen address in /etc/hosts).
    #[arg(long, value_name = "DOMAIN")]
    pub host_suffix: Option<String>,
    /// Refuse NTLM, like a hardened estate (Kerberos only; needs --keytab).
    #[arg(long, requires = "keytab")]
    pub refuse_ntlm: bool,
}

#[cfg(feature = "lab")]
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of simulated Exchange servers.
    #[arg(long, default_value_t = 8)]
    pub servers: usize,
    /// human: the story and the table; json: only revoke's report, on stdout.
    #[arg(long, value_enum, default_value = "human")]
    pub output: OutputFormat,
    /// No progress display.
    #[arg(long, short)]
    pub quiet: bool,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    /// `revoke CMD --help` explains every flag and argument.
    #[test]
    fn every_flag_says_what_it_is_for() {
        use clap::CommandFactory;
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if arg.get_help().is_none() && !builtin {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "revoke", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }

    #[test]
    fn every_auth_is_offered() {
        use clap::CommandFactory;
        let mut command = super::Cli::command();
        let flush = command.find_subcommand_mut("flush").unwrap();
        let help = flush.render_long_help().to_string();
        for auth in ["negotiate", "kerberos", "ntlm", "basic"] {
            assert!(help.contains(auth), "{auth}: {help}");
        }
        let disable = command.find_subcommand_mut("disable").unwrap();
        let help = disable.render_long_help().to_string();
        assert!(help.contains("--directory-auth"), "{help}");
    }
}
