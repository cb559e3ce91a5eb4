//! The Fanout worker: long-polls the work queue (subtasks) and the control queue (task
//! steps), runs what it receives with bounded concurrency, and optionally runs the
//! reconciler on a timer (locally; on AWS a scheduled Lambda does).
//!
//! While a message is being handled its visibility is extended every third of the lease,
//! and the task's status is read at the same beat so that a cancel reaches a running
//! subtask. Handled messages are deleted in batches of up to 10. On SIGTERM or Ctrl-C the
//! worker stops receiving, lets running messages finish (up to `--drain-seconds`) and
//! exits; anything unfinished comes back to the queue when its lease runs out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use clap::{Parser, ValueEnum};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use fanout::clearml::serve::{Run, RunMessage};
use fanout::engine::messages::{ControlMessage, WorkMessage};
use fanout::engine::work::Outcome;
use fanout::engine::{control, reconcile, work};
use fanout::error::ApiError;
use fanout::kinds::CancelFlag;
use fanout::store::dynamo::aws_error;
use fanout::tasks::model::TaskStatus;
use fanout::{Services, telemetry};

pub mod clearml_run;
pub mod orchestrator_run;
pub mod sandbox;
pub mod video_agent;

/// A queue the worker consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Subtasks.
    Work,
    /// Task steps: plan, advance, merge.
    Control,
}

/// Command line (each flag also reads a `FANOUT_WORKER_*` variable).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "worker",
    about = "Fanout worker: runs subtasks and task steps from SQS"
)]
pub struct Options {
    /// Queues to consume.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "work,control",
        env = "FANOUT_WORKER_QUEUES"
    )]
    pub queues: Vec<Role>,
    /// Subtasks run at once.
    #[arg(long, default_value_t = 8, env = "FANOUT_WORKER_CONCURRENCY")]
    pub concurrency: usize,
    /// Seconds a received message stays invisible to other workers; extended every
    /// third of it while the message is handled.
    #[arg(long, default_value_t = 60, env = "FANOUT_WORKER_LEASE_SECONDS")]
    pub lease_seconds: i32,
    /// Long-poll wait of a receive, in seconds (SQS allows 0..=20).
    #[arg(long, default_value_t = 20, env = "FANOUT_WORKER_WAIT_SECONDS")]
    pub wait_seconds: i32,
    /// Deliveries after which a failing subtask fails for good (the queue's
    /// maxReceiveCount sends it to the dead-letter queue at the same count).
    #[arg(long, default_value_t = 5, env = "FANOUT_WORKER_MAX_ATTEMPTS")]
    pub max_attempts: u32,
    /// Run the reconciler every this many seconds (off when absent).
    #[arg(long, env = "FANOUT_WORKER_RECONCILE_EVERY")]
    pub reconcile_every: Option<u64>,
    /// A task with no progress for this many seconds counts as stalled.
    #[arg(long, default_value_t = 300, env = "FANOUT_WORKER_STALL_SECONDS")]
    pub stall_seconds: u64,
    /// Run the reconciler once, print its report and exit.
    #[arg(long)]
    pub reconcile_once: bool,
    /// Streams this worker processes at once as a Video Agent agent (0: none).
    #[arg(long, default_value_t = 2, env = "FANOUT_WORKER_STREAMS")]
    pub streams: u32,
    /// Seconds a stream stays this worker's without its feedback (sent every 2 s);
    /// another worker takes a silent one over after it.
    #[arg(long, default_value_t = 10, env = "FANOUT_WORKER_STREAM_LEASE_SECONDS")]
    pub stream_lease_seconds: u64,
    /// Seconds to let running messages finish after SIGTERM.
    #[arg(long, default_value_t = 100, env = "FANOUT_WORKER_DRAIN_SECONDS")]
    pub drain_seconds: u64,
}

