//! The Rust half of bench/vectors.sh: runs one vector computation on data that
//! bench/vectors.py wrote (raw little-endian f32 or u8 files plus a `meta.json`), on one
//! thread, and prints one JSON line of timings; results go to files for the script to
//! compare with faiss, SciPy and scikit-learn.
//!
//! ```text
//! vectors_bench peak                      measured f32 FMA peak and sgemm tile rate
//! vectors_bench crossmatch DIR            top-k of DIR/refs.f32 against DIR/cands.f32
//! vectors_bench tiles DIR SHAPE...        top-k pairs/s per tile shape (e.g. 256x1024)
//! vectors_bench cluster DIR               components of DIR/cluster.f32 at a threshold
//! vectors_bench roc DIR                   ROC of DIR/roc_sims.f32 with DIR/roc_labels.u8
//! ```
//!
//! `VECTORS_BENCH_CLUSTER=f32` makes `cluster` run the kernel's f32 path
//! ([`for_each_edge_f32`]) instead of the default one, to time the int8 prefilter against it:
//! `VECTORS_BENCH_CLUSTER=f32 bash bench/vectors.sh --only cluster`.

use std::fs;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use fanout::vectors::block::Block;
use fanout::vectors::components::{DisjointSets, components};
use fanout::vectors::kernel::{
    TILE_CANDIDATES, TILE_REFS, for_each_edge, for_each_edge_f32, top_k, top_k_tiled,
};
use fanout::vectors::roc::{ScoredPair, roc};
use serde_json::{Value, json};
use uuid::Uuid;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map(String::as_str).unwrap_or("");
    let dir = args.get(1).map(PathBuf::from);
    let out = match (command, dir) {
        ("peak", _) => peak(),
        ("crossmatch", Some(dir)) => crossmatch(&dir),
        ("tiles", Some(dir)) => tiles(&dir, &args[2..]),
        ("cluster", Some(dir)) => cluster(&dir),
        ("roc", Some(dir)) => roc_run(&dir),
        _ => {
            eprintln!(
                "usage: vectors_bench peak | crossmatch DIR | tiles DIR SHAPE... | cluster DIR | roc DIR"
            );
            std::process::exit(2);
        }
    };
    println!("{out}");
}

fn meta(dir: &Path) -> Value {
    let text = fs::read_to_string(dir.join("meta.json")).expect("meta.json");
    serde_json::from_str(&text).expect("meta.json is JSON")
}

fn number(meta: &Value, key: &str) -> f64 {
    meta[key]
        .as_f64()
        .unwrap_or_else(|| panic!("meta.json needs {key}"))
}

/// A block of rows from a raw f32 file; ids are the row numbers, so Uuid order is row
/// order and ties break as in faiss.
fn load_block(path: &Path, dim: usize) -> Block {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rows = bytes.len() / 4 / dim;
    let mut block = Block::with_capacity(dim, rows);
    let mut row = vec![0f32; dim];
    for (i, chunk) in bytes.chunks_exact(4 * dim).enumerate() {
        for (v, b) in row.iter_mut().zip(chunk.chunks_exact(4)) {
            *v = f32::from_le_bytes(b.try_into().expect("4 bytes"));
        }
        block.push(Uuid::from_u128(i as u128), &row);
    }
    block
}

fn index_of(id: Uuid) -> u32 {
    id.as_u128() as u32
}

/// kB of a `/proc/self/status` field (VmRSS, VmHWM); 0 where there is no procfs.
fn status_kb(field: &str) -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0), so a later VmHWM is the peak of what
/// runs in between; false when the kernel refuses.
fn reset_peak() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn crossmatch(dir: &Path) -> Value {
    let meta = meta(dir);
    let dim = number(&meta, "dim") as usize;
    let k = number(&meta, "k") as usize;
    let refs = load_block(&dir.join("refs.f32"), dim);
    let cands = load_block(&dir.join("cands.f32"), dim);
    let rss_before = status_kb("VmRSS");
    let reset = reset_peak();
    let start = Instant::now();
    let results = top_k(&refs, &cands, k, 0.0, false);
    let seconds = start.elapsed().as_secs_f64();
    let hwm = status_kb("VmHWM");
    let mut ids = Vec::with_capacity(refs.len() * k * 4);
    let mut sims = Vec::with_capacity(refs.len() * k * 4);
    for list in &results {
        for rank in 0..k {
            let (id, sim) = list
                .get(rank)
                .map_or((-1i32, -1f32), |n| (index_of(n.id) as i32, n.similarity));
            ids.extend_from_slice(&id.to_le_bytes());
            sims.extend_from_slice(&sim.to_le_bytes());
        }
    }
    fs::write(dir.join("fanout_ids.i32"), ids).expect("write ids");
    fs::write(dir.join("fanout_sims.f32"), sims).expect("write sims");
    let pairs = (refs.len() * cands.len()) as f64;
    json!({
        "seconds": seconds,
        "pairs_per_s": pairs / seconds,
        "gflops": 2.0 * dim as f64 * pairs / seconds / 1e9,
        "tile": format!("{TILE_REFS}x{TILE_CANDIDATES}"),
        "rss_before_kb": rss_before,
        "hwm_kb": hwm,
        "hwm_reset": reset,
        "blocks_kb": (refs.values().len() + cands.values().len()) * 4 / 1024
            + (refs.len() + cands.len()) * 16 / 1024,
    })
}

