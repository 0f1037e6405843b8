//! The Windows Remote Shell resource (`.../windows/shell/cmd`) of one lab
//! server: Create, Command, Receive, Signal, Delete (MS-WSMV 3.1.4.x),
//! answered the way Windows answers them.
//!
//! A Command's line runs in its own task ([`IisSim::run_line`]); a Receive
//! answers as soon as the line has printed something it has not handed out
//! yet, or has ended ("the server ... will delay responding until output is
//! available", MS-WSMV 3.1.4.14), else with `w:TimeoutFault` at the
//! OperationTimeout. What the line prints becomes readable when it is about
//! to wait (a recycle or an iisreset that takes time) and when it ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::CommandLog;
use super::envelope::{Body, WsmanFault, WsmanRequest, envelope, esc, parse_request};
use super::iis::{Console, IisSim};
use revoke_winrm::soap::{
    ACTION_COMMAND, ACTION_CREATE, ACTION_DELETE, ACTION_RECEIVE, ACTION_SIGNAL,
    COMMAND_STATE_DONE, COMMAND_STATE_RUNNING, RESOURCE_CMD, SIGNAL_TERMINATE,
};

/// WinRM's MaxTimeoutms default (60 s): the longest a Receive is held.
const MAX_OPERATION_TIMEOUT: Duration = Duration::from_secs(60);
/// What a Receive waits when the request names no OperationTimeout.
const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(60);
/// WinRM's MaxEnvelopeSizekb default (500 KB): the largest answer when the
/// request names no MaxEnvelopeSize.
const DEFAULT_MAX_ENVELOPE: usize = 512_000;
/// Room in a ReceiveResponse for everything but the base64 of the output.
const RECEIVE_ENVELOPE_ROOM: usize = 2048;
/// EndlessOutput: what the line prints at a time, and how far it runs
/// ahead of the client's Receives before it waits for them.
const ENDLESS_CHUNK: usize = 64 * 1024;
const ENDLESS_AHEAD: usize = 256 * 1024;

/// A SOAP answer: HTTP status (200, or 500 for a fault) and the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapReply {
    pub status: u16,
    pub xml: String,
    /// The action of the request it answers (last path segment), when the
    /// request was understood: for the server's request log.
    pub action: Option<String>,
}

/// What a running command line has printed and not yet handed to a
/// Receive, and its exit code once it has ended.
#[derive(Debug, Default)]
struct Streams {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit_code: Option<i32>,
}

impl Streams {
    fn ready(&self) -> bool {
        !self.stdout.is_empty() || !self.stderr.is_empty() || self.exit_code.is_some()
    }
}

struct Command {
    streams: Arc<Mutex<Streams>>,
    /// Changes when `streams` got something; closed when the task is gone.
    changed: watch::Receiver<()>,
    task: JoinHandle<()>,
}

/// The [`Console`] of one running command line: output is kept until the
/// line flushes it into [`Streams`]; programs go into the command log.
struct ShellConsole {
    streams: Arc<Mutex<Streams>>,
    changed: watch::Sender<()>,
    stdout: String,
    stderr: String,
    log: CommandLog,
    user: String,
    shell_command: usize,
}

impl ShellConsole {
    /// The line has ended: the rest of its output and its exit code.
    fn end(mut self, exit_code: i32) {
        self.flush();
        self.streams.lock().expect("streams poisoned").exit_code = Some(exit_code);
        self.changed.send_replace(());
    }
}

impl Console for ShellConsole {
    fn stdout(&mut self, text: &str) {
        self.stdout.push_str(text);
    }
    fn stderr(&mut self, text: &str) {
        self.stderr.push_str(text);
    }
    fn flush(&mut self) {
        if self.stdout.is_empty() && self.stderr.is_empty() {
            return;
        }
        {
            let mut streams = self.streams.lock().expect("streams poisoned");
            streams
                .stdout
                .extend(std::mem::take(&mut self.stdout).into_bytes());
            streams
                .stderr
                .extend(std::mem::take(&mut self.stderr).into_bytes());
        }
        self.changed.send_replace(());
    }
    fn started(&mut self, written: &str) -> usize {
        self.log
            .start(&self.user, self.shell_command, written.to_owned())
    }
    fn exited(&mut self, process: usize, exit_code: i32) {
        self.log.finish(process, exit_code);
    }
}

