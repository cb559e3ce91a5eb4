//! The orchestrator's sandbox: runs a program of an uploaded archive (an algorithm's
//! `train`/`predict`, a workflow's `score`) as an unprivileged user, without network,
//! under CPU, memory, file-size, process and wall-clock limits, its output bounded.
//!
//! The program starts in a session and process group of its own (`setsid`) with:
//!
//! * resource limits: `RLIMIT_AS`, `RLIMIT_CPU`, `RLIMIT_FSIZE`, `RLIMIT_NPROC` from
//!   [`Limits`], no core dumps, at most 256 open files;
//! * when the worker runs as root: a fresh network namespace (no interface but a loopback
//!   that is down), then user and group `nobody` (65534) with no supplementary groups; the
//!   directory is handed to `nobody` first ([`prepare_dir`]);
//! * when it does not (the container image runs the worker as the unprivileged uid
//!   65532): the worker's own user, and nothing that needs privilege is tried;
//! * always: `no_new_privs` and a seccomp filter under which `socket` fails with `EACCES`
//!   for every address family but `AF_UNIX` (no TCP, UDP, raw or netlink socket, so no
//!   network even without the namespace), `io_uring_setup` fails with `EPERM` (io_uring
//!   could open sockets past the filter), and `setsid`/`setpgid` fail with `EPERM` (no
//!   process can leave the group that is killed at the end). A syscall of another ABI
//!   (x32, 32-bit compat) kills the process. If any of this cannot be set up, the spawn
//!   fails: nothing runs unconfined.
//!
//! At the wall-clock limit, and in any case once the program has exited, its whole
//! process group is killed (`SIGKILL`), so nothing it started outlives the run.
//!
//! Caveats for the caller:
//!
//! * `RLIMIT_NPROC` counts every process (thread) of the user, not of the run: runs side
//!   by side as `nobody` share the budget, and a non-root worker's own threads count
//!   against it too (keep `processes` well above the worker's thread count there).
//! * Runs side by side share the user: one program could signal another's processes or
//!   read its directory if it knows the path. Without root the program is the worker's
//!   own user and could signal the worker or read its files; only the seccomp filter
//!   and the limits apply.
//! * The directory's parents must be searchable by `nobody` for paths through them (the
//!   program's own, for one) to resolve.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::watch;

/// The user and group a root worker runs programs as (`nobody`).
pub const SANDBOX_ID: u32 = 65534;

/// The directories searched after [`Sandbox::path_prefix`].
const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Open files a program may hold (`RLIMIT_NOFILE`).
const OPEN_FILES: u64 = 256;

/// How long the output readers wait for end-of-file after the process group was killed
/// (only something that got hold of the pipes outside the group can hold them open).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// The limits of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time before the whole process group is killed.
    pub wall: Duration,
    /// CPU seconds (RLIMIT_CPU; `SIGXCPU` at this many, `SIGKILL` one second later).
    pub cpu_seconds: u64,
    /// Address space in bytes (RLIMIT_AS).
    pub memory_bytes: u64,
    /// Largest file it may write, in bytes (RLIMIT_FSIZE).
    pub file_bytes: u64,
    /// Processes (RLIMIT_NPROC; counted per user, see the module's caveats).
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
    /// The wall-clock limit it ran under (for [`Outcome::describe`]).
    pub wall_limit: Duration,
}

impl Outcome {
    /// Whether the program exited with code 0.
    pub fn success(&self) -> bool {
        self.ending == Ending::Exited(0)
    }

    /// One line saying how the run ended: "exited with code 1", "killed at the
    /// wall-clock limit of 1200 s", "killed at the CPU time limit (SIGXCPU)", "killed by
    /// signal 9 (SIGKILL)".
    pub fn describe(&self) -> String {
        match self.ending {
            Ending::Exited(code) => format!("exited with code {code}"),
            Ending::TimedOut => {
                format!(
                    "killed at the wall-clock limit of {}",
                    seconds(self.wall_limit)
                )
            }
            Ending::Signalled(libc::SIGXCPU) => "killed at the CPU time limit (SIGXCPU)".into(),
            Ending::Signalled(libc::SIGXFSZ) => "killed at the file-size limit (SIGXFSZ)".into(),
            Ending::Signalled(signal) => match signal_name(signal) {
                Some(name) => format!("killed by signal {signal} ({name})"),
                None => format!("killed by signal {signal}"),
            },
        }
    }
}