fn tiles(dir: &Path, shapes: &[String]) -> Value {
    let meta = meta(dir);
    let dim = number(&meta, "dim") as usize;
    let k = number(&meta, "k") as usize;
    let refs = load_block(&dir.join("refs.f32"), dim);
    let refs = refs.slice(0..refs.len().min(4096));
    let cands = load_block(&dir.join("cands.f32"), dim);
    let mut out = serde_json::Map::new();
    for shape in shapes {
        let (r, c) = shape.split_once('x').expect("SHAPE is RxC");
        let (r, c) = (r.parse().expect("rows"), c.parse().expect("columns"));
        let start = Instant::now();
        black_box(top_k_tiled(&refs, &cands, k, 0.0, false, r, c));
        let seconds = start.elapsed().as_secs_f64();
        let pairs = (refs.len() * cands.len()) as f64;
        out.insert(shape.clone(), json!(pairs / seconds));
    }
    Value::Object(out)
}

fn cluster(dir: &Path) -> Value {
    let meta = meta(dir);
    let dim = number(&meta, "dim") as usize;
    let threshold = number(&meta, "threshold") as f32;
    let block = load_block(&dir.join("cluster.f32"), dim);
    let path = std::env::var("VECTORS_BENCH_CLUSTER").unwrap_or_default();
    let start = Instant::now();
    let mut sets = DisjointSets::new(block.len());
    let mut edges = 0u64;
    let edge = |i: u32, j: u32| {
        edges += 1;
        sets.union(i as usize, j as usize);
    };
    match path.as_str() {
        "f32" => for_each_edge_f32(&block, &block, threshold, true, edge),
        "" => for_each_edge(&block, &block, threshold, true, edge),
        other => panic!("VECTORS_BENCH_CLUSTER is f32 or unset, not {other:?}"),
    }
    let lists = components(&mut sets);
    let seconds = start.elapsed().as_secs_f64();
    let mut labels = vec![0u32; block.len()];
    for (c, list) in lists.iter().enumerate() {
        for &m in list {
            labels[m as usize] = c as u32;
        }
    }
    let bytes: Vec<u8> = labels.iter().flat_map(|l| l.to_le_bytes()).collect();
    fs::write(dir.join("fanout_labels.u32"), bytes).expect("write labels");
    let pairs = (block.len() * block.len().saturating_sub(1) / 2) as f64;
    json!({
        "seconds": seconds,
        "edges": edges,
        "components": lists.len(),
        "largest": lists.first().map_or(0, Vec::len),
        "pairs_per_s": pairs / seconds,
        "path": if path.is_empty() { "default" } else { "f32" },
    })
}

fn roc_run(dir: &Path) -> Value {
    let meta = meta(dir);
    let sims = fs::read(dir.join("roc_sims.f32")).expect("roc_sims.f32");
    let labels = fs::read(dir.join("roc_labels.u8")).expect("roc_labels.u8");
    let mut pairs: Vec<ScoredPair> = sims
        .chunks_exact(4)
        .zip(&labels)
        .map(|(b, &l)| ScoredPair {
            similarity: f32::from_le_bytes(b.try_into().expect("4 bytes")),
            positive: l == 1,
        })
        .collect();
    let keys: Vec<f64> = meta["key_fprs"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let start = Instant::now();
    let curve = roc(
        &mut pairs,
        number(&meta, "positives") as u64,
        number(&meta, "negatives") as u64,
        &keys,
    );
    let seconds = start.elapsed().as_secs_f64();
    json!({
        "seconds": seconds,
        "pairs": pairs.len(),
        "points": curve.points.len(),
        "auc": curve.auc,
        "eer": curve.eer,
        "key_points": curve.key_points,
    })
}

/// Measured single-core f32 peak: independent FMA chains on each SIMD width the CPU
/// has, so the bench can say what fraction of the machine the kernel uses; plus the rate
/// of bare sgemm on one default tile, the ceiling for the fused kernel.
fn peak() -> Value {
    let mut widths = serde_json::Map::new();
    for (name, flops_per_s) in fma::rates() {
        widths.insert(name.to_string(), json!(flops_per_s / 1e9));
    }
    let best = widths
        .values()
        .filter_map(Value::as_f64)
        .fold(0.0, f64::max);
    json!({
        "fma_gflops": widths,
        "peak_gflops": best,
        "sgemm_tile": format!("{TILE_REFS}x{TILE_CANDIDATES}x512"),
        "sgemm_tile_gflops": sgemm_tile_rate() / 1e9,
    })
}

/// Flop rate of `matrixmultiply::sgemm` on one default-shaped tile of 512-d rows, repeated.
fn sgemm_tile_rate() -> f64 {
    let (m, n, k) = (TILE_REFS, TILE_CANDIDATES, 512);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut fill = |len: usize| -> Vec<f32> {
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    };
    let (a, b) = (fill(m * k), fill(n * k));
    let mut c = vec![0f32; m * n];
    let reps = 10;
    let start = Instant::now();
    for _ in 0..reps {
        // SAFETY: a is m×k row-major, b is read as k×n through (1, k) strides over its
        // n·k values, c is m×n row-major and not aliased.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                a.as_ptr(),
                k as isize,
                1,
                b.as_ptr(),
                1,
                k as isize,
                0.0,
                c.as_mut_ptr(),
                n as isize,
                1,
            );
        }
        black_box(&mut c);
    }
    2.0 * (m * n * k * reps) as f64 / start.elapsed().as_secs_f64()
}

