//! cmd.exe on a simulated server: runs the command line a WinRM `cmd`
//! shell hands it (`cmd.exe /c LINE`) the way cmd.exe parses and runs it,
//! and plays `appcmd.exe`, `iisreset.exe` and `hostname.exe` by asking the
//! IIS model.
//!
//! What cmd.exe does with a line, and so what this does (source: the answers
//! by jeb and dbenham to "How does the Windows Command Interpreter (CMD.EXE)
//! parse scripts?", https://stackoverflow.com/q/4094699, command-line mode;
//! not checked on a Windows host here):
//!
//! 1. `%VAR%` is expanded once for the **whole line**, before anything runs.
//!    An undefined `%NAME%` stays as typed, and its closing `%` may open the
//!    next reference (`echo %a %b% c%` with only `b=a` set prints `%a a c%`).
//!    `%ERRORLEVEL%` is the value from *before* the line: 0 in a fresh
//!    `cmd /c`.
//! 2. Outside double quotes `^` escapes the next character (and is removed),
//!    `&` runs the next command unconditionally, `&&` / `||` on success /
//!    failure. Pipes, redirections and parenthesised blocks are not simulated:
//!    such a line is refused as a whole (nothing runs).
//! 3. Each command runs in turn; a program's exit code becomes ERRORLEVEL.
//!    `echo` prints the rest of its command (trailing spaces included);
//!    `call` expands `%VAR%` in its command a second time, when it runs, and
//!    runs it. So `call echo %^errorlevel%` prints the ERRORLEVEL of the
//!    command before it: the caret hides the reference from step 1
//!    (`^errorlevel` is not defined, so it stays), step 2 removes the caret,
//!    and `call` expands `%errorlevel%` when it runs.
//!
//! Every program started is logged with its command as the client's line
//! spelled it, before expansion (like a process-creation audit, one entry per
//! process: the `echo`s and `call`s of cmd.exe itself start none).

use super::cmd_line::{Connector, expand_percent, split_commands};
use super::model::{IisSim, RecycleError, ServiceState};

/// Where `%windir%` points on the simulated server.
const WINDIR: &str = r"C:\Windows";

/// Win32 error codes appcmd exits with.
const ERROR_ACCESS_DENIED: i32 = 5;
const ERROR_SERVICE_NOT_ACTIVE: i32 = 1062;
const ERROR_NOT_FOUND: i32 = 1168;
/// ERRORLEVEL after a command cmd.exe cannot find (`cmd /c` itself then exits 1).
const NOT_RECOGNIZED_ERRORLEVEL: i32 = 9009;

/// What a command printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandResult {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
}

impl CommandResult {
    pub(super) fn ok(stdout: String) -> Self {
        Self {
            stdout,
            stderr: String::new(),
            exit_code: 0,
        }
    }
    /// appcmd reports its errors on stdout, not stderr.
    fn appcmd_error(stdout: String, exit_code: i32) -> Self {
        Self {
            stdout,
            stderr: String::new(),
            exit_code,
        }
    }
}

/// Where a running command line writes, and who hears of the programs it
/// starts (the WinRM shell: Receive and the command log).
pub trait Console: Send {
    fn stdout(&mut self, text: &str);
    fn stderr(&mut self, text: &str);
    /// What was written so far becomes readable: a program is about to wait.
    fn flush(&mut self);
    /// A program starts; `written` is its command as the client's line spelled
    /// it. Returns a handle for [`Console::exited`].
    fn started(&mut self, written: &str) -> usize;
    fn exited(&mut self, process: usize, exit_code: i32);
}

/// A console that keeps everything (for [`IisSim::execute`] and tests).
#[derive(Debug, Default)]
pub struct Captured {
    pub stdout: String,
    pub stderr: String,
    /// Programs started, as written, with their exit codes once they exited.
    pub started: Vec<(String, Option<i32>)>,
}