struct Shell {
    commands: HashMap<String, Command>,
}

impl Drop for Shell {
    fn drop(&mut self) {
        // Deleting a shell ends its processes, as on Windows.
        for c in self.commands.values() {
            c.task.abort();
        }
    }
}

/// The shells of one server. Shared by its HTTP and HTTPS listeners.
pub struct ShellService {
    /// As WSManFault's Machine attribute shows it.
    machine: String,
    iis: IisSim,
    log: CommandLog,
    quota_fault: bool,
    /// Fault EndlessOutput: every command line prints without end.
    endless_output: bool,
    shells: Mutex<HashMap<String, Shell>>,
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string().to_uppercase()
}

impl ShellService {
    pub fn new(
        machine: String,
        iis: IisSim,
        log: CommandLog,
        quota_fault: bool,
        endless_output: bool,
    ) -> Arc<Self> {
        Arc::new(ShellService {
            machine,
            iis,
            log,
            quota_fault,
            endless_output,
            shells: Mutex::new(HashMap::new()),
        })
    }

    /// A fault reply, for callers outside the shell (e.g. the unencrypted refusal).
    pub fn fault_reply(&self, fault: &WsmanFault, relates_to: Option<&str>) -> SoapReply {
        SoapReply {
            status: 500,
            xml: fault.to_envelope(relates_to, &self.machine),
            action: None,
        }
    }

    /// Handles one SOAP request from the authenticated `user`.
    pub async fn handle(&self, xml: &[u8], user: &str) -> SoapReply {
        let req = match parse_request(xml) {
            Ok(r) => r,
            Err(e) => return self.fault_reply(&WsmanFault::malformed(&e.0), None),
        };
        let relates = req.message_id.clone();
        let action = req.action.rsplit('/').next().map(str::to_owned);
        let reply = match self.dispatch(&req, user).await {
            Ok(xml) => SoapReply {
                status: 200,
                xml,
                action: None,
            },
            Err(fault) => self.fault_reply(&fault, relates.as_deref()),
        };
        SoapReply { action, ..reply }
    }

    async fn dispatch(&self, req: &WsmanRequest, user: &str) -> Result<String, WsmanFault> {
        let known = [
            ACTION_CREATE,
            ACTION_COMMAND,
            ACTION_RECEIVE,
            ACTION_SIGNAL,
            ACTION_DELETE,
        ];
        if !known.contains(&req.action.as_str()) {
            return Err(WsmanFault::action_not_supported(&req.action));
        }
        match req.resource_uri.as_deref() {
            Some(RESOURCE_CMD) => {}
            other => return Err(WsmanFault::resource_not_found(other.unwrap_or(""))),
        }
        let relates = req.message_id.as_deref();
        let reply =
            |action: &str, body: &str| envelope(&format!("{action}Response"), relates, body);
        match req.action.as_str() {
            ACTION_CREATE => {
                let body = self.create(req)?;
                Ok(reply(ACTION_CREATE, &body))
            }
            ACTION_COMMAND => {
                let body = self.command(req, user)?;
                Ok(reply(ACTION_COMMAND, &body))
            }
            ACTION_RECEIVE => {
                let body = self.receive(req).await?;
                Ok(reply(ACTION_RECEIVE, &body))
            }
            ACTION_SIGNAL => {
                self.signal(req)?;
                Ok(reply(ACTION_SIGNAL, "<rsp:SignalResponse/>"))
            }
            _ => {
                self.delete(req)?;
                Ok(reply(ACTION_DELETE, ""))
            }
        }
    }

