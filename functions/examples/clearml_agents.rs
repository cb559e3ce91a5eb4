//! Simulated idle `clearml-agent`s against Fanout's ClearML surface, for bench/clearml.sh.
//!
//! ```text
//! clearml_agents BASE_URL ACCESS_KEY SECRET_KEY [AGENTS] [SECONDS] [MODE]
//!   BASE_URL    the gateway, e.g. http://127.0.0.1:3000 (calls go to BASE_URL/clearml/…)
//!   ACCESS_KEY  SECRET_KEY   ClearML credentials: a Fanout token fo_<id>_<secret> in two
//!   AGENTS      simulated agents (default 50), each with its own JWT and HTTP connection
//!   SECONDS     how long they poll (default 20; 0: only log in and set up, no polling —
//!               what bench/clearml.sh subtracts to count the polls' own requests)
//!   MODE        next     every agent polls queues.get_next_task on one empty queue
//!               get_all  every agent polls tasks.get_all on a task of its own
//!               mixed    even agents as `next`, odd ones as `get_all`
//! ```
//!
//! Each agent logs in once (`auth.login`, HTTP Basic), then sends its poll back-to-back
//! (no pause: the point is the service's ceiling, not an agent's 2–5 s cadence) until
//! the time is up. Setup (logins, the queue, the tasks) happens before the clock starts.
//! Prints one JSON line: the mode, agents, seconds, requests, errors (every answer other
//! than HTTP 200, and every request that got no answer, by status), requests/s, latency
//! percentiles (of every answered request) and the same per endpoint. Exits 1 when setup
//! fails; errors while polling are reported, not fatal.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Barrier;

const USAGE: &str = "usage: clearml_agents BASE_URL ACCESS_KEY SECRET_KEY [AGENTS=50] [SECONDS=20] [MODE=next|get_all|mixed]";
const NEXT_TASK: &str = "queues.get_next_task";
const GET_ALL: &str = "tasks.get_all";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Next,
    GetAll,
    Mixed,
}

/// One simulated agent: its own client (so its own connection) and JWT.
struct Agent {
    client: reqwest::Client,
    jwt: String,
}

/// What an agent polls with.
#[derive(Clone)]
struct Poll {
    endpoint: &'static str,
    body: Value,
}

/// What one agent saw.
#[derive(Default)]
struct Tally {
    /// Latency (ms) of every answered request, per endpoint.
    latencies: BTreeMap<&'static str, Vec<f64>>,
    /// Failures per endpoint and status ("transport" when there was no answer).
    errors: BTreeMap<(&'static str, String), u64>,
    /// Requests that got no answer.
    unanswered: BTreeMap<&'static str, u64>,
}

struct Config {
    base: String,
    access_key: String,
    secret_key: String,
    agents: usize,
    seconds: u64,
    mode: Mode,
}

fn parse_args() -> Result<Config, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 || args.len() > 6 {
        return Err(USAGE.into());
    }
    let number = |i: usize, default: u64| -> Result<u64, String> {
        match args.get(i) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|_| format!("'{text}' is not a number\n{USAGE}")),
        }
    };
    let agents = number(3, 50)? as usize;
    if agents == 0 {
        return Err(format!("at least one agent\n{USAGE}"));
    }
    let mode = match args.get(5).map(String::as_str).unwrap_or("next") {
        "next" => Mode::Next,
        "get_all" => Mode::GetAll,
        "mixed" => Mode::Mixed,
        other => return Err(format!("unknown mode '{other}'\n{USAGE}")),
    };
    Ok(Config {
        base: format!("{}/clearml", args[0].trim_end_matches('/')),
        access_key: args[1].clone(),
        secret_key: args[2].clone(),
        agents,
        seconds: number(4, 20)?,
        mode,
    })
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        // One connection per agent, kept open between polls, as an agent's session does.
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client")
}

/// A setup call that must succeed: its `data`.
async fn call(agent: &Agent, base: &str, endpoint: &str, body: Value) -> Result<Value, String> {
    let answer = agent
        .client
        .post(format!("{base}/{endpoint}"))
        .bearer_auth(&agent.jwt)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("{endpoint}: {e}"))?;
    let status = answer.status();
    let text = answer
        .text()
        .await
        .map_err(|e| format!("{endpoint}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{endpoint}: HTTP {status}: {text}"));
    }
    let envelope: Value =
        serde_json::from_str(&text).map_err(|e| format!("{endpoint}: {e}: {text}"))?;
    Ok(envelope["data"].clone())
}

