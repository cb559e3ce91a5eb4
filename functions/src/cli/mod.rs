//! `fanout`, the command line client of the API: objects, tasks (with a live progress
//! bar and result downloads), tokens and accounts, over HTTP with a bearer token.
//!
//! Exit codes ([`Exit`]): 0 the command did what it asked (a waited-for task ended done
//! without errors); 1 the API refused or failed; 2 bad usage; 3 the task failed; 4 it was
//! cancelled; 5 it ended done but recorded task errors; 6 no answer from the API.

pub mod client;
pub mod tasks;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use reqwest::Method;
use serde_json::Value;

use client::{CliError, Client, Payload};

/// What the process answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done.
    Ok = 0,
    /// The API answered an error.
    Api = 1,
    /// Bad usage (clap's own code).
    Usage = 2,
    /// A task failed.
    TaskFailed = 3,
    /// A task was cancelled.
    TaskCancelled = 4,
    /// A task ended done with task errors.
    TaskErrors = 5,
    /// No answer (connection refused, TLS, ...).
    Transport = 6,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "fanout",
    version,
    about = "Command line client of the Fanout API",
    after_help = "Token: --token, else FANOUT_TOKEN, else FANOUT_TOKEN of .fanout/local.env \
                  (make run writes it). --admin uses FANOUT_ADMIN_TOKEN instead.\n\
                  Exit codes: 0 ok, 1 API error, 2 usage, 3 task failed, 4 task cancelled, \
                  5 task done with errors, 6 API unreachable."
)]
pub struct Cli {
    /// The API's URL.
    #[arg(long, env = "FANOUT_URL", default_value = client::DEFAULT_URL, global = true)]
    pub url: String,
    /// Bearer token (default: FANOUT_TOKEN, then .fanout/local.env).
    #[arg(long, global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Use the admin token (FANOUT_ADMIN_TOKEN) when --token is not given.
    #[arg(long, global = true)]
    pub admin: bool,
    /// Print the API's JSON answers as they are, one per line (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Faces: create, get, list, count, patch, delete.
    #[command(subcommand)]
    Faces(ObjectCommand),
    /// Lists: create, get, list, delete, attach and detach faces.
    #[command(subcommand)]
    Lists(ListCommand),
    /// Events: create (batches), get, list, count.
    #[command(subcommand)]
    Events(EventCommand),
    /// A face's avatar or an event's sample image.
    #[command(subcommand)]
    Images(ImageCommand),
    /// Tasks: create (and wait), watch, result, list, get, cancel, delete, subtasks, errors.
    #[command(subcommand)]
    Tasks(tasks::TaskCommand),
    /// The account's tokens.
    #[command(subcommand)]
    Tokens(TokenCommand),
    /// Accounts (admin tokens only).
    #[command(subcommand)]
    Accounts(AccountCommand),
}

/// Filters and paging of a listing.
#[derive(Debug, Clone, Args, Default)]
pub struct Listing {
    /// A filter as NAME=VALUE (repeatable), e.g. --filter list_id=… --filter create_time__gte=2026-01-01T00:00:00Z.
    #[arg(long = "filter", short = 'f', value_name = "NAME=VALUE")]
    pub filters: Vec<String>,
    /// Page number (from 1).
    #[arg(long)]
    pub page: Option<u32>,
    /// Items per page.
    #[arg(long)]
    pub page_size: Option<u32>,
}

impl Listing {
    /// The query string (with its `?`), or "".
    pub fn query(&self) -> Result<String, CliError> {
        let mut pairs = Vec::new();
        for filter in &self.filters {
            let (name, value) = filter.split_once('=').ok_or_else(|| {
                CliError::Local(format!("--filter {filter:?}: write it as NAME=VALUE"))
            })?;
            pairs.push((name.to_string(), value.to_string()));
        }
        if let Some(page) = self.page {
            pairs.push(("page".into(), page.to_string()));
        }
        if let Some(size) = self.page_size {
            pairs.push(("page_size".into(), size.to_string()));
        }
        Ok(query_string(&pairs))
    }
}

/// `?a=b&c=d` with the values encoded, or "" for no pairs.
pub fn query_string(pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        out.append_pair(name, value);
    }
    format!("?{}", out.finish())
}

/// Face commands.
#[derive(Debug, Subcommand)]
pub enum ObjectCommand {
    /// Create one: the body as JSON, or @file (default {}).
    Create {
        /// JSON body or @file.
        body: Option<String>,
    },
    /// Show one.
    Get {
        /// Its id.
        id: String,
    },
    /// List, newest first.
    List(Listing),
    /// Count those matching filters.
    Count(Listing),
    /// Change fields: JSON body or @file.
    Patch {
        /// Its id.
        id: String,
        /// JSON body or @file.
        body: String,
    },
    /// Delete one.
    Delete {
        /// Its id.
        id: String,
    },
}

