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
//!   missing or no longer valid, and prints them.
//! - `fanout-admin check <token>`: exit 0 when the token is valid, 1 when not.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use fanout::Services;
use fanout::auth::{self, AccountType, Verdict};
use uuid::Uuid;

const USAGE: &str = "usage: fanout-admin bootstrap [--description TEXT]
       fanout-admin local-env [--file PATH]
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
            local_env(&file).await?;
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

async fn local_env(path: &Path) -> Result<(), String> {
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
            made.join(" and "),
            path.display()
        );
    }
    println!("FANOUT_ADMIN_TOKEN={admin}");
    println!("FANOUT_ACCOUNT_ID={account_id}");
    println!("FANOUT_TOKEN={token}");
    Ok(())
}
