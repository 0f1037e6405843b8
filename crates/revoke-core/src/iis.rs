//! The IIS commands an Exchange server understands (docs/windows-behaviour.md §5), built
//! from validated input only, and the parsers for what they print.
//!
//! Every parser here reads untrusted text from a remote machine: it accepts
//! `\r\n` or `\n`, blank lines, extra whitespace and extra fields, skips
//! lines it does not understand, and never panics.

use thiserror::Error;

/// appcmd is not on PATH on Windows: always call it by its full path.
pub const APPCMD: &str = r"%windir%\system32\inetsrv\appcmd.exe";

/// The Exchange HTTP application pools whose workers cache logon tokens.
pub const EXCHANGE_POOLS: [&str; 5] = [
    "MSExchangeSyncAppPool",
    "MSExchangeServicesAppPool",
    "MSExchangeOWAAppPool",
    "MSExchangeRPCProxyFrontEndAppPool",
    "MSExchangeMAPIFrontEndAppPool",
];

/// Also serves Exchange clients on Exchange 2010 and 2007.
pub const LEGACY_POOL: &str = "DefaultAppPool";

/// The longest pool name accepted (IIS allows more; real pools are far shorter).
pub const MAX_POOL_NAME_LEN: usize = 64;

/// Human wording of the allowed character set, used in error messages.
const ALLOWED_CHARS: &str = "letters, digits, space, '.', '_', '-'";

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid application pool name {name:?}: {reason}")]
pub struct InvalidPoolName {
    pub name: String,
    pub reason: String,
}

/// An application pool name that is safe to put on a command line:
/// letters, digits, space, `.`, `_`, `-`; 1..=64 characters.
///
/// This type is the guarantee that nothing a user typed reaches a remote
/// cmd.exe unvalidated: none of cmd's metacharacters (`"`, `%`, `&`, `|`,
/// `^`, `<`, `>`, ...) can be inside one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct PoolName(String);

impl PoolName {
    pub fn parse(name: &str) -> Result<Self, InvalidPoolName> {
        match pool_name_problem(name) {
            None => Ok(Self(name.to_owned())),
            Some(reason) => Err(InvalidPoolName {
                name: name.to_owned(),
                reason,
            }),
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PoolName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `c` may appear in a pool name.
fn is_pool_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-')
}

/// What is wrong with `name` as a pool name, in plain words; `None` if valid.
fn pool_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".to_owned());
    }
    // The character check comes first: it is the one that matters for safety
    // and the most useful thing to tell the user.
    if let Some(c) = name.chars().find(|&c| !is_pool_char(c)) {
        return Some(format!(
            "contains {}, which is not allowed; allowed: {ALLOWED_CHARS}",
            describe_char(c)
        ));
    }
    // Only ASCII is left, so bytes are characters.
    if name.len() > MAX_POOL_NAME_LEN {
        return Some(format!(
            "is {} characters long; at most {MAX_POOL_NAME_LEN} are allowed",
            name.len()
        ));
    }
    if name.starts_with(' ') {
        return Some("starts with a space".to_owned());
    }
    if name.ends_with(' ') {
        return Some("ends with a space".to_owned());
    }
    None
}

/// A character quoted for an error message; invisible ones are escaped so the
/// user can see what they typed (a tab, a non-breaking space...).
fn describe_char(c: char) -> String {
    if c.is_control() || c.is_whitespace() {
        format!("'{}' (U+{:04X})", c.escape_default(), u32::from(c))
    } else {
        format!("'{c}'")
    }
}

/// Exchange version as read from AD (`serialNumber`) or the config, e.g. 15.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExchangeVersion {
    pub major: u32,
    pub minor: u32,
}

impl ExchangeVersion {
    /// Parses "15.1", "14.3" or AD's "Version 15.1 (Build 30225.42)".
    /// A missing minor is 0 ("14" is 14.0); components past the minor
    /// ("14.3.123") are checked to be numbers and otherwise ignored.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = strip_prefix_ignore_case(text, "Version")
            .map(str::trim_start)
            .unwrap_or(text);
        let end = text
            .find(|c: char| c.is_whitespace() || c == '(')
            .unwrap_or(text.len());
        let (number, rest) = text.split_at(end);
        // Only AD's "(Build N)" suffix may follow the number.
        let rest = rest.trim_start();
        if !rest.is_empty() && !rest.starts_with('(') {
            return None;
        }
        let mut parts = number.split('.').map(parse_decimal);
        let major = parts.next()??;
        let minor = parts.next().unwrap_or(Some(0))?;
        if parts.any(|p| p.is_none()) {
            return None;
        }
        Some(Self { major, minor })
    }
    /// Exchange 2010 (14.x) and 2007 (8.x) also serve clients from DefaultAppPool.
    pub fn uses_default_app_pool(&self) -> bool {
        matches!(self.major, 14 | 8)
    }
}