impl Console for Captured {
    fn stdout(&mut self, text: &str) {
        self.stdout.push_str(text);
    }
    fn stderr(&mut self, text: &str) {
        self.stderr.push_str(text);
    }
    fn flush(&mut self) {}
    fn started(&mut self, written: &str) -> usize {
        self.started.push((written.to_owned(), None));
        self.started.len() - 1
    }
    fn exited(&mut self, process: usize, exit_code: i32) {
        if let Some(p) = self.started.get_mut(process) {
            p.1 = Some(exit_code);
        }
    }
}

impl IisSim {
    /// Run a command as cmd.exe would: `program` and `args` as WinRM sent them
    /// (joined by spaces into one line, as WinRM hands them to `cmd /c`).
    pub async fn execute(&self, program: &str, args: &[String]) -> CommandResult {
        let mut console = Captured::default();
        let exit_code = self.run_line(&join_line(program, args), &mut console).await;
        CommandResult {
            stdout: console.stdout,
            stderr: console.stderr,
            exit_code,
        }
    }

    /// Runs one command line as `cmd.exe /c LINE` does; returns cmd's exit
    /// code (the ERRORLEVEL of the last command run).
    pub async fn run_line(&self, line: &str, console: &mut dyn Console) -> i32 {
        let raw: Vec<char> = line.chars().collect();
        // Step 1, for the whole line: ERRORLEVEL is 0 in a fresh cmd.exe.
        let expanded = expand_percent(&raw, &|name| self.variable(name, 0));
        let commands = match split_commands(&expanded) {
            Ok(commands) => commands,
            Err(unsupported) => {
                console.stderr(&format!(
                    "The lab's cmd.exe does not simulate {unsupported}: nothing was run.\r\n"
                ));
                return 1;
            }
        };
        let mut errorlevel = 0;
        let mut last_not_recognized = false;
        let mut previous_ok = true;
        for command in commands {
            let runs = match command.after {
                Connector::First | Connector::Always => true,
                Connector::IfOk => previous_ok,
                Connector::IfFailed => !previous_ok,
            };
            if !runs {
                continue;
            }
            let written = expanded.written(&raw, command.span.clone());
            let ran =
                Box::pin(self.run_command(&command.text, &written, errorlevel, console)).await;
            if let Some(level) = ran.errorlevel {
                errorlevel = level;
            }
            previous_ok = ran.ok;
            last_not_recognized = ran.not_recognized;
        }
        if last_not_recognized { 1 } else { errorlevel }
    }

    /// One command of a line, after steps 1 and 2: a built-in or a program.
    async fn run_command(
        &self,
        text: &str,
        written: &str,
        errorlevel: i32,
        console: &mut dyn Console,
    ) -> Ran {
        let text = text.trim_start_matches([' ', '\t', ',', ';', '=']);
        if text.is_empty() {
            return Ran::builtin();
        }
        if let Some((delimiter, rest)) = builtin_argument(text, "echo") {
            echo(delimiter, rest, console);
            return Ran::builtin();
        }
        if let Some((_, rest)) = builtin_argument(text, "call") {
            // The second expansion, when the command runs: ERRORLEVEL is now
            // what the commands before it left.
            let chars: Vec<char> = rest.trim_start().chars().collect();
            let again = expand_percent(&chars, &|name| self.variable(name, errorlevel));
            let again: String = again.chars.iter().collect();
            return Box::pin(self.run_command(&again, written, errorlevel, console)).await;
        }
        let tokens = tokenize(text);
        let Some((first, rest)) = tokens.split_first() else {
            return Ran::builtin();
        };
        let args: Vec<&str> = rest.iter().map(|t| t.value.as_str()).collect();
        let Some(program) = resolve_program(&first.value) else {
            let r = not_recognized(&first.raw);
            console.stderr(&r.stderr);
            return Ran {
                errorlevel: Some(NOT_RECOGNIZED_ERRORLEVEL),
                ok: false,
                not_recognized: true,
            };
        };
        let process = console.started(written);
        let result = match program {
            Program::Appcmd => appcmd(self, &args, console).await,
            Program::IisReset => iisreset(self, &args, console).await,
            Program::Hostname => hostname(self, &args),
        };
        console.stdout(&result.stdout);
        console.stderr(&result.stderr);
        console.exited(process, result.exit_code);
        Ran {
            errorlevel: Some(result.exit_code),
            ok: result.exit_code == 0,
            not_recognized: false,
        }
    }

