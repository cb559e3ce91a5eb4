//! A ClearML task from a queue Fanout serves (`fanout::clearml::serve`), run by this
//! worker as `clearml-agent` would run it without Docker or venvs: its inline script
//! (`script.diff`) under Python (`FANOUT_CLEARML_PYTHON`, default `python3`) or, when
//! `script.binary` names a shell, under bash; its output sent as log events every two
//! seconds; its status read every five (an abort through `tasks.stop` kills it and
//! ends it `stopped`; a status changed by someone else kills it and reports nothing);
//! a ping every thirty, so the watchdog leaves it alone; exit code 0 → `completed`,
//! another, a kill or the time limit (`FANOUT_CLEARML_RUN_SECONDS`, default 3600) →
//! `failed`.
//!
//! The simple case: no repository checkout, no requirements installed, no container,
//! no sandbox beyond the worker's own (the script runs as the worker's user).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

use fanout::Services;
use fanout::clearml::error::ClearmlError;
use fanout::clearml::serve::{self, Ending, Next, Run};

/// Seconds between flushes of the output to the task's log.
const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// Seconds between reads of the task's status.
const CHECK_EVERY: Duration = Duration::from_secs(5);
/// Status reads between pings.
const CHECKS_PER_PING: u32 = 6;
/// Most lines held before a flush whatever the time.
const FLUSH_LINES: usize = 500;

/// This worker's name as ClearML lists workers.
fn worker_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
    format!("fanout:{host}:{}", std::process::id())
}

fn time_limit() -> Duration {
    let seconds = std::env::var("FANOUT_CLEARML_RUN_SECONDS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(3600);
    Duration::from_secs(seconds)
}

/// Sends each line of `stream` to `lines`, marked as standard error or not.
fn forward(
    stream: impl AsyncRead + Unpin + Send + 'static,
    error: bool,
    lines: mpsc::Sender<(bool, String)>,
) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if lines.send((error, line)).await.is_err() {
                break;
            }
        }
    });
}

/// Takes one task from the served queue of `run` and runs it to its end; nothing when
/// the queue is empty. An error before the task is claimed leaves it queued (the message
/// comes back); after, the task is ended whatever happens to the script.
pub async fn run(svc: &Services, run: &Run) -> Result<(), ClearmlError> {
    let worker = worker_name();
    let Some(claimed) = serve::claim(svc, run, &worker).await? else {
        tracing::info!(
            queue = run.queue_id,
            "served queue empty: its task was taken"
        );
        return Ok(());
    };
    let task_id = claimed.task_id.clone();
    tracing::info!(
        task = task_id,
        queue = run.queue_id,
        "running a ClearML task"
    );
    let ending = match claimed.script {
        None => Some(Ending::Failed(
            "a queue Fanout serves runs inline scripts (script.diff) only".into(),
        )),
        Some(script) => execute(svc, run, &worker, &task_id, claimed.shell, &script).await,
    };
    if let Some(ending) = ending {
        serve::finish(svc, run, &worker, &task_id, &ending).await?;
        tracing::info!(task = task_id, ?ending, "ClearML task ended");
    }
    Ok(())
}

/// Runs the script; how it ended, or `None` when someone else changed the task's status.
async fn execute(
    svc: &Services,
    run: &Run,
    worker: &str,
    task_id: &str,
    shell: bool,
    script: &str,
) -> Option<Ending> {
    let dir = std::env::temp_dir().join(format!("fanout-clearml-{task_id}-{}", std::process::id()));
    let file = dir.join(if shell { "script.sh" } else { "script.py" });
    let written = async {
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::write(&file, script).await
    };
    if let Err(err) = written.await {
        return Some(Ending::Failed(format!("could not write the script: {err}")));
    }
    let mut command = if shell {
        let mut c = Command::new("/bin/bash");
        c.arg(&file);
        c
    } else {
        let python = std::env::var("FANOUT_CLEARML_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut c = Command::new(python);
        c.arg("-u").arg(&file);
        c
    };
    command
        .current_dir(&dir)
        .env("CLEARML_TASK_ID", task_id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return Some(Ending::Failed(format!("could not start the script: {err}")));
        }
    };
    let (tx, mut lines) = mpsc::channel(1024);
    if let Some(out) = child.stdout.take() {
        forward(out, false, tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        forward(err, true, tx.clone());
    }
    drop(tx);

    let limit = time_limit();
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    let mut check = tokio::time::interval(CHECK_EVERY);
    let mut checks = 0u32;
    let mut held: Vec<(bool, String)> = Vec::new();
    let ending = loop {
        tokio::select! {
            Some(line) = lines.recv() => {
                held.push(line);
                if held.len() >= FLUSH_LINES {
                    send_log(svc, run, task_id, worker, &mut held).await;
                }
            }
            _ = flush.tick() => send_log(svc, run, task_id, worker, &mut held).await,
            _ = check.tick() => {
                checks += 1;
                if checks.is_multiple_of(CHECKS_PER_PING)
                    && let Err(err) = serve::ping(svc, run.account_id, task_id).await
                {
                    tracing::warn!(task = task_id, err = err.msg, "ping failed");
                }
                match serve::next(svc, run.account_id, task_id).await {
                    Ok(Next::Run) => {}
                    Ok(Next::Abort) => {
                        let _ = child.kill().await;
                        break Some(Ending::Stopped);
                    }
                    Ok(Next::Drop) => {
                        let _ = child.kill().await;
                        break None;
                    }
                    Err(err) => tracing::warn!(task = task_id, err = err.msg, "status read failed"),
                }
            }
            exit = child.wait() => {
                break Some(match exit {
                    Ok(status) if status.success() => Ending::Completed,
                    Ok(status) => match status.code() {
                        Some(code) => Ending::Failed(format!("worker execution exit code {code}")),
                        None => Ending::Failed("the script was killed by a signal".into()),
                    },
                    Err(err) => Ending::Failed(format!("waiting for the script failed: {err}")),
                });
            }
            _ = &mut deadline => {
                let _ = child.kill().await;
                break Some(Ending::Failed(format!("time limit of {} s exceeded", limit.as_secs())));
            }
        }
    };
    // What the script wrote last (its pipes close when it ends; a child it left behind
    // holding them open is not waited for long).
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(line) = lines.recv().await {
            held.push(line);
        }
    })
    .await;
    send_log(svc, run, task_id, worker, &mut held).await;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    ending
}

async fn send_log(
    svc: &Services,
    run: &Run,
    task_id: &str,
    worker: &str,
    held: &mut Vec<(bool, String)>,
) {
    if held.is_empty() {
        return;
    }
    let lines = std::mem::take(held);
    if let Err(err) = serve::log(svc, run.account_id, task_id, worker, &lines).await {
        tracing::warn!(
            task = task_id,
            err = err.msg,
            lines = lines.len(),
            "log lines lost"
        );
    }
}