/// Runs the worker until SIGTERM or Ctrl-C.
pub async fn run(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    telemetry::init();
    // Not dumpable: a sandboxed program running as the worker's own user (a worker that
    // is not root cannot switch users) can neither trace it nor read its /proc files,
    // where its environment holds credentials.
    // SAFETY: prctl with PR_SET_DUMPABLE takes plain integers and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        tracing::warn!("could not make the worker non-dumpable");
    }
    let svc = Arc::new(Services::from_env().await?);
    if options.reconcile_once {
        let report = reconcile::run(&svc, Duration::from_secs(options.stall_seconds)).await?;
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stop requested: draining");
        let _ = stop_tx.send(true);
    });
    let mut loops = JoinSet::new();
    for role in options.queues.iter().copied() {
        let (svc, options, stop) = (svc.clone(), options.clone(), stop.clone());
        loops.spawn(async move { consume(svc, role, options, stop).await });
    }
    {
        let agent = video_agent::AgentOptions {
            max_streams: options.streams,
            lease: Duration::from_secs(options.stream_lease_seconds.max(3)),
        };
        let (svc, stop) = (svc.clone(), stop.clone());
        loops.spawn(async move { video_agent::run(svc, agent, stop).await });
    }
    if let Some(every) = options.reconcile_every {
        let (svc, mut stop) = (svc.clone(), stop.clone());
        let stall = Duration::from_secs(options.stall_seconds);
        // A pass may work about two periods (so a lease of a killed worker frees soon).
        let budget = Duration::from_secs((every * 2).clamp(5, reconcile::PASS_BUDGET.as_secs()));
        loops.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(every.max(1)));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => return,
                }
                match reconcile::run_within(&svc, stall, budget).await {
                    Ok(report) => tracing::info!(?report, "reconciled"),
                    Err(err) => tracing::error!(%err, "reconcile failed"),
                }
            }
        });
    }
    tracing::info!(queues = ?options.queues, concurrency = options.concurrency, "worker started");
    while loops.join_next().await.is_some() {}
    if fanout::request_count::enabled() {
        // For the engine benchmark: every AWS request this worker sent, by operation.
        println!(
            "{}",
            serde_json::to_string(&fanout::request_count::snapshot())?
        );
    }
    tracing::info!("worker stopped");
    Ok(())
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Messages one receive asks for: SQS's maximum.
const BATCH: u32 = 10;

/// How long a task and subtask read for a whole received batch stay good enough to start
/// a subtask with. A message that waited longer for a slot reads its pair again. (A stale
/// read costs nothing but work: ending a subtask is a conditional write, and a cancel
/// still reaches a running subtask through its heartbeat.)
const PREFETCH_FRESH: Duration = Duration::from_secs(5);

/// A work message's task and subtask, read when its batch arrived.
struct Prefetched {
    pair: work::Pair,
    at: tokio::time::Instant,
}

/// Reads the task and subtask of every work message of a batch in one request; an empty
/// map (each message then reads its own) when the read fails.
async fn prefetch(svc: &Services, steps: &[Parsed]) -> HashMap<(u64, u32), Prefetched> {
    let parsed: Vec<WorkMessage> = steps
        .iter()
        .filter_map(|(_, step)| match step {
            Ok(Step::Work(m)) => Some(*m),
            _ => None,
        })
        .collect();
    if parsed.is_empty() {
        return HashMap::new();
    }
    let at = tokio::time::Instant::now();
    match work::load_pairs(svc, &parsed).await {
        Ok(pairs) => pairs
            .into_iter()
            .map(|(key, pair)| (key, Prefetched { pair, at }))
            .collect(),
        Err(err) => {
            tracing::warn!(%err, "batch read failed; each message reads its own");
            HashMap::new()
        }
    }
}

