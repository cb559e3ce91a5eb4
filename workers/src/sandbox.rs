//! The orchestrator's sandbox: runs a program of an uploaded archive (an algorithm's
//! `train`/`predict`, a workflow's `score`) as an unprivileged user, without network,
//! under CPU, memory, file-size, process and wall-clock limits, its output bounded.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The limits of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time before the whole process group is killed.
    pub wall: Duration,
    /// CPU seconds (RLIMIT_CPU).
    pub cpu_seconds: u64,
    /// Address space in bytes (RLIMIT_AS).
    pub memory_bytes: u64,
    /// Largest file it may write, in bytes (RLIMIT_FSIZE).
    pub file_bytes: u64,
    /// Processes (RLIMIT_NPROC).
    pub processes: u64,
    /// Bytes of standard output and of standard error kept (the tail).
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wall: Duration::from_secs(20 * 60),
            cpu_seconds: 20 * 60,
            memory_bytes: 2 << 30,
            file_bytes: 512 << 20,
            processes: 64,
            output_bytes: 64 << 10,
        }
    }
}

/// Where and how a program runs.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The working directory (made readable and writable by the sandbox's user).
    pub dir: PathBuf,
    /// Limits.
    pub limits: Limits,
    /// Directories put first on the program's `PATH`.
    pub path_prefix: Vec<PathBuf>,
    /// More environment variables (the environment is otherwise cleared).
    pub env: Vec<(String, String)>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal (not the wall-clock limit).
    Signalled(i32),
    /// Killed at the wall-clock limit.
    TimedOut,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How it ended.
    pub ending: Ending,
    /// The tail of its standard output.
    pub stdout_tail: String,
    /// The tail of its standard error.
    pub stderr_tail: String,
    /// Wall-clock time.
    pub elapsed: Duration,
}

/// Runs `program` with `args` in `sandbox`.
pub async fn run(sandbox: &Sandbox, program: &Path, args: &[OsString]) -> std::io::Result<Outcome> {
    let _ = (sandbox, program, args);
    Err(std::io::Error::other("sandbox not built yet"))
}