    /// The value of `%name%` on this server (names are case-insensitive):
    /// `windir`, `SystemRoot`, `COMPUTERNAME`, and the dynamic `ERRORLEVEL`.
    fn variable(&self, name: &str, errorlevel: i32) -> Option<String> {
        let is = |known: &str| name.eq_ignore_ascii_case(known);
        if is("windir") || is("SystemRoot") {
            Some(WINDIR.to_owned())
        } else if is("COMPUTERNAME") {
            Some(self.hostname().to_owned())
        } else if is("ERRORLEVEL") {
            Some(errorlevel.to_string())
        } else {
            None
        }
    }
}

/// How one command of a line ended.
struct Ran {
    /// The new ERRORLEVEL; `None`: unchanged (built-ins).
    errorlevel: Option<i32>,
    /// For `&&` and `||`.
    ok: bool,
    not_recognized: bool,
}

impl Ran {
    fn builtin() -> Self {
        Ran {
            errorlevel: None,
            ok: true,
            not_recognized: false,
        }
    }
}

/// Program and arguments joined by spaces.
fn join_line(program: &str, args: &[String]) -> String {
    std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// If `text` is the built-in `name` (`echo x`, `ECHO.`, `call y`): the one
/// delimiter that follows the name (none for the bare name) and the text
/// after it.
fn builtin_argument<'a>(text: &'a str, name: &str) -> Option<(Option<char>, &'a str)> {
    let head = text.get(..name.len())?;
    if !head.eq_ignore_ascii_case(name) {
        return None;
    }
    let rest = &text[name.len()..];
    match rest.chars().next() {
        None => Some((None, "")),
        Some(c) if " \t.,;=(/:+[]".contains(c) => Some((Some(c), &rest[c.len_utf8()..])),
        Some(_) => None,
    }
}

/// The built-in `echo`: prints its text as written (trailing spaces
/// included). `echo` with nothing but blanks reports the echo state;
/// `echo.` (or another punctuation delimiter) prints an empty line.
fn echo(delimiter: Option<char>, text: &str, console: &mut dyn Console) {
    let blank_delimiter = delimiter.is_none_or(|d| d == ' ' || d == '\t');
    if blank_delimiter && text.trim().is_empty() {
        console.stdout("ECHO is on.\r\n");
    } else {
        console.stdout(&format!("{text}\r\n"));
    }
}

/// `hostname.exe`.
fn hostname(sim: &IisSim, args: &[&str]) -> CommandResult {
    if args.is_empty() {
        return CommandResult::ok(format!("{}\r\n", sim.hostname()));
    }
    // hostname.exe refuses to set the name (uncertain detail: stream).
    CommandResult {
        stdout: "sethostname: Use the Network Control Panel Applet to set hostname.\r\n".to_owned(),
        stderr: String::new(),
        exit_code: 1,
    }
}

/// `appcmd.exe VERB OBJECT [identifier] [/param:value...]`.
async fn appcmd(sim: &IisSim, args: &[&str], console: &mut dyn Console) -> CommandResult {
    let Some((verb, rest)) = args.split_first() else {
        return appcmd_usage_error("Command not specified.");
    };
    let Some((object, params)) = rest.split_first() else {
        return appcmd_usage_error(&format!(
            "Object type not specified for command \"{verb}\"."
        ));
    };
    let object = object.to_ascii_lowercase();
    let verb = verb.to_ascii_lowercase();
    let params = match AppcmdParams::parse(params) {
        Ok(params) => params,
        Err(result) => return result,
    };
    match (verb.as_str(), object.as_str()) {
        ("list", "apppool" | "apppools") => list_apppools(sim, &params),
        ("list", "wp" | "wps") => list_wp(sim, &params),
        ("recycle", "apppool" | "apppools") => recycle_apppool(sim, &params, console).await,
        (_, "apppool" | "apppools" | "wp" | "wps") => appcmd_usage_error(&format!(
            "Command \"{verb}\" is not supported on object \"{}\".",
            object.trim_end_matches('s').to_ascii_uppercase()
        )),
        _ => appcmd_usage_error(&format!("Object type \"{object}\" is not supported.")),
    }
}

