//! An exact int8 prefilter for threshold passes (x86_64 with AVX-512 VNNI).
//!
//! A threshold pass on unit vectors needs the f32 similarity of only the few pairs near the
//! threshold; every other pair only has to be shown to fall clearly below or above it. This
//! module does that with int8 dot products (64 multiply-adds per `vpdpbusd`, four times the
//! f32 FMA rate) and a rigorous bound on their error, and hands the kernel each tile's
//! candidate pairs: sure edges, and unsure pairs that the kernel then computes exactly as
//! its f32 path does. Every other pair is provably no edge, so the edges are the same.
//!
//! # Quantisation
//!
//! Each vector `x` gets its own scale `s = max|xᵢ| / 127` and codes `qᵢ ≈ xᵢ / s` rounded
//! into [-127, 127]; `x̂ = s·q` is its int8 approximation and `r = x − x̂` the residual.
//! Packing measures `‖x‖`, `‖x̂‖` and `‖r‖` from the codes actually stored (in f64, rounded
//! up to f32), so nothing below depends on how well rounding went.
//!
//! # The bound
//!
//! For two vectors, exactly, `x·y = x̂·ŷ + r_x·y + x̂·r_y` (expand `r = x − x̂`), and
//! Cauchy–Schwarz bounds the two correction terms:
//!
//! ```text
//! |x·y − s_x s_y (q_x·q_y)| ≤ ‖r_x‖‖y‖ + ‖x̂‖‖r_y‖,
//! ```
//!
//! where `q_x·q_y` is an exact integer. The per-component form `e_x‖y‖₁ + e_y‖x̂‖₁`
//! (`e = max|rᵢ| ≤ s/2`) holds as well; neither dominates, but on dense vectors such as
//! descriptors this one is about 1.4× tighter (`‖r‖ ≈ e√(d/3)` against
//! `‖y‖₁ ≈ 0.8√d ‖y‖`). For 512-d unit vectors it comes to about 0.015.
//!
//! The kernel's f32 similarity `v` is not `x·y` itself but a float sum of the `d` products,
//! so `|v − x·y| ≤ γ_d Σ|xᵢyᵢ| ≤ γ_d ‖x‖‖y‖` with `γ_d = d·u / (1 − d·u)`, `u = 2⁻²⁴`,
//! whatever order and blocking it sums in. Packing refuses vectors with `‖x‖ > 2` (blocks
//! hold unit vectors; a block of other values takes the f32 path), so that error is at most
//! `4γ_d ≤ 8du`. Evaluating the bound in f32 takes six roundings, each at most `u` times
//! a term no larger than 28 (`‖x̂‖ ≤ ‖x‖ + ‖r‖ ≤ 2‖x‖`, as rounding to the nearest code
//! never moves a component by more than its own size): under `128u` in all, with the f64
//! rounding of the measured norms far below that. With the margin `m = 8u·(d + 64)`
//! (2.7e-4 at d = 512, small beside the bound), a pair
//!
//! ```text
//! is no edge     when  s_x s_y (q_x·q_y) + ‖r_x‖‖y‖ + ‖x̂‖‖r_y‖ < threshold − m,
//! is surely one  when  s_x s_y (q_x·q_y) − ‖r_x‖‖y‖ − ‖x̂‖‖r_y‖ ≥ threshold + m,
//! ```
//!
//! (then `v ≥ threshold`, and for a threshold in (0, 1] that is the kernel's edge test), and
//! is unsure otherwise.
//!
//! # The product
//!
//! `vpdpbusd` multiplies unsigned by signed bytes, so the row side stores `q + 128` and
//! the accumulators start at `−128 Σ q_y` for each column, which cancels the offset
//! exactly: `Σ (q_xᵢ + 128) q_yᵢ − 128 Σ q_yᵢ = q_x·q_y` (the sums wrap, so only the
//! result, at most 127²·d, has to fit in i32). Both sides are packed once per call into
//! panels, per tile so that panels never straddle the kernel's tile edges: [`MR`] rows
//! (four dims of each row together, broadcast one row at a time) against [`NR`] columns
//! (four dims of 16 columns per vector), so that a micro-tile of `MR × NR` sums stays in
//! 24 of the 32 vector registers and each step does 24 `vpdpbusd` per 14 loads. A packed
//! copy costs a quarter of the block's f32 bytes.

