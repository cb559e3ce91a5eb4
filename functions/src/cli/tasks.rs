//! `fanout tasks …`: create (and wait), watch with a live progress bar, download the
//! result, and the read and control calls.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::Value;

use super::client::{CliError, Client, Payload, RawAnswer};
use super::{Exit, Listing, Out, json_arg};

/// Task commands.
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Create a task of a kind (linker, gc, cross_match, roc, clustering, exporter, reporter).
    Create {
        /// The kind.
        kind: String,
        /// The task's content: JSON or @file.
        #[arg(long)]
        content: String,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        /// Keep the result this many days (default: until deleted).
        #[arg(long)]
        ttl: Option<u32>,
        /// Wait for the end, with a progress bar, and show the result or the errors.
        #[arg(long)]
        wait: bool,
        /// Seconds between polls while waiting.
        #[arg(long, default_value_t = 0.5)]
        interval: f64,
    },
    /// Follow a task to its end with a progress bar; show the result or the errors.
    Watch {
        /// Task id.
        id: u64,
        /// Seconds between polls.
        #[arg(long, default_value_t = 0.5)]
        interval: f64,
    },
    /// Download a done task's result: JSON (printed, or saved with -o) or the zip archive.
    Result {
        /// Task id.
        id: u64,
        /// Where to save it (an archive goes to task_<id>.zip by default).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Tasks, newest first.
    List(Listing),
    /// Number of tasks matching filters.
    Count(Listing),
    /// One task with its progress.
    Get {
        /// Task id.
        id: u64,
    },
    /// Cancel a task that has not ended.
    Cancel {
        /// Task id.
        id: u64,
    },
    /// Delete a task with its subtasks, errors and result.
    Delete {
        /// Task id.
        id: u64,
    },
    /// A task's subtasks.
    Subtasks {
        /// Task id.
        id: u64,
        /// Paging.
        #[command(flatten)]
        listing: Listing,
    },
    /// A task's errors.
    Errors {
        /// Task id.
        id: u64,
        /// Paging.
        #[command(flatten)]
        listing: Listing,
    },
}

/// A task's status by its number, as LUNA names them.
pub fn status_name(status: u64) -> &'static str {
    match status {
        0 => "pending",
        1 => "in progress",
        2 => "cancelled",
        3 => "failed",
        4 => "collecting results",
        5 => "done",
        _ => "unknown",
    }
}

/// Whether the status is an end.
fn ended(status: u64) -> bool {
    matches!(status, 2 | 3 | 5)
}

/// Runs a task command.
pub async fn run(client: &Client, out: Out, command: TaskCommand) -> Result<Exit, CliError> {
    match command {
        TaskCommand::Create {
            kind,
            content,
            description,
            ttl,
            wait,
            interval,
        } => {
            let mut body = serde_json::json!({"content": json_arg(&content)?});
            if let Some(description) = description {
                body["description"] = description.into();
            }
            if let Some(days) = ttl {
                body["result_storage_policy"] = serde_json::json!({"ttl": days});
            }
            let answer = client
                .call(
                    Method::POST,
                    &format!("/1/tasks/{kind}"),
                    Payload::Json(body),
                )
                .await?;
            let id = answer["task_id"]
                .as_u64()
                .ok_or_else(|| CliError::Transport(format!("no task_id in {answer}")))?;
            if !wait {
                out.done(&format!("task {id} created"), &answer);
                return Ok(Exit::Ok);
            }
            if !out.json {
                println!("task {id} created");
            }
            watch(client, out, id, interval).await
        }
        TaskCommand::Watch { id, interval } => watch(client, out, id, interval).await,
        TaskCommand::Result { id, output } => result(client, out, id, output).await,
        TaskCommand::List(listing) => {
            let answer = client
                .call(
                    Method::GET,
                    &format!("/1/tasks{}", listing.query()?),
                    Payload::None,
                )
                .await?;
            if out.json {
                out.value(&answer);
            } else {
                for task in answer["tasks"].as_array().into_iter().flatten() {
                    println!("{}", task_line(task));
                }
            }
            Ok(Exit::Ok)
        }
        TaskCommand::Count(listing) => {
            super::count(client, out, &format!("/1/tasks/count{}", listing.query()?)).await
        }
        TaskCommand::Get { id } => {
            let answer = client
                .call(Method::GET, &format!("/1/tasks/{id}"), Payload::None)
                .await?;
            out.value(&answer);
            Ok(Exit::Ok)
        }
        TaskCommand::Cancel { id } => {
            let answer = client
                .call(
                    Method::PATCH,
                    &format!("/1/tasks/{id}"),
                    Payload::Json(serde_json::json!({"action": "cancel"})),
                )
                .await?;
            out.done(&format!("task {id} cancelled"), &answer);
            Ok(Exit::Ok)
        }
        TaskCommand::Delete { id } => {
            let answer = client
                .call(Method::DELETE, &format!("/1/tasks/{id}"), Payload::None)
                .await?;
            out.done(&format!("task {id} deleted"), &answer);
            Ok(Exit::Ok)
        }
        TaskCommand::Subtasks { id, listing } => {
            let answer = client
                .call(
                    Method::GET,
                    &format!("/1/tasks/{id}/subtasks{}", listing.query()?),
                    Payload::None,
                )
                .await?;
            out.value(&answer);
            Ok(Exit::Ok)
        }
        TaskCommand::Errors { id, listing } => {
            let answer = client
                .call(
                    Method::GET,
                    &format!("/1/tasks/{id}/errors{}", listing.query()?),
                    Payload::None,
                )
                .await?;
            out.value(&answer);
            Ok(Exit::Ok)
        }
    }
}

