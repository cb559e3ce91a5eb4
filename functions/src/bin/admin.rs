//! `fanout-admin`: operator commands that go straight to the store with AWS
//! credentials, for what no route can do without a token.
//!
//! - `fanout-admin bootstrap [--description D]`: creates an admin account and a token
//!   with every permission, and prints `{"account_id", "token_id", "token"}` — the
//!   first token of a deployed stack (run with the deployment's `FANOUT_TABLE` and AWS
//!   credentials allowed to write it).
//! - `fanout-admin local-env [--file .fanout/local.env]`: what `make run` calls: makes
//!   sure the file holds a working admin token (`FANOUT_ADMIN_TOKEN`) and a demo user
//!   account with a token (`FANOUT_ACCOUNT_ID`, `FANOUT_TOKEN`), creating only what is
//!   missing or no longer valid, and prints them; also ClearML credentials of the demo
//!   account (`FANOUT_CLEARML_ACCESS_KEY`, `FANOUT_CLEARML_SECRET_KEY`: a token of its
//!   own, split in two) and a ready `clearml.conf` for the API at `--api` (default
//!   `http://127.0.0.1:3000`), written next to the file as `clearml.conf`.
//! - `fanout-admin check <token>`: exit 0 when the token is valid, 1 when not.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use fanout::Services;
use fanout::auth::{self, AccountType, Verdict};
use uuid::Uuid;

const USAGE: &str = "usage: fanout-admin bootstrap [--description TEXT]
       fanout-admin local-env [--file PATH] [--api URL]
       fanout-admin check TOKEN";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("fanout-admin: {message}");
            ExitCode::from(2)
        }
    }
}

/// The value after `--name` in `args`, if given.
fn option<'a>(args: &'a [String], name: &str) -> Result<Option<&'a str>, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => args
            .get(i + 1)
            .map(|v| Some(v.as_str()))
            .ok_or_else(|| format!("{name} needs a value\n{USAGE}")),
    }
}

async fn services() -> Result<Services, String> {
    Services::from_env()
        .await
        .map_err(|e| format!("{e} (set the deployment's FANOUT_* variables and AWS credentials)"))
}