use std::arch::x86_64::{
    __m512, __m512i, _CMP_GE_OQ, _mm512_add_ps, _mm512_cmp_ps_mask, _mm512_cvtepi32_ps,
    _mm512_dpbusd_epi32, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_loadu_si512, _mm512_mul_ps,
    _mm512_set1_epi32, _mm512_set1_ps, _mm512_setzero_ps, _mm512_setzero_si512, _mm512_sub_ps,
};
use std::ops::Range;

use super::block::Block;

/// Rows per micro-tile: each is broadcast against the column vectors.
const MR: usize = 12;
/// 16-lane vectors per micro-tile on the column side.
const NV: usize = 2;
/// Columns per micro-tile.
const NR: usize = 16 * NV;
/// Dims are packed in groups of four, one 32-bit lane of `vpdpbusd` each.
const GROUP: usize = 4;
/// Largest norm packing accepts, so the f32 product's own error stays within the margin.
const MAX_NORM: f64 = 2.0;
/// Longest vectors the prefilter takes: the int8 dot products (at most 127²·d) fit in i32.
const MAX_DIM: usize = 1 << 16;
/// Added to row codes to make them the unsigned operand of `vpdpbusd`.
const ROW_OFFSET: u8 = 128;

/// Finds, tile by tile, the pairs that may be edges.
pub struct Prefilter {
    rows: Panels,
    cols: Panels,
    same: bool,
    /// Pairs whose upper bound falls below this are no edge.
    maybe: f32,
    /// Pairs whose lower bound reaches this are edges.
    surely: f32,
    /// Proof that the CPU runs the instructions used here.
    _vnni: Vnni,
}

/// The pairs of one tile that may be edges, as block indices (row, column), each list
/// row-major.
#[derive(Debug, Default)]
pub struct Candidates {
    /// Certainly edges: even the lower bound of their similarity reaches the threshold.
    pub sure: Vec<(u32, u32)>,
    /// Within the bound of the threshold: only their f32 similarity can tell.
    pub unsure: Vec<(u32, u32)>,
    /// One row panel's (sure, unsure) column bits, row by row, column panel by panel.
    bits: Vec<(u64, u64)>,
}

/// Exists only where AVX-512F and AVX-512 VNNI were detected at run time.
struct Vnni(());

impl Vnni {
    fn detect() -> Option<Vnni> {
        let ok = std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vnni");
        ok.then_some(Vnni(()))
    }
}

impl Prefilter {
    /// A prefilter for the edges of `a` against `b` at `threshold`, tiled `tile_a` ×
    /// `tile_b` as the kernel tiles; `None` where it cannot help or cannot vouch for its
    /// bound (no VNNI, a threshold outside (0, 1], dim 0 or huge, an empty block, a norm
    /// over [`MAX_NORM`]), and the kernel's f32 path does everything.
    pub fn new(
        a: &Block,
        b: &Block,
        threshold: f32,
        same: bool,
        tile_a: usize,
        tile_b: usize,
    ) -> Option<Prefilter> {
        let dim = a.dim();
        // Outside (0, 1] the clamp, not the product, decides: leave it to the f32 path.
        let useful = threshold > 0.0
            && threshold <= 1.0
            && (1..=MAX_DIM).contains(&dim)
            && !a.is_empty()
            && !b.is_empty();
        if !useful {
            return None;
        }
        let vnni = Vnni::detect()?;
        let cols = Panels::pack(b, tile_b, NR, 0)?;
        let rows = Panels::pack(a, tile_a, MR, ROW_OFFSET)?;
        Some(Prefilter {
            rows,
            cols,
            same,
            maybe: threshold - margin(dim),
            surely: threshold + margin(dim),
            _vnni: vnni,
        })
    }

    /// The pairs of the tile `rows` × `cols` that may be edges: every edge of the tile is
    /// in `found`, sure or unsure. Both ranges must be whole kernel tiles. With `same`,
    /// only pairs with row < column.
    pub fn candidates(&self, rows: Range<usize>, cols: Range<usize>, found: &mut Candidates) {
        found.sure.clear();
        found.unsure.clear();
        // SAFETY: a Prefilter holds a `Vnni`, made only after detecting AVX-512F and
        // AVX-512 VNNI, the features `scan` is compiled for.
        unsafe { self.scan(rows, cols, found) };
    }