/// The kind's name of a LUNA task type number (from the kinds registry).
fn kind_name(task_type: u64) -> String {
    fanout::tasks::model::TaskType::ALL
        .into_iter()
        .find(|t| *t as u64 == task_type)
        .and_then(fanout::kinds::by_type)
        .map(|kind| kind.name().to_string())
        .unwrap_or_else(|| format!("type {task_type}"))
}

/// One line about a task: id, kind, status, progress, description.
fn task_line(task: &Value) -> String {
    format!(
        "{:>7}  {:<12} {:<18} {:>9}  {}",
        task["task_id"].to_string(),
        kind_name(task["task_type"].as_u64().unwrap_or(0)),
        status_name(task["task_status"].as_u64().unwrap_or(99)),
        format!(
            "{}/{} parts",
            task["count_task_parts_done"], task["count_task_parts_all"]
        ),
        task["description"].as_str().unwrap_or_default()
    )
    .trim_end()
    .to_string()
}

/// How progress is shown: a bar on a terminal, else a line per change (for logs).
enum Progress {
    Bar(ProgressBar),
    Lines { last: Option<(u64, u64, u64)> },
    Quiet,
}

impl Progress {
    fn new(id: u64, json: bool) -> Progress {
        if json {
            return Progress::Quiet;
        }
        if !std::io::stderr().is_terminal() {
            return Progress::Lines { last: None };
        }
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} task {prefix} [{bar:32}] {pos}/{len} parts  {msg}  {elapsed}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(id.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress::Bar(bar)
    }

    fn update(&mut self, id: u64, status: u64, done: u64, all: u64) {
        match self {
            Progress::Bar(bar) => {
                bar.set_length(all);
                bar.set_position(done);
                bar.set_message(status_name(status));
            }
            Progress::Lines { last } => {
                if *last != Some((status, done, all)) {
                    *last = Some((status, done, all));
                    eprintln!("task {id}: {}, {done}/{all} parts", status_name(status));
                }
            }
            Progress::Quiet => {}
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish();
        }
    }
}

/// Polls the task until it ends, showing progress; then shows the result summary (done)
/// or the errors, and answers the exit code for the outcome.
pub async fn watch(client: &Client, out: Out, id: u64, interval: f64) -> Result<Exit, CliError> {
    let started = Instant::now();
    let mut progress = Progress::new(id, out.json);
    let pause = Duration::from_secs_f64(interval.clamp(0.05, 60.0));
    let task = loop {
        let task = client
            .call(Method::GET, &format!("/1/tasks/{id}"), Payload::None)
            .await?;
        let status = task["task_status"].as_u64().unwrap_or(99);
        progress.update(
            id,
            status,
            task["count_task_parts_done"].as_u64().unwrap_or(0),
            task["count_task_parts_all"].as_u64().unwrap_or(0),
        );
        if ended(status) {
            break task;
        }
        tokio::time::sleep(pause).await;
    };
    progress.finish();
    let status = task["task_status"].as_u64().unwrap_or(99);
    let errors = client
        .call(
            Method::GET,
            &format!("/1/tasks/{id}/errors/count"),
            Payload::None,
        )
        .await?["count"]
        .as_u64()
        .unwrap_or(0);
    let exit = match status {
        5 if errors == 0 => Exit::Ok,
        5 => Exit::TaskErrors,
        2 => Exit::TaskCancelled,
        _ => Exit::TaskFailed,
    };
    let summary = if status == 5 {
        Some(result_summary(client, id).await?)
    } else {
        None
    };
    if out.json {
        let mut line = serde_json::json!({"task": task, "errors": errors});
        if let Some(summary) = &summary {
            line["result"] = summary.clone();
        }
        out.value(&line);
        return Ok(exit);
    }
    println!(
        "task {id} {} after {:.1} s: {}/{} parts",
        status_name(status),
        started.elapsed().as_secs_f64(),
        task["count_task_parts_done"],
        task["count_task_parts_all"]
    );
    if let Some(summary) = summary {
        print_summary(id, &summary);
    }
    if errors > 0 {
        let listed = client
            .call(
                Method::GET,
                &format!("/1/tasks/{id}/errors?page_size=5"),
                Payload::None,
            )
            .await?;
        println!("{errors} task error(s):");
        for error in listed["errors"].as_array().into_iter().flatten() {
            println!(
                "  error {}: {}: {}",
                error["error_code"],
                error["description"].as_str().unwrap_or_default(),
                error["detail"].as_str().unwrap_or_default()
            );
        }
        if errors > 5 {
            println!("  … fanout tasks errors {id} lists them all");
        }
    }
    Ok(exit)
}

