//! Runs a [`FlushPlan`]: every server concurrently (bounded by `parallel`),
//! iisreset in waves, a timeout per server, retries only where safe — and
//! tells the world through [`Event`]s. No terminal in sight.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::events::{Event, EventSink, ServerOutcome, ServerStatus, Step};
use crate::exchange::{JobError, JobState, ServerJob};
use crate::plan::{FlushPlan, Method};
use revoke_winrm::Connector;

/// First retry after this; doubles each time.
const RETRY_BACKOFF: Duration = Duration::from_millis(250);

/// A run that is only a flush (`revoke flush`): the plan to the end, then
/// the end of the run.
pub async fn flush_and_finish(plan: FlushPlan, connector: Connector, events: EventSink) {
    flush(plan, connector, &events).await;
    events.emit(Event::RunFinished {
        finished_at: SystemTime::now(),
    });
}

/// Run the plan to the end; returns when every server has finished. The
/// caller ends the run (`RunFinished`): `disable` and `reset` have more to
/// do alongside.
pub async fn flush(plan: FlushPlan, connector: Connector, events: &EventSink) {
    let plan = Arc::new(plan);
    let label = |i: &usize| plan.targets[*i].label.clone();
    let waves = plan.waves();
    events.emit(Event::RunStarted {
        run_id: events.run_id().to_string(),
        method: plan.method,
        dry_run: plan.dry_run,
        servers: plan.targets.iter().map(|t| t.label.clone()).collect(),
        waves: waves
            .iter()
            .map(|w| w.iter().map(label).collect())
            .collect(),
        started_at: SystemTime::now(),
    });

    // A dry run changes nothing, so its waves need not wait for each other.
    let sequential_waves = plan.method == Method::Iisreset && !plan.dry_run;
    // Every server at once unless `--parallel` says fewer: a recycle takes no
    // server down (docs/performance.md); iisreset is held to its waves below.
    let limit = Arc::new(Semaphore::new(plan.concurrency()));
    if sequential_waves {
        for wave in waves.iter().skip(1).flatten() {
            events.emit(Event::StepChanged {
                server: label(wave),
                step: Step::Queued,
            });
        }
        for (i, wave) in waves.iter().enumerate() {
            let maybe_down = run_servers(&plan, &connector, events, &limit, wave).await;
            if !maybe_down.is_empty() {
                // Starting the next wave could take more than max_unavailable
                // servers down at once: hold every later wave back.
                hold_back(&plan, events, &waves[i + 1..], &maybe_down);
                break;
            }
        }
    } else {
        let all: Vec<usize> = waves.into_iter().flatten().collect();
        run_servers(&plan, &connector, events, &limit, &all).await;
    }
}

/// Later waves, never started: each server ends failed, saying why.
fn hold_back(plan: &FlushPlan, events: &EventSink, waves: &[Vec<usize>], maybe_down: &[String]) {
    let error = format!(
        "not started: {} may still be restarting IIS, so later waves were held back \
         (at most {} server(s) down at once)",
        maybe_down.join(", "),
        plan.max_unavailable
    );
    for &index in waves.iter().flatten() {
        events.emit(Event::ServerFinished {
            server: plan.targets[index].label.clone(),
            outcome: ServerOutcome {
                status: ServerStatus::Failed,
                duration: Duration::ZERO,
                error: Some(error.clone()),
                computer: None,
                auth: None,
                attempts: 0,
                old_workers_exited_at: None,
            },
        });
    }
}

/// Runs these servers; returns those that may have been left down: a
/// mutating command was sent and the server did not end `ok`.
async fn run_servers(
    plan: &Arc<FlushPlan>,
    connector: &Connector,
    events: &EventSink,
    limit: &Arc<Semaphore>,
    servers: &[usize],
) -> Vec<String> {
    let mut tasks = JoinSet::new();
    for &index in servers {
        let plan = Arc::clone(plan);
        let connector = connector.clone();
        let events = events.clone();
        let limit = Arc::clone(limit);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("semaphore open");
            let maybe_down = run_server(&plan, index, &connector, &events).await;
            maybe_down.then(|| plan.targets[index].label.clone())
        });
    }
    let mut maybe_down = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Some(label)) => maybe_down.push(label),
            Ok(None) => {}
            // A panic in one server's task must not take the others down;
            // what it left behind is unknown.
            Err(e) => {
                tracing::error!("a server task failed: {e}");
                maybe_down.push("a server whose task failed".into());
            }
        }
    }
    maybe_down
}