    /// Every micro-tile of the tile, a row panel at a time: int8 sums, then the bounds,
    /// then the pairs. Listing a row panel's pairs only once all its column panels are
    /// done keeps them row-major without sorting.
    #[target_feature(enable = "avx512f,avx512vnni")]
    fn scan(&self, rows: Range<usize>, cols: Range<usize>, found: &mut Candidates) {
        let row_tile = self.rows.tile_index(&rows);
        let col_tile = self.cols.tile_index(&cols);
        let cutoffs = Cutoffs {
            maybe: _mm512_set1_ps(self.maybe),
            surely: _mm512_set1_ps(self.surely),
        };
        let col_panels = cols.len().div_ceil(NR);
        for local_row_panel in 0..rows.len().div_ceil(MR) {
            let row0 = rows.start + local_row_panel * MR;
            let height = MR.min(rows.end - row0);
            let row_panel = row_tile * self.rows.panels_per_tile + local_row_panel;
            found.bits.clear();
            found.bits.resize(MR * col_panels, (0, 0));
            for local_panel in 0..col_panels {
                let col0 = cols.start + local_panel * NR;
                let width = NR.min(cols.end - col0);
                // Against itself, a micro-tile with no column right of its first row
                // holds no pair row < column.
                if self.same && col0 + width <= row0 + 1 {
                    continue;
                }
                let panel = col_tile * self.cols.panels_per_tile + local_panel;
                let columns = ColumnPanel::load(&self.cols, panel);
                let sums = micro_tile(
                    self.rows.codes(row_panel),
                    self.cols.codes(panel),
                    &columns.bias,
                );
                for (r, sums) in sums.iter().enumerate().take(height) {
                    let row = RowStats::of(&self.rows, row_panel * MR + r);
                    let (mut maybe, surely) = classify(sums, &row, &columns, &cutoffs);
                    maybe &= low_bits(width);
                    if self.same {
                        maybe &= right_of(row0 + r, col0);
                    }
                    found.bits[r * col_panels + local_panel] = (maybe & surely, maybe & !surely);
                }
            }
            for (r, row_bits) in found.bits.chunks_exact(col_panels).enumerate() {
                let i = (row0 + r) as u32;
                for (local_panel, &(sure, unsure)) in row_bits.iter().enumerate() {
                    let col0 = cols.start + local_panel * NR;
                    push_pairs(i, col0, sure, &mut found.sure);
                    push_pairs(i, col0, unsure, &mut found.unsure);
                }
            }
        }
    }
}

/// The slack the bound needs for float rounding (module docs): `8u·(d + 64)`.
fn margin(dim: usize) -> f32 {
    (dim as f32 + 64.0) * 4.0 * f32::EPSILON
}

/// Appends (row, col0 + k) for each set bit k.
fn push_pairs(row: u32, col0: usize, mut bits: u64, out: &mut Vec<(u32, u32)>) {
    while bits != 0 {
        out.push((row, (col0 + bits.trailing_zeros() as usize) as u32));
        bits &= bits - 1;
    }
}

/// The lowest `n` bits (n ≤ 64).
fn low_bits(n: usize) -> u64 {
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
}

/// Bits of the micro-tile columns starting at `col0` whose column is right of `row`.
fn right_of(row: usize, col0: usize) -> u64 {
    match (row + 1).checked_sub(col0) {
        None => u64::MAX,
        Some(shift) if shift >= 64 => 0,
        Some(shift) => u64::MAX << shift,
    }
}

/// One side of the product in int8, packed in panels of `width` vectors: panel `p` holds
/// vectors `p·width ..` of its tile, group by group (four dims of each vector in turn),
/// and the per-vector numbers of the bound sit at the same slot `p·width + lane`.
/// Padding slots (past a tile's end) have zero codes and zero numbers.
struct Panels {
    width: usize,
    tile: usize,
    panels_per_tile: usize,
    /// Bytes of one panel: `width × groups × 4`.
    panel_bytes: usize,
    codes: Vec<u8>,
    scale: Vec<f32>,
    norm: Vec<f32>,
    approx_norm: Vec<f32>,
    residual: Vec<f32>,
    /// `−128 Σ q`: the starting sum that cancels the row side's offset.
    bias: Vec<i32>,
}