/// What a done task's result is: the kind's JSON (the `result` of the answer's
/// `{"result", "errors"}`; the errors are counted and listed apart), or
/// `{"archive": bytes}` for a zip.
async fn result_summary(client: &Client, id: u64) -> Result<Value, CliError> {
    let answer = client.get_raw(&format!("/1/tasks/{id}/result")).await?;
    let content_type = content_type(&answer);
    if content_type.contains("json") {
        let text = answer
            .response
            .text()
            .await
            .map_err(|e| CliError::Transport(e.to_string()))?;
        let mut envelope: Value = serde_json::from_str(&text)
            .map_err(|e| CliError::Transport(format!("result is not JSON: {e}")))?;
        return match envelope.get_mut("result") {
            Some(result) => Ok(result.take()),
            None => Err(CliError::Transport(
                "the result has no 'result' field".into(),
            )),
        };
    }
    let length = answer.response.content_length().unwrap_or(0);
    Ok(serde_json::json!({"archive": length, "content_type": content_type}))
}

/// The result in a few lines: scalars as they are, lists by their length.
fn print_summary(id: u64, summary: &Value) {
    if let Some(bytes) = summary.get("archive") {
        println!("result: a zip archive of {bytes} bytes; save it with: fanout tasks result {id}");
        return;
    }
    println!("result:");
    for (key, value) in summary.as_object().into_iter().flatten() {
        let shown = match value {
            Value::Array(items) => format!("{} item(s)", items.len()),
            Value::Object(map) => format!("{} field(s)", map.len()),
            other => other.to_string(),
        };
        println!("  {key}: {shown}");
    }
    println!("the whole result: fanout tasks result {id}");
}

fn content_type(answer: &RawAnswer) -> String {
    answer
        .response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// `fanout tasks result`: JSON (`{"result", "errors"}`, as the API answers it) to stdout
/// (or a file), an archive to a file.
async fn result(
    client: &Client,
    out: Out,
    id: u64,
    output: Option<PathBuf>,
) -> Result<Exit, CliError> {
    let answer = client.get_raw(&format!("/1/tasks/{id}/result")).await?;
    let json = content_type(&answer).contains("json");
    let path = match output {
        Some(path) => path,
        None if json => {
            let text = answer
                .response
                .text()
                .await
                .map_err(|e| CliError::Transport(e.to_string()))?;
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| CliError::Transport(format!("result is not JSON: {e}")))?;
            out.value(&value);
            return Ok(Exit::Ok);
        }
        None => PathBuf::from(format!("task_{id}.zip")),
    };
    let bytes = save(answer, &path, !out.json).await?;
    out.done(
        &format!("{bytes} bytes saved to {}", path.display()),
        &serde_json::json!({"bytes": bytes, "file": path}),
    );
    Ok(Exit::Ok)
}

/// Streams an answer's body into `path` (a progress bar on a terminal); the bytes written.
pub async fn save(answer: RawAnswer, path: &Path, show: bool) -> Result<u64, CliError> {
    let mut response = answer.response;
    let total = response.content_length();
    let bar = if show && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(total.unwrap_or(0));
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {prefix} [{bar:32}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(path.display().to_string());
        Some(bar)
    } else {
        None
    };
    let local = |e: std::io::Error| CliError::Local(format!("{}: {e}", path.display()));
    let partial = path.with_extension("part");
    let mut file = std::fs::File::create(&partial).map_err(local)?;
    let mut written = 0u64;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| CliError::Transport(e.to_string()))?
    {
        file.write_all(&chunk).map_err(local)?;
        written += chunk.len() as u64;
        if let Some(bar) = &bar {
            bar.set_position(written);
        }
    }
    file.flush().map_err(local)?;
    drop(file);
    if let Some(total) = total
        && total != written
    {
        let _ = std::fs::remove_file(&partial);
        return Err(CliError::Transport(format!(
            "the download ended after {written} of {total} bytes"
        )));
    }
    std::fs::rename(&partial, path).map_err(local)?;
    if let Some(bar) = bar {
        bar.finish();
    }
    Ok(written)
}
