//! cmd.exe on a simulated server: turns the command line a WinRM `cmd`
//! shell runs into Windows' output text and exit code, by asking the IIS
//! model. It expands `%VARS%`, splits the line, finds the program as cmd
//! does, and plays `appcmd.exe`, `iisreset.exe` and `hostname.exe`.

use super::model::{IisSim, RecycleError, ServiceState};

/// Where `%windir%` points on the simulated server.
const WINDIR: &str = r"C:\Windows";

/// Win32 error codes appcmd exits with.
const ERROR_ACCESS_DENIED: i32 = 5;
const ERROR_SERVICE_NOT_ACTIVE: i32 = 1062;
const ERROR_NOT_FOUND: i32 = 1168;

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

impl IisSim {
    /// Run a command as cmd.exe would: `program` and `args` as WinRM sent them.
    pub async fn execute(&self, program: &str, args: &[String]) -> CommandResult {
        // cmd.exe sees one line: it expands %VARS% first, then splits it.
        let line = std::iter::once(program)
            .chain(args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        let line = expand_env(&line, self.hostname());
        let tokens = tokenize(&line);
        let Some((first, rest)) = tokens.split_first() else {
            // An empty line does nothing and succeeds.
            return CommandResult::ok(String::new());
        };
        let args: Vec<&str> = rest.iter().map(|t| t.value.as_str()).collect();
        match resolve_program(&first.value) {
            Some(Program::Appcmd) => appcmd(self, &args).await,
            Some(Program::IisReset) => iisreset(self, &args).await,
            Some(Program::Hostname) => hostname(self, &args),
            None => not_recognized(&first.raw),
        }
    }
}

/// Expands `%windir%`, `%SystemRoot%` and `%COMPUTERNAME%` (any case) as
/// cmd.exe does; an unknown `%NAME%` stays as typed, like on a cmd line.
fn expand_env(line: &str, computer_name: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('%') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('%').and_then(|close| {
            let name = &after[..close];
            let value =
                if name.eq_ignore_ascii_case("windir") || name.eq_ignore_ascii_case("SystemRoot") {
                    WINDIR
                } else if name.eq_ignore_ascii_case("COMPUTERNAME") {
                    computer_name
                } else {
                    return None;
                };
            Some((value, close))
        });
        match value {
            Some((value, close)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('%');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
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
async fn appcmd(sim: &IisSim, args: &[&str]) -> CommandResult {
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
        ("recycle", "apppool" | "apppools") => recycle_apppool(sim, &params).await,
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
async fn recycle_apppool(sim: &IisSim, params: &AppcmdParams) -> CommandResult {
    let Some(id) = params.identifier("apppool.name") else {
        return appcmd_usage_error(
            "Must specify the APPPOOL object with identifier or \"APPPOOL.NAME\" parameter.",
        );
    };
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
async fn iisreset(sim: &IisSim, args: &[&str]) -> CommandResult {
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