impl Panels {
    /// Quantises and packs every row of `block`, adding `offset` to each code; `None` when
    /// a row's norm is over [`MAX_NORM`].
    fn pack(block: &Block, tile: usize, width: usize, offset: u8) -> Option<Panels> {
        let groups = block.dim().div_ceil(GROUP);
        let panels_per_tile = tile.min(block.len()).div_ceil(width);
        let tiles = block.len().div_ceil(tile);
        let slots = tiles * panels_per_tile * width;
        let panel_bytes = width * groups * GROUP;
        let mut panels = Panels {
            width,
            tile,
            panels_per_tile,
            panel_bytes,
            // A zero code is `offset` once shifted.
            codes: vec![offset; tiles * panels_per_tile * panel_bytes],
            scale: vec![0.0; slots],
            norm: vec![0.0; slots],
            approx_norm: vec![0.0; slots],
            residual: vec![0.0; slots],
            bias: vec![0; slots],
        };
        let mut q = vec![0i8; groups * GROUP];
        let mut shifted = vec![0u8; groups * GROUP];
        for index in 0..block.len() {
            let quantised = quantise(block.row(index), &mut q);
            if f64::from(quantised.norm) > MAX_NORM {
                return None;
            }
            for (byte, &code) in shifted.iter_mut().zip(&q) {
                *byte = (code as u8).wrapping_add(offset);
            }
            let slot = panels.slot(index);
            let (panel, lane) = (slot / width, slot % width);
            let at = panel * panel_bytes + lane * GROUP;
            let stride = width * GROUP;
            for (four, dst) in shifted
                .chunks_exact(GROUP)
                .zip(panels.codes[at..].chunks_mut(stride))
            {
                dst[..GROUP].copy_from_slice(four);
            }
            panels.scale[slot] = quantised.scale;
            panels.norm[slot] = quantised.norm;
            panels.approx_norm[slot] = quantised.approx_norm;
            panels.residual[slot] = quantised.residual;
            panels.bias[slot] = -i32::from(ROW_OFFSET) * quantised.sum;
        }
        Some(panels)
    }

    /// The slot of block row `index`: its tile's panels, then its place among them.
    fn slot(&self, index: usize) -> usize {
        let (tile, local) = (index / self.tile, index % self.tile);
        tile * self.panels_per_tile * self.width + local
    }

    /// The index of the kernel tile that is block rows `range`.
    fn tile_index(&self, range: &Range<usize>) -> usize {
        assert!(
            range.start.is_multiple_of(self.tile) && range.len() <= self.tile,
            "not a kernel tile"
        );
        range.start / self.tile
    }

    fn codes(&self, panel: usize) -> &[u8] {
        &self.codes[panel * self.panel_bytes..(panel + 1) * self.panel_bytes]
    }
}

/// One vector's int8 form, as the bound needs it.
struct Quantised {
    scale: f32,
    /// Upper bounds of `‖x‖`, `‖x̂‖` and `‖x − x̂‖`.
    norm: f32,
    approx_norm: f32,
    residual: f32,
    /// `Σ q`.
    sum: i32,
}