/// List commands.
#[derive(Debug, Subcommand)]
pub enum ListCommand {
    /// Create one: the body as JSON, or @file (default {}).
    Create {
        /// JSON body or @file.
        body: Option<String>,
    },
    /// Show one (with its face count).
    Get {
        /// Its id.
        id: String,
    },
    /// List, newest first.
    List(Listing),
    /// Delete one (its faces stay).
    Delete {
        /// Its id.
        id: String,
    },
    /// Attach faces to the list.
    Attach {
        /// The list.
        list_id: String,
        /// The faces (up to 1000).
        #[arg(required = true)]
        face_ids: Vec<String>,
    },
    /// Detach faces from the list.
    Detach {
        /// The list.
        list_id: String,
        /// The faces (up to 1000).
        #[arg(required = true)]
        face_ids: Vec<String>,
    },
}

/// Event commands.
#[derive(Debug, Subcommand)]
pub enum EventCommand {
    /// Save a batch: {"events": [...]} as JSON or @file.
    Create {
        /// JSON body or @file.
        body: String,
        /// Makes a retry of the same batch store each event once.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Show one.
    Get {
        /// Its id.
        id: String,
    },
    /// List, newest first.
    List(Listing),
}

/// Which object an image belongs to.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ImageOwner {
    /// A face's avatar.
    Face,
    /// An event's sample.
    Event,
}

impl ImageOwner {
    fn path(self, id: &str) -> String {
        match self {
            ImageOwner::Face => format!("/1/faces/{id}/avatar"),
            ImageOwner::Event => format!("/1/events/{id}/sample"),
        }
    }
}

/// Image commands.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Upload a JPEG or PNG file.
    Put {
        /// face or event.
        owner: ImageOwner,
        /// Its id.
        id: String,
        /// The image file.
        file: PathBuf,
    },
    /// Download the image.
    Get {
        /// face or event.
        owner: ImageOwner,
        /// Its id.
        id: String,
        /// Where to save it.
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// Token commands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is shown only now.
    Create {
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        /// Permissions as JSON, e.g. '{"tasks": ["view"]}' (default: the creating token's).
        #[arg(long)]
        permissions: Option<String>,
        /// Expiration time (RFC 3339).
        #[arg(long)]
        expiration_time: Option<String>,
        /// Owner (admins only; default the token's account).
        #[arg(long)]
        account_id: Option<String>,
    },
    /// The account's tokens (never their secrets).
    List(Listing),
    /// Show one.
    Get {
        /// Its id.
        id: String,
    },
    /// Revoke one.
    Delete {
        /// Its id.
        id: String,
    },
}

/// Account commands (admin).
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account.
    Create {
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        /// user (default) or admin.
        #[arg(long = "type")]
        account_type: Option<String>,
    },
    /// Every account.
    List(Listing),
    /// Show one.
    Get {
        /// Its id.
        id: String,
    },
    /// Delete one and revoke its tokens.
    Delete {
        /// Its id.
        id: String,
    },
}

/// Reads a JSON argument: inline JSON, or `@file`.
pub fn json_arg(raw: &str) -> Result<Value, CliError> {
    let text = match raw.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| CliError::Local(format!("{path}: {e}")))?
        }
        None => raw.to_string(),
    };
    serde_json::from_str(&text).map_err(|e| CliError::Local(format!("not JSON ({e}): {raw}")))
}

/// How results are printed.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    /// `--json`.
    pub json: bool,
}

impl Out {
    /// Prints an API answer: compact JSON with `--json`, pretty otherwise.
    pub fn value(&self, value: &Value) {
        if value.is_null() {
            if self.json {
                println!("{{}}");
            }
            return;
        }
        if self.json {
            println!("{value}");
        } else {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
            );
        }
    }

    /// Prints a one-line confirmation (or `value` with `--json`).
    pub fn done(&self, human: &str, value: &Value) {
        if self.json {
            self.value(value);
        } else {
            println!("{human}");
        }
    }
}

/// Runs the command line; the exit code says what happened.
pub async fn run(cli: Cli) -> Exit {
    let out = Out { json: cli.json };
    let token = client::find_token(cli.token.clone(), cli.admin);
    let client = match Client::new(&cli.url, token) {
        Ok(client) => client,
        Err(err) => return report(out, &err),
    };
    match dispatch(&client, out, cli.command).await {
        Ok(exit) => exit,
        Err(err) => report(out, &err),
    }
}