/// "1200 s", or "1.5 s" for a limit that is not a whole number of seconds.
fn seconds(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

/// The name of a common signal.
fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return None,
    })
}

/// Whether the worker runs as root (and so drops programs to `nobody` in a network
/// namespace of their own).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Hands `dir` and everything under it to `nobody` (65534:65534) when the worker runs as
/// root, so that the program can read and write it; does nothing otherwise (the worker's
/// user already owns it). Symbolic links are changed themselves, never followed (an
/// archive's link cannot hand a file outside `dir` over). Idempotent; [`run`] calls it.
pub fn prepare_dir(dir: &Path) -> io::Result<()> {
    if !is_root() {
        return Ok(());
    }
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::symlink_metadata(&path)?;
        std::os::unix::fs::lchown(&path, Some(SANDBOX_ID), Some(SANDBOX_ID))?;
        if metadata.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
        }
    }
    Ok(())
}

/// Runs `program` with `args` in `sandbox`: `program` is a path (relative ones resolve in
/// the sandbox's directory) or a name looked up on the sandbox's `PATH`. Returns once
/// the program has ended and its process group is killed; an error means it could not
/// be started (or waited for) — the sandbox never runs it with less confinement.
///
/// Dropping the future kills the process group too.
pub async fn run(sandbox: &Sandbox, program: &Path, args: &[OsString]) -> io::Result<Outcome> {
    let limits = &sandbox.limits;
    let dir = std::path::absolute(&sandbox.dir)?;
    prepare_dir(&dir)?;
    let root = is_root();
    let filter = seccomp_filter()?;

    let mut path = std::env::join_paths(&sandbox.path_prefix).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("sandbox PATH prefix: {e}"),
        )
    })?;
    if !path.is_empty() {
        path.push(":");
    }
    path.push(SYSTEM_PATH);

    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(&dir)
        .env_clear()
        .env("PATH", path)
        .env("HOME", &dir)
        .env("TMPDIR", &dir)
        .env("LANG", "C.UTF-8")
        .env("OMP_NUM_THREADS", "1")
        .env("OPENBLAS_NUM_THREADS", "1")
        .env("MKL_NUM_THREADS", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .envs(sandbox.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);

    // Everything the child needs is computed here: between fork and exec it may only
    // make system calls (no allocation, no locks).
    let rlimits = [
        (libc::RLIMIT_AS, limits.memory_bytes, limits.memory_bytes),
        (
            libc::RLIMIT_CPU,
            limits.cpu_seconds,
            limits.cpu_seconds.saturating_add(1),
        ),
        (libc::RLIMIT_FSIZE, limits.file_bytes, limits.file_bytes),
        (libc::RLIMIT_NPROC, limits.processes, limits.processes),
        (libc::RLIMIT_CORE, 0, 0),
        (libc::RLIMIT_NOFILE, OPEN_FILES, OPEN_FILES),
    ];
    let id = SANDBOX_ID as libc::uid_t;
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls on data prepared above; every failure is returned
    // (as errno, which does not allocate) and makes the spawn fail.
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            for (resource, soft, hard) in rlimits {
                // Never above the current hard limit: only root may raise it.
                let mut current = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::getrlimit(resource, &mut current) == -1 {
                    return Err(io::Error::last_os_error());
                }
                let wanted = libc::rlimit {
                    rlim_cur: (soft as libc::rlim_t).min(current.rlim_max),
                    rlim_max: (hard as libc::rlim_t).min(current.rlim_max),
                };
                if libc::setrlimit(resource, &wanted) == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
            // In order: the namespace needs the privilege the last three give up.
            if root
                && (libc::unshare(libc::CLONE_NEWNET) == -1
                    || libc::setgroups(0, std::ptr::null()) == -1
                    || libc::setgid(id) == -1
                    || libc::setuid(id) == -1)
            {
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            let program = libc::sock_fprog {
                len: filter.len() as libc::c_ushort,
                filter: filter.as_ptr().cast_mut(),
            };
            if libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &program as *const libc::sock_fprog,
            ) == -1
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }

    let start = Instant::now();
    let mut child = command.spawn().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("starting {} in the sandbox: {e}", program.display()),
        )
    })?;
    let group = child
        .id()
        .and_then(|pid| libc::pid_t::try_from(pid).ok())
        .ok_or_else(|| io::Error::other("the sandboxed child has no process id"))?;
    let mut guard = GroupGuard { group, armed: true };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();

    let (drained_tx, drained_rx) = watch::channel(None);
    let waiter = async {
        let ended = match tokio::time::timeout(limits.wall, child.wait()).await {
            Ok(status) => status.map(ending),
            Err(_) => {
                kill_group(group);
                child.wait().await.map(|_| Ending::TimedOut)
            }
        };
        // Whatever the program left behind (background jobs, children) goes with it.
        kill_group(group);
        let elapsed = start.elapsed();
        drained_tx.send_replace(Some(tokio::time::Instant::now() + DRAIN_GRACE));
        ended.map(|ending| (ending, elapsed))
    };
    let keep = limits.output_bytes;
    let (ended, out, err) = tokio::join!(
        waiter,
        read_tail(stdout, keep, drained_rx.clone()),
        read_tail(stderr, keep, drained_rx),
    );
    guard.armed = false;
    let (ending, elapsed) = ended?;
    Ok(Outcome {
        ending,
        stdout_tail: out?,
        stderr_tail: err?,
        elapsed,
        wall_limit: limits.wall,
    })
}