/// Writes the codes of `x` into `q` (zero past `x.len()`) and measures the bound's numbers
/// from the codes as written.
fn quantise(x: &[f32], q: &mut [i8]) -> Quantised {
    q.fill(0);
    let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let mut scale = max / 127.0;
    let inverse = 1.0 / scale;
    if inverse.is_finite() {
        for (code, &v) in q.iter_mut().zip(x) {
            // Rounds half away from zero (or, at the last ulp, the other way: the
            // numbers below are measured from the codes written, so any rounding is
            // safe, and this one needs no libm call as `round` does).
            let c = v * inverse;
            *code = ((c + 0.5f32.copysign(c)) as i32).clamp(-127, 127) as i8;
        }
    } else {
        // A zero vector, or one so tiny its scale underflows, keeps all-zero codes: then
        // x̂ = 0 and the residual is the whole vector, which the bound still covers.
        scale = 0.0;
    }
    let (mut norm, mut approx, mut residual) = (0f64, 0f64, 0f64);
    for (&code, &v) in q.iter().zip(x) {
        // Exact in f64: a 24-bit scale times a 7-bit code.
        let approx_v = f64::from(scale) * f64::from(code);
        let (v, r) = (f64::from(v), f64::from(v) - approx_v);
        norm += v * v;
        approx += approx_v * approx_v;
        residual += r * r;
    }
    Quantised {
        scale,
        norm: round_up(norm.sqrt()),
        approx_norm: round_up(approx.sqrt()),
        residual: round_up(residual.sqrt()),
        sum: q.iter().map(|&c| i32::from(c)).sum(),
    }
}

/// The smallest f32 at or above `v`.
fn round_up(v: f64) -> f32 {
    let f = v as f32;
    if f64::from(f) < v { f.next_up() } else { f }
}

/// The column side's per-vector numbers for one panel, in vectors of 16 lanes.
struct ColumnPanel {
    bias: [__m512i; NV],
    scale: [__m512; NV],
    norm: [__m512; NV],
    residual: [__m512; NV],
}

impl ColumnPanel {
    #[target_feature(enable = "avx512f")]
    fn load(cols: &Panels, panel: usize) -> ColumnPanel {
        let lanes = panel * NR..(panel + 1) * NR;
        ColumnPanel {
            bias: load_i32s(&cols.bias[lanes.clone()]),
            scale: load_f32s(&cols.scale[lanes.clone()]),
            norm: load_f32s(&cols.norm[lanes.clone()]),
            residual: load_f32s(&cols.residual[lanes]),
        }
    }
}

/// The row side's numbers for one row, broadcast.
struct RowStats {
    scale: __m512,
    approx_norm: __m512,
    residual: __m512,
}

impl RowStats {
    #[target_feature(enable = "avx512f")]
    fn of(rows: &Panels, slot: usize) -> RowStats {
        RowStats {
            scale: _mm512_set1_ps(rows.scale[slot]),
            approx_norm: _mm512_set1_ps(rows.approx_norm[slot]),
            residual: _mm512_set1_ps(rows.residual[slot]),
        }
    }
}

/// The two thresholds of [`classify`], broadcast.
struct Cutoffs {
    maybe: __m512,
    surely: __m512,
}

/// Bits of the columns (lane order) whose pair with this row may reach the threshold
/// (upper bound `s_x s_y (q_x·q_y) + ‖r_x‖‖y‖ + ‖x̂‖‖r_y‖ ≥ maybe`), and of those that
/// surely do (lower bound, the same with the error terms subtracted, `≥ surely`).
#[target_feature(enable = "avx512f")]
fn classify(
    sums: &[__m512i; NV],
    row: &RowStats,
    cols: &ColumnPanel,
    cutoffs: &Cutoffs,
) -> (u64, u64) {
    let (mut maybe, mut surely) = (0u64, 0u64);
    for (v, &sum) in sums.iter().enumerate() {
        let approx = _mm512_mul_ps(
            _mm512_mul_ps(_mm512_cvtepi32_ps(sum), cols.scale[v]),
            row.scale,
        );
        let bound = _mm512_fmadd_ps(
            row.residual,
            cols.norm[v],
            _mm512_mul_ps(row.approx_norm, cols.residual[v]),
        );
        let upper = _mm512_add_ps(approx, bound);
        let lower = _mm512_sub_ps(approx, bound);
        let hit = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(upper, cutoffs.maybe);
        let sure = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(lower, cutoffs.surely);
        maybe |= u64::from(hit) << (16 * v);
        surely |= u64::from(sure) << (16 * v);
    }
    (maybe, surely)
}

