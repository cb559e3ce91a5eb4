//! The similarity kernel. Blocks hold unit vectors, so a tile of cosine similarities is
//! one matrix product `R · Cᵀ`; `matrixmultiply`'s sgemm computes it (runtime CPU-feature
//! dispatch to its AVX-512, AVX2+FMA, AVX, NEON or portable kernels, so one binary runs
//! on any x86_64 or aarch64; it beat the `gemm` crate by 5-50% on every tile shape tried
//! here). Each product covers a tile of at most [`TILE_REFS`] references ×
//! [`TILE_CANDIDATES`] candidates written into one reusable scratch buffer that is
//! scanned at once, while it is still in cache, into bounded per-reference heaps (top-k)
//! or into edges (threshold): memory stays at one tile plus the results however large the
//! blocks are, and the full matrix never exists.
//!
//! Most values lose at once: a reference keeps a floor (the threshold, raised to its
//! worst kept similarity once its heap is full), and the scan tests 16 values
//! against it with one branch-free compare before looking at any of them, so scanning
//! costs 1-2% of the product. Everything runs on the calling thread: workers already
//! run many subtasks in parallel, and nested threads would only fight them for cores.
//!
//! Threshold passes ([`for_each_edge`]) need far less than the product: only the pairs
//! near the threshold need their f32 similarity, and an int8 prefilter with a rigorous
//! error bound finds them at four times the f32 rate where the CPU has AVX-512 VNNI
//! (`int8.rs`), leaving the edges exactly as the f32 path finds them.
//!
//! Similarities are clamped to [0, 1] after the product (negative cosine counts as
//! unrelated, and rounding can push a self-similarity a hair above 1). They may differ
//! from an exact dot product in the last bits, depending on how the product sums.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::block::Block;

/// References per tile. Taller tiles amortise packing the candidates over more rows:
/// measured on 512-d data (bench/vectors.sh --tile-sweep), 1024 × 1024 ran 11-15% faster
/// than 256 × 1024 and within noise of 2048 × 1024.
pub const TILE_REFS: usize = 1024;
/// Candidates per tile; with [`TILE_REFS`] this makes a 4 MiB scratch buffer.
pub const TILE_CANDIDATES: usize = 1024;

/// One candidate of a reference, as results show it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Neighbour {
    /// The candidate object's id.
    pub id: Uuid,
    /// Its cosine similarity to the reference, in [0, 1].
    pub similarity: f32,
}

/// The result order: higher similarity first, then lower id, so equal inputs always give
/// equal output whatever the tiling or the split into blocks.
fn result_order(a: &Neighbour, b: &Neighbour) -> Ordering {
    b.similarity
        .total_cmp(&a.similarity)
        .then_with(|| a.id.cmp(&b.id))
}

/// Clamps a raw dot product to a similarity. Written so that -0.0 becomes +0.0: the
/// result order compares with `total_cmp`, which would not call them equal.
#[inline]
fn clamp_similarity(dot: f32) -> f32 {
    if dot > 0.0 { dot.min(1.0) } else { 0.0 }
}

/// The smallest raw value that can pass a cut-off after clamping: every value passes a
/// cut-off at or below zero, because clamping lifts negatives to 0.
#[inline]
fn raw_floor(cutoff: f32) -> f32 {
    if cutoff > 0.0 {
        cutoff
    } else {
        f32::NEG_INFINITY
    }
}

/// Cosine similarity of two raw descriptors clamped to [0, 1]; 0 when either is a zero
/// vector.
pub fn similarity(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "descriptors of different lengths");
    let (mut dot, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        return 0.0;
    }
    clamp_similarity((dot / (aa.sqrt() * bb.sqrt())) as f32)
}

/// Values a scan tests at once before looking at any one: a branch-free OR of compares
/// that compiles to a few SIMD instructions, so the common case (nothing in the chunk can
/// enter) costs far less than a branch per value. Measured: a branch per value took ~5% off
/// the tile rate, the chunked scan 1-2%.
const SCAN_CHUNK: usize = 16;

/// Whether any value in `chunk` is at or above `floor`.
#[inline]
fn any_at_least(chunk: &[f32], floor: f32) -> bool {
    chunk.iter().fold(false, |any, &v| any | (v >= floor))
}

/// Dot products of row ranges of two blocks, into one scratch buffer reused per tile.
struct Tiler<'a> {
    a: &'a Block,
    b: &'a Block,
    scratch: Vec<f32>,
}

impl<'a> Tiler<'a> {
    fn new(a: &'a Block, b: &'a Block, tile_a: usize, tile_b: usize) -> Tiler<'a> {
        assert_eq!(a.dim(), b.dim(), "blocks of different dims");
        let cap = tile_a.min(a.len()) * tile_b.min(b.len());
        Tiler {
            a,
            b,
            scratch: vec![0.0; cap],
        }
    }

    /// Fills the scratch with the dot products of rows `a0..a1` of `a` with rows `b0..b1`
    /// of `b` (row-major, `b1 - b0` per row) and returns it.
    fn tile(&mut self, a0: usize, a1: usize, b0: usize, b1: usize) -> &[f32] {
        let k = self.a.dim();
        let out = &mut self.scratch[..(a1 - a0) * (b1 - b0)];
        product(
            &self.a.values()[a0 * k..a1 * k],
            &self.b.values()[b0 * k..b1 * k],
            k,
            out,
        );
        out
    }
}

