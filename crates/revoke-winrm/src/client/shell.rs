//! A remote cmd shell on one server: commands run one after another,
//! a mutating one at most once.

use super::super::{WinrmError, soap};
use super::{CommandOutput, MAX_COMMAND_OUTPUT, WinrmClient, may_have_run};

/// A remote cmd shell on one server.
pub struct Shell<'c> {
    pub(super) client: &'c WinrmClient,
    pub(super) id: String,
    /// The last command that ended and was not yet released with a Signal:
    /// released before the next command starts, or by the shell's Delete.
    pub(super) unsignalled: std::sync::Mutex<Option<String>>,
}

impl Shell<'_> {
    /// Run one read-only command to completion and collect its output.
    pub async fn run(&self, program: &str, args: &[String]) -> Result<CommandOutput, WinrmError> {
        self.run_observed(program, args, |_, _| {}).await
    }

    /// Run one read-only command to completion and collect its output;
    /// `progress` is told the command's stdout and stderr so far whenever a
    /// Receive brought more (a server answers a Receive as soon as the
    /// command printed something, MS-WSMV 3.1.4.14), so a caller can act on
    /// the output of a long command line before it ends.
    ///
    /// A read-only command may be sent again on a new connection when the
    /// server answers 401 on a kept-alive one; use [`Self::run_mutating`]
    /// for a command that changes the server.
    pub async fn run_observed(
        &self,
        program: &str,
        args: &[String],
        progress: impl FnMut(&str, &str),
    ) -> Result<CommandOutput, WinrmError> {
        self.execute(program, args, None, progress).await
    }

    /// [`Self::run_observed`] for a command that changes the server
    /// (`appcmd recycle`, `iisreset`): it is sent at most once. Once it may
    /// have reached the server, any failure (no answer, a 401, an answer
    /// that cannot be unsealed, too much output) is
    /// [`WinrmError::MayHaveRun`]: whether it ran is unknown, and resending
    /// it could run it twice.
    ///
    /// `what` names the command in that error ("the recycle line").
    pub async fn run_mutating(
        &self,
        what: &str,
        program: &str,
        args: &[String],
        progress: impl FnMut(&str, &str),
    ) -> Result<CommandOutput, WinrmError> {
        self.execute(program, args, Some(what), progress).await
    }

    async fn execute(
        &self,
        program: &str,
        args: &[String],
        once: Option<&str>,
        mut progress: impl FnMut(&str, &str),
    ) -> Result<CommandOutput, WinrmError> {
        self.release_previous().await;
        let client = self.client;
        // Past the Command, a failure of a mutating command means it may have run.
        let failed = |e: WinrmError| match once {
            Some(command) => may_have_run(command, e),
            None => e,
        };
        let xml = client
            .call(
                soap::ACTION_COMMAND,
                Some(&self.id),
                &soap::command_body(program, args),
                &[
                    ("WINRS_CONSOLEMODE_STDIN", "TRUE"),
                    ("WINRS_SKIP_CMD_SHELL", "FALSE"),
                ],
                once,
            )
            .await?;
        let command_id = soap::parse_command_id(&xml).map_err(failed)?;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let exit_code = loop {
            let received = match client
                .call(
                    soap::ACTION_RECEIVE,
                    Some(&self.id),
                    &soap::receive_body(&command_id),
                    &[("WSMAN_CMDSHELL_OPTION_KEEPALIVE", "TRUE")],
                    // A lost Receive answer loses output: not resent either.
                    once,
                )
                .await
            {
                Ok(xml) => soap::parse_receive(&xml).map_err(failed)?,
                // Still running after OperationTimeout: ask again.
                Err(WinrmError::Fault {
                    wsman_code: Some(soap::FAULT_CODE_OPERATION_TIMEOUT),
                    ..
                }) => continue,
                Err(e) => return Err(failed(e)),
            };
            if !received.stdout.is_empty() || !received.stderr.is_empty() {
                stdout.extend(received.stdout);
                stderr.extend(received.stderr);
                if stdout.len() + stderr.len() > MAX_COMMAND_OUTPUT {
                    // Ask the server to end it; the answer changes nothing.
                    self.signal(&command_id).await;
                    return Err(failed(WinrmError::OutputTooLarge {
                        limit: MAX_COMMAND_OUTPUT,
                    }));
                }
                progress(
                    &String::from_utf8_lossy(&stdout),
                    &String::from_utf8_lossy(&stderr),
                );
            }
            if let Some(code) = received.exit_code {
                break code;
            }
        };
        // Its result is in hand; the Signal that releases it on the server is
        // sent before the next command (see `release_previous`).
        *self.unsignalled.lock().expect("unsignalled command") = Some(command_id);
        Ok(CommandOutput {
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            exit_code,
        })
    }

    /// Releases the previous command's resources on the server with
    /// Signal(terminate): MS-WSMV 3.1.4.14 says a final Signal MUST be sent
    /// for a command of a Text-based Command Shell after all its output was
    /// received, even though the Receive already said Done (pywinrm's
    /// `cleanup_command` does the same). Only the last command of a shell
    /// goes without: the shell's Delete right after it frees every resource
    /// of the shell, commands included (MS-WSMV 3.1.4.4.1), so that Signal
    /// would be a round trip for nothing.
    async fn release_previous(&self) {
        let previous = self.unsignalled.lock().expect("unsignalled command").take();
        if let Some(command_id) = previous {
            // The result is in hand either way.
            self.signal(&command_id).await;
        }
    }

    /// Signal(terminate) for a command; a failure changes nothing for the
    /// caller, so it is not returned.
    async fn signal(&self, command_id: &str) {
        let _ = self
            .client
            .call(
                soap::ACTION_SIGNAL,
                Some(&self.id),
                &soap::signal_body(command_id),
                &[],
                None,
            )
            .await;
    }

    /// Delete the shell (and with it the last command, see `release_previous`).
    pub async fn close(self) -> Result<(), WinrmError> {
        self.client
            .call(soap::ACTION_DELETE, Some(&self.id), "", &[], None)
            .await
            .map(|_| ())
    }
}