/// `q_x·q_y` for the [`MR`] rows of a row panel against the [`NR`] columns of a column
/// panel: accumulators start at the columns' bias and take four dims per step.
#[target_feature(enable = "avx512f,avx512vnni")]
fn micro_tile(rows: &[u8], cols: &[u8], bias: &[__m512i; NV]) -> [[__m512i; NV]; MR] {
    let mut acc = [*bias; MR];
    for (a, b) in rows
        .chunks_exact(MR * GROUP)
        .zip(cols.chunks_exact(NR * GROUP))
    {
        let b = load_bytes(b);
        for (r, acc) in acc.iter_mut().enumerate() {
            let four = [a[r * 4], a[r * 4 + 1], a[r * 4 + 2], a[r * 4 + 3]];
            let a = _mm512_set1_epi32(i32::from_le_bytes(four));
            for v in 0..NV {
                acc[v] = _mm512_dpbusd_epi32(acc[v], a, b[v]);
            }
        }
    }
    acc
}

/// `NV` vectors of 64 bytes each.
#[target_feature(enable = "avx512f")]
fn load_bytes(bytes: &[u8]) -> [__m512i; NV] {
    assert_eq!(bytes.len(), NV * 64);
    let mut out = [_mm512_setzero_si512(); NV];
    for (v, out) in out.iter_mut().enumerate() {
        // SAFETY: an unaligned load of bytes 64·v .. 64·(v + 1), inside the length checked.
        *out = unsafe { _mm512_loadu_si512(bytes.as_ptr().add(64 * v).cast()) };
    }
    out
}

/// `NV` vectors of 16 floats each.
#[target_feature(enable = "avx512f")]
fn load_f32s(values: &[f32]) -> [__m512; NV] {
    assert_eq!(values.len(), NV * 16);
    let mut out = [_mm512_setzero_ps(); NV];
    for (v, out) in out.iter_mut().enumerate() {
        // SAFETY: an unaligned load of values 16·v .. 16·(v + 1), inside the length checked.
        *out = unsafe { _mm512_loadu_ps(values.as_ptr().add(16 * v)) };
    }
    out
}