/// `appcmd list apppool [NAME | /apppool.name:NAME] [/state:STATE]`.
fn list_apppools(sim: &IisSim, params: &AppcmdParams) -> CommandResult {
    let pools = sim.pools();
    let identifier = params.identifier("apppool.name");
    if let Some(id) = identifier
        && !pools.iter().any(|(n, _)| n.eq_ignore_ascii_case(id))
    {
        return cannot_find_apppool(id);
    }
    let state_filter = params.named("state");
    let mut out = String::new();
    for (name, pool_state) in &pools {
        if identifier.is_some_and(|id| !id.eq_ignore_ascii_case(name))
            || state_filter.is_some_and(|s| !s.eq_ignore_ascii_case(pool_state.as_str()))
        {
            continue;
        }
        out.push_str(&format!(
            "APPPOOL \"{name}\" (MgdVersion:v4.0,MgdMode:Integrated,state:{})\r\n",
            pool_state.as_str()
        ));
    }
    CommandResult::ok(out)
}

/// `appcmd list wp [/apppool.name:NAME]`. With no live worker, appcmd
/// prints nothing at all and still exits 0.
fn list_wp(sim: &IisSim, params: &AppcmdParams) -> CommandResult {
    let pool_filter = params.named("apppool.name");
    let mut out = String::new();
    for w in sim.workers() {
        if pool_filter.is_some_and(|p| !p.eq_ignore_ascii_case(&w.pool)) {
            continue;
        }
        out.push_str(&format!(
            "WP \"{}\" (applicationPool:{})\r\n",
            w.pid, w.pool
        ));
    }
    CommandResult::ok(out)
}

/// `appcmd recycle apppool /apppool.name:NAME` (or `... apppool NAME`).
async fn recycle_apppool(
    sim: &IisSim,
    params: &AppcmdParams,
    console: &mut dyn Console,
) -> CommandResult {
    let Some(id) = params.identifier("apppool.name") else {
        return appcmd_usage_error(
            "Must specify the APPPOOL object with identifier or \"APPPOOL.NAME\" parameter.",
        );
    };
    if sim.recycle_waits() {
        // What the line printed so far can be read while appcmd works.
        console.flush();
    }
    match sim.recycle(id).await {
        // appcmd names the pool as configured (uncertain detail).
        Ok(name) => CommandResult::ok(format!("\"{name}\" successfully recycled\r\n")),
        Err(RecycleError::NotFound) => cannot_find_apppool(id),
        Err(RecycleError::NotStarted) => CommandResult::appcmd_error(
            "ERROR ( hresult:80070426, message:Command execution failed.\r\n\
             The service has not been started.\r\n )\r\n"
                .to_owned(),
            ERROR_SERVICE_NOT_ACTIVE,
        ),
        Err(RecycleError::AccessDenied) => CommandResult::appcmd_error(
            "ERROR ( hresult:80070005, message:Command execution failed.\r\n\
             Access is denied.\r\n )\r\n"
                .to_owned(),
            ERROR_ACCESS_DENIED,
        ),
    }
}

/// `iisreset.exe [/noforce] [/restart] [/timeout:N]` or `iisreset /status`.
async fn iisreset(sim: &IisSim, args: &[&str], console: &mut dyn Console) -> CommandResult {
    let lower: Vec<String> = args.iter().map(|a| a.to_ascii_lowercase()).collect();
    if lower == ["/status"] {
        return iisreset_status(sim);
    }
    let restart_options = lower
        .iter()
        .all(|a| matches!(a.as_str(), "/noforce" | "/restart") || a.starts_with("/timeout:"));
    if !restart_options {
        // Other iisreset switches (/stop, /start, /reboot...) are not simulated.
        return CommandResult {
            stdout: IISRESET_USAGE.to_owned(),
            stderr: String::new(),
            exit_code: 1,
        };
    }
    if sim.restart_waits() {
        console.flush();
    }
    sim.restart().await;
    CommandResult::ok(
        "\r\nAttempting stop...\r\nInternet services successfully stopped\r\n\
         Attempting start...\r\nInternet services successfully restarted\r\n"
            .to_owned(),
    )
}