async fn login(config: &Config) -> Result<Agent, String> {
    let client = client();
    let answer = client
        .post(format!("{}/auth.login", config.base))
        .basic_auth(&config.access_key, Some(&config.secret_key))
        .json(&json!({}))
        .send()
        .await
        .map_err(|e| format!("auth.login: {e}"))?;
    let status = answer.status();
    let text = answer
        .text()
        .await
        .map_err(|e| format!("auth.login: {e}"))?;
    if !status.is_success() {
        return Err(format!("auth.login: HTTP {status}: {text}"));
    }
    let envelope: Value = serde_json::from_str(&text).map_err(|e| format!("auth.login: {e}"))?;
    let jwt = envelope["data"]["token"]
        .as_str()
        .ok_or_else(|| format!("auth.login answered no token: {text}"))?
        .to_string();
    Ok(Agent { client, jwt })
}

fn id_of(data: &Value, what: &str) -> Result<String, String> {
    data["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{what} answered no id: {data}"))
}

/// Logs every agent in and makes what they poll: one empty queue, a task per agent.
/// Answers the agents with their polls and the number of requests it took.
async fn set_up(config: &Config) -> Result<(Vec<(Agent, Poll)>, u64), String> {
    let logins = futures::future::join_all((0..config.agents).map(|_| login(config))).await;
    let agents = logins.into_iter().collect::<Result<Vec<Agent>, String>>()?;
    let mut requests = config.agents as u64;
    let polls_next = |i: usize| match config.mode {
        Mode::Next => true,
        Mode::GetAll => false,
        Mode::Mixed => i.is_multiple_of(2),
    };
    let queue = if (0..config.agents).any(polls_next) {
        let name = format!("bench-{}", uuid::Uuid::new_v4().simple());
        let made = call(
            &agents[0],
            &config.base,
            "queues.create",
            json!({"name": name}),
        )
        .await?;
        requests += 1;
        Some(id_of(&made, "queues.create")?)
    } else {
        None
    };
    let mut out = Vec::with_capacity(agents.len());
    for (i, agent) in agents.into_iter().enumerate() {
        let poll = match &queue {
            Some(queue) if polls_next(i) => Poll {
                endpoint: NEXT_TASK,
                body: json!({"queue": queue}),
            },
            _ => {
                let made = call(
                    &agent,
                    &config.base,
                    "tasks.create",
                    json!({"name": format!("bench agent {i}"), "type": "training"}),
                )
                .await?;
                requests += 1;
                let task = id_of(&made, "tasks.create")?;
                Poll {
                    endpoint: GET_ALL,
                    body: json!({
                        "id": [task],
                        "search_hidden": true,
                        "only_fields": ["status", "status_message"],
                    }),
                }
            }
        };
        out.push((agent, poll));
    }
    Ok((out, requests))
}