/// `NV` vectors of 16 integers each.
#[target_feature(enable = "avx512f")]
fn load_i32s(values: &[i32]) -> [__m512i; NV] {
    assert_eq!(values.len(), NV * 16);
    let mut out = [_mm512_setzero_si512(); NV];
    for (v, out) in out.iter_mut().enumerate() {
        // SAFETY: an unaligned load of values 16·v .. 16·(v + 1), inside the length checked.
        *out = unsafe { _mm512_loadu_si512(values.as_ptr().add(16 * v).cast()) };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use uuid::Uuid;

    fn block(rows: &[Vec<f32>], dim: usize) -> Block {
        let mut block = Block::new(dim);
        for row in rows {
            block.push(Uuid::nil(), row);
        }
        block
    }

    fn vnni() -> bool {
        Vnni::detect().is_some()
    }

    /// Vectors with a wide spread of magnitudes: ordinary, one dominant component,
    /// tiny (down to subnormal), zero.
    fn vector() -> impl Strategy<Value = Vec<f32>> {
        (1usize..600).prop_flat_map(|dim| {
            prop_oneof![
                prop::collection::vec(-1f32..1.0, dim),
                (
                    prop::collection::vec(-1e-4f32..1e-4, dim),
                    any::<prop::sample::Index>()
                )
                    .prop_map(|(mut v, at)| {
                        let k = at.index(v.len());
                        v[k] = 1.0;
                        v
                    }),
                prop::collection::vec(-1e-39f32..1e-39, dim),
                Just(vec![0.0; dim]),
            ]
        })
    }

    proptest! {
        #[test]
        fn quantised_numbers_bound_what_they_describe(x in vector()) {
            let mut q = vec![0i8; x.len().div_ceil(GROUP) * GROUP];
            let got = quantise(&x, &mut q);
            prop_assert!(q[x.len()..].iter().all(|&c| c == 0), "padding codes");
            prop_assert!(q.iter().all(|&c| c != i8::MIN), "codes within ±127");
            let length = |v: &mut dyn Iterator<Item = f64>| v.map(|a| a * a).sum::<f64>().sqrt();
            let approx = |c: i8| f64::from(got.scale) * f64::from(c);
            let norm = length(&mut x.iter().map(|&v| f64::from(v)));
            let approx_norm = length(&mut q.iter().map(|&c| approx(c)));
            let residual = length(&mut x.iter().zip(&q).map(|(&v, &c)| f64::from(v) - approx(c)));
            for (name, bound, exact) in [
                ("norm", got.norm, norm),
                ("approx_norm", got.approx_norm, approx_norm),
                ("residual", got.residual, residual),
            ] {
                // Above the true value, and by no more than f32 rounding.
                let bound = f64::from(bound);
                prop_assert!(bound >= exact, "{} {} < {}", name, bound, exact);
                prop_assert!(bound <= exact * (1.0 + 1e-6) + 1e-44, "{} {} >> {}", name, bound, exact);
            }
            prop_assert_eq!(got.sum, q.iter().map(|&c| i32::from(c)).sum::<i32>());
            // The codes are worth having: the residual is at most half a step per dim
            // (bar clamping's last ulp), unless the scale underflowed.
            if got.scale > 0.0 {
                let half_steps = 0.5 * f64::from(got.scale) * (x.len() as f64).sqrt();
                prop_assert!(residual <= half_steps * (1.0 + 1e-5) + 1e-44);
            }
        }

        #[test]
        fn the_bound_covers_the_exact_dot(x in vector()) {
            // The second vector is the signs of x's rounding error: it quantises almost
            // exactly and lines up with that error, so the int8 dot falls short of the
            // exact one by most of the bound (about 87%, ‖r‖₁ / (√d ‖r‖₂)).
            let mut q = vec![0i8; x.len().div_ceil(GROUP) * GROUP];
            let qx = quantise(&x, &mut q);
            let codes_x = q.clone();
            let y: Vec<f32> = x
                .iter()
                .zip(&codes_x)
                .map(|(&v, &c)| if f64::from(v) >= f64::from(qx.scale) * f64::from(c) { 1.0 } else { -1.0 })
                .collect();
            let qy = quantise(&y, &mut q);
            let dot: f64 = x.iter().zip(&y).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
            let codes: i64 = codes_x.iter().zip(&q).map(|(&a, &b)| i64::from(a) * i64::from(b)).sum();
            let approx = f64::from(qx.scale) * f64::from(qy.scale) * codes as f64;
            let bound = f64::from(qx.residual) * f64::from(qy.norm)
                + f64::from(qx.approx_norm) * f64::from(qy.residual);
            prop_assert!(approx + bound >= dot, "{} + {} < {}", approx, bound, dot);
        }
    }

    #[test]
    fn masks_pick_the_right_columns() {
        assert_eq!(low_bits(0), 0);
        assert_eq!(low_bits(3), 0b111);
        assert_eq!(low_bits(64), u64::MAX);
        assert_eq!(right_of(5, 10), u64::MAX);
        assert_eq!(right_of(9, 10), u64::MAX);
        assert_eq!(right_of(10, 10), !1);
        assert_eq!(right_of(12, 10), u64::MAX << 3);
        assert_eq!(right_of(73, 10), 0);
    }

    #[test]
    fn prefilter_only_where_it_can_vouch_for_its_bound() {
        let unit = block(&[vec![1.0, 2.0, 3.0], vec![3.0, 1.0, 0.0]], 3);
        let new = |a: &Block, b: &Block, t: f32| Prefilter::new(a, b, t, false, 1024, 1024);
        assert_eq!(new(&unit, &unit, 0.5).is_some(), vnni());
        assert_eq!(new(&unit, &unit, 1.0).is_some(), vnni());
        for t in [0.0, -0.5, 1.0001, f32::NAN] {
            assert!(new(&unit, &unit, t).is_none(), "threshold {t}");
        }
        assert!(new(&unit, &Block::new(3), 0.5).is_none());
        let dimless = block(&[vec![], vec![]], 0);
        assert!(new(&dimless, &dimless, 0.5).is_none());
        // Not unit vectors: only a block read from bytes can hold them.
        let mut bytes = unit.to_bytes();
        let at = bytes.len() - 4;
        bytes[at..].copy_from_slice(&3.0f32.to_le_bytes());
        let long = Block::from_bytes(&bytes).unwrap();
        assert!(new(&long, &unit, 0.5).is_none());
        assert!(new(&unit, &long, 0.5).is_none());
    }
}
