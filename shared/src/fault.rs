//! Named fault points for the crash tests.
//!
//! With the `faults` feature, `point(name)` looks at `FANOUT_FAULT` (read once):
//! `NAME:kill` sends SIGKILL to the process at the point, `NAME:pause=SECONDS` holds the
//! calling task there that long (`point_blocking`: the calling thread, as CPU-bound work
//! would); `@N` after the name (`after_subtask_end@3:kill`) acts on the N-th time the
//! point is reached (default the first), and only then; `@all` on every time. Without the
//! feature every point compiles to nothing.
//!
//! Points (see RELIABILITY.md): `before_part_put`, `after_output_put`, `after_subtask_end`, `after_count`,
//! `before_advance_send`, `after_stage_claim`, `inside_stage_write`, `after_stage_written`,
//! `inside_enqueue`, `after_result_put`, `after_done`, `inside_reconcile`; the
//! orchestrator's `orch_after_claim`, `orch_after_learn_report`; blocking:
//! `inside_tile_kernel`.

/// Whether fault points are compiled in (the crash tests check it).
pub fn enabled() -> bool {
    cfg!(feature = "faults")
}

#[cfg(feature = "faults")]
mod enabled {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    /// What to do at the chosen point.
    #[derive(Debug, Clone, Copy)]
    enum Action {
        Kill,
        Pause(Duration),
    }

    struct Fault {
        point: String,
        nth: u32,
        action: Action,
        hits: AtomicU32,
    }

    fn parse(spec: &str) -> Option<Fault> {
        let (target, action) = spec.rsplit_once(':')?;
        let (point, nth) = match target.split_once('@') {
            Some((point, "all")) => (point, 0),
            Some((point, nth)) => (point, nth.parse().ok()?),
            None => (target, 1),
        };
        let action = match action.split_once('=') {
            None if action == "kill" => Action::Kill,
            Some(("pause", seconds)) => {
                Action::Pause(Duration::from_secs_f64(seconds.parse().ok()?))
            }
            _ => return None,
        };
        Some(Fault {
            point: point.to_string(),
            nth,
            action,
            hits: AtomicU32::new(0),
        })
    }

    fn fault() -> Option<&'static Fault> {
        static FAULT: OnceLock<Option<Fault>> = OnceLock::new();
        FAULT
            .get_or_init(|| {
                let spec = std::env::var("FANOUT_FAULT").ok()?;
                let fault = parse(&spec);
                if fault.is_none() {
                    tracing::error!(spec, "FANOUT_FAULT not understood; no fault armed");
                }
                fault
            })
            .as_ref()
    }

    /// The action to take at `name` now, if any.
    fn armed(name: &str) -> Option<Action> {
        let fault = fault()?;
        if fault.point != name {
            return None;
        }
        let hit = fault.hits.fetch_add(1, Ordering::SeqCst) + 1;
        (fault.nth == 0 || hit == fault.nth).then_some(fault.action)
    }

    fn kill(name: &str) -> ! {
        eprintln!("fault point {name}: SIGKILL");
        // SAFETY: signals this very process; nothing runs after it.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        std::process::abort();
    }

    pub fn point_blocking(name: &str) {
        match armed(name) {
            Some(Action::Kill) => kill(name),
            Some(Action::Pause(how_long)) => {
                eprintln!("fault point {name}: holding the thread {how_long:?}");
                std::thread::sleep(how_long)
            }
            None => {}
        }
    }

    pub async fn point(name: &str) {
        let Some(action) = armed(name) else { return };
        match action {
            Action::Kill => kill(name),
            Action::Pause(how_long) => {
                tracing::warn!(point = name, ?how_long, "fault point: pausing");
                tokio::time::sleep(how_long).await;
            }
        }
    }
}

/// A named fault point: nothing unless the `faults` feature is on and `FANOUT_FAULT`
/// names it.
#[cfg(feature = "faults")]
pub async fn point(name: &str) {
    enabled::point(name).await
}

/// A named fault point: compiled out (the `faults` feature is off).
#[cfg(not(feature = "faults"))]
#[inline(always)]
pub async fn point(_name: &str) {}

/// A fault point in blocking code: a pause holds the calling thread.
#[cfg(feature = "faults")]
pub fn point_blocking(name: &str) {
    enabled::point_blocking(name)
}

/// A fault point in blocking code: compiled out (the `faults` feature is off).
#[cfg(not(feature = "faults"))]
#[inline(always)]
pub fn point_blocking(_name: &str) {}