async fn run(args: &[String]) -> Result<ExitCode, String> {
    match args.first().map(String::as_str) {
        Some("bootstrap") => {
            let description = option(args, "--description")?.unwrap_or("first admin");
            let svc = services().await?;
            let made = auth::bootstrap(&svc, AccountType::Admin, None, description)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "{}",
                serde_json::to_string_pretty(&made).map_err(|e| e.to_string())?
            );
            Ok(ExitCode::SUCCESS)
        }
        Some("check") => {
            let token = args.get(1).ok_or(USAGE)?;
            let svc = services().await?;
            Ok(if valid(&svc, token).await? {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Some("local-env") => {
            let file = option(args, "--file")?
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(".fanout/local.env"));
            let api = option(args, "--api")?.unwrap_or("http://127.0.0.1:3000");
            local_env(&file, api).await?;
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(USAGE.to_string()),
    }
}

async fn valid(svc: &Services, token: &str) -> Result<bool, String> {
    let verdict = auth::authorize(svc, Some(&format!("Bearer {token}")))
        .await
        .map_err(|e| e.to_string())?;
    Ok(matches!(verdict, Verdict::Allowed(_)))
}

/// Reads `KEY=VALUE` lines.
fn read_env(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: {e} (run `make deploy-local` first)", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

fn lookup<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn set(pairs: &mut Vec<(String, String)>, key: &str, value: &str) {
    pairs.retain(|(k, _)| k != key);
    pairs.push((key.to_string(), value.to_string()));
}

/// Whether ClearML credentials are a working token of `account_id` with the `clearml`
/// permission.
async fn clearml_valid(
    svc: &Services,
    account_id: Uuid,
    access_key: &str,
    secret_key: &str,
) -> Result<bool, String> {
    let token = format!("fo_{access_key}_{secret_key}");
    let verdict = auth::authorize(svc, Some(&format!("Bearer {token}")))
        .await
        .map_err(|e| e.to_string())?;
    Ok(matches!(verdict, Verdict::Allowed(caller)
        if caller.account_id == account_id
            && caller.permissions.allows(auth::Resource::Clearml, auth::Action::View)))
}

/// New ClearML credentials of `account_id`: a token with every permission, split in two.
async fn clearml_credentials(svc: &Services, account_id: Uuid) -> Result<(String, String), String> {
    let maker = auth::Caller {
        account_id,
        account_type: AccountType::Admin,
        token_id: Uuid::nil(),
        permissions: auth::Permissions::all(),
        expiration_time: None,
    };
    let made = auth::tokens::create(
        svc,
        &maker,
        account_id,
        auth::tokens::NewToken {
            description: Some("make run clearml credentials".into()),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    fanout::clearml::dispatch::split_token(&made.token)
        .ok_or_else(|| "a new token does not split".to_string())
}

/// A `clearml.conf` for the API at `api` with these credentials (the clients need a
/// web server address, which they never contact; POST for every call).
fn clearml_conf(api: &str, access_key: &str, secret_key: &str) -> String {
    let api = api.trim_end_matches('/');
    format!(
        "api {{\n  api_server: \"{api}/clearml\"\n  web_server: \"http://localhost:8080\"\n  files_server: \"http://localhost:8081\"\n  credentials {{ access_key: \"{access_key}\", secret_key: \"{secret_key}\" }}\n  http {{ default_method: \"post\" }}\n}}\n"
    )
}

async fn local_env(path: &Path, api: &str) -> Result<(), String> {
    let mut pairs = read_env(path)?;
    let svc = services().await?;
    let mut made = Vec::new();
    let admin = match lookup(&pairs, "FANOUT_ADMIN_TOKEN") {
        Some(token) if valid(&svc, token).await? => token.to_string(),
        _ => {
            let boot = auth::bootstrap(&svc, AccountType::Admin, None, "make run admin")
                .await
                .map_err(|e| e.to_string())?;
            made.push("admin token");
            boot.token
        }
    };
    set(&mut pairs, "FANOUT_ADMIN_TOKEN", &admin);
    let demo_account = lookup(&pairs, "FANOUT_ACCOUNT_ID").and_then(|a| Uuid::try_parse(a).ok());
    let (account_id, token) = match (demo_account, lookup(&pairs, "FANOUT_TOKEN")) {
        (Some(account_id), Some(token)) if valid(&svc, token).await? => {
            (account_id, token.to_string())
        }
        _ => {
            let boot = auth::bootstrap(
                &svc,
                AccountType::User,
                demo_account,
                "make run demo account",
            )
            .await
            .map_err(|e| e.to_string())?;
            made.push("demo account token");
            (boot.account_id, boot.token)
        }
    };
    set(&mut pairs, "FANOUT_ACCOUNT_ID", &account_id.to_string());
    set(&mut pairs, "FANOUT_TOKEN", &token);
    let (access_key, secret_key) = match (
        lookup(&pairs, "FANOUT_CLEARML_ACCESS_KEY"),
        lookup(&pairs, "FANOUT_CLEARML_SECRET_KEY"),
    ) {
        (Some(access), Some(secret)) if clearml_valid(&svc, account_id, access, secret).await? => {
            (access.to_string(), secret.to_string())
        }
        _ => {
            made.push("clearml credentials");
            clearml_credentials(&svc, account_id).await?
        }
    };
    set(&mut pairs, "FANOUT_CLEARML_ACCESS_KEY", &access_key);
    set(&mut pairs, "FANOUT_CLEARML_SECRET_KEY", &secret_key);
    let text: String = pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    let tmp = path.with_extension("env.tmp");
    std::fs::write(&tmp, text).map_err(|e| e.to_string())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
    }
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())?;
    if made.is_empty() {
        println!("local-env: the tokens in {} still work", path.display());
    } else {
        println!(
            "local-env: created {} in {}",
            made.join(", "),
            path.display()
        );
    }
    println!("FANOUT_ADMIN_TOKEN={admin}");
    println!("FANOUT_ACCOUNT_ID={account_id}");
    println!("FANOUT_TOKEN={token}");
    println!("FANOUT_CLEARML_ACCESS_KEY={access_key}");
    println!("FANOUT_CLEARML_SECRET_KEY={secret_key}");
    let conf = clearml_conf(api, &access_key, &secret_key);
    let conf_path = path.with_file_name("clearml.conf");
    std::fs::write(&conf_path, &conf).map_err(|e| e.to_string())?;
    println!(
        "clearml.conf for the demo account ({}; use it with CLEARML_CONFIG_FILE={}):\n{conf}",
        conf_path.display(),
        conf_path.display()
    );
    Ok(())
}
