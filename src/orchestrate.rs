//! Runs a [`FlushPlan`]: every server concurrently (bounded by `parallel`),
//! iisreset in waves, a timeout per server, retries only where safe — and
//! tells the world through [`Event`]s. No terminal in sight.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::events::{Event, ServerOutcome, ServerStatus, Step};
use crate::exchange::{JobError, JobState, ServerJob};
use crate::plan::{FlushPlan, Method};
use crate::winrm::Connector;

/// Where the core sends its events. Cheap to clone.
#[derive(Clone)]
pub struct EventSink(mpsc::UnboundedSender<Event>);

impl EventSink {
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(tx), rx)
    }

    pub fn emit(&self, event: Event) {
        // A consumer that went away (interrupted run) is not the core's problem.
        let _ = self.0.send(event);
    }
}

/// First retry after this; doubles each time.
const RETRY_BACKOFF: Duration = Duration::from_millis(250);

/// Run the plan to the end. Returns when every server has finished.
pub async fn run(plan: FlushPlan, connector: Connector, events: EventSink) {
    let plan = Arc::new(plan);
    let label = |i: &usize| plan.targets[*i].label.clone();
    let waves = plan.waves();
    events.emit(Event::RunStarted {
        run_id: uuid::Uuid::new_v4().to_string(),
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
    let limit = Arc::new(Semaphore::new(plan.parallel.max(1)));
    if sequential_waves {
        for wave in waves.iter().skip(1).flatten() {
            events.emit(Event::StepChanged {
                server: label(wave),
                step: Step::Queued,
            });
        }
        for wave in &waves {
            run_servers(&plan, &connector, &events, &limit, wave).await;
        }
    } else {
        let all: Vec<usize> = waves.into_iter().flatten().collect();
        run_servers(&plan, &connector, &events, &limit, &all).await;
    }

    events.emit(Event::RunFinished {
        finished_at: SystemTime::now(),
    });
}

async fn run_servers(
    plan: &Arc<FlushPlan>,
    connector: &Connector,
    events: &EventSink,
    limit: &Arc<Semaphore>,
    servers: &[usize],
) {
    let mut tasks = JoinSet::new();
    for &index in servers {
        let plan = Arc::clone(plan);
        let connector = connector.clone();
        let events = events.clone();
        let limit = Arc::clone(limit);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("semaphore open");
            run_server(&plan, index, &connector, &events).await;
        });
    }
    while let Some(joined) = tasks.join_next().await {
        // A panic in one server's task must not take the others down.
        if let Err(e) = joined {
            tracing::error!("a server task failed: {e}");
        }
    }
}

async fn run_server(plan: &FlushPlan, index: usize, connector: &Connector, events: &EventSink) {
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
        Err(_) => (
            ServerStatus::Timeout,
            Some(format!("no answer within {} s", plan.timeout.as_secs())),
        ),
    };
    let computer = state.lock().expect("job state").computer.clone();
    let attempts = *attempts.lock().expect("attempts");
    events.emit(Event::ServerFinished {
        server: target.label.clone(),
        outcome: ServerOutcome {
            status,
            duration: started.elapsed(),
            error,
            computer,
            attempts,
        },
    });
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