impl std::fmt::Display for ExchangeVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A non-empty run of ASCII digits that fits a u32 (`str::parse` alone would
/// also take a leading `+`).
fn parse_decimal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `text` without `prefix`, compared ASCII case-insensitively.
fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// The default pools for a server of this version (unknown version: modern list).
pub fn default_pools(version: Option<ExchangeVersion>) -> Vec<PoolName> {
    let legacy = version.is_some_and(|v| v.uses_default_app_pool());
    EXCHANGE_POOLS
        .iter()
        .chain(legacy.then_some(&LEGACY_POOL))
        .map(|name| PoolName((*name).to_owned()))
        .collect()
}

/// A remote command: what is sent as WinRM Command + Arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCommand {
    pub program: String,
    pub args: Vec<String>,
    /// Changes state on the server (recycle, iisreset): never sent in a dry run,
    /// never repeated blindly.
    pub mutating: bool,
}

impl RemoteCommand {
    /// The command line as cmd.exe sees it (program and arguments joined by spaces).
    pub fn command_line(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl std::fmt::Display for RemoteCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.command_line())
    }
}

/// Builds a command from fixed text and validated values only.
fn command(program: &str, args: &[&str], mutating: bool) -> RemoteCommand {
    RemoteCommand {
        program: program.to_owned(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        mutating,
    }
}

pub fn hostname() -> RemoteCommand {
    command("hostname", &[], false)
}
pub fn list_apppools() -> RemoteCommand {
    command(APPCMD, &["list", "apppool"], false)
}
pub fn list_workers() -> RemoteCommand {
    command(APPCMD, &["list", "wp"], false)
}
/// `appcmd recycle apppool /apppool.name:"NAME"`
pub fn recycle(pool: &PoolName) -> RemoteCommand {
    // Quoted so names with spaces stay one argument for cmd.exe; PoolName
    // guarantees there is no quote inside to break out of it.
    let name_arg = format!("/apppool.name:\"{pool}\"");
    command(APPCMD, &["recycle", "apppool", &name_arg], true)
}
/// `iisreset /noforce`
pub fn iisreset() -> RemoteCommand {
    command("iisreset", &["/noforce"], true)
}
/// `iisreset /status`
pub fn iisreset_status() -> RemoteCommand {
    command("iisreset", &["/status"], false)
}

/// What ends each part of a [`Batch`] on stdout: `#revoke-end LABEL N#`.
const PART_END: &str = "#revoke-end";

/// Several commands in one cmd.exe line, run one after another, so that they
/// cost one WinRM command (Command, Receive, Signal) instead of one each.
/// Each part is followed by a line that names it and says its exit code, so
/// its output and result are still known one by one:
///
/// ```text
/// PART1 & call echo #revoke-end LABEL1 %^errorlevel%# & PART2 & call echo #revoke-end LABEL2 %^errorlevel%#
/// ```
///
/// - `&` runs the next command whatever the previous one's result: a failing
///   part does not keep the others from running or from being reported.
/// - `call echo %^errorlevel%`, not `echo %errorlevel%`: cmd.exe expands
///   `%VAR%` once for the whole line when it reads it, before anything runs,
///   so `%errorlevel%` would print the value from before the line (0) after
///   every part. Written `%^errorlevel%`, the reference survives that first
///   expansion (in a `cmd /c` line an undefined `%NAME%` stays as typed, and
///   `^errorlevel` is no variable), the caret is then removed as an escape
///   outside quotes, and `call` expands its command a second time when it
///   runs, after the part before it: it prints that part's exit code.
///   Source: the answers by jeb and dbenham to "How does the Windows Command
///   Interpreter (CMD.EXE) parse scripts?" (https://stackoverflow.com/q/4094699:
///   phase 1 percent expansion of the whole line, command-line mode keeps
///   undefined variables, phase 2 caret escapes, phase 6 CALL expands again).
///   Not checked on a Windows host here; the lab's cmd.exe implements those
///   rules, not this construct (crates/revoke-lab/src/iis/command.rs).
/// - No `%`, `^`, `&`, `"` or `#` can come from a part's own text other than
///   as written here: parts are built from fixed text and [`PoolName`]s only.
///   The marker's `#`s keep its exit code apart from the trailing space echo
///   prints before the next `&`, and no appcmd, iisreset or hostname output
///   line contains `#revoke-end`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    parts: Vec<Part>,
}