fn iisreset_status(sim: &IisSim) -> CommandResult {
    let services = match sim.services() {
        ServiceState::Running => "Running",
        ServiceState::Stopped => "Stopped",
        ServiceState::StartPending => "Start Pending",
    };
    let out = [
        "IIS Admin Service ( IISADMIN )",
        "Windows Process Activation Service ( WAS )",
        "World Wide Web Publishing Service ( W3SVC )",
    ]
    .iter()
    .map(|service| format!("Status for {service} : {services}\r\n"))
    .collect();
    CommandResult::ok(out)
}

/// The head of iisreset's help text, printed for switches it does not know.
const IISRESET_USAGE: &str = "\r\nIISRESET.EXE (c) Microsoft Corp. 1998-2005\r\n\r\n\
Usage:\r\n\
iisreset [computername]\r\n\r\n\
    /RESTART            Stop and then restart all Internet services.\r\n\
    /START              Start all Internet services.\r\n\
    /STOP               Stop all Internet services.\r\n\
    /REBOOT             Reboot the computer.\r\n\
    /REBOOTONERROR      Reboot the computer if an error occurs when starting,\r\n\
                        stopping, or restarting Internet services.\r\n\
    /NOFORCE            Do not forcefully terminate Internet services if\r\n\
                        attempting to stop them gracefully fails.\r\n\
    /TIMEOUT:val        Specify the timeout value ( in seconds ) to wait for\r\n\
                        a successful stop of Internet services. On expiration\r\n\
                        of this timeout the computer can be rebooted if\r\n\
                        the /REBOOTONERROR parameter is specified.\r\n\
                        The default value is 20s for restart, 60s for stop,\r\n\
                        and 0s for reboot.\r\n\
    /STATUS             Display the status of all Internet services.\r\n\
    /ENABLE             Enable restarting of Internet Services\r\n\
                        on the local system.\r\n\
    /DISABLE            Disable restarting of Internet Services\r\n\
                        on the local system.\r\n";

/// The parameters after `appcmd VERB OBJECT`: an optional positional
/// identifier and `/name:value` pairs.
#[derive(Debug, Default)]
struct AppcmdParams {
    positional: Option<String>,
    named: Vec<(String, String)>,
}

impl AppcmdParams {
    fn parse(args: &[&str]) -> Result<Self, CommandResult> {
        let mut params = Self::default();
        for arg in args {
            if let Some(pair) = arg.strip_prefix(['/', '-']) {
                let (name, value) = pair.split_once(':').unwrap_or((pair, ""));
                params
                    .named
                    .push((name.to_ascii_lowercase(), value.to_owned()));
            } else if params.positional.is_none() {
                params.positional = Some((*arg).to_owned());
            } else {
                return Err(appcmd_usage_error(&format!(
                    "Unexpected parameter \"{arg}\": only one identifier may be given."
                )));
            }
        }
        Ok(params)
    }