/// The ending an exit status says.
fn ending(status: ExitStatus) -> Ending {
    match (status.code(), status.signal()) {
        (Some(code), _) => Ending::Exited(code),
        (None, Some(signal)) => Ending::Signalled(signal),
        // Neither exited nor signalled (stopped or continued): not reported by wait.
        (None, None) => Ending::Signalled(0),
    }
}

/// `SIGKILL` to every process of a group; a group already gone is fine.
fn kill_group(group: libc::pid_t) {
    // SAFETY: killpg has no memory-safety preconditions. A failure can only be ESRCH
    // (the group is empty), which is what we want.
    unsafe {
        libc::killpg(group, libc::SIGKILL);
    }
}

/// Kills the process group if [`run`] is dropped before it finished.
struct GroupGuard {
    group: libc::pid_t,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            kill_group(self.group);
        }
    }
}

/// Reads `reader` to its end keeping the last `keep` bytes, as lossy UTF-8. Once
/// `drained` holds a deadline (the group was killed), reading stops at that deadline
/// even without end-of-file.
async fn read_tail<R: AsyncRead + Unpin>(
    reader: Option<R>,
    keep: usize,
    mut drained: watch::Receiver<Option<tokio::time::Instant>>,
) -> io::Result<String> {
    let Some(mut reader) = reader else {
        return Ok(String::new());
    };
    let mut tail = Tail::new(keep);
    let mut buffer = vec![0u8; 16 << 10];
    loop {
        let deadline = *drained.borrow_and_update();
        let read = match deadline {
            Some(deadline) => {
                match tokio::time::timeout_at(deadline, reader.read(&mut buffer)).await {
                    Ok(read) => read,
                    Err(_) => break,
                }
            }
            None => tokio::select! {
                read = reader.read(&mut buffer) => read,
                // The deadline is set: go round again (reading is cancel-safe). An error
                // means the sender is gone, and it always sets a deadline first.
                _ = drained.changed() => continue,
            },
        };
        match read? {
            0 => break,
            n => tail.push(&buffer[..n]),
        }
    }
    Ok(tail.into_string())
}

/// The last `keep` bytes of a stream, in at most twice that much memory.
struct Tail {
    keep: usize,
    bytes: Vec<u8>,
}