/// Prints an error (to stderr, or as JSON on stdout with `--json`) and picks the exit code.
pub fn report(out: Out, err: &CliError) -> Exit {
    if out.json {
        println!("{}", err.to_json());
    } else {
        eprintln!("fanout: {err}");
    }
    match err {
        CliError::Api { .. } => Exit::Api,
        CliError::Transport(_) => Exit::Transport,
        CliError::Local(_) => Exit::Usage,
    }
}

async fn dispatch(client: &Client, out: Out, command: Command) -> Result<Exit, CliError> {
    match command {
        Command::Faces(command) => faces(client, out, command).await,
        Command::Lists(command) => lists(client, out, command).await,
        Command::Events(command) => events(client, out, command).await,
        Command::Images(command) => images(client, out, command).await,
        Command::Tasks(command) => tasks::run(client, out, command).await,
        Command::Tokens(command) => tokens(client, out, command).await,
        Command::Accounts(command) => accounts(client, out, command).await,
    }
}

async fn show(client: &Client, out: Out, path: &str) -> Result<Exit, CliError> {
    out.value(&client.call(Method::GET, path, Payload::None).await?);
    Ok(Exit::Ok)
}

/// Prints a count: the number alone, or the API's JSON with `--json`.
pub async fn count(client: &Client, out: Out, path: &str) -> Result<Exit, CliError> {
    let answer = client.call(Method::GET, path, Payload::None).await?;
    if out.json {
        out.value(&answer);
    } else {
        println!("{}", answer["count"]);
    }
    Ok(Exit::Ok)
}

async fn delete(client: &Client, out: Out, path: &str, what: &str) -> Result<Exit, CliError> {
    let answer = client.call(Method::DELETE, path, Payload::None).await?;
    out.done(&format!("{what} deleted"), &answer);
    Ok(Exit::Ok)
}

async fn create(
    client: &Client,
    out: Out,
    path: &str,
    body: Value,
    id_field: &str,
    what: &str,
) -> Result<Exit, CliError> {
    let answer = client.call(Method::POST, path, Payload::Json(body)).await?;
    let id = answer[id_field]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| answer[id_field].to_string());
    out.done(&format!("{what} {id} created"), &answer);
    Ok(Exit::Ok)
}

async fn faces(client: &Client, out: Out, command: ObjectCommand) -> Result<Exit, CliError> {
    match command {
        ObjectCommand::Create { body } => {
            let body = body
                .as_deref()
                .map(json_arg)
                .transpose()?
                .unwrap_or(Value::Object(Default::default()));
            create(client, out, "/1/faces", body, "face_id", "face").await
        }
        ObjectCommand::Get { id } => show(client, out, &format!("/1/faces/{id}")).await,
        ObjectCommand::List(listing) => {
            show(client, out, &format!("/1/faces{}", listing.query()?)).await
        }
        ObjectCommand::Count(listing) => {
            count(client, out, &format!("/1/faces/count{}", listing.query()?)).await
        }
        ObjectCommand::Patch { id, body } => {
            let answer = client
                .call(
                    Method::PATCH,
                    &format!("/1/faces/{id}"),
                    Payload::Json(json_arg(&body)?),
                )
                .await?;
            out.done(&format!("face {id} changed"), &answer);
            Ok(Exit::Ok)
        }
        ObjectCommand::Delete { id } => {
            delete(
                client,
                out,
                &format!("/1/faces/{id}"),
                &format!("face {id}"),
            )
            .await
        }
    }
}

async fn lists(client: &Client, out: Out, command: ListCommand) -> Result<Exit, CliError> {
    match command {
        ListCommand::Create { body } => {
            let body = body
                .as_deref()
                .map(json_arg)
                .transpose()?
                .unwrap_or(Value::Object(Default::default()));
            create(client, out, "/1/lists", body, "list_id", "list").await
        }
        ListCommand::Get { id } => show(client, out, &format!("/1/lists/{id}")).await,
        ListCommand::List(listing) => {
            show(client, out, &format!("/1/lists{}", listing.query()?)).await
        }
        ListCommand::Delete { id } => {
            delete(
                client,
                out,
                &format!("/1/lists/{id}"),
                &format!("list {id}"),
            )
            .await
        }
        ListCommand::Attach { list_id, face_ids } => {
            membership(client, out, "attach", &list_id, face_ids).await
        }
        ListCommand::Detach { list_id, face_ids } => {
            membership(client, out, "detach", &list_id, face_ids).await
        }
    }
}

async fn membership(
    client: &Client,
    out: Out,
    action: &str,
    list_id: &str,
    face_ids: Vec<String>,
) -> Result<Exit, CliError> {
    let n = face_ids.len();
    let body = serde_json::json!({"action": action, "face_ids": face_ids});
    let answer = client
        .call(
            Method::PATCH,
            &format!("/1/lists/{list_id}"),
            Payload::Json(body),
        )
        .await?;
    out.done(&format!("{n} face(s) {action}ed, list {list_id}"), &answer);
    Ok(Exit::Ok)
}