mod fma {
    //! Chains of `acc = acc * a + b`: enough of them to cover FMA latency × throughput
    //! on current cores, few enough to stay in registers (16 of 32 zmm / v registers,
    //! 12 of 16 ymm), so the loop runs at the FMA units' issue rate.

    use std::hint::black_box;
    use std::time::Instant;

    const STEPS: u64 = 50_000_000;

    /// (SIMD width name, f32 flops per second) for each width this CPU runs; plain
    /// scalar multiply-add only where there is no SIMD to measure.
    pub fn rates() -> Vec<(&'static str, f64)> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                out.push((
                    "avx512",
                    time(16 * 16, STEPS, |n| unsafe { x86::avx512(n) }),
                ));
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                out.push(("avx2_fma", time(12 * 8, STEPS, |n| unsafe { x86::avx2(n) })));
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            out.push(("neon", time(16 * 4, STEPS, arm::neon)));
        }
        if out.is_empty() {
            out.push(("scalar", time(8, STEPS / 4, scalar)));
        }
        out
    }

    /// Flops per second of `run(steps)`, which does `steps` steps of `lanes` FMAs.
    fn time(lanes: u64, steps: u64, run: impl Fn(u64) -> f32) -> f64 {
        black_box(run(steps / 10)); // warm up clocks and caches
        let start = Instant::now();
        black_box(run(steps));
        2.0 * (lanes * steps) as f64 / start.elapsed().as_secs_f64()
    }

    fn scalar(steps: u64) -> f32 {
        let (a, b) = (black_box(0.999_999f32), black_box(1e-7f32));
        let mut acc = [0f32; 8];
        for _ in 0..steps {
            for x in &mut acc {
                // Not mul_add: without an FMA target feature that is a libm call.
                *x = *x * a + b;
            }
        }
        acc.iter().sum()
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use std::arch::x86_64::*;
        use std::hint::black_box;

        #[target_feature(enable = "avx512f")]
        pub fn avx512(steps: u64) -> f32 {
            let a = _mm512_set1_ps(black_box(0.999_999));
            let b = _mm512_set1_ps(black_box(1e-7));
            let mut acc = [_mm512_setzero_ps(); 16];
            for _ in 0..steps {
                for x in &mut acc {
                    *x = _mm512_fmadd_ps(*x, a, b);
                }
            }
            let sum = acc
                .iter()
                .fold(_mm512_setzero_ps(), |s, &x| _mm512_add_ps(s, x));
            _mm512_reduce_add_ps(sum)
        }

        #[target_feature(enable = "avx2,fma")]
        pub fn avx2(steps: u64) -> f32 {
            let a = _mm256_set1_ps(black_box(0.999_999));
            let b = _mm256_set1_ps(black_box(1e-7));
            let mut acc = [_mm256_setzero_ps(); 12];
            for _ in 0..steps {
                for x in &mut acc {
                    *x = _mm256_fmadd_ps(*x, a, b);
                }
            }
            let sum = acc
                .iter()
                .fold(_mm256_setzero_ps(), |s, &x| _mm256_add_ps(s, x));
            let mut lanes = [0f32; 8];
            // SAFETY: `lanes` has room for the 8 floats stored.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
            lanes.iter().sum()
        }
    }

    #[cfg(target_arch = "aarch64")]
    mod arm {
        use std::arch::aarch64::*;
        use std::hint::black_box;

        // NEON is part of the aarch64 baseline, so no target_feature and no unsafe call.
        pub fn neon(steps: u64) -> f32 {
            let a = vdupq_n_f32(black_box(0.999_999));
            let b = vdupq_n_f32(black_box(1e-7));
            let mut acc = [vdupq_n_f32(0.0); 16];
            for _ in 0..steps {
                for x in &mut acc {
                    *x = vfmaq_f32(b, *x, a);
                }
            }
            let sum = acc.iter().fold(vdupq_n_f32(0.0), |s, &x| vaddq_f32(s, x));
            vaddvq_f32(sum)
        }
    }
}