/// One command of a [`Batch`] and the label its end marker carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub label: String,
    pub command: RemoteCommand,
}

/// What one part of a [`Batch`] printed on stdout, and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartOutput {
    pub label: String,
    pub stdout: String,
    pub exit_code: i32,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a part. Labels are fixed text of this program: lowercase ASCII
    /// letters, digits and `-`, each label once.
    pub fn push(&mut self, label: &str, command: RemoteCommand) {
        assert!(
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && self.parts.iter().all(|p| p.label != label),
            "bad batch label {label:?}"
        );
        self.parts.push(Part {
            label: label.to_owned(),
            command,
        });
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The one command line that runs every part.
    pub fn command(&self) -> RemoteCommand {
        let line = self
            .parts
            .iter()
            .map(|p| {
                format!(
                    "{} & call echo {PART_END} {} %^errorlevel%#",
                    p.command.command_line(),
                    p.label
                )
            })
            .collect::<Vec<_>>()
            .join(" & ");
        RemoteCommand {
            program: line,
            args: Vec::new(),
            mutating: self.parts.iter().any(|p| p.command.mutating),
        }
    }

    /// The parts that have ended, in order, read from what the line printed
    /// on stdout so far (a part has ended once its marker line is complete).
    pub fn finished(&self, stdout: &str) -> Vec<PartOutput> {
        let mut done = Vec::new();
        let mut text = String::new();
        let mut lines = stdout.split_inclusive('\n');
        for part in &self.parts {
            let marker = format!("{PART_END} {} ", part.label);
            let ended = lines.by_ref().find_map(|line| {
                let end = line.find(&marker).and_then(|at| {
                    let (code, _) = line[at + marker.len()..].split_once('#')?;
                    // Windows' exit codes are 32-bit; %errorlevel% prints them signed.
                    let code = code.trim().parse::<i64>().ok()? as i32;
                    Some((at, code))
                });
                match end {
                    // Text before the marker on its line: the part's last
                    // line, without a line end.
                    Some((at, code)) => {
                        text.push_str(&line[..at]);
                        Some(code)
                    }
                    None => {
                        text.push_str(line);
                        None
                    }
                }
            });
            let Some(exit_code) = ended else { break };
            done.push(PartOutput {
                label: part.label.clone(),
                stdout: std::mem::take(&mut text),
                exit_code,
            });
        }
        done
    }
}

/// Labels of the parts revoke's batches have.
pub const PART_HOSTNAME: &str = "hostname";
pub const PART_APPPOOLS: &str = "apppools";
pub const PART_WORKERS: &str = "workers";
pub const PART_IIS_STATUS: &str = "iis-status";

/// What a job looks at first, read-only, in one line: the computer's name,
/// its pools and its worker processes.
pub fn survey() -> Batch {
    let mut batch = Batch::new();
    batch.push(PART_HOSTNAME, hostname());
    batch.push(PART_APPPOOLS, list_apppools());
    batch.push(PART_WORKERS, list_workers());
    batch
}

/// The label of the `index`th (from 0) recycle in [`recycle_pools`].
pub fn recycle_label(index: usize) -> String {
    format!("recycle-{}", index + 1)
}

/// Every pool's recycle in one line, each reported on its own, then the
/// worker processes as they are right after (the first drain check).
pub fn recycle_pools(pools: &[PoolName]) -> Batch {
    let mut batch = Batch::new();
    for (i, pool) in pools.iter().enumerate() {
        batch.push(&recycle_label(i), recycle(pool));
    }
    batch.push(PART_WORKERS, list_workers());
    batch
}

/// While IIS restarts: is it running again, and which workers run.
pub fn iis_status_and_workers() -> Batch {
    let mut batch = Batch::new();
    batch.push(PART_IIS_STATUS, iisreset_status());
    batch.push(PART_WORKERS, list_workers());
    batch
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolState {
    Started,
    Stopped,
    Starting,
    Stopping,
    Unknown,
}

impl PoolState {
    /// The word appcmd prints in `state:...`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "Started",
            Self::Stopped => "Stopped",
            Self::Starting => "Starting",
            Self::Stopping => "Stopping",
            Self::Unknown => "Unknown",
        }
    }
    /// Reads appcmd's word (case-insensitively); anything else is Unknown.
    pub fn from_appcmd(word: &str) -> Self {
        [Self::Started, Self::Stopped, Self::Starting, Self::Stopping]
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(word.trim()))
            .unwrap_or(Self::Unknown)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPool {
    pub name: String,
    pub state: PoolState,
}