/// Returns true if the server may have been left changed but not back to
/// normal (a mutating command was sent and it did not end `ok`).
async fn run_server(
    plan: &FlushPlan,
    index: usize,
    connector: &Connector,
    events: &EventSink,
) -> bool {
    let target = &plan.targets[index];
    events.emit(Event::ServerStarted {
        server: target.label.clone(),
    });
    let started = Instant::now();
    let state = Arc::new(Mutex::new(JobState::default()));
    let job = ServerJob {
        plan,
        target,
        connector,
        events,
        state: Arc::clone(&state),
        deadline: started + plan.timeout,
    };
    let attempts = Arc::new(Mutex::new(0u32));

    let attempt_loop = async {
        loop {
            let attempt = {
                let mut n = attempts.lock().expect("attempts");
                *n += 1;
                *n
            };
            match job.run().await {
                Ok(status) => return (status, None),
                Err(e) if retryable(&e, &state, attempt, plan.retries) => {
                    events.emit(Event::StepChanged {
                        server: target.label.clone(),
                        step: Step::Retrying {
                            attempt,
                            reason: e.to_string(),
                        },
                    });
                    tokio::time::sleep(RETRY_BACKOFF * 2u32.pow(attempt - 1)).await;
                }
                Err(e) => return (status_after_error(&e, &state), Some(e.to_string())),
            }
        }
    };

    let (status, error) = match tokio::time::timeout(plan.timeout, attempt_loop).await {
        Ok(result) => result,
        Err(_) => {
            // A command that changes the server may be out there unanswered.
            let unreported = state
                .lock()
                .expect("job state")
                .take_unreported(plan.timeout);
            for action in unreported {
                events.emit(Event::ActionFinished {
                    server: target.label.clone(),
                    action,
                });
            }
            (
                ServerStatus::Timeout,
                Some(format!("no answer within {} s", plan.timeout.as_secs())),
            )
        }
    };
    let ((computer, auth), mutated, exited_at, draining) = {
        let state = state.lock().expect("job state");
        let draining = state.draining.join("; ");
        (
            (state.computer.clone(), state.auth),
            state.mutated,
            state.old_workers_exited_at,
            draining,
        )
    };
    let error = match (status, error) {
        (ServerStatus::Draining, None) => Some(format!(
            "flushed, but old worker(s) still running after {} s hold cached tokens: {draining}",
            plan.drain_timeout.as_secs()
        )),
        (_, error) => error,
    };
    let attempts = *attempts.lock().expect("attempts");
    events.emit(Event::ServerFinished {
        server: target.label.clone(),
        outcome: ServerOutcome {
            status,
            duration: started.elapsed(),
            error,
            computer,
            auth,
            attempts,
            old_workers_exited_at: exited_at,
        },
    });
    // A draining server is up: it recycled, its old workers linger.
    mutated && !matches!(status, ServerStatus::Ok | ServerStatus::Draining)
}

/// A transient failure is retried only while nothing mutating was sent:
/// a recycle or iisreset is never repeated blindly.
fn retryable(error: &JobError, state: &Mutex<JobState>, attempt: u32, retries: u32) -> bool {
    error.is_transient() && !state.lock().expect("job state").mutated && attempt <= retries
}

fn status_after_error(error: &JobError, state: &Mutex<JobState>) -> ServerStatus {
    let state = state.lock().expect("job state");
    if error.is_unreachable() {
        ServerStatus::Unreachable
    } else if error.is_no_answer() {
        ServerStatus::Timeout
    } else if state.succeeded > 0 {
        ServerStatus::Partial
    } else {
        ServerStatus::Failed
    }
}