impl Tail {
    fn new(keep: usize) -> Self {
        Tail {
            keep,
            bytes: Vec::new(),
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        if chunk.len() >= self.keep {
            self.bytes.clear();
            self.bytes
                .extend_from_slice(&chunk[chunk.len() - self.keep..]);
            return;
        }
        self.bytes.extend_from_slice(chunk);
        if self.bytes.len() > 2 * self.keep {
            let excess = self.bytes.len() - self.keep;
            self.bytes.drain(..excess);
        }
    }

    fn into_string(mut self) -> String {
        if self.bytes.len() > self.keep {
            let excess = self.bytes.len() - self.keep;
            self.bytes.drain(..excess);
        }
        // A cut may fall inside a character: drop its continuation bytes rather than
        // start with a replacement character.
        let cut = if self.bytes.len() == self.keep {
            self.bytes
                .iter()
                .take(3)
                .take_while(|&&b| b & 0xC0 == 0x80)
                .count()
        } else {
            0
        };
        String::from_utf8_lossy(&self.bytes[cut..]).into_owned()
    }
}

/// `AUDIT_ARCH_X86_64` / `AUDIT_ARCH_AARCH64`: the ELF machine, 64-bit, little-endian.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000;

/// `struct seccomp_data` offsets: the syscall number, the audit arch, and the low 32 bits
/// of the first argument.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
#[cfg(target_endian = "little")]
const DATA_ARG0_LOW: u32 = 16;
#[cfg(target_endian = "big")]
const DATA_ARG0_LOW: u32 = 20;

/// A classic BPF statement.
fn statement(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

/// A classic BPF conditional jump (offsets count the instructions skipped).
fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The seccomp program (see the module's documentation).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn seccomp_filter() -> io::Result<Vec<libc::sock_filter>> {
    use libc::{BPF_ABS, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
    let load = |offset| statement(BPF_LD | BPF_W | BPF_ABS, offset);
    let ret = |action| statement(BPF_RET | BPF_K, action);
    let errno = |code: i32| ret(libc::SECCOMP_RET_ERRNO | (code as u32 & 0xffff));
    let nr = |syscall: libc::c_long| syscall as u32;

    let mut filter = vec![
        load(DATA_ARCH),
        jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH, 1, 0),
        ret(libc::SECCOMP_RET_KILL_PROCESS),
        load(DATA_NR),
    ];
    if cfg!(target_arch = "x86_64") {
        // x32 system calls carry the native arch with bit 30 set in the number.
        filter.push(jump(BPF_JMP | BPF_JGE | BPF_K, 0x4000_0000, 0, 1));
        filter.push(ret(libc::SECCOMP_RET_KILL_PROCESS));
    }
    filter.extend([
        jump(BPF_JMP | BPF_JEQ | BPF_K, nr(libc::SYS_socket), 0, 4),
        load(DATA_ARG0_LOW),
        jump(BPF_JMP | BPF_JEQ | BPF_K, libc::AF_UNIX as u32, 0, 1),
        ret(libc::SECCOMP_RET_ALLOW),
        errno(libc::EACCES),
        // The accumulator still holds the number here.
        jump(
            BPF_JMP | BPF_JEQ | BPF_K,
            nr(libc::SYS_io_uring_setup),
            2,
            0,
        ),
        jump(BPF_JMP | BPF_JEQ | BPF_K, nr(libc::SYS_setsid), 1, 0),
        jump(BPF_JMP | BPF_JEQ | BPF_K, nr(libc::SYS_setpgid), 0, 1),
        errno(libc::EPERM),
        ret(libc::SECCOMP_RET_ALLOW),
    ]);
    Ok(filter)
}

/// No filter for this architecture: nothing runs (fail closed).
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn seccomp_filter() -> io::Result<Vec<libc::sock_filter>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "the sandbox's seccomp filter supports x86_64 and aarch64 only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_bytes() {
        let mut tail = Tail::new(5);
        for chunk in [&b"abc"[..], b"defg", b"hi", b"jklmnopq", b"r"] {
            tail.push(chunk);
            assert!(tail.bytes.len() <= 10);
        }
        assert_eq!(tail.into_string(), "nopqr");
        let mut short = Tail::new(100);
        short.push(b"short");
        assert_eq!(short.into_string(), "short");
    }

    #[test]
    fn tail_does_not_start_inside_a_character() {
        let mut tail = Tail::new(4);
        tail.push("aé€".as_bytes()); // 1 + 2 + 3 bytes: the last 4 start inside é
        assert_eq!(tail.into_string(), "€");
    }

    #[test]
    fn describe_names_the_reason() {
        let outcome = |ending| Outcome {
            ending,
            stdout_tail: String::new(),
            stderr_tail: String::new(),
            elapsed: Duration::ZERO,
            wall_limit: Duration::from_secs(1200),
        };
        assert_eq!(outcome(Ending::Exited(1)).describe(), "exited with code 1");
        assert_eq!(
            outcome(Ending::TimedOut).describe(),
            "killed at the wall-clock limit of 1200 s"
        );
        assert_eq!(
            outcome(Ending::Signalled(9)).describe(),
            "killed by signal 9 (SIGKILL)"
        );
        assert!(
            outcome(Ending::Signalled(libc::SIGXCPU))
                .describe()
                .contains("CPU time limit")
        );
        assert_eq!(
            outcome(Ending::Signalled(77)).describe(),
            "killed by signal 77"
        );
    }
}
