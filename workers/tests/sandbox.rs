//! The orchestrator's sandbox (`fanout_workers::sandbox`), run for real with bash and
//! python3 (no AWS): output and exit codes come back, the program runs as `nobody` when
//! the worker is root and cannot write outside its directory, the wall-clock, memory,
//! CPU, output, process and file-size limits hold, nothing it started survives the run,
//! and it has no network (no socket but AF_UNIX, no io_uring) while AF_UNIX still works.

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fanout_workers::sandbox::{Ending, Limits, Outcome, Sandbox, is_root, run};

/// A fresh directory under the system's temporary directory (searchable by `nobody`).
fn fresh_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "fanout-sandbox-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sandbox(limits: Limits) -> Sandbox {
    Sandbox {
        dir: fresh_dir(),
        limits,
        path_prefix: Vec::new(),
        env: Vec::new(),
    }
}

async fn bash(sandbox: &Sandbox, script: &str) -> Outcome {
    let args = [OsString::from("-c"), OsString::from(script)];
    run(sandbox, Path::new("/bin/bash"), &args).await.unwrap()
}

async fn python(sandbox: &Sandbox, code: &str) -> Outcome {
    let args = [OsString::from("-c"), OsString::from(code)];
    run(sandbox, Path::new("/usr/bin/python3"), &args)
        .await
        .unwrap()
}