/// One agent's polls, back-to-back, from the barrier until `seconds` after it.
async fn run(agent: Agent, poll: Poll, base: String, seconds: u64, start: Arc<Barrier>) -> Tally {
    let url = format!("{base}/{}", poll.endpoint);
    let body = poll.body.to_string();
    let mut tally = Tally::default();
    start.wait().await;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        let sent = Instant::now();
        let answer = agent
            .client
            .post(&url)
            .bearer_auth(&agent.jwt)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        let status = match answer {
            // The whole body is read, so the connection is free for the next poll.
            Ok(answer) => {
                let status = answer.status().as_u16();
                match answer.bytes().await {
                    Ok(_) => Some(status),
                    Err(_) => None,
                }
            }
            Err(_) => None,
        };
        match status {
            Some(status) => {
                let ms = sent.elapsed().as_secs_f64() * 1000.0;
                tally.latencies.entry(poll.endpoint).or_default().push(ms);
                if status != 200 {
                    *tally
                        .errors
                        .entry((poll.endpoint, status.to_string()))
                        .or_default() += 1;
                }
            }
            None => {
                *tally.unanswered.entry(poll.endpoint).or_default() += 1;
                *tally
                    .errors
                    .entry((poll.endpoint, "transport".into()))
                    .or_default() += 1;
                // No answer at all (the gateway gone): do not spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tally
}

/// The nearest-rank percentile `p` (0–100) of sorted `values`, in ms to 0.1.
fn percentile(sorted: &[f64], p: f64) -> Value {
    if sorted.is_empty() {
        return Value::Null;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let value = sorted[rank.clamp(1, sorted.len()) - 1];
    json!((value * 10.0).round() / 10.0)
}

/// requests, errors, requests/s and latency percentiles of `latencies` (answered
/// requests), `unanswered` and `errors` over `elapsed` seconds.
fn summary(latencies: &mut [f64], unanswered: u64, errors: u64, elapsed: f64) -> Value {
    latencies.sort_by(f64::total_cmp);
    let requests = latencies.len() as u64 + unanswered;
    json!({
        "requests": requests,
        "errors": errors,
        "requests_per_second": if elapsed > 0.0 {
            ((requests as f64 / elapsed) * 10.0).round() / 10.0
        } else {
            0.0
        },
        "p50_ms": percentile(latencies, 50.0),
        "p90_ms": percentile(latencies, 90.0),
        "p99_ms": percentile(latencies, 99.0),
        "max_ms": percentile(latencies, 100.0),
    })
}

#[tokio::main]
async fn main() {
    let config = match parse_args() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let (agents, setup_requests) = match set_up(&config).await {
        Ok(made) => made,
        Err(message) => {
            eprintln!("clearml_agents: setup failed: {message}");
            std::process::exit(1);
        }
    };
    let mode = match config.mode {
        Mode::Next => "next",
        Mode::GetAll => "get_all",
        Mode::Mixed => "mixed",
    };
    let start = Arc::new(Barrier::new(agents.len() + 1));
    let runs: Vec<_> = agents
        .into_iter()
        .map(|(agent, poll)| {
            tokio::spawn(run(
                agent,
                poll,
                config.base.clone(),
                config.seconds,
                start.clone(),
            ))
        })
        .collect();
    start.wait().await;
    let began = Instant::now();
    let mut all = Tally::default();
    for run in runs {
        let tally = run.await.expect("an agent's task");
        for (endpoint, mut values) in tally.latencies {
            all.latencies
                .entry(endpoint)
                .or_default()
                .append(&mut values);
        }
        for (key, count) in tally.errors {
            *all.errors.entry(key).or_default() += count;
        }
        for (endpoint, count) in tally.unanswered {
            *all.unanswered.entry(endpoint).or_default() += count;
        }
    }
    let elapsed = began.elapsed().as_secs_f64();

    let endpoints: Vec<&str> = match config.mode {
        Mode::Next => vec![NEXT_TASK],
        Mode::GetAll => vec![GET_ALL],
        Mode::Mixed => vec![NEXT_TASK, GET_ALL],
    };
    let errors_of = |endpoint: &str| -> u64 {
        all.errors
            .iter()
            .filter(|((e, _), _)| *e == endpoint)
            .map(|(_, n)| n)
            .sum()
    };
    let mut by_endpoint = serde_json::Map::new();
    let mut every: Vec<f64> = Vec::new();
    for endpoint in &endpoints {
        let mut values = all.latencies.remove(endpoint).unwrap_or_default();
        every.extend_from_slice(&values);
        let unanswered = all.unanswered.get(endpoint).copied().unwrap_or(0);
        by_endpoint.insert(
            endpoint.to_string(),
            summary(&mut values, unanswered, errors_of(endpoint), elapsed),
        );
    }
    let errors: u64 = all.errors.values().sum();
    let unanswered: u64 = all.unanswered.values().sum();
    let mut errors_by_status = serde_json::Map::new();
    for ((endpoint, status), count) in &all.errors {
        errors_by_status.insert(format!("{endpoint} {status}"), json!(count));
    }
    let mut line = json!({
        "mode": mode,
        "agents": config.agents,
        "seconds": config.seconds,
        "elapsed_seconds": (elapsed * 100.0).round() / 100.0,
        "setup_requests": setup_requests,
    });
    let totals = summary(&mut every, unanswered, errors, elapsed);
    let object = line.as_object_mut().expect("an object");
    object.extend(totals.as_object().expect("an object").clone());
    object.insert("errors_by_status".into(), Value::Object(errors_by_status));
    object.insert("by_endpoint".into(), Value::Object(by_endpoint));
    println!("{line}");
}
