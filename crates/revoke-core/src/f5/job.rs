//! The work on every BIG-IP, concurrently: log in, list the accounts'
//! sessions, delete them, list again to confirm. One device's failure never
//! touches another's job.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::client::F5Client;
use super::{F5Device, SessionOwner};
use crate::events::{ApmSession, Event, EventSink, F5Outcome, F5Status, SessionStatus};

/// Kills (or, in a dry run, lists) the sessions of `accounts` on every
/// device, concurrently. Emits `F5Started`, `F5Step`s and one
/// `F5DeviceFinished` per device; returns when every device is done.
pub async fn kill_sessions(
    client: F5Client,
    accounts: Vec<SessionOwner>,
    dry_run: bool,
    events: EventSink,
) {
    events.emit(Event::F5Started {
        devices: client.devices().iter().map(|d| d.label.clone()).collect(),
        dry_run,
    });
    let accounts = Arc::new(accounts);
    let mut tasks = Vec::new();
    for device in client.devices().to_vec() {
        let (client, accounts, events) = (client.clone(), Arc::clone(&accounts), events.clone());
        let label = device.label.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let job = DeviceJob {
                client: &client,
                device: &device,
                events: &events,
            };
            let mut outcome = job.run(&accounts, dry_run).await;
            outcome.duration_ms = started.elapsed().as_millis() as u64;
            if outcome.status == F5Status::Ok {
                outcome.confirmed_at = Some(SystemTime::now());
            }
            events.emit(Event::F5DeviceFinished { device: outcome });
        });
        tasks.push((label, task));
    }
    for (label, task) in tasks {
        if let Err(error) = task.await {
            // A panic in one device's task ends only that device.
            tracing::error!("the task of F5 device {label} failed: {error}");
            events.emit(Event::F5DeviceFinished {
                device: failed(&label, Vec::new(), format!("internal error: {error}")),
            });
        }
    }
}

fn failed(device: &str, sessions: Vec<ApmSession>, message: String) -> F5Outcome {
    F5Outcome {
        device: device.to_string(),
        status: F5Status::Failed,
        killed: 0,
        sessions,
        duration_ms: 0,
        confirmed_at: None,
        message: Some(message),
    }
}

/// The work on one device.
struct DeviceJob<'a> {
    client: &'a F5Client,
    device: &'a F5Device,
    events: &'a EventSink,
}

impl DeviceJob<'_> {
    fn step(&self, what: impl Into<String>) {
        self.events.emit(Event::F5Step {
            device: self.device.label.clone(),
            what: what.into(),
        });
    }

    async fn run(&self, accounts: &[SessionOwner], dry_run: bool) -> F5Outcome {
        let label = &self.device.label;
        self.step("logging in");
        let token = match self.client.login(self.device).await {
            Ok(token) => token,
            Err(message) => return failed(label, Vec::new(), message),
        };
        self.step("listing sessions");
        let listed = match self.client.list(self.device, &token).await {
            Ok(listed) => listed,
            Err(message) => return failed(label, Vec::new(), message),
        };
        let mut sessions: Vec<ApmSession> = listed
            .into_iter()
            .filter_map(|s| {
                let account = accounts.iter().find(|a| a.matches(&s.user))?;
                Some(ApmSession {
                    id: s.id,
                    user: s.user,
                    client_ip: s.client_ip,
                    account: account.sam.clone(),
                    status: SessionStatus::Planned,
                    message: None,
                })
            })
            .collect();
        if dry_run {
            return F5Outcome {
                device: label.clone(),
                status: F5Status::Planned,
                killed: 0,
                message: Some(format!("would kill {} session(s)", sessions.len())),
                sessions,
                duration_ms: 0,
                confirmed_at: None,
            };
        }
        if sessions.is_empty() {
            return F5Outcome {
                device: label.clone(),
                status: F5Status::Ok,
                killed: 0,
                sessions,
                duration_ms: 0,
                confirmed_at: None,
                message: None,
            };
        }

        self.step(format!("killing {} session(s)", sessions.len()));
        let mut deleted = Vec::new();
        for session in &mut sessions {
            match self.client.delete(self.device, &token, &session.id).await {
                Ok(true) => deleted.push(session.id.clone()),
                Ok(false) => session.status = SessionStatus::Gone,
                Err(message) => {
                    session.status = SessionStatus::Alive;
                    session.message = Some(message);
                }
            }
        }

        self.step("verifying");
        let still = match self.client.list(self.device, &token).await {
            Ok(listed) => listed,
            Err(message) => {
                for session in sessions.iter_mut().filter(|s| deleted.contains(&s.id)) {
                    session.status = SessionStatus::Unverified;
                }
                return failed(
                    label,
                    sessions,
                    format!("deleted, but could not list the sessions again: {message}"),
                );
            }
        };
        for session in &mut sessions {
            let listed = still.iter().any(|s| s.id == session.id);
            if listed {
                session.status = SessionStatus::Alive;
                session
                    .message
                    .get_or_insert_with(|| "still listed after DELETE".into());
            } else if deleted.contains(&session.id) {
                session.status = SessionStatus::Killed;
            } else if session.status == SessionStatus::Alive {
                // The DELETE failed, yet it is gone now.
                session.status = SessionStatus::Gone;
            }
        }
        let killed = sessions
            .iter()
            .filter(|s| s.status == SessionStatus::Killed)
            .count();
        let alive: Vec<&str> = sessions
            .iter()
            .filter(|s| s.status == SessionStatus::Alive)
            .map(|s| s.id.as_str())
            .collect();
        let (status, message) = if alive.is_empty() {
            (F5Status::Ok, None)
        } else {
            (
                F5Status::Failed,
                Some(format!(
                    "{} session(s) still alive: {}",
                    alive.len(),
                    alive.join(", ")
                )),
            )
        };
        F5Outcome {
            device: label.clone(),
            status,
            killed,
            sessions,
            duration_ms: 0,
            confirmed_at: None,
            message,
        }
    }
}