/// Whether a process is gone (or a zombie nobody has reaped yet: it runs no more).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// Waits a little for SIGKILLed processes to be gone, and says which are not.
async fn survivors(pids: &[i32]) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let alive: Vec<i32> = pids.iter().copied().filter(|&p| !gone(p)).collect();
        if alive.is_empty() || Instant::now() > deadline {
            return alive;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pids_in(file: &Path) -> Vec<i32> {
    std::fs::read_to_string(file)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

#[tokio::test]
async fn output_and_exit_codes_come_back() {
    let sandbox = sandbox(Limits::default());
    let ok = bash(&sandbox, "echo out; echo err >&2; pwd").await;
    assert_eq!(ok.ending, Ending::Exited(0), "{ok:?}");
    assert!(ok.success());
    let dir = std::path::absolute(&sandbox.dir).unwrap();
    assert_eq!(ok.stdout_tail, format!("out\n{}\n", dir.display()));
    assert_eq!(ok.stderr_tail, "err\n");
    assert!(ok.elapsed < Duration::from_secs(5));

    let failed = bash(&sandbox, "exit 3").await;
    assert_eq!(failed.ending, Ending::Exited(3));
    assert_eq!(failed.describe(), "exited with code 3");
    assert!(!failed.success());

    let killed = bash(&sandbox, "kill -SEGV $$").await;
    assert_eq!(killed.ending, Ending::Signalled(libc::SIGSEGV));
    assert_eq!(killed.describe(), "killed by signal 11 (SIGSEGV)");

    let missing = run(&sandbox, &sandbox.dir.join("no-such-program"), &[]).await;
    assert_eq!(missing.unwrap_err().kind(), std::io::ErrorKind::NotFound);
}

#[tokio::test]
async fn a_shebang_script_sees_only_the_sandbox_environment() {
    let mut sandbox = sandbox(Limits::default());
    let bin = sandbox.dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    sandbox.path_prefix = vec![bin.clone()];
    sandbox.env = vec![("FANOUT_RANK".into(), "7".into())];
    let script = sandbox.dir.join("train");
    std::fs::write(
        &script,
        "#!/usr/bin/env python3\nimport os, sys\n\
         print('\\n'.join(f'{k}={v}' for k, v in sorted(os.environ.items())))\n\
         print(sys.argv[1:], file=sys.stderr)\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let outcome = run(&sandbox, &script, &["a".into(), "b c".into()])
        .await
        .unwrap();
    assert_eq!(outcome.ending, Ending::Exited(0), "{outcome:?}");
    assert_eq!(outcome.stderr_tail, "['a', 'b c']\n");
    let dir = std::path::absolute(&sandbox.dir).unwrap();
    let dir = dir.display();
    let expected = [
        "FANOUT_RANK=7".to_string(),
        format!("HOME={dir}"),
        "LANG=C.UTF-8".into(),
        "MKL_NUM_THREADS=1".into(),
        "OMP_NUM_THREADS=1".into(),
        "OPENBLAS_NUM_THREADS=1".into(),
        format!("PATH={}:/usr/local/bin:/usr/bin:/bin", bin.display()),
        "PYTHONDONTWRITEBYTECODE=1".into(),
        format!("TMPDIR={dir}"),
    ];
    // Python may add LC_CTYPE (PEP 538); nothing of the worker's environment leaks.
    let seen: Vec<&str> = outcome
        .stdout_tail
        .lines()
        .filter(|l| !l.starts_with("LC_CTYPE="))
        .collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn runs_as_nobody_and_writes_only_its_directory() {
    let sandbox = sandbox(Limits::default());
    std::fs::write(sandbox.dir.join("input.csv"), "1,2\n").unwrap();
    let outcome = bash(
        &sandbox,
        "id -u; id -g; id -G; cat input.csv; echo model > model.bin && echo wrote; \
         touch /etc/fanout-sandbox-probe && echo escaped; \
         touch /root/fanout-sandbox-probe && echo escaped; true",
    )
    .await;
    assert_eq!(outcome.ending, Ending::Exited(0), "{outcome:?}");
    assert!(!Path::new("/etc/fanout-sandbox-probe").exists());
    assert!(!outcome.stdout_tail.contains("escaped"), "{outcome:?}");
    assert!(
        outcome.stderr_tail.contains("Permission denied"),
        "{outcome:?}"
    );
    assert_eq!(
        std::fs::read_to_string(sandbox.dir.join("model.bin")).unwrap(),
        "model\n"
    );
    if is_root() {
        assert_eq!(
            outcome.stdout_tail, "65534\n65534\n65534\n1,2\nwrote\n",
            "{outcome:?}"
        );
        let owner = std::os::unix::fs::MetadataExt::uid(
            &std::fs::metadata(sandbox.dir.join("input.csv")).unwrap(),
        );
        assert_eq!(owner, 65534, "prepare_dir hands the inputs to nobody");
    }
}

#[tokio::test]
async fn the_wall_clock_limit_kills_the_whole_group() {
    let sandbox = sandbox(Limits {
        wall: Duration::from_secs(1),
        ..Limits::default()
    });
    let started = Instant::now();
    let outcome = bash(
        &sandbox,
        "sleep 60 & echo $! > bg.pid; (sleep 61; true) & echo $! >> bg.pid; echo started; wait",
    )
    .await;
    assert_eq!(outcome.ending, Ending::TimedOut, "{outcome:?}");
    assert_eq!(outcome.describe(), "killed at the wall-clock limit of 1 s");
    assert_eq!(outcome.stdout_tail, "started\n");
    assert!(outcome.elapsed >= Duration::from_secs(1));
    assert!(started.elapsed() < Duration::from_secs(4), "{outcome:?}");
    let pids = pids_in(&sandbox.dir.join("bg.pid"));
    assert_eq!(pids.len(), 2);
    assert_eq!(survivors(&pids).await, Vec::<i32>::new());
}

#[tokio::test]
async fn background_children_die_with_the_program() {
    let sandbox = sandbox(Limits::default());
    let started = Instant::now();
    // The child holds stdout open: the run must not wait for it.
    let outcome = bash(&sandbox, "sleep 60 & echo $! > bg.pid; echo done").await;
    assert_eq!(outcome.ending, Ending::Exited(0), "{outcome:?}");
    assert_eq!(outcome.stdout_tail, "done\n");
    assert!(started.elapsed() < Duration::from_secs(3), "{outcome:?}");
    let pids = pids_in(&sandbox.dir.join("bg.pid"));
    assert_eq!(survivors(&pids).await, Vec::<i32>::new());

    // Nor can a child leave the group to outlive it.
    let escape = python(
        &sandbox,
        "import os\ntry:\n    os.setsid()\nexcept PermissionError as e:\n    print('setsid', e.errno)\n\
         try:\n    os.setpgid(0, 0)\nexcept PermissionError as e:\n    print('setpgid', e.errno)\n",
    )
    .await;
    assert_eq!(escape.stdout_tail, "setsid 1\nsetpgid 1\n", "{escape:?}");
}

#[tokio::test]
async fn memory_is_limited() {
    let sandbox = sandbox(Limits {
        memory_bytes: 256 << 20,
        ..Limits::default()
    });
    let outcome = python(&sandbox, "b = bytearray(1 << 30)\nprint('allocated')").await;
    assert_ne!(outcome.ending, Ending::Exited(0), "{outcome:?}");
    assert!(outcome.stderr_tail.contains("MemoryError"), "{outcome:?}");
    assert!(!outcome.stdout_tail.contains("allocated"));
    // The same program fits under a larger limit (the limit is what stopped it).
    let roomy = Sandbox {
        limits: Limits {
            memory_bytes: 2 << 30,
            ..Limits::default()
        },
        ..sandbox.clone()
    };
    let fits = python(&roomy, "b = bytearray(1 << 30)\nprint('allocated')").await;
    assert_eq!(fits.stdout_tail, "allocated\n", "{fits:?}");
}

#[tokio::test]
async fn cpu_time_is_limited() {
    let sandbox = sandbox(Limits {
        cpu_seconds: 1,
        ..Limits::default()
    });
    let outcome = bash(&sandbox, "while :; do :; done").await;
    assert_eq!(
        outcome.ending,
        Ending::Signalled(libc::SIGXCPU),
        "{outcome:?}"
    );
    assert_eq!(outcome.describe(), "killed at the CPU time limit (SIGXCPU)");
    assert!(outcome.elapsed < Duration::from_secs(10));
}

#[tokio::test]
async fn there_is_no_network() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sandbox = sandbox(Limits::default());

    let tcp = bash(
        &sandbox,
        &format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected"),
    )
    .await;
    assert_ne!(tcp.ending, Ending::Exited(0), "{tcp:?}");
    assert!(!tcp.stdout_tail.contains("connected"));
    assert!(tcp.stderr_tail.contains("Permission denied"), "{tcp:?}");
    listener.set_nonblocking(true).unwrap();
    assert_eq!(
        listener.accept().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "the listener received a connection"
    );

    // Every family but AF_UNIX is refused at socket() with EACCES (the seccomp filter,
    // not the namespace: in a namespace alone the socket itself would be created).
    let families = python(
        &sandbox,
        "import socket\n\
         for name in ['AF_INET', 'AF_INET6', 'AF_NETLINK', 'AF_PACKET']:\n\
         \x20   try:\n\
         \x20       socket.socket(getattr(socket, name), socket.SOCK_DGRAM)\n\
         \x20       print(name, 'open')\n\
         \x20   except OSError as e:\n\
         \x20       print(name, e.errno)\n\
         a, b = socket.socketpair()\n\
         a.sendall(b'ping')\n\
         print('pair', b.recv(4).decode())\n\
         u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n\
         u.bind('sock')\n\
         print('unix bound')\n",
    )
    .await;
    assert_eq!(
        families.stdout_tail,
        "AF_INET 13\nAF_INET6 13\nAF_NETLINK 13\nAF_PACKET 13\npair ping\nunix bound\n",
        "{families:?}"
    );

    // io_uring (which could open sockets past the filter) is refused with EPERM.
    let uring = python(
        &sandbox,
        "import ctypes\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         params = ctypes.create_string_buffer(120)\n\
         print(libc.syscall(425, 4, params), ctypes.get_errno())\n",
    )
    .await;
    assert_eq!(uring.stdout_tail, "-1 1\n", "{uring:?}");
}

#[tokio::test]
async fn output_is_bounded() {
    let sandbox = sandbox(Limits {
        output_bytes: 4096,
        ..Limits::default()
    });
    let outcome = python(
        &sandbox,
        "import sys\n\
         for _ in range(1000):\n\
         \x20   sys.stdout.write('x' * 9999 + '\\n')\n\
         \x20   sys.stderr.write('y' * 9999 + '\\n')\n\
         print('END')\n\
         print('END', file=sys.stderr)\n",
    )
    .await;
    assert_eq!(outcome.ending, Ending::Exited(0), "{outcome:?}");
    assert_eq!(outcome.stdout_tail.len(), 4096);
    assert!(outcome.stdout_tail.ends_with("xxx\nEND\n"));
    assert_eq!(outcome.stderr_tail.len(), 4096);
    assert!(outcome.stderr_tail.ends_with("yyy\nEND\n"));
}

#[tokio::test]
async fn processes_are_limited_and_all_killed() {
    let sandbox = sandbox(Limits {
        processes: 16,
        ..Limits::default()
    });
    let outcome = python(
        &sandbox,
        "import os, time\n\
         pids, errors = [], set()\n\
         for _ in range(100):\n\
         \x20   try:\n\
         \x20       pid = os.fork()\n\
         \x20   except OSError as e:\n\
         \x20       errors.add(e.strerror)\n\
         \x20       continue\n\
         \x20   if pid == 0:\n\
         \x20       time.sleep(60)\n\
         \x20       os._exit(0)\n\
         \x20   pids.append(pid)\n\
         open('children', 'w').write(' '.join(map(str, pids)))\n\
         print(len(pids), sorted(errors))\n",
    )
    .await;
    assert_eq!(outcome.ending, Ending::Exited(0), "{outcome:?}");
    assert!(
        outcome
            .stdout_tail
            .contains("['Resource temporarily unavailable']"),
        "{outcome:?}"
    );
    let pids = pids_in(&sandbox.dir.join("children"));
    if is_root() {
        // The count is per user: other tests' programs run as nobody too.
        assert!(!pids.is_empty() && pids.len() < 16, "{outcome:?}");
    }
    assert_eq!(survivors(&pids).await, Vec::<i32>::new());
}

#[tokio::test]
async fn file_size_is_limited() {
    let sandbox = sandbox(Limits {
        file_bytes: 1 << 20,
        ..Limits::default()
    });
    // Python ignores SIGXFSZ, so the write fails with EFBIG.
    let outcome = python(
        &sandbox,
        "with open('big', 'wb') as f:\n    f.write(b'x' * (20 << 20))\nprint('written')",
    )
    .await;
    assert_ne!(outcome.ending, Ending::Exited(0), "{outcome:?}");
    assert!(
        outcome.stderr_tail.contains("File too large"),
        "{outcome:?}"
    );
    assert!(!outcome.stdout_tail.contains("written"));
    let size = std::fs::metadata(sandbox.dir.join("big")).unwrap().len();
    assert!(size <= 1 << 20, "{size}");

    // A program that does not ignore it is killed by SIGXFSZ.
    let head = bash(&sandbox, "exec head -c 20000000 /dev/zero > big2").await;
    assert_eq!(head.ending, Ending::Signalled(libc::SIGXFSZ), "{head:?}");
    assert_eq!(head.describe(), "killed at the file-size limit (SIGXFSZ)");
}