/// Parse `appcmd list apppool` output: `APPPOOL "NAME" (MgdVersion:..,MgdMode:..,state:Started)`.
/// A line without a `state:` field gives `PoolState::Unknown`.
pub fn parse_apppools(stdout: &str) -> Vec<AppPool> {
    stdout
        .lines()
        .filter_map(|line| parse_listed(line, "APPPOOL"))
        .filter(|(name, _)| !name.is_empty())
        .map(|(name, attrs)| AppPool {
            name: name.to_owned(),
            state: attr(attrs, "state").map_or(PoolState::Unknown, PoolState::from_appcmd),
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerProcess {
    pub pid: u32,
    pub pool: String,
}

/// Parse `appcmd list wp` output: `WP "PID" (applicationPool:NAME)`.
/// Lines whose PID is not a number or that name no pool are skipped.
pub fn parse_workers(stdout: &str) -> Vec<WorkerProcess> {
    stdout
        .lines()
        .filter_map(|line| parse_listed(line, "WP"))
        .filter_map(|(pid, attrs)| {
            let pool = attr(attrs, "applicationPool").filter(|p| !p.is_empty())?;
            Some(WorkerProcess {
                pid: parse_decimal(pid)?,
                pool: pool.to_owned(),
            })
        })
        .collect()
}

/// Splits one appcmd listing line `KIND "ID" (attrs)` into ID and attrs;
/// `None` if the line is not a listing of `kind`.
fn parse_listed<'a>(line: &'a str, kind: &str) -> Option<(&'a str, &'a str)> {
    let rest = strip_prefix_ignore_case(line.trim(), kind)?;
    // The kind must be a whole word: "WPX" is not "WP".
    let rest = rest.strip_prefix(|c: char| c.is_whitespace())?.trim_start();
    let (id, rest) = rest.strip_prefix('"')?.split_once('"')?;
    let attrs = rest.trim_start().strip_prefix('(').unwrap_or("");
    // Up to the last ')', or to the end if the line was cut short.
    let attrs = attrs.rfind(')').map_or(attrs, |end| &attrs[..end]);
    Some((id, attrs))
}

/// The value of `key` in appcmd's `key:value,key:value` list (key compared
/// case-insensitively, value trimmed).
fn attr<'a>(attrs: &'a str, key: &str) -> Option<&'a str> {
    attrs
        .split(',')
        .filter_map(|field| field.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(key))
        .map(|(_, v)| v.trim())
}

/// The PIDs of one pool's workers, sorted. IIS pool names are
/// case-insensitive, so the match is too.
pub fn pids_of(workers: &[WorkerProcess], pool: &str) -> Vec<u32> {
    let mut pids: Vec<u32> = workers
        .iter()
        .filter(|w| w.pool.eq_ignore_ascii_case(pool))
        .map(|w| w.pid)
        .collect();
    pids.sort_unstable();
    pids
}

/// The message appcmd printed when a command failed: the text inside
/// `ERROR ( message:... )` if present, else the trimmed stderr/stdout.
///
/// The result is one line: multi-line messages are joined with spaces, and an
/// hresult is appended as "(hresult 80070005)".
pub fn error_message(stdout: &str, stderr: &str) -> String {
    if let Some(message) = appcmd_error(stdout).or_else(|| appcmd_error(stderr)) {
        return message;
    }
    let stderr = one_line(stderr);
    if stderr.is_empty() {
        one_line(stdout)
    } else {
        stderr
    }
}

/// The message of an `ERROR ( hresult:..., message:... )` block in `text`.
fn appcmd_error(text: &str) -> Option<String> {
    let start = text.find("ERROR")?;
    let body = text[start + "ERROR".len()..]
        .trim_start()
        .strip_prefix('(')?;
    let body = body.rfind(')').map_or(body, |end| &body[..end]);
    let message_at = find_ignore_case(body, "message:");
    // The hresult field, when present, comes before the message.
    let head = message_at.map_or(body, |at| &body[..at]);
    let hresult = find_ignore_case(head, "hresult:").map(|at| {
        let value = &head[at + "hresult:".len()..];
        value.split(',').next().unwrap_or("").trim()
    });
    let message = match message_at {
        Some(at) => one_line(&body[at + "message:".len()..]),
        None if hresult.is_some() => String::new(),
        None => one_line(body),
    };
    Some(match hresult.filter(|h| !h.is_empty()) {
        Some(h) if message.is_empty() => format!("hresult {h}"),
        Some(h) => format!("{message} (hresult {h})"),
        None => message,
    })
}