async fn events(client: &Client, out: Out, command: EventCommand) -> Result<Exit, CliError> {
    match command {
        EventCommand::Create {
            body,
            idempotency_key,
        } => {
            let headers: Vec<(&str, &str)> = idempotency_key
                .as_deref()
                .map(|key| vec![("idempotency-key", key)])
                .unwrap_or_default();
            let answer = client
                .call_with(
                    Method::POST,
                    "/1/events",
                    Payload::Json(json_arg(&body)?),
                    &headers,
                )
                .await?;
            let n = answer["events"].as_array().map_or(0, Vec::len);
            out.done(&format!("{n} event(s) saved"), &answer);
            if !out.json {
                for event in answer["events"].as_array().into_iter().flatten() {
                    println!("{}", event["event_id"].as_str().unwrap_or_default());
                }
            }
            Ok(Exit::Ok)
        }
        EventCommand::Get { id } => show(client, out, &format!("/1/events/{id}")).await,
        EventCommand::List(listing) => {
            show(client, out, &format!("/1/events{}", listing.query()?)).await
        }
    }
}

async fn images(client: &Client, out: Out, command: ImageCommand) -> Result<Exit, CliError> {
    match command {
        ImageCommand::Put { owner, id, file } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| CliError::Local(format!("{}: {e}", file.display())))?;
            let content_type = if bytes.starts_with(&[0x89, b'P', b'N', b'G']) {
                "image/png"
            } else {
                "image/jpeg"
            };
            let n = bytes.len();
            let answer = client
                .call(
                    Method::PUT,
                    &owner.path(&id),
                    Payload::Bytes(content_type, bytes),
                )
                .await?;
            out.done(&format!("{n} bytes stored ({content_type})"), &answer);
            Ok(Exit::Ok)
        }
        ImageCommand::Get { owner, id, output } => {
            let answer = client.get_raw(&owner.path(&id)).await?;
            let n = tasks::save(answer, &output, false).await?;
            out.done(
                &format!("{n} bytes saved to {}", output.display()),
                &serde_json::json!({"bytes": n, "file": output}),
            );
            Ok(Exit::Ok)
        }
    }
}

async fn tokens(client: &Client, out: Out, command: TokenCommand) -> Result<Exit, CliError> {
    match command {
        TokenCommand::Create {
            description,
            permissions,
            expiration_time,
            account_id,
        } => {
            let mut body = serde_json::Map::new();
            if let Some(description) = description {
                body.insert("description".into(), description.into());
            }
            if let Some(permissions) = permissions {
                body.insert("permissions".into(), json_arg(&permissions)?);
            }
            if let Some(time) = expiration_time {
                body.insert("expiration_time".into(), time.into());
            }
            if let Some(account_id) = account_id {
                body.insert("account_id".into(), account_id.into());
            }
            let answer = client
                .call(
                    Method::POST,
                    "/1/tokens",
                    Payload::Json(Value::Object(body)),
                )
                .await?;
            out.done(
                &format!(
                    "token {} created; it is shown only now:\n{}",
                    answer["token_id"].as_str().unwrap_or_default(),
                    answer["token"].as_str().unwrap_or_default()
                ),
                &answer,
            );
            Ok(Exit::Ok)
        }
        TokenCommand::List(listing) => {
            show(client, out, &format!("/1/tokens{}", listing.query()?)).await
        }
        TokenCommand::Get { id } => show(client, out, &format!("/1/tokens/{id}")).await,
        TokenCommand::Delete { id } => {
            delete(
                client,
                out,
                &format!("/1/tokens/{id}"),
                &format!("token {id}"),
            )
            .await
        }
    }
}

async fn accounts(client: &Client, out: Out, command: AccountCommand) -> Result<Exit, CliError> {
    match command {
        AccountCommand::Create {
            description,
            account_type,
        } => {
            let mut body = serde_json::Map::new();
            if let Some(description) = description {
                body.insert("description".into(), description.into());
            }
            if let Some(account_type) = account_type {
                body.insert("account_type".into(), account_type.into());
            }
            create(
                client,
                out,
                "/1/accounts",
                Value::Object(body),
                "account_id",
                "account",
            )
            .await
        }
        AccountCommand::List(listing) => {
            show(client, out, &format!("/1/accounts{}", listing.query()?)).await
        }
        AccountCommand::Get { id } => show(client, out, &format!("/1/accounts/{id}")).await,
        AccountCommand::Delete { id } => {
            delete(
                client,
                out,
                &format!("/1/accounts/{id}"),
                &format!("account {id}"),
            )
            .await
        }
    }
}