    fn create(&self, req: &WsmanRequest) -> Result<String, WsmanFault> {
        if self.quota_fault {
            return Err(WsmanFault::shell_quota_exceeded());
        }
        let id = new_id();
        self.shells.lock().expect("shells poisoned").insert(
            id.clone(),
            Shell {
                commands: HashMap::new(),
            },
        );
        let address = req
            .to
            .clone()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| format!("http://{}:5985/wsman", self.machine));
        // Windows answers both forms: the WS-Transfer ResourceCreated with the
        // ShellId selector (pywinrm reads this) and the rsp:Shell (others do).
        Ok(format!(
            concat!(
                "<x:ResourceCreated><a:Address>{addr}</a:Address><a:ReferenceParameters>",
                "<w:ResourceURI>{uri}</w:ResourceURI><w:SelectorSet>",
                "<w:Selector Name=\"ShellId\">{id}</w:Selector></w:SelectorSet>",
                "</a:ReferenceParameters></x:ResourceCreated>",
                "<rsp:Shell><rsp:ShellId>{id}</rsp:ShellId><rsp:ResourceUri>{uri}</rsp:ResourceUri>",
                "<rsp:InputStreams>stdin</rsp:InputStreams>",
                "<rsp:OutputStreams>stdout stderr</rsp:OutputStreams>",
                "<rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut></rsp:Shell>"
            ),
            addr = esc(&address),
            uri = RESOURCE_CMD,
            id = id,
        ))
    }

    fn shell_id<'r>(&self, req: &'r WsmanRequest) -> Result<&'r str, WsmanFault> {
        req.shell_id
            .as_deref()
            .ok_or_else(|| WsmanFault::shell_not_found(""))
    }

    fn command(&self, req: &WsmanRequest, user: &str) -> Result<String, WsmanFault> {
        let shell_id = self.shell_id(req)?;
        let Body::CommandLine { command, arguments } = &req.body else {
            return Err(WsmanFault::malformed("Command without rsp:CommandLine."));
        };
        let mut shells = self.shells.lock().expect("shells poisoned");
        let shell = shells
            .get_mut(shell_id)
            .ok_or_else(|| WsmanFault::shell_not_found(shell_id))?;
        // WinRM hands `cmd.exe /c` the command and its arguments as one line.
        let line = std::iter::once(command.as_str())
            .chain(arguments.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        let streams = Arc::new(Mutex::new(Streams::default()));
        let (changed, watch) = watch::channel(());
        let mut console = ShellConsole {
            streams: streams.clone(),
            changed,
            stdout: String::new(),
            stderr: String::new(),
            log: self.log.clone(),
            user: user.to_owned(),
            shell_command: self.log.next_shell_command(),
        };
        let iis = self.iis.clone();
        // The line runs on its own; Receive takes what it printed.
        let task = if self.endless_output {
            tokio::spawn(async move { print_without_end(&line, &mut console).await })
        } else {
            tokio::spawn(async move {
                let exit_code = iis.run_line(&line, &mut console).await;
                console.end(exit_code);
            })
        };
        let id = new_id();
        shell.commands.insert(
            id.clone(),
            Command {
                streams,
                changed: watch,
                task,
            },
        );
        Ok(format!(
            "<rsp:CommandResponse><rsp:CommandId>{id}</rsp:CommandId></rsp:CommandResponse>"
        ))
    }

    async fn receive(&self, req: &WsmanRequest) -> Result<String, WsmanFault> {
        let shell_id = self.shell_id(req)?;
        let Body::Receive { command_id } = &req.body else {
            return Err(WsmanFault::malformed("Receive without rsp:Receive."));
        };
        let (streams, mut changed) = {
            let shells = self.shells.lock().expect("shells poisoned");
            let shell = shells
                .get(shell_id)
                .ok_or_else(|| WsmanFault::shell_not_found(shell_id))?;
            let id = command_id.as_deref().unwrap_or("");
            let cmd = shell
                .commands
                .get(id)
                .ok_or_else(|| WsmanFault::command_not_found(id))?;
            (cmd.streams.clone(), cmd.changed.clone())
        };
        let command_id = command_id.clone().unwrap_or_default();
        // Like Windows, output that does not fit the client's
        // MaxEnvelopeSize goes out over several Receives.
        let budget = (req.max_envelope_size.unwrap_or(DEFAULT_MAX_ENVELOPE))
            .saturating_sub(RECEIVE_ENVELOPE_ROOM)
            .max(1024)
            / 4
            * 3;
        let wait = req
            .operation_timeout
            .unwrap_or(DEFAULT_OPERATION_TIMEOUT)
            .min(MAX_OPERATION_TIMEOUT);
        let deadline = tokio::time::Instant::now() + wait;
        let mut task_gone = false;
        loop {
            {
                let mut streams = streams.lock().expect("streams poisoned");
                if streams.ready() {
                    let stdout = take_at_most(&mut streams.stdout, budget);
                    let stderr = take_at_most(&mut streams.stderr, budget - stdout.len());
                    // Done only once everything it printed was handed out.
                    let ended = streams.stdout.is_empty() && streams.stderr.is_empty();
                    return Ok(receive_body(
                        &command_id,
                        &stdout,
                        &stderr,
                        streams.exit_code.filter(|_| ended),
                    ));
                }
            }
            if task_gone {
                // The process was killed (shell deleted / signalled) meanwhile.
                return Err(WsmanFault::command_not_found(&command_id));
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                // Look once more: it may have ended just before it was dropped.
                Ok(Err(_)) => task_gone = true,
                Err(_) => return Err(WsmanFault::operation_timeout()),
            }
        }
    }

    fn signal(&self, req: &WsmanRequest) -> Result<(), WsmanFault> {
        let shell_id = self.shell_id(req)?;
        let Body::Signal { command_id, code } = &req.body else {
            return Err(WsmanFault::malformed("Signal without rsp:Signal."));
        };
        let mut shells = self.shells.lock().expect("shells poisoned");
        let shell = shells
            .get_mut(shell_id)
            .ok_or_else(|| WsmanFault::shell_not_found(shell_id))?;
        let id = command_id.as_deref().unwrap_or("");
        if !shell.commands.contains_key(id) {
            return Err(WsmanFault::command_not_found(id));
        }
        if code == SIGNAL_TERMINATE
            && let Some(cmd) = shell.commands.remove(id)
        {
            cmd.task.abort();
        }
        // Other signals (ctrl_c, ctrl_break) are acknowledged; appcmd and
        // iisreset run to completion anyway in the simulation.
        Ok(())
    }

    fn delete(&self, req: &WsmanRequest) -> Result<(), WsmanFault> {
        let shell_id = self.shell_id(req)?;
        self.shells
            .lock()
            .expect("shells poisoned")
            .remove(shell_id)
            .map(|_| ())
            .ok_or_else(|| WsmanFault::shell_not_found(shell_id))
    }
}