/// `out = lhs · rhsᵀ` for `lhs` m×k and `rhs` n×k, both row-major, into `out` m×n
/// row-major: the one product every similarity comes from. sgemm sums each output over
/// the same k in the same order wherever it sits in the product, so a pair gets the same
/// bits in any tile shape or gathered product (`gathered_products_equal_tile_products`).
fn product(lhs: &[f32], rhs: &[f32], k: usize, out: &mut [f32]) {
    if k == 0 {
        out.fill(0.0);
        return;
    }
    let (m, n) = (lhs.len() / k, rhs.len() / k);
    assert!(
        lhs.len() == m * k && rhs.len() == n * k,
        "ragged product input"
    );
    assert_eq!(out.len(), m * n, "product output of the wrong size");
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: `lhs` is m×k row-major (row stride k, column stride 1); `rhs` is read
    // as its transpose, k×n (row stride 1, column stride k), so every address touched
    // is inside the n·k values it holds; `out` is m×n row-major, exclusively
    // borrowed, and does not overlap either input. beta = 0 means its old contents
    // are never read.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            lhs.as_ptr(),
            k as isize,
            1,
            rhs.as_ptr(),
            1,
            k as isize,
            0.0,
            out.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// A kept candidate inside a bounded heap. Ordered so that the heap's top (its maximum)
/// is the worst kept candidate, the first one to drop out.
#[derive(Clone, Copy)]
struct Kept(Neighbour);

impl PartialEq for Kept {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Kept {}

impl PartialOrd for Kept {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Kept {
    fn cmp(&self, other: &Self) -> Ordering {
        result_order(&self.0, &other.0)
    }
}

/// The best `limit` candidates of one reference seen so far.
struct Best {
    heap: BinaryHeap<Kept>,
    /// No value below this raw dot product can enter: the threshold, raised to the worst
    /// kept similarity once the heap is full.
    floor: f32,
}

impl Best {
    fn offer(&mut self, candidate: Neighbour, limit: usize, threshold: f32) {
        if self.heap.len() < limit {
            self.heap.push(Kept(candidate));
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if result_order(&candidate, &worst.0) == Ordering::Less {
                *worst = Kept(candidate);
            } else {
                return;
            }
        }
        if self.heap.len() == limit
            && let Some(worst) = self.heap.peek()
        {
            self.floor = raw_floor(worst.0.similarity.max(threshold));
        }
    }
}

/// For every row of `references`, the at most `limit` rows of `candidates` whose
/// similarity is >= `threshold`, best first, equal similarities ordered by candidate id
/// ascending (Uuid's Ord). When `skip_same_id`, a candidate with the same id as the
/// reference is left out (all-vs-all). Never stores the full references×candidates
/// matrix: work in tiles, keep a bounded heap per reference.
pub fn top_k(
    references: &Block,
    candidates: &Block,
    limit: usize,
    threshold: f32,
    skip_same_id: bool,
) -> Vec<Vec<Neighbour>> {
    top_k_tiled(
        references,
        candidates,
        limit,
        threshold,
        skip_same_id,
        TILE_REFS,
        TILE_CANDIDATES,
    )
}

/// [`top_k`] with the tile shape as a parameter, so tests can cross tile edges on small
/// data and the bench can compare shapes.
pub fn top_k_tiled(
    references: &Block,
    candidates: &Block,
    limit: usize,
    threshold: f32,
    skip_same_id: bool,
    tile_refs: usize,
    tile_candidates: usize,
) -> Vec<Vec<Neighbour>> {
    assert!(tile_refs > 0 && tile_candidates > 0, "empty tile");
    let mut results = Vec::with_capacity(references.len());
    if limit == 0 || candidates.is_empty() {
        results.resize(references.len(), Vec::new());
        return results;
    }
    let kept_max = limit.min(candidates.len());
    let mut tiler = Tiler::new(references, candidates, tile_refs, tile_candidates);
    let ref_ids = references.ids();
    let cand_ids = candidates.ids();
    let mut best: Vec<Best> = (0..tile_refs.min(references.len()))
        .map(|_| Best {
            // Grown on demand: a large limit must not cost limit × TILE_REFS up front.
            heap: BinaryHeap::new(),
            floor: 0.0,
        })
        .collect();
    for r0 in (0..references.len()).step_by(tile_refs) {
        let r1 = (r0 + tile_refs).min(references.len());
        for b in &mut best {
            b.heap.clear();
            b.floor = raw_floor(threshold);
        }
        for c0 in (0..candidates.len()).step_by(tile_candidates) {
            let c1 = (c0 + tile_candidates).min(candidates.len());
            let tile = tiler.tile(r0, r1, c0, c1);
            for (i, row) in tile.chunks_exact(c1 - c0).enumerate() {
                let reference = &mut best[i];
                let ref_id = ref_ids[r0 + i];
                for (chunk_index, chunk) in row.chunks(SCAN_CHUNK).enumerate() {
                    if !any_at_least(chunk, reference.floor) {
                        continue;
                    }
                    let base = c0 + chunk_index * SCAN_CHUNK;
                    for (j, &dot) in chunk.iter().enumerate() {
                        // Re-read: an offer earlier in the chunk may have raised it.
                        if dot < reference.floor {
                            continue;
                        }
                        let similarity = clamp_similarity(dot);
                        let id = cand_ids[base + j];
                        if similarity < threshold || (skip_same_id && id == ref_id) {
                            continue;
                        }
                        reference.offer(Neighbour { id, similarity }, kept_max, threshold);
                    }
                }
            }
        }
        for b in &mut best[..r1 - r0] {
            let mut kept: Vec<Neighbour> = b.heap.drain().map(|k| k.0).collect();
            kept.sort_unstable_by(result_order);
            results.push(kept);
        }
    }
    results
}

/// Merges a further list (sorted as top_k returns them) into `best`, keeping the order
/// and at most `limit` entries: how per-candidate-block results combine across blocks.
/// The lists are expected to come from disjoint candidate blocks; an id in both is kept
/// twice.
pub fn merge_top_k(best: &mut Vec<Neighbour>, more: &[Neighbour], limit: usize) {
    if more.is_empty() {
        best.truncate(limit);
        return;
    }
    let mut merged = Vec::with_capacity(limit.min(best.len() + more.len()));
    let (mut a, mut b) = (best.iter().peekable(), more.iter().peekable());
    while merged.len() < limit {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => {
                if result_order(x, y) == Ordering::Greater {
                    b.next()
                } else {
                    a.next()
                }
            }
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => break,
        };
        merged.extend(next.copied());
    }
    *best = merged;
}

/// Every pair (i, j) (row i of `a`, row j of `b`) with similarity >= threshold. When
/// `same` (a block against itself) only i < j. For clustering: the edges of the
/// similarity graph, from one tile. Returned sorted by (i, j).
pub fn edges(a: &Block, b: &Block, threshold: f32, same: bool) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for_each_edge(a, b, threshold, same, |i, j| out.push((i, j)));
    out.sort_unstable();
    out
}

/// [`edges`] without collecting them: each edge goes to `edge` as it is found (in tile
/// order, not sorted), so clustering can union straight into its sets and never hold
/// the edge list of a dense graph.
///
/// Where the CPU has AVX-512 VNNI, an int8 prefilter (`int8.rs`) first sorts each tile's
/// pairs into provably no edge, surely an edge and unsure, and only the unsure go through
/// the f32 product, gathered: the edges and their order are exactly those of
/// [`for_each_edge_f32`], in about a quarter of the time (50,000 × 512 at threshold 0.5:
/// 3.2 s instead of 13.9 s on one Zen 4 core).
pub fn for_each_edge(a: &Block, b: &Block, threshold: f32, same: bool, edge: impl FnMut(u32, u32)) {
    for_each_edge_tiled(a, b, threshold, same, TILE_REFS, TILE_CANDIDATES, edge);
}

/// [`for_each_edge`] with the tile shape as a parameter, for tests and the bench.
pub fn for_each_edge_tiled(
    a: &Block,
    b: &Block,
    threshold: f32,
    same: bool,
    tile_a: usize,
    tile_b: usize,
    mut edge: impl FnMut(u32, u32),
) {
    check_edge_args(a, b, same, tile_a, tile_b);
    #[cfg(target_arch = "x86_64")]
    if let Some(prefilter) = super::int8::Prefilter::new(a, b, threshold, same, tile_a, tile_b) {
        prefiltered_edges(prefilter, a, b, threshold, same, tile_a, tile_b, &mut edge);
        return;
    }
    f32_edges(a, b, threshold, same, tile_a, tile_b, &mut edge);
}

/// [`for_each_edge`] without the int8 prefilter: every pair through the f32 product. The
/// same edges in the same order, only slower where the prefilter runs; for benchmarks
/// and tests to compare against.
pub fn for_each_edge_f32(
    a: &Block,
    b: &Block,
    threshold: f32,
    same: bool,
    mut edge: impl FnMut(u32, u32),
) {
    check_edge_args(a, b, same, TILE_REFS, TILE_CANDIDATES);
    f32_edges(a, b, threshold, same, TILE_REFS, TILE_CANDIDATES, &mut edge);
}

/// What every threshold pass requires of its arguments.
fn check_edge_args(a: &Block, b: &Block, same: bool, tile_a: usize, tile_b: usize) {
    assert!(tile_a > 0 && tile_b > 0, "empty tile");
    assert_eq!(a.dim(), b.dim(), "blocks of different dims");
    assert!(
        u32::try_from(a.len().max(b.len())).is_ok(),
        "edges number rows with u32"
    );
    if same {
        assert_eq!(a.len(), b.len(), "`same` needs a block against itself");
    }
}

/// The tiles of a threshold pass, rows × columns, in the order both paths visit them (so
/// they emit edges in one order). Against itself, tiles wholly on or below the diagonal
/// hold no pair i < j and are left out.
fn edge_tiles(
    a: &Block,
    b: &Block,
    same: bool,
    tile_a: usize,
    tile_b: usize,
) -> impl Iterator<Item = (Range<usize>, Range<usize>)> {
    let (a_len, b_len) = (a.len(), b.len());
    (0..a_len).step_by(tile_a).flat_map(move |r0| {
        let rows = r0..(r0 + tile_a).min(a_len);
        let first = if same { (r0 + 1) / tile_b * tile_b } else { 0 };
        (first..b_len)
            .step_by(tile_b)
            .map(move |c0| (rows.clone(), c0..(c0 + tile_b).min(b_len)))
    })
}

/// Whether a raw dot product makes an edge: `floor` is `raw_floor(threshold)`.
#[inline]
fn is_edge(dot: f32, floor: f32, threshold: f32) -> bool {
    dot >= floor && clamp_similarity(dot) >= threshold
}

/// Every tile through one f32 product, scanned 16 values at a time.
fn f32_edges(
    a: &Block,
    b: &Block,
    threshold: f32,
    same: bool,
    tile_a: usize,
    tile_b: usize,
    edge: &mut impl FnMut(u32, u32),
) {
    let floor = raw_floor(threshold);
    let mut tiler = Tiler::new(a, b, tile_a, tile_b);
    for (rows, cols) in edge_tiles(a, b, same, tile_a, tile_b) {
        let tile = tiler.tile(rows.start, rows.end, cols.start, cols.end);
        scan_tile(tile, rows, cols, same, floor, threshold, edge);
    }
}

/// The edges of one tile of dot products (rows × cols, row-major), in row-major order.
fn scan_tile(
    tile: &[f32],
    rows: Range<usize>,
    cols: Range<usize>,
    same: bool,
    floor: f32,
    threshold: f32,
    edge: &mut impl FnMut(u32, u32),
) {
    let (r0, c0) = (rows.start, cols.start);
    for (i, row) in tile.chunks_exact(cols.len()).enumerate() {
        let gi = r0 + i;
        let skip = if same {
            (gi + 1).saturating_sub(c0).min(row.len())
        } else {
            0
        };
        let first_j = c0 + skip;
        for (chunk_index, chunk) in row[skip..].chunks(SCAN_CHUNK).enumerate() {
            if !any_at_least(chunk, floor) {
                continue;
            }
            let base = first_j + chunk_index * SCAN_CHUNK;
            for (j, &dot) in chunk.iter().enumerate() {
                if is_edge(dot, floor, threshold) {
                    edge(gi as u32, (base + j) as u32);
                }
            }
        }
    }
}

/// Each tile through the int8 prefilter; its sure pairs are edges, its unsure pairs go
/// through the f32 product, gathered. Both lists are row-major, as the f32 path scans, so
/// merged they give the edges in the same order. Where the unsure pairs span so many
/// rows and columns that gathering them would cost over half the tile's product (a
/// threshold among the bulk of the similarities), the tile goes through the f32 path
/// instead, which bounds the loss there to the int8 pass, about a quarter of the product.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
fn prefiltered_edges(
    prefilter: super::int8::Prefilter,
    a: &Block,
    b: &Block,
    threshold: f32,
    same: bool,
    tile_a: usize,
    tile_b: usize,
    edge: &mut impl FnMut(u32, u32),
) {
    let floor = raw_floor(threshold);
    let mut found = super::int8::Candidates::default();
    let mut exact = Gathered::default();
    let mut tiler = Tiler::new(a, b, tile_a, tile_b);
    for (rows, cols) in edge_tiles(a, b, same, tile_a, tile_b) {
        prefilter.candidates(rows.clone(), cols.clone(), &mut found);
        exact.select(&found.unsure, cols.clone());
        if 2 * exact.products() > rows.len() * cols.len() {
            let tile = tiler.tile(rows.start, rows.end, cols.start, cols.end);
            scan_tile(tile, rows, cols, same, floor, threshold, edge);
            continue;
        }
        exact.compute(a, b);
        let mut sure = found.sure.iter().copied().peekable();
        for &(i, j) in &found.unsure {
            while let Some((si, sj)) = sure.next_if(|&pair| pair < (i, j)) {
                edge(si, sj);
            }
            if is_edge(exact.dot(i, j), floor, threshold) {
                edge(i, j);
            }
        }
        sure.for_each(|(i, j)| edge(i, j));
    }
}

/// Dot products of scattered pairs: the rows and columns they name copied together, then
/// one [`product`] of every such row against every such column, which gives each pair
/// the bits its tile would.
#[cfg(target_arch = "x86_64")]
#[derive(Default)]
struct Gathered {
    rows: Vec<u32>,
    cols: Vec<u32>,
    /// Which columns of the tile are in `cols`.
    col_used: Vec<bool>,
    lhs: Vec<f32>,
    rhs: Vec<f32>,
    out: Vec<f32>,
}

#[cfg(target_arch = "x86_64")]
impl Gathered {
    /// Picks the rows and columns of `pairs` (row-major, columns within `cols`).
    fn select(&mut self, pairs: &[(u32, u32)], cols: Range<usize>) {
        self.rows.clear();
        self.rows.extend(pairs.iter().map(|&(i, _)| i));
        self.rows.dedup();
        self.col_used.clear();
        self.col_used.resize(cols.len(), false);
        for &(_, j) in pairs {
            self.col_used[j as usize - cols.start] = true;
        }
        self.cols.clear();
        let used = self.col_used.iter().enumerate().filter(|&(_, &used)| used);
        self.cols.extend(used.map(|(k, _)| (cols.start + k) as u32));
    }

    /// How many dot products [`Gathered::compute`] would take.
    fn products(&self) -> usize {
        self.rows.len() * self.cols.len()
    }

    /// The products of the selected rows of `a` with the selected columns of `b`.
    fn compute(&mut self, a: &Block, b: &Block) {
        gather(a, &self.rows, &mut self.lhs);
        gather(b, &self.cols, &mut self.rhs);
        self.out.clear();
        self.out.resize(self.products(), 0.0);
        product(&self.lhs, &self.rhs, a.dim(), &mut self.out);
    }

    /// The product of row `i` and column `j`, both among those computed.
    fn dot(&self, i: u32, j: u32) -> f32 {
        let at = |list: &[u32], x: u32| list.binary_search(&x).expect("a computed pair");
        self.out[at(&self.rows, i) * self.cols.len() + at(&self.cols, j)]
    }
}

/// Copies the rows `which` of `block` into `into`, one after another.
#[cfg(target_arch = "x86_64")]
fn gather(block: &Block, which: &[u32], into: &mut Vec<f32>) {
    into.clear();
    for &i in which {
        into.extend_from_slice(block.row(i as usize));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TOLERANCE: f64 = 1e-5;

    /// The promised order, written out again so the tests do not trust `result_order`.
    fn promised(a: &Neighbour, b: &Neighbour) -> Ordering {
        if a.similarity != b.similarity {
            return if a.similarity > b.similarity {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        a.id.as_u128().cmp(&b.id.as_u128())
    }

    /// How a test row is made: mixing these gives duplicates, zero vectors and ties.
    #[derive(Debug, Clone)]
    enum RowKind {
        Random(Vec<i8>),
        Zero,
        CopyOf(usize, f32),
    }

    fn kinds(dim: usize, rows: std::ops::Range<usize>) -> impl Strategy<Value = Vec<RowKind>> {
        let kind = prop_oneof![
            6 => prop::collection::vec(-3i8..=3, dim).prop_map(RowKind::Random),
            1 => Just(RowKind::Zero),
            2 => (any::<usize>(), prop::sample::select(vec![1.0f32, 2.0, 0.5, 8.0]))
                .prop_map(|(i, s)| RowKind::CopyOf(i, s)),
        ];
        prop::collection::vec(kind, rows)
    }

    /// Rows from kinds; `exact` uses components ±1/4 in 16 dims (so unit length and all
    /// dot products are multiples of 1/16, exact in f32 whatever the summation order).
    fn descriptors(kinds: &[RowKind], dim: usize, exact: bool) -> Vec<Vec<f32>> {
        let mut rows: Vec<Vec<f32>> = Vec::new();
        for kind in kinds {
            let row = match kind {
                RowKind::Random(values) if exact => values
                    .iter()
                    .map(|&v| if v >= 0 { 0.25 } else { -0.25 })
                    .collect(),
                RowKind::Random(values) => values.iter().map(|&v| f32::from(v) * 0.37).collect(),
                RowKind::Zero => vec![0.0; dim],
                RowKind::CopyOf(i, scale) if !rows.is_empty() => {
                    rows[i % rows.len()].iter().map(|v| v * scale).collect()
                }
                RowKind::CopyOf(..) => vec![0.0; dim],
            };
            rows.push(row);
        }
        rows
    }

    fn block(rows: &[Vec<f32>], ids: &[u128], dim: usize) -> Block {
        let mut block = Block::new(dim);
        for (row, id) in rows.iter().zip(ids) {
            block.push(Uuid::from_u128(*id), row);
        }
        block
    }

    /// Exact similarity of two block rows, computed in f64.
    fn naive(a: &Block, i: usize, b: &Block, j: usize) -> f64 {
        let dot: f64 = a
            .row(i)
            .iter()
            .zip(b.row(j))
            .map(|(&x, &y)| f64::from(x) * f64::from(y))
            .sum();
        dot.clamp(0.0, 1.0)
    }

    fn naive_top_k(
        refs: &Block,
        cands: &Block,
        limit: usize,
        threshold: f32,
        skip: bool,
    ) -> Vec<Vec<Neighbour>> {
        (0..refs.len())
            .map(|i| {
                let mut all: Vec<Neighbour> = (0..cands.len())
                    .filter(|&j| !(skip && cands.ids()[j] == refs.ids()[i]))
                    .map(|j| Neighbour {
                        id: cands.ids()[j],
                        similarity: naive(refs, i, cands, j) as f32,
                    })
                    .filter(|n| n.similarity >= threshold)
                    .collect();
                all.sort_by(promised);
                all.truncate(limit);
                all
            })
            .collect()
    }

    /// Checks one reference's list against exact similarities, allowing rounding: what is
    /// kept is right to within TOLERANCE, sorted by its own values, and nothing left out
    /// beats what is kept by more than TOLERANCE. Candidate ids must be unique.
    fn check_list(
        got: &[Neighbour],
        refs: &Block,
        i: usize,
        cands: &Block,
        limit: usize,
        threshold: f32,
        skip: bool,
    ) -> Result<(), TestCaseError> {
        let index = |id: &Uuid| cands.ids().iter().position(|c| c == id).unwrap();
        prop_assert!(got.len() <= limit);
        for pair in got.windows(2) {
            prop_assert_eq!(promised(&pair[0], &pair[1]), Ordering::Less, "{:?}", got);
        }
        for n in got {
            prop_assert!(n.similarity >= threshold && (0.0..=1.0).contains(&n.similarity));
            prop_assert!(!(skip && n.id == refs.ids()[i]));
            prop_assert!(
                (f64::from(n.similarity) - naive(refs, i, cands, index(&n.id))).abs() <= TOLERANCE
            );
        }
        let floor = if got.len() == limit {
            f64::from(got.last().map_or(1.0, |n| n.similarity))
        } else {
            f64::from(threshold)
        };
        for j in 0..cands.len() {
            let id = cands.ids()[j];
            if (skip && id == refs.ids()[i]) || got.iter().any(|n| n.id == id) {
                continue;
            }
            prop_assert!(
                naive(refs, i, cands, j) <= floor + TOLERANCE,
                "candidate {} left out of {:?}",
                j,
                got
            );
        }
        Ok(())
    }

    fn case() -> impl Strategy<Value = (usize, Vec<RowKind>, Vec<RowKind>)> {
        (1usize..24).prop_flat_map(|dim| (Just(dim), kinds(dim, 0..14), kinds(dim, 0..30)))
    }

    fn exact_case() -> impl Strategy<Value = (Vec<RowKind>, Vec<RowKind>)> {
        (kinds(16, 0..14), kinds(16, 0..30))
    }

    /// Ids: references draw from a range that overlaps the candidates' (so skip_same_id
    /// matters); candidates' are unique, in shuffled order so id order is not row order.
    fn ids(refs: usize, cands: usize, seed: u64) -> (Vec<u128>, Vec<u128>) {
        let mut order: Vec<u128> = (0..cands as u128).collect();
        let mut s = seed | 1;
        for k in (1..order.len()).rev() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            order.swap(k, (s % (k as u64 + 1)) as usize);
        }
        let refs = (0..refs)
            .map(|k| ((k as u64 * 7 + seed) % (cands as u64 + 3)) as u128)
            .collect();
        (refs, order)
    }

    fn tiles() -> impl Strategy<Value = (usize, usize)> {
        prop_oneof![Just((TILE_REFS, TILE_CANDIDATES)), (1usize..6, 1usize..9)]
    }

    proptest! {
        #[test]
        fn top_k_matches_brute_force_within_rounding(
            (dim, rk, ck) in case(),
            limit in 0usize..8,
            threshold in prop::sample::select(vec![0.0f32, -0.5, 0.3, 0.6, 0.95, 1.0]),
            skip in any::<bool>(),
            (tr, tc) in tiles(),
            seed in any::<u64>(),
        ) {
            let (ref_ids, cand_ids) = ids(rk.len(), ck.len(), seed);
            let refs = block(&descriptors(&rk, dim, false), &ref_ids, dim);
            let cands = block(&descriptors(&ck, dim, false), &cand_ids, dim);
            let got = top_k_tiled(&refs, &cands, limit, threshold, skip, tr, tc);
            prop_assert_eq!(got.len(), refs.len());
            for (i, list) in got.iter().enumerate() {
                check_list(list, &refs, i, &cands, limit, threshold, skip)?;
            }
        }

        #[test]
        fn top_k_equals_brute_force_on_exact_data(
            (rk, ck) in exact_case(),
            limit in 0usize..8,
            threshold in prop::sample::select(vec![0.0f32, 0.125, 0.5, 0.75, 1.0]),
            skip in any::<bool>(),
            (tr, tc) in tiles(),
            seed in any::<u64>(),
        ) {
            let (ref_ids, cand_ids) = ids(rk.len(), ck.len(), seed);
            let refs = block(&descriptors(&rk, 16, true), &ref_ids, 16);
            let cands = block(&descriptors(&ck, 16, true), &cand_ids, 16);
            prop_assert_eq!(
                top_k_tiled(&refs, &cands, limit, threshold, skip, tr, tc),
                naive_top_k(&refs, &cands, limit, threshold, skip)
            );
        }

        #[test]
        fn merged_blocks_equal_one_block(
            (rk, ck) in exact_case(),
            limit in 0usize..8,
            threshold in prop::sample::select(vec![0.0f32, 0.25, 0.5]),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
            seed in any::<u64>(),
        ) {
            let (ref_ids, cand_ids) = ids(rk.len(), ck.len(), seed);
            let refs = block(&descriptors(&rk, 16, true), &ref_ids, 16);
            let cands = block(&descriptors(&ck, 16, true), &cand_ids, 16);
            let mut bounds: Vec<usize> = cuts.iter().map(|c| c.index(cands.len() + 1)).collect();
            bounds.extend([0, cands.len()]);
            bounds.sort_unstable();
            let mut merged = vec![Vec::new(); refs.len()];
            for w in bounds.windows(2) {
                let part = top_k(&refs, &cands.slice(w[0]..w[1]), limit, threshold, true);
                for (best, more) in merged.iter_mut().zip(&part) {
                    merge_top_k(best, more, limit);
                }
            }
            prop_assert_eq!(merged, top_k(&refs, &cands, limit, threshold, true));
        }

        #[test]
        fn merged_random_blocks_stay_within_rounding(
            (dim, rk, ck) in case(),
            limit in 1usize..6,
            cut in any::<prop::sample::Index>(),
            seed in any::<u64>(),
        ) {
            let (ref_ids, cand_ids) = ids(rk.len(), ck.len(), seed);
            let refs = block(&descriptors(&rk, dim, false), &ref_ids, dim);
            let cands = block(&descriptors(&ck, dim, false), &cand_ids, dim);
            let cut = cut.index(cands.len() + 1);
            let mut merged = top_k(&refs, &cands.slice(0..cut), limit, 0.2, false);
            let rest = top_k(&refs, &cands.slice(cut..cands.len()), limit, 0.2, false);
            for (i, (best, more)) in merged.iter_mut().zip(&rest).enumerate() {
                merge_top_k(best, more, limit);
                check_list(best, &refs, i, &cands, limit, 0.2, false)?;
            }
        }

        #[test]
        fn edges_match_brute_force(
            (dim, rk, ck) in case(),
            threshold in prop::sample::select(vec![0.0f32, 0.3, 0.6, 0.99, 1.0]),
            same in any::<bool>(),
            (tr, tc) in tiles(),
        ) {
            let a = block(&descriptors(&rk, dim, false), &vec![0; rk.len()], dim);
            let b = if same { a.clone() } else { block(&descriptors(&ck, dim, false), &vec![0; ck.len()], dim) };
            let mut got = Vec::new();
            for_each_edge_tiled(&a, &b, threshold, same, tr, tc, |i, j| got.push((i, j)));
            got.sort_unstable();
            prop_assert!(got.windows(2).all(|w| w[0] != w[1]), "duplicate edge");
            let t = f64::from(threshold);
            for i in 0..a.len() {
                for j in if same { i + 1 } else { 0 }..b.len() {
                    let s = naive(&a, i, &b, j);
                    let found = got.binary_search(&(i as u32, j as u32)).is_ok();
                    prop_assert!(found || s < t + TOLERANCE, "missing ({}, {}) at {}", i, j, s);
                    prop_assert!(!found || s >= t - TOLERANCE, "extra ({}, {}) at {}", i, j, s);
                }
            }
            if same {
                prop_assert!(got.iter().all(|&(i, j)| i < j));
            }
        }

        #[test]
        fn edges_equal_brute_force_on_exact_data(
            (rk, ck) in exact_case(),
            threshold in prop::sample::select(vec![0.0f32, 0.125, 0.5, 0.875, 1.0]),
            same in any::<bool>(),
            (tr, tc) in tiles(),
        ) {
            let a = block(&descriptors(&rk, 16, true), &vec![0; rk.len()], 16);
            let b = if same { a.clone() } else { block(&descriptors(&ck, 16, true), &vec![0; ck.len()], 16) };
            let mut got = Vec::new();
            for_each_edge_tiled(&a, &b, threshold, same, tr, tc, |i, j| got.push((i, j)));
            got.sort_unstable();
            let mut want = Vec::new();
            for i in 0..a.len() {
                for j in if same { i + 1 } else { 0 }..b.len() {
                    if naive(&a, i, &b, j) >= f64::from(threshold) {
                        want.push((i as u32, j as u32));
                    }
                }
            }
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(edges(&a, &b, threshold, same), want);
        }

        #[test]
        fn merge_keeps_order_and_limit(
            a in prop::collection::vec((0u128..20, 0u8..5), 0..10),
            b in prop::collection::vec((20u128..40, 0u8..5), 0..10),
            limit in 0usize..25,
        ) {
            let list = |raw: &[(u128, u8)]| {
                let mut v: Vec<Neighbour> = raw
                    .iter()
                    .map(|&(id, s)| Neighbour { id: Uuid::from_u128(id), similarity: f32::from(s) / 4.0 })
                    .collect();
                v.sort_by(promised);
                v
            };
            let (mut best, more) = (list(&a), list(&b));
            let mut want: Vec<Neighbour> = best.iter().chain(&more).copied().collect();
            want.sort_by(promised);
            want.truncate(limit);
            merge_top_k(&mut best, &more, limit);
            prop_assert_eq!(best, want);
        }
    }

    /// How a row of the prefilter tests is made: the cases the int8 bound must get right.
    #[derive(Debug, Clone)]
    enum Probe {
        /// Components uniform in [-1, 1).
        Noise(u64),
        Zero,
        /// A copy of an earlier row, scaled (a duplicate once normalised).
        CopyOf(usize, f32),
        /// One component near 1 at a position, the rest about 1e-4: a scale set by one
        /// value, so every other component rounds to code 0.
        Spike(usize, u64),
        /// Cosine `threshold + delta` (|delta| ≤ 1e-6) with an earlier row: after
        /// normalising and rounding to f32 its similarity lands on either side.
        Near(usize, f64, u64),
        /// Components ±1 in a pattern: exact unit vectors in dims 1, 4, 16, 64, 256, so
        /// many similarities tie exactly with a threshold such as 0.5.
        Signs(u64),
        /// Cosine `threshold + delta` with an earlier row `x`, turned towards (or, when
        /// false, away from) x's int8 rounding error: the worst cases for the bound, where
        /// the int8 similarity under- (over-) estimates the true one by much of the bound.
        Aligned(usize, f64, bool),
    }

    fn probes(rows: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Probe>> {
        let probe = prop_oneof![
            4 => any::<u64>().prop_map(Probe::Noise),
            1 => Just(Probe::Zero),
            2 => (any::<usize>(), prop::sample::select(vec![1.0f32, 0.5, 3.0]))
                .prop_map(|(i, s)| Probe::CopyOf(i, s)),
            2 => (any::<usize>(), any::<u64>()).prop_map(|(i, seed)| Probe::Spike(i, seed)),
            4 => (any::<usize>(), -1e-6f64..=1e-6, any::<u64>())
                .prop_map(|(i, delta, seed)| Probe::Near(i, delta, seed)),
            2 => any::<u64>().prop_map(Probe::Signs),
            4 => (any::<usize>(), -1e-6f64..=1e-6, any::<bool>())
                .prop_map(|(i, delta, towards)| Probe::Aligned(i, delta, towards)),
        ];
        prop::collection::vec(probe, rows)
    }

    /// A xorshift stream of values uniform in [-1, 1).
    fn uniform(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed | 1;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        }
    }

    /// Rows from probes; `Near` and `CopyOf` refer to `base` when it has rows (so a
    /// second block can sit near the threshold from the first), else to earlier rows.
    fn probe_rows(
        probes: &[Probe],
        dim: usize,
        threshold: f32,
        base: &[Vec<f64>],
    ) -> Vec<Vec<f64>> {
        let mut rows: Vec<Vec<f64>> = Vec::new();
        for probe in probes {
            let pool = if base.is_empty() { &rows } else { base };
            let earlier = |i: usize| pool.get(i % pool.len().max(1)).cloned();
            let row = match probe {
                Probe::Noise(seed) => {
                    let mut next = uniform(*seed);
                    (0..dim).map(|_| next()).collect()
                }
                Probe::Zero => vec![0.0; dim],
                Probe::CopyOf(i, scale) => earlier(*i)
                    .map(|r| r.iter().map(|v| v * f64::from(*scale)).collect())
                    .unwrap_or_else(|| vec![0.0; dim]),
                Probe::Spike(at, seed) => {
                    let mut next = uniform(*seed);
                    let mut row: Vec<f64> = (0..dim).map(|_| 1e-4 * next()).collect();
                    row[at % dim] = 1.0;
                    row
                }
                Probe::Near(i, delta, seed) => {
                    near(earlier(*i), f64::from(threshold) + delta, dim, *seed)
                }
                Probe::Signs(bits) => (0..dim)
                    .map(|p| {
                        if (bits >> (p % 64)) & 1 == 1 {
                            1.0
                        } else {
                            -1.0
                        }
                    })
                    .collect(),
                Probe::Aligned(i, delta, towards) => {
                    aligned(earlier(*i), f64::from(threshold) + delta, *towards, dim)
                }
            };
            rows.push(row);
        }
        rows
    }

    /// A vector whose cosine with `of` is `cosine`: `of`'s direction plus a random
    /// orthogonal part. Without a usable `of` (none, zero, or dim 1), just noise.
    fn near(of: Option<Vec<f64>>, cosine: f64, dim: usize, seed: u64) -> Vec<f64> {
        let mut next = uniform(seed);
        let noise: Vec<f64> = (0..dim).map(|_| next()).collect();
        let unit = |v: &[f64]| {
            let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            (n > 1e-9).then(|| v.iter().map(|x| x / n).collect::<Vec<f64>>())
        };
        let Some(x) = of.as_deref().and_then(unit) else {
            return noise;
        };
        let along: f64 = noise.iter().zip(&x).map(|(z, x)| z * x).sum();
        let ortho: Vec<f64> = noise.iter().zip(&x).map(|(z, x)| z - along * x).collect();
        let Some(z) = unit(&ortho) else {
            return x;
        };
        let sine = (1.0 - cosine * cosine).max(0.0).sqrt();
        x.iter()
            .zip(&z)
            .map(|(x, z)| cosine * x + sine * z)
            .collect()
    }

    /// A vector at cosine `cosine` from `of` in the plane of `of` and its int8 rounding
    /// error (quantised here as the prefilter does: scale max|x|/127, codes rounded),
    /// turned `towards` it or away, so the error adds up instead of averaging out. Falls
    /// back to [`near`] where `of` has no rounding error to turn towards.
    fn aligned(of: Option<Vec<f64>>, cosine: f64, towards: bool, dim: usize) -> Vec<f64> {
        let Some(x) = of
            .as_ref()
            .map(|r| block_of(std::slice::from_ref(r), dim).row(0).to_vec())
        else {
            return near(None, cosine, dim, 7);
        };
        let scale = x.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
        let error: Vec<f64> = x
            .iter()
            .map(|&v| f64::from(v) - f64::from(scale) * f64::from((v / scale).round()))
            .collect();
        let x: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let length = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
        let (nx, ne) = (length(&x), length(&error));
        if !(nx > 0.0 && ne > 1e-12) {
            return near(of, cosine, dim, 7);
        }
        // Turn from x towards the error (or away) until the cosine drops to `cosine` (it
        // falls steadily from 1 to about ±‖error‖, far below any threshold tested).
        let sign = if towards { 1.0 } else { -1.0 };
        let at = |angle: f64| -> (Vec<f64>, f64) {
            let (c, s) = (angle.cos(), sign * angle.sin());
            let y: Vec<f64> = x
                .iter()
                .zip(&error)
                .map(|(a, e)| c * a / nx + s * e / ne)
                .collect();
            let cos = x.iter().zip(&y).map(|(a, b)| a * b).sum::<f64>() / (nx * length(&y));
            (y, cos)
        };
        let (mut lo, mut hi) = (0.0, std::f64::consts::FRAC_PI_2);
        for _ in 0..80 {
            let mid = 0.5 * (lo + hi);
            if at(mid).1 > cosine {
                lo = mid
            } else {
                hi = mid
            }
        }
        at(lo).0
    }

    fn block_of(rows: &[Vec<f64>], dim: usize) -> Block {
        let mut block = Block::new(dim);
        for (k, row) in rows.iter().enumerate() {
            let row: Vec<f32> = row.iter().map(|&v| v as f32).collect();
            block.push(Uuid::from_u128(k as u128), &row);
        }
        block
    }

    /// Edges in the order a path emits them.
    fn emitted(run: impl FnOnce(&mut dyn FnMut(u32, u32))) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        run(&mut |i, j| out.push((i, j)));
        out
    }

    /// Whether this CPU takes the int8 path for these arguments; the tests below assert it
    /// where they mean to exercise it, so a silent fallback cannot pass for it.
    #[cfg(target_arch = "x86_64")]
    fn prefiltered(
        a: &Block,
        b: &Block,
        threshold: f32,
        same: bool,
        (ta, tb): (usize, usize),
    ) -> bool {
        super::super::int8::Prefilter::new(a, b, threshold, same, ta, tb).is_some()
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn prefiltered(_: &Block, _: &Block, _: f32, _: bool, _: (usize, usize)) -> bool {
        false
    }

    fn vnni() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vnni")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    proptest! {
        #[test]
        fn prefilter_changes_no_edge_nor_their_order(
            dim in prop::sample::select(vec![1usize, 3, 4, 16, 64, 100, 512, 513]),
            rows_a in probes(0..40),
            rows_b in probes(0..40),
            threshold in prop::sample::select(vec![0.5f32, 0.3, 0.75, 0.9, 0.999, 1.0, 1e-3]),
            same in any::<bool>(),
            tiles in prop_oneof![Just((TILE_REFS, TILE_CANDIDATES)), (1usize..40, 1usize..70)],
        ) {
            let raw_a = probe_rows(&rows_a, dim, threshold, &[]);
            let a = block_of(&raw_a, dim);
            let b = if same { a.clone() } else { block_of(&probe_rows(&rows_b, dim, threshold, &raw_a), dim) };
            let (ta, tb) = tiles;
            if vnni() && !a.is_empty() && !b.is_empty() {
                prop_assert!(prefiltered(&a, &b, threshold, same, tiles));
            }
            let got = emitted(|e| for_each_edge_tiled(&a, &b, threshold, same, ta, tb, e));
            let want = emitted(|e| f32_edges(&a, &b, threshold, same, ta, tb, &mut |i, j| e(i, j)));
            prop_assert_eq!(got, want);
        }

        #[test]
        fn gathered_products_equal_tile_products(
            dim in prop::sample::select(vec![1usize, 3, 100, 256, 257, 512, 513]),
            rows_a in probes(1..30),
            rows_b in probes(1..30),
            pick in prop::collection::vec(any::<bool>(), 60),
        ) {
            let raw_a = probe_rows(&rows_a, dim, 0.5, &[]);
            let a = block_of(&raw_a, dim);
            let b = block_of(&probe_rows(&rows_b, dim, 0.5, &raw_a), dim);
            let mut tiler = Tiler::new(&a, &b, a.len(), b.len());
            let whole = tiler.tile(0, a.len(), 0, b.len()).to_vec();
            let pairs: Vec<(u32, u32)> = (0..a.len() as u32)
                .flat_map(|i| (0..b.len() as u32).map(move |j| (i, j)))
                .filter(|&(i, j)| pick[(i as usize * 31 + j as usize * 17) % pick.len()])
                .collect();
            let mut gathered = Gathered::default();
            gathered.select(&pairs, 0..b.len());
            gathered.compute(&a, &b);
            for (i, j) in pairs {
                let tile = whole[i as usize * b.len() + j as usize];
                prop_assert_eq!(gathered.dot(i, j).to_bits(), tile.to_bits(), "({}, {})", i, j);
            }
        }
    }

    #[test]
    fn prefilter_keeps_pairs_a_hair_above_the_threshold() {
        // Pairs placed within 1e-6 of the threshold, both sides, in the bench's 512 dims:
        // the f32 similarity decides each one, and the prefilter must pass it through.
        let (dim, threshold) = (512, 0.5f32);
        let mut raw = Vec::new();
        for k in 0..200u64 {
            let base = near(None, 0.0, dim, 2 * k + 1);
            let delta = (k as f64 - 100.0) * 1e-8;
            let close = near(
                Some(base.clone()),
                f64::from(threshold) + delta,
                dim,
                2 * k + 2,
            );
            raw.extend([base, close]);
        }
        let block = block_of(&raw, dim);
        assert!(
            !vnni()
                || prefiltered(
                    &block,
                    &block,
                    threshold,
                    true,
                    (TILE_REFS, TILE_CANDIDATES)
                )
        );
        let got = emitted(|e| for_each_edge(&block, &block, threshold, true, e));
        let want = emitted(|e| for_each_edge_f32(&block, &block, threshold, true, e));
        // Both sides of the threshold occur, so the test can tell a dropped edge.
        let pairs = (0..200u32).map(|k| (2 * k, 2 * k + 1));
        let above = pairs.filter(|p| want.contains(p)).count();
        assert!(
            (20..180).contains(&above),
            "{above} of 200 near pairs above"
        );
        assert_eq!(got, want);
    }

    #[test]
    fn default_tiles_cross_their_edges() {
        // Over TILE_REFS references and TILE_CANDIDATES candidates, on exact data with
        // many ties, so the default tiling runs its partial tiles.
        let dim = 16;
        let row = |k: usize| -> Vec<f32> {
            (0..dim)
                .map(|p| {
                    if ((k * 2654435761) >> p) & 1 == 1 {
                        0.25
                    } else {
                        -0.25
                    }
                })
                .collect()
        };
        let refs_rows: Vec<Vec<f32>> = (0..TILE_REFS + 7).map(|k| row(k % 97)).collect();
        let cand_rows: Vec<Vec<f32>> = (0..TILE_CANDIDATES + 33).map(|k| row(k % 89)).collect();
        let ref_ids: Vec<u128> = (0..refs_rows.len() as u128).map(|k| k * 3).collect();
        let cand_ids: Vec<u128> = (0..cand_rows.len() as u128).rev().collect();
        let refs = block(&refs_rows, &ref_ids, dim);
        let cands = block(&cand_rows, &cand_ids, dim);
        assert_eq!(
            top_k(&refs, &cands, 5, 0.5, true),
            naive_top_k(&refs, &cands, 5, 0.5, true)
        );
        let got = edges(&refs, &cands, 0.75, false);
        let want: Vec<(u32, u32)> = (0..refs.len())
            .flat_map(|i| (0..cands.len()).map(move |j| (i, j)))
            .filter(|&(i, j)| naive(&refs, i, &cands, j) >= 0.75)
            .map(|(i, j)| (i as u32, j as u32))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn similarity_of_raw_descriptors() {
        assert_eq!(similarity(&[1.0, 0.0], &[2.0, 0.0]), 1.0);
        assert_eq!(similarity(&[1.0, 0.0], &[-1.0, 0.0]), 0.0);
        assert_eq!(similarity(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert!((similarity(&[3.0, 4.0], &[4.0, 3.0]) - 0.96).abs() < 1e-7);
    }

    #[test]
    fn zero_dims_and_empty_blocks() {
        let mut empty_dim = Block::new(0);
        empty_dim.push(Uuid::from_u128(1), &[]);
        empty_dim.push(Uuid::from_u128(2), &[]);
        assert_eq!(
            top_k(&empty_dim, &empty_dim, 3, 0.5, true),
            vec![vec![], vec![]]
        );
        assert_eq!(
            top_k(&empty_dim, &empty_dim, 3, 0.0, true),
            vec![
                vec![Neighbour {
                    id: Uuid::from_u128(2),
                    similarity: 0.0
                }],
                vec![Neighbour {
                    id: Uuid::from_u128(1),
                    similarity: 0.0
                }],
            ]
        );
        assert_eq!(edges(&empty_dim, &empty_dim, 0.0, true), vec![(0, 1)]);
        let none = Block::new(4);
        assert_eq!(
            top_k(&none, &none, 3, 0.0, false),
            Vec::<Vec<Neighbour>>::new()
        );
        assert!(edges(&none, &none, 0.0, true).is_empty());
    }

    #[test]
    fn clamping_turns_negative_zero_into_zero() {
        assert_eq!(clamp_similarity(-0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(clamp_similarity(-0.3), 0.0);
        assert_eq!(clamp_similarity(1.0000001), 1.0);
    }
}