/// Receives from one queue while not stopped, a full batch at a time; each message runs
/// in its own task once one of the role's concurrency slots is free.
///
/// A worker holds at most `slots + BATCH` messages: the running ones and one batch
/// waiting. It receives again only when a whole batch fits, so in steady state every
/// receive asks for ten messages, and the next batch is already in hand when a slot
/// frees. Waiting messages are under the same lease heartbeat as running ones.
async fn consume(
    svc: Arc<Services>,
    role: Role,
    options: Options,
    mut stop: watch::Receiver<bool>,
) {
    let queue_url = match role {
        Role::Work => svc.config.work_queue_url.clone(),
        Role::Control => svc.config.control_queue_url.clone(),
    };
    let slots = match role {
        Role::Work => options.concurrency.max(1),
        // Steps of different tasks may run side by side; a few suffice.
        Role::Control => options.concurrency.clamp(1, 4),
    };
    let in_hand = Arc::new(Semaphore::new(slots + BATCH as usize));
    let (acks, ack_rx) = mpsc::unbounded_channel();
    // A handled message stays invisible for at least two thirds of the lease after its
    // last heartbeat; deleting within a sixth of it leaves a wide margin.
    let linger = Duration::from_secs_f64(f64::from(options.lease_seconds.max(1)) / 6.0);
    let deleter = tokio::spawn(delete_in_batches(
        svc.clone(),
        queue_url.clone(),
        ack_rx,
        linger,
    ));
    let queue = Arc::new(Queue {
        svc: svc.clone(),
        role,
        url: queue_url,
        options: options.clone(),
        acks,
        running: Semaphore::new(slots),
    });
    let mut handlers = JoinSet::new();
    while !*stop.borrow() {
        let mut room = tokio::select! {
            room = in_hand.clone().acquire_many_owned(BATCH) => room.expect("semaphore open"),
            _ = stop.changed() => break,
        };
        let receive = svc
            .aws
            .sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(BATCH as i32)
            .wait_time_seconds(options.wait_seconds)
            .visibility_timeout(options.lease_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send();
        let received = tokio::select! {
            received = receive => received,
            _ = stop.changed() => break,
        };
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(err) => {
                tracing::error!(error = aws_error(&err), "receive failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let steps: Vec<Parsed> = messages
            .into_iter()
            .map(|m| {
                let step = Step::parse(role, m.body().unwrap_or_default());
                (m, step)
            })
            .collect();
        let mut prefetched = match role {
            Role::Work => prefetch(&svc, &steps).await,
            Role::Control => HashMap::new(),
        };
        for (message, step) in steps {
            let Some(held) = room.split(1) else { break };
            let (queue, stop) = (queue.clone(), stop.clone());
            let read = match &step {
                Ok(Step::Work(m)) => prefetched.remove(&(m.task_id, m.subtask_id)),
                _ => None,
            };
            handlers.spawn(async move {
                queue.handle(message, step, read, stop).await;
                drop(held);
            });
        }
        while handlers.try_join_next().is_some() {}
    }
    let drain = Duration::from_secs(options.drain_seconds);
    if tokio::time::timeout(drain, async {
        while handlers.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!("drain time over; unfinished messages return to the queue");
        handlers.shutdown().await;
    }
    drop(queue);
    let _ = deleter.await;
}

/// A received message, read.
enum Step {
    Work(WorkMessage),
    Control(ControlMessage),
    /// A task of a ClearML queue Fanout serves (on the work queue).
    Clearml(Run),
    /// An orchestrator uplet (on the work queue).
    Orchestrator(fanout::orchestrator::compute::Run),
}

impl Step {
    fn parse(role: Role, body: &str) -> Result<Step, serde_json::Error> {
        match role {
            Role::Work => match serde_json::from_str(body) {
                Ok(work) => Ok(Step::Work(work)),
                Err(err) => serde_json::from_str::<RunMessage>(body)
                    .map(|m| Step::Clearml(m.clearml_run))
                    .or_else(|_| {
                        serde_json::from_str::<fanout::orchestrator::compute::RunMessage>(body)
                            .map(|m| Step::Orchestrator(m.orchestrator_run))
                    })
                    .map_err(|_| err),
            },
            Role::Control => serde_json::from_str(body).map(Step::Control),
        }
    }
}

/// A received message and what its body says.
type Parsed = (Message, Result<Step, serde_json::Error>);

/// One queue as a worker consumes it: what every message handler of it shares.
struct Queue {
    svc: Arc<Services>,
    role: Role,
    url: String,
    options: Options,
    /// Receipts of handled messages, for the batch deleter.
    acks: mpsc::UnboundedSender<String>,
    /// Concurrency slots of the role.
    running: Semaphore,
}

impl Queue {
    /// Handles one message under a heartbeat once a slot is free, then acknowledges it or
    /// lets it come back. A message still waiting for a slot when the worker stops is handed
    /// back to the queue at once.
    async fn handle(
        &self,
        message: Message,
        parsed: Result<Step, serde_json::Error>,
        prefetched: Option<Prefetched>,
        mut stop: watch::Receiver<bool>,
    ) {
        let Queue {
            svc,
            role,
            url: queue_url,
            options,
            acks,
            running,
        } = self;
        let Some(receipt) = message.receipt_handle().map(str::to_string) else {
            return;
        };
        let attempt: u32 = message
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let body = message.body().unwrap_or_default();
        let step = match parsed {
            Ok(step) => step,
            Err(err) => {
                tracing::error!(%err, body, ?role, "unreadable message dropped");
                let _ = acks.send(receipt);
                return;
            }
        };
        let cancel = CancelFlag::default();
        let task_id = match &step {
            Step::Work(m) => Some(m.task_id),
            Step::Control(_) | Step::Clearml(_) | Step::Orchestrator(_) => None,
        };
        let beat = heartbeat(
            svc,
            queue_url,
            &receipt,
            options.lease_seconds,
            task_id,
            &cancel,
        );
        let step = async {
            let _slot = tokio::select! {
                biased;
                _ = stop.wait_for(|stopped| *stopped) => return None,
                slot = running.acquire() => slot.expect("semaphore open"),
            };
            let loaded = prefetched
                .filter(|p| p.at.elapsed() <= PREFETCH_FRESH)
                .map(|p| p.pair);
            Some(match &step {
                Step::Work(m) => {
                    work::run(svc, m, loaded, attempt, options.max_attempts, &cancel).await
                }
                Step::Control(m) => control::handle(svc, m).await.map(|()| Outcome::Done),
                Step::Clearml(run) => clearml_run::run(svc, run)
                    .await
                    .map(|()| Outcome::Done)
                    .map_err(|err| ApiError::internal("ClearML run", err.msg)),
                Step::Orchestrator(run) => orchestrator_run::run(svc, run)
                    .await
                    .map(|()| Outcome::Done),
            })
        };
        let outcome = tokio::select! {
            outcome = step => outcome,
            _ = beat => unreachable!("the heartbeat never ends"),
        };
        let Some(outcome) = outcome else {
            make_visible(svc, queue_url, &receipt, 0).await;
            return;
        };
        match outcome {
            Ok(Outcome::Retry(err)) => {
                tracing::warn!(%err, attempt, "passing failure; message will come back");
                release(svc, queue_url, &receipt, attempt).await;
            }
            Ok(outcome) => {
                tracing::debug!(?outcome, "message handled");
                let _ = acks.send(receipt);
            }
            Err(err) => {
                tracing::error!(%err, attempt, body, "step failed; message will come back");
                release(svc, queue_url, &receipt, attempt).await;
            }
        }
    }
}

/// Extends the lease every third of it, and raises `cancel` when the task was cancelled
/// or deleted. Never returns.
async fn heartbeat(
    svc: &Services,
    queue_url: &str,
    receipt: &str,
    lease: i32,
    task_id: Option<u64>,
    cancel: &CancelFlag,
) {
    let period = Duration::from_secs((lease as u64 / 3).max(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tick.tick().await;
        if let Err(err) = svc
            .aws
            .sqs
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(lease)
            .send()
            .await
        {
            tracing::warn!(error = aws_error(&err), "lease not extended");
        }
        if let Some(task_id) = task_id {
            match work::heartbeat(svc, task_id).await {
                Ok(Some(TaskStatus::Cancelled)) | Ok(None) => cancel.raise(),
                Ok(_) => {}
                Err(err) => tracing::warn!(%err, "task heartbeat failed"),
            }
        }
    }
}

/// Makes a message visible again after a short backoff that grows with its attempts.
async fn release(svc: &Services, queue_url: &str, receipt: &str, attempt: u32) {
    make_visible(svc, queue_url, receipt, 1i32 << attempt.min(5)).await;
}

/// Makes a message visible to every worker after `seconds`.
async fn make_visible(svc: &Services, queue_url: &str, receipt: &str, seconds: i32) {
    if let Err(err) = svc
        .aws
        .sqs
        .change_message_visibility()
        .queue_url(queue_url)
        .receipt_handle(receipt)
        .visibility_timeout(seconds)
        .send()
        .await
    {
        tracing::warn!(
            error = aws_error(&err),
            "release failed; lease will run out"
        );
    }
}

/// Deletes acknowledged messages ten per call, or whatever arrived within `linger` of the
/// first (all at once when the worker stops). A crash before the delete only means a
/// duplicate delivery, which the engine ignores.
async fn delete_in_batches(
    svc: Arc<Services>,
    queue_url: String,
    mut receipts: mpsc::UnboundedReceiver<String>,
    linger: Duration,
) {
    while let Some(first) = receipts.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + linger;
        while batch.len() < 10 {
            match tokio::time::timeout_at(deadline, receipts.recv()).await {
                Ok(Some(receipt)) => batch.push(receipt),
                _ => break,
            }
        }
        let entries: Vec<DeleteMessageBatchRequestEntry> = batch
            .iter()
            .enumerate()
            .filter_map(|(i, receipt)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .build()
                    .ok()
            })
            .collect();
        match svc
            .aws
            .sqs
            .delete_message_batch()
            .queue_url(&queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) if out.failed().is_empty() => {}
            Ok(out) => tracing::warn!(
                failed = out.failed().len(),
                "some deletes failed; those messages come back"
            ),
            Err(err) => {
                tracing::warn!(error = aws_error(&err), "delete failed; messages come back")
            }
        }
    }
}