    /// The value of `/name:value` (name compared case-insensitively).
    fn named(&self, name: &str) -> Option<&str> {
        self.named
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The object's identifier: positional, else `/key:value`; empty is none.
    fn identifier(&self, key: &str) -> Option<&str> {
        self.positional
            .as_deref()
            .or_else(|| self.named(key))
            .filter(|id| !id.is_empty())
    }
}

fn cannot_find_apppool(id: &str) -> CommandResult {
    CommandResult::appcmd_error(
        format!("ERROR ( message:Cannot find APPPOOL object with identifier \"{id}\". )\r\n"),
        ERROR_NOT_FOUND,
    )
}

/// An appcmd complaint about how it was called (exit code 1).
fn appcmd_usage_error(message: &str) -> CommandResult {
    CommandResult::appcmd_error(format!("ERROR ( message:{message} )\r\n"), 1)
}

/// cmd.exe's answer for a program it cannot find; `typed` is the first token
/// as it appeared on the (expanded) command line, quotes included.
fn not_recognized(typed: &str) -> CommandResult {
    CommandResult {
        stdout: String::new(),
        stderr: format!(
            "'{typed}' is not recognized as an internal or external command,\r\n\
             operable program or batch file.\r\n"
        ),
        exit_code: 1,
    }
}

/// The programs the simulated server has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Program {
    Appcmd,
    IisReset,
    Hostname,
}

/// Finds a program as cmd.exe would: case-insensitively, `.exe` optional,
/// bare names only for what is on PATH (System32, not inetsrv).
fn resolve_program(program: &str) -> Option<Program> {
    let lower = program.to_ascii_lowercase();
    let name = lower.strip_suffix(".exe").unwrap_or(&lower);
    let system32 = r"c:\windows\system32\";
    let in_system32 = |bare: &str| name == bare || name.strip_prefix(system32) == Some(bare);
    if name.strip_prefix(system32) == Some(r"inetsrv\appcmd") {
        Some(Program::Appcmd)
    } else if in_system32("iisreset") {
        Some(Program::IisReset)
    } else if in_system32("hostname") {
        Some(Program::Hostname)
    } else {
        None
    }
}

/// One word of a cmd line: as typed (`raw`) and with its quotes removed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    raw: String,
    value: String,
}

/// Splits a command line on spaces and tabs outside double quotes; quotes
/// group and are removed (`/a:"b c"` is one word `/a:b c`). Backslash escapes
/// are not interpreted: valid input never needs them.
fn tokenize(line: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut current: Option<Token> = None;
    let mut quoted = false;
    for c in line.chars() {
        if !quoted && (c == ' ' || c == '\t') {
            tokens.extend(current.take());
            continue;
        }
        let token = current.get_or_insert_with(|| Token {
            raw: String::new(),
            value: String::new(),
        });
        token.raw.push(c);
        if c == '"' {
            quoted = !quoted;
        } else {
            token.value.push(c);
        }
    }
    tokens.extend(current);
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenize_honours_quotes() {
        let values =
            |line: &str| -> Vec<String> { tokenize(line).into_iter().map(|t| t.value).collect() };
        assert_eq!(
            values(r#"appcmd  recycle apppool /apppool.name:"My Pool""#),
            ["appcmd", "recycle", "apppool", "/apppool.name:My Pool"]
        );
        assert_eq!(values("a\tb"), ["a", "b"]);
        assert_eq!(values(r#""C:\x y\z.exe" a"#), [r"C:\x y\z.exe", "a"]);
        assert_eq!(tokenize(r#""C:\x y\z.exe" a"#)[0].raw, r#""C:\x y\z.exe""#);
        assert!(values("   ").is_empty());
    }

    #[test]
    fn resolves_programs_like_cmd() {
        // Receives the program after %VAR% expansion (tested via `execute`).
        for p in [
            r"C:\Windows\system32\inetsrv\appcmd.exe",
            r"c:\windows\SYSTEM32\INETSRV\APPCMD",
        ] {
            assert_eq!(resolve_program(p), Some(Program::Appcmd), "{p}");
        }
        for p in ["appcmd", "appcmd.exe", r"inetsrv\appcmd.exe"] {
            assert_eq!(resolve_program(p), None, "{p}");
        }
        assert_eq!(resolve_program("IISRESET.exe"), Some(Program::IisReset));
        assert_eq!(resolve_program("hostname"), Some(Program::Hostname));
        assert_eq!(
            resolve_program(r"C:\Windows\System32\hostname.exe"),
            Some(Program::Hostname)
        );
        assert_eq!(resolve_program("powershell"), None);
    }
}