/// Byte offset of `needle` in `haystack`, ASCII case-insensitively.
fn find_ignore_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .char_indices()
        .map(|(i, _)| i)
        .find(|&i| strip_prefix_ignore_case(&haystack[i..], needle).is_some())
}

/// Non-blank lines, trimmed, joined with single spaces.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// True when `iisreset /status` reports every listed service as Running.
/// No `Status for ...` line at all is not "running": the output was not
/// what was expected.
pub fn iis_running(status_stdout: &str) -> bool {
    let mut seen = false;
    for line in status_stdout.lines() {
        let Some(rest) = strip_prefix_ignore_case(line.trim(), "Status for") else {
            continue;
        };
        let state = rest.rsplit_once(':').map(|(_, s)| s.trim());
        if !state.is_some_and(|s| s.eq_ignore_ascii_case("Running")) {
            return false;
        }
        seen = true;
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOWED_MSG: &str =
        "which is not allowed; allowed: letters, digits, space, '.', '_', '-'";

    #[test]
    fn pool_name_accepts_allowed_characters() {
        for name in [
            "MSExchangeSyncAppPool",
            "My Pool",
            "a",
            "pool.v2_test-1",
            &"x".repeat(64),
        ] {
            assert_eq!(PoolName::parse(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn pool_name_rejects_quote_with_plain_reason() {
        let err = PoolName::parse("a\"b").unwrap_err();
        assert_eq!(err.name, "a\"b");
        assert_eq!(
            err.reason,
            "contains '\"', which is not allowed; allowed: letters, digits, space, '.', '_', '-'"
        );
    }

    #[test]
    fn pool_name_rejects_cmd_metacharacters_and_non_ascii() {
        for (name, bad) in [
            ("a&b", "'&'"),
            ("a|b", "'|'"),
            ("%windir%", "'%'"),
            ("a^b", "'^'"),
            ("a>b", "'>'"),
            ("a/b", "'/'"),
            ("a\\b", "'\\'"),
            ("caf\u{e9}", "'\u{e9}'"),
            ("a\tb", "'\\t' (U+0009)"),
            ("a\nb", "'\\n' (U+000A)"),
            ("a\u{a0}b", "(U+00A0)"),
        ] {
            let err = PoolName::parse(name).unwrap_err();
            assert!(err.reason.contains(bad), "{name:?}: {}", err.reason);
            assert!(err.reason.ends_with(ALLOWED_MSG), "{}", err.reason);
        }
    }

    #[test]
    fn pool_name_rejects_bad_length_and_spaces() {
        assert_eq!(PoolName::parse("").unwrap_err().reason, "is empty");
        assert_eq!(
            PoolName::parse(&"x".repeat(65)).unwrap_err().reason,
            "is 65 characters long; at most 64 are allowed"
        );
        assert_eq!(
            PoolName::parse(" a").unwrap_err().reason,
            "starts with a space"
        );
        assert_eq!(
            PoolName::parse("a ").unwrap_err().reason,
            "ends with a space"
        );
        assert_eq!(
            PoolName::parse(" ").unwrap_err().reason,
            "starts with a space"
        );
    }

    #[test]
    fn pool_name_error_display_names_the_input() {
        let err = PoolName::parse("").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid application pool name \"\": is empty"
        );
    }

    #[test]
    fn exchange_version_parses_all_forms() {
        let v = |major, minor| Some(ExchangeVersion { major, minor });
        assert_eq!(ExchangeVersion::parse("15.1"), v(15, 1));
        assert_eq!(ExchangeVersion::parse("14"), v(14, 0));
        assert_eq!(ExchangeVersion::parse("14.3.123"), v(14, 3));
        assert_eq!(ExchangeVersion::parse(" 15.2 "), v(15, 2));
        assert_eq!(
            ExchangeVersion::parse("Version 15.1 (Build 30225.42)"),
            v(15, 1)
        );
        assert_eq!(ExchangeVersion::parse("Version 8.3 (Build 83.6)"), v(8, 3));
        assert_eq!(
            ExchangeVersion::parse("version 14.3(Build 123.4)"),
            v(14, 3)
        );
    }

    #[test]
    fn exchange_version_rejects_garbage() {
        for text in [
            "",
            "Version",
            "x",
            "15.x",
            "15.",
            ".1",
            "+15",
            "15.1 foo",
            "1.2.x",
            "99999999999",
            "15..1",
            "Version (Build 1.2)",
        ] {
            assert_eq!(ExchangeVersion::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn default_app_pool_only_for_2010_and_2007() {
        let uses = |t| ExchangeVersion::parse(t).unwrap().uses_default_app_pool();
        assert!(uses("14.3"));
        assert!(uses("8.3"));
        assert!(!uses("15.0"));
        assert!(!uses("15.1"));
        assert!(!uses("15.2"));
    }

    #[test]
    fn default_pools_by_version() {
        let names = |v: Option<&str>| {
            default_pools(v.and_then(ExchangeVersion::parse))
                .into_iter()
                .map(|p| p.as_str().to_owned())
                .collect::<Vec<_>>()
        };
        let modern: Vec<String> = EXCHANGE_POOLS.iter().map(|s| s.to_string()).collect();
        assert_eq!(names(Some("15.1")), modern);
        assert_eq!(names(None), modern);
        let mut legacy = modern.clone();
        legacy.push("DefaultAppPool".into());
        assert_eq!(names(Some("14.3")), legacy);
        assert_eq!(names(Some("Version 8.3 (Build 83.6)")), legacy);
        // Every default is itself a valid pool name.
        for name in &legacy {
            PoolName::parse(name).unwrap();
        }
    }

    #[test]
    fn commands_are_exact() {
        let appcmd = r"%windir%\system32\inetsrv\appcmd.exe";
        let h = hostname();
        assert_eq!(
            (h.program.as_str(), h.args.len(), h.mutating),
            ("hostname", 0, false)
        );
        assert_eq!(h.command_line(), "hostname");
        assert_eq!(
            list_apppools().command_line(),
            format!("{appcmd} list apppool")
        );
        assert_eq!(list_apppools().args, ["list", "apppool"]);
        assert!(!list_apppools().mutating);
        assert_eq!(list_workers().command_line(), format!("{appcmd} list wp"));
        assert!(!list_workers().mutating);
        let r = recycle(&PoolName::parse("My Pool").unwrap());
        assert_eq!(r.program, appcmd);
        assert_eq!(r.args, ["recycle", "apppool", "/apppool.name:\"My Pool\""]);
        assert!(r.mutating);
        assert_eq!(
            r.command_line(),
            format!("{appcmd} recycle apppool /apppool.name:\"My Pool\"")
        );
        assert_eq!(iisreset().command_line(), "iisreset /noforce");
        assert!(iisreset().mutating);
        assert_eq!(iisreset_status().command_line(), "iisreset /status");
        assert!(!iisreset_status().mutating);
    }

    #[test]
    fn batch_line_is_exact() {
        let appcmd = r"%windir%\system32\inetsrv\appcmd.exe";
        let survey = survey().command();
        assert_eq!(
            survey.command_line(),
            format!(
                "hostname & call echo #revoke-end hostname %^errorlevel%# & \
                 {appcmd} list apppool & call echo #revoke-end apppools %^errorlevel%# & \
                 {appcmd} list wp & call echo #revoke-end workers %^errorlevel%#"
            )
        );
        assert!(!survey.mutating);
        assert!(survey.args.is_empty());
        let pools = [
            PoolName::parse("My Pool").unwrap(),
            PoolName::parse("B").unwrap(),
        ];
        let recycle = recycle_pools(&pools).command();
        assert!(recycle.mutating);
        assert_eq!(
            recycle.command_line(),
            format!(
                "{appcmd} recycle apppool /apppool.name:\"My Pool\" & call echo #revoke-end recycle-1 %^errorlevel%# & \
                 {appcmd} recycle apppool /apppool.name:\"B\" & call echo #revoke-end recycle-2 %^errorlevel%# & \
                 {appcmd} list wp & call echo #revoke-end workers %^errorlevel%#"
            )
        );
        let status = iis_status_and_workers();
        let labels: Vec<&str> = status.parts().iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["iis-status", "workers"]);
    }

    #[test]
    fn batch_output_splits_into_parts_with_their_exit_codes() {
        let batch = recycle_pools(&[PoolName::parse("A").unwrap(), PoolName::parse("B").unwrap()]);
        let stdout = "\"A\" successfully recycled\r\n\
                      #revoke-end recycle-1 0# \r\n\
                      ERROR ( hresult:80070005, message:Command execution failed.\r\n\
                      Access is denied.\r\n )\r\n\
                      #revoke-end recycle-2 5# \r\n\
                      WP \"12\" (applicationPool:A)\r\n\
                      #revoke-end workers 0#\r\n";
        let parts = batch.finished(stdout);
        let got: Vec<(&str, i32)> = parts
            .iter()
            .map(|p| (p.label.as_str(), p.exit_code))
            .collect();
        assert_eq!(got, [("recycle-1", 0), ("recycle-2", 5), ("workers", 0)]);
        assert_eq!(parts[0].stdout, "\"A\" successfully recycled\r\n");
        assert_eq!(
            error_message(&parts[1].stdout, ""),
            "Command execution failed. Access is denied. (hresult 80070005)"
        );
        assert_eq!(parse_workers(&parts[2].stdout).len(), 1);
    }

    #[test]
    fn batch_output_so_far_gives_only_the_parts_that_ended() {
        let batch = survey();
        let full = "EX01\r\n#revoke-end hostname 0# \r\nAPPPOOL \"A\" (state:Started)\r\n\
                    #revoke-end apppools 0# \r\n#revoke-end workers -2147024891#\r\n";
        let counts: Vec<usize> = (0..=full.len())
            .map(|n| batch.finished(&full[..n]).len())
            .collect();
        // Monotonic, and a part ends only with its marker's closing '#'.
        assert!(counts.windows(2).all(|w| w[0] <= w[1]));
        let first_end = full.find("0# ").unwrap() + 2;
        assert_eq!(counts[first_end - 1], 0);
        assert_eq!(counts[first_end], 1);
        let parts = batch.finished(full);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].stdout, "EX01\r\n");
        assert_eq!(parts[2].stdout, "");
        assert_eq!(parts[2].exit_code, -2147024891);
        // A marker out of order or of another label ends nothing; a program
        // that did not end its line still has its text.
        assert!(batch.finished("#revoke-end apppools 0#\r\n").is_empty());
        let parts = batch.finished("EX01#revoke-end hostname 0#\r\n");
        assert_eq!(parts[0].stdout, "EX01");
        for garbage in [
            "#revoke-end hostname x#",
            "#revoke-end hostname 0",
            "#revoke-end",
        ] {
            assert!(batch.finished(garbage).is_empty(), "{garbage}");
        }
    }

    #[test]
    #[should_panic(expected = "bad batch label")]
    fn batch_labels_are_checked() {
        let mut batch = Batch::new();
        batch.push("a b", hostname());
    }

    #[test]
    fn parse_apppools_reads_state_and_tolerates_noise() {
        let out = "\r\n  APPPOOL \"MSExchangeSyncAppPool\" (MgdVersion:v4.0,MgdMode:Integrated,state:Started)\r\n\
                   APPPOOL \"My Pool\" (MgdVersion:v4.0,state:Stopped,extra:1)\n\
                   APPPOOL \"Starting\" (state:Starting)\r\n\
                   APPPOOL \"Stopping\" ( State : stopping )\r\n\
                   APPPOOL \"Weird\" (MgdVersion:v4.0,state:Paused)\r\n\
                   APPPOOL \"NoState\" (MgdVersion:v4.0)\r\n\
                   APPPOOL \"Cut\" (MgdVersion:v4.0,state:Started\r\n\
                   some other line\r\n\
                   APPPOOLX \"no\" (state:Started)\r\n";
        let pools = parse_apppools(out);
        let got: Vec<(&str, PoolState)> =
            pools.iter().map(|p| (p.name.as_str(), p.state)).collect();
        assert_eq!(
            got,
            [
                ("MSExchangeSyncAppPool", PoolState::Started),
                ("My Pool", PoolState::Stopped),
                ("Starting", PoolState::Starting),
                ("Stopping", PoolState::Stopping),
                ("Weird", PoolState::Unknown),
                ("NoState", PoolState::Unknown),
                ("Cut", PoolState::Started),
            ]
        );
    }

    #[test]
    fn parse_workers_reads_pid_and_pool() {
        let out = "WP \"4312\" (applicationPool:MSExchangeSyncAppPool)\r\n\
                   \r\n\
                   \tWP \"8\" (applicationPool:My Pool,extra:x)\n\
                   WP \"notanumber\" (applicationPool:X)\r\n\
                   WP \"12\" (other:1)\r\n\
                   WP \"16\" (applicationPool:)\r\n\
                   WP \"-4\" (applicationPool:X)\r\n";
        assert_eq!(
            parse_workers(out),
            [
                WorkerProcess {
                    pid: 4312,
                    pool: "MSExchangeSyncAppPool".into()
                },
                WorkerProcess {
                    pid: 8,
                    pool: "My Pool".into()
                },
            ]
        );
    }

    #[test]
    fn parsers_survive_garbage() {
        let garbage = [
            "",
            "\r\n\r\n",
            "\"",
            "WP",
            "WP \"",
            "WP \"1",
            "WP \"1\" (",
            "WP \"1\" )(",
            "APPPOOL \"\" (state:Started)",
            "APPPOOL \"x\" (:::,,,:)",
            "ERROR",
            "ERROR (",
            "ERROR ( hresult:",
            "ERROR ( message:",
            "Status for",
            "Status for : ",
            "\u{0}\u{ffff}é🦀 WP \"é\" (applicationPool:é)",
            "((((",
            "))))",
        ];
        for text in garbage {
            let _ = parse_apppools(text);
            let _ = parse_workers(text);
            let _ = error_message(text, text);
            let _ = error_message("", text);
            let _ = iis_running(text);
            let _ = ExchangeVersion::parse(text);
            let _ = PoolName::parse(text);
        }
        assert!(parse_apppools("APPPOOL \"\" (state:Started)").is_empty());
        assert!(parse_workers("WP \"1\" (").is_empty());
    }

    #[test]
    fn pids_of_filters_and_sorts() {
        let w = |pid, pool: &str| WorkerProcess {
            pid,
            pool: pool.into(),
        };
        let workers = [w(900, "A"), w(100, "B"), w(500, "a"), w(300, "A")];
        assert_eq!(pids_of(&workers, "A"), [300, 500, 900]);
        assert_eq!(pids_of(&workers, "B"), [100]);
        assert!(pids_of(&workers, "C").is_empty());
    }

    #[test]
    fn error_message_extracts_appcmd_message() {
        assert_eq!(
            error_message(
                "ERROR ( message:Cannot find APPPOOL object with identifier \"X\". )\r\n",
                ""
            ),
            "Cannot find APPPOOL object with identifier \"X\"."
        );
        assert_eq!(
            error_message(
                "ERROR ( hresult:80070005, message:Command execution failed.\r\nAccess is denied.\r\n )\r\n",
                "ignored"
            ),
            "Command execution failed. Access is denied. (hresult 80070005)"
        );
        assert_eq!(
            error_message("ERROR ( hresult:80070005, message:Access is denied. )", ""),
            "Access is denied. (hresult 80070005)"
        );
        // Found on stderr too, and with \n line ends.
        assert_eq!(
            error_message("", "ERROR ( message:Line one.\nLine two.\n )\n"),
            "Line one. Line two."
        );
        assert_eq!(
            error_message("ERROR ( hresult:80070426 )", ""),
            "hresult 80070426"
        );
        assert_eq!(
            error_message("ERROR ( Something odd. )", ""),
            "Something odd."
        );
    }

    #[test]
    fn error_message_falls_back_to_stderr_then_stdout() {
        assert_eq!(
            error_message(
                "out",
                "'appcmd' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
            ),
            "'appcmd' is not recognized as an internal or external command, operable program or batch file."
        );
        assert_eq!(
            error_message("  something failed \r\n", " \r\n"),
            "something failed"
        );
        assert_eq!(error_message("", ""), "");
    }

    #[test]
    fn iis_running_needs_all_running() {
        let running = "Status for IIS Admin Service ( IISADMIN ) : Running\r\n\
                       Status for Windows Process Activation Service ( WAS ) : Running\r\n\
                       Status for World Wide Web Publishing Service ( W3SVC ) : Running\r\n";
        assert!(iis_running(running));
        assert!(iis_running(&running.replace("\r\n", "\n")));
        assert!(iis_running("\n  Status for X ( X ) : running  \n\nnoise\n"));
        assert!(!iis_running(&running.replacen("Running", "Stopped", 1)));
        assert!(!iis_running(
            &running.replace("( W3SVC ) : Running", "( W3SVC ) : Start Pending")
        ));
        assert!(!iis_running(""));
        assert!(!iis_running("everything is fine\r\n"));
        assert!(!iis_running("Status for X ( X )\r\n"));
    }

    #[test]
    fn pool_state_words_round_trip() {
        for s in [
            PoolState::Started,
            PoolState::Stopped,
            PoolState::Starting,
            PoolState::Stopping,
            PoolState::Unknown,
        ] {
            assert_eq!(PoolState::from_appcmd(s.as_str()), s);
        }
        assert_eq!(PoolState::from_appcmd("started"), PoolState::Started);
        assert_eq!(PoolState::from_appcmd("bogus"), PoolState::Unknown);
    }
}
