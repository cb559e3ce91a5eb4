//! Sandbox start overhead (see BENCHMARKS.md, bench/sandbox.sh): runs `/bin/true` N times
//! and `python3 -c pass` N/10 times, each once plainly (tokio `Command`, output piped)
//! and once through `fanout_workers::sandbox::run` (directory preparation, rlimits,
//! network namespace and user switch when root, seccomp, group kill), alternating, and
//! prints the median and 90th percentile per start in milliseconds as a Markdown table.
//!
//! `cargo run --release -p fanout-workers --example sandbox_start -- 200`

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fanout_workers::sandbox::{self, Ending, Limits, Sandbox};
use tokio::process::Command;

/// One plain start: spawn, read the (empty) output, wait.
async fn plain(program: &Path, args: &[OsString], dir: &Path) -> std::io::Result<Duration> {
    let start = Instant::now();
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .await?;
    let elapsed = start.elapsed();
    if !output.status.success() {
        return Err(std::io::Error::other(format!(
            "{program:?}: {}",
            output.status
        )));
    }
    Ok(elapsed)
}

/// One start through the sandbox.
async fn sandboxed(
    program: &Path,
    args: &[OsString],
    sandbox: &Sandbox,
) -> std::io::Result<Duration> {
    let start = Instant::now();
    let outcome = sandbox::run(sandbox, program, args).await?;
    let elapsed = start.elapsed();
    if outcome.ending != Ending::Exited(0) {
        return Err(std::io::Error::other(format!(
            "{program:?} {}: {}",
            outcome.describe(),
            outcome.stderr_tail
        )));
    }
    Ok(elapsed)
}

/// The median and 90th percentile, in milliseconds.
fn summary(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let at = |q: f64| {
        let index = ((times.len() - 1) as f64 * q).round() as usize;
        times[index].as_secs_f64() * 1000.0
    };
    (at(0.5), at(0.9))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 200,
    };
    let dir = std::env::temp_dir().join(format!("fanout-sandbox-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let sandbox = Sandbox {
        dir: dir.clone(),
        limits: Limits::default(),
        path_prefix: Vec::new(),
        env: Vec::new(),
    };
    let cases = [
        ("/bin/true", Path::new("/bin/true"), Vec::new(), runs),
        (
            "python3 -c pass",
            Path::new("/usr/bin/python3"),
            vec![OsString::from("-c"), OsString::from("pass")],
            (runs / 10).max(1),
        ),
    ];
    println!(
        "runs as {} ({} cores)",
        if sandbox::is_root() {
            "root: nobody in a network namespace"
        } else {
            "an unprivileged user: same user, no namespace"
        },
        std::thread::available_parallelism()?.get()
    );
    println!();
    println!(
        "| program | runs | plain median | plain p90 | sandbox median | sandbox p90 | overhead (median) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, program, args, count) in cases {
        // Warm the page cache and the runtime.
        for _ in 0..3 {
            plain(program, &args, &dir).await?;
            sandboxed(program, &args, &sandbox).await?;
        }
        let (mut plain_times, mut sandbox_times) = (Vec::new(), Vec::new());
        for _ in 0..count {
            plain_times.push(plain(program, &args, &dir).await?);
            sandbox_times.push(sandboxed(program, &args, &sandbox).await?);
        }
        let (plain_median, plain_p90) = summary(plain_times);
        let (sandbox_median, sandbox_p90) = summary(sandbox_times);
        println!(
            "| `{name}` | {count} | {plain_median:.2} ms | {plain_p90:.2} ms | {sandbox_median:.2} ms | {sandbox_p90:.2} ms | +{:.2} ms |",
            sandbox_median - plain_median
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