/// The first `max` bytes of `buffer`, taken out of it.
fn take_at_most(buffer: &mut Vec<u8>, max: usize) -> Vec<u8> {
    if buffer.len() <= max {
        std::mem::take(buffer)
    } else {
        let rest = buffer.split_off(max);
        std::mem::replace(buffer, rest)
    }
}

/// Fault EndlessOutput: the line is logged as started and prints forever,
/// a chunk at a time, never far ahead of the client's Receives (so the lab
/// holds little). It ends only when its shell or command is ended.
async fn print_without_end(line: &str, console: &mut ShellConsole) {
    console.started(line);
    let chunk =
        "All work and no play makes a server print without end.\r\n".repeat(ENDLESS_CHUNK / 57 + 1);
    loop {
        let behind = {
            let streams = console.streams.lock().expect("streams poisoned");
            streams.stdout.len()
        };
        if behind < ENDLESS_AHEAD {
            console.stdout(&chunk);
            console.flush();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A ReceiveResponse in Windows' shape: the data streams; then, once the
/// command has ended, an empty `End="true"` stream per name and
/// CommandState Done with the exit code, else CommandState Running.
fn receive_body(command_id: &str, stdout: &[u8], stderr: &[u8], exit_code: Option<i32>) -> String {
    let id = esc(command_id);
    let mut out = String::from("<rsp:ReceiveResponse>");
    for (name, data) in [("stdout", stdout), ("stderr", stderr)] {
        if !data.is_empty() {
            out.push_str(&format!(
                "<rsp:Stream Name=\"{name}\" CommandId=\"{id}\">{}</rsp:Stream>",
                B64.encode(data)
            ));
        }
    }
    match exit_code {
        Some(code) => {
            for name in ["stdout", "stderr"] {
                out.push_str(&format!(
                    "<rsp:Stream Name=\"{name}\" CommandId=\"{id}\" End=\"true\"></rsp:Stream>"
                ));
            }
            out.push_str(&format!(
                "<rsp:CommandState CommandId=\"{id}\" State=\"{COMMAND_STATE_DONE}\"><rsp:ExitCode>{code}</rsp:ExitCode></rsp:CommandState>"
            ));
        }
        None => out.push_str(&format!(
            "<rsp:CommandState CommandId=\"{id}\" State=\"{COMMAND_STATE_RUNNING}\"/>"
        )),
    }
    out.push_str("</rsp:ReceiveResponse>");
    out
}
