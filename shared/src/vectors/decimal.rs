//! How numbers cross between the f32 kernel and the JSON a client reads.
//!
//! The kernel computes similarities in f32; JSON numbers are read and written as f64. An
//! f32 widened to f64 keeps its exact binary value, whose decimal text is noise
//! (`0.8f32` is `0.800000011920929`, `0.99999976f32` is `0.9999997615814209`). So:
//! - thresholds a client gives stay f64 in what is stored and shown (`0.8` stays `0.8`),
//!   and only the kernel sees [`kernel_threshold`], an f32;
//! - similarities reach JSON either as f32 written by `serde_json`'s writer (which prints
//!   an f32's shortest text) or, where an f64 is needed (ROC thresholds), as [`shown`]:
//!   the f64 of that same shortest text. Never through `serde_json::to_value`, which
//!   widens an f32 to f64.

use std::io::Write;

/// The f64 a similarity is shown as: the shortest decimal that reads back as the same
/// f32 (`0.99999976`, not the widened `0.9999997615814209`). Strictly increasing in
/// `similarity` (distinct f32s have distinct shortest texts, in the same order), so
/// sorting, comparing and deduplicating shown values agree with the f32s.
pub fn shown(similarity: f32) -> f64 {
    // Rust's `Display` of a float is its shortest round-trip text, without exponent:
    // at most 48 bytes for an f32 (the smallest subnormal).
    let mut buffer = [0u8; 64];
    let mut cursor = &mut buffer[..];
    if write!(cursor, "{similarity}").is_err() {
        return f64::from(similarity);
    }
    let written = 64 - cursor.len();
    std::str::from_utf8(&buffer[..written])
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| f64::from(similarity))
}

/// 1 + [`shown`]`(similarity)`, added in decimal so that no binary rounding shows up
/// (`1.99999976`, where f64 addition gives `1.9999997599999999`): for similarities in
/// [0, 1); any other value is added in f64.
pub fn one_plus(similarity: f32) -> f64 {
    let text = similarity.to_string();
    match text.strip_prefix("0.") {
        Some(fraction) => format!("1.{fraction}")
            .parse()
            .unwrap_or(1.0 + shown(similarity)),
        None => 1.0 + shown(similarity),
    }
}

/// The f32 the kernel compares similarities with for a threshold given as f64: the least
/// f32 whose [`shown`] value is at or above `threshold`. A similarity passes the kernel's
/// `similarity >= kernel_threshold(t)` exactly when the number the result shows for it is
/// ≥ `t`: a threshold of 0.7 keeps the f32 nearest 0.7 (shown `0.7`, though its exact
/// value is a hair below), and a threshold of 0.80000001 drops the f32 shown as `0.8`.
/// For thresholds of up to 7 significant digits this is the nearest f32, as before
/// thresholds were kept as f64.
pub fn kernel_threshold(threshold: f64) -> f32 {
    let mut t = threshold as f32;
    if !t.is_finite() {
        return t;
    }
    // The nearest f32 is at most one step from the answer either way.
    while shown(t) < threshold {
        t = t.next_up();
    }
    while shown(t.next_down()) >= threshold {
        t = t.next_down();
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn similarities_show_as_their_shortest_text() {
        assert_eq!(shown(0.999_999_76), 0.999_999_76);
        assert_eq!(shown(0.8), 0.8);
        assert_eq!(shown(0.7), 0.7);
        assert_eq!(shown(1.0), 1.0);
        assert_eq!(shown(0.0), 0.0);
        assert_eq!(shown(f32::from_bits(1)), 1e-45);
        assert_eq!(serde_json::to_string(&shown(0.7)).unwrap(), "0.7");
        assert_eq!(one_plus(0.999_999_76), 1.999_999_76);
        assert_eq!(
            serde_json::to_string(&one_plus(0.651_158_63)).unwrap(),
            "1.65115863"
        );
        assert_eq!(one_plus(1.0), 2.0);
        assert_eq!(one_plus(0.0), 1.0);
    }

    #[test]
    fn kernel_thresholds_keep_what_shows_at_or_above_the_threshold() {
        // Short thresholds: the nearest f32, as before.
        for t in [0.0, 0.1, 0.3, 0.5, 0.7, 0.75, 0.8, 0.9, 0.95, 1.0] {
            assert_eq!(kernel_threshold(t), t as f32, "{t}");
        }
        // 0.8f32 shows as 0.8, below 0.80000001: the next f32 up is the threshold.
        assert_eq!(kernel_threshold(0.800_000_01), 0.8f32.next_up());
        assert_eq!(kernel_threshold(0.800_000_011_920_929), 0.8f32.next_up());
    }

    proptest! {
        #[test]
        fn shown_is_strictly_increasing_and_reads_back(bits in 0u32..0x3f80_0000) {
            let s = f32::from_bits(bits);
            let next = s.next_up();
            prop_assert!(shown(s) < shown(next));
            prop_assert_eq!(shown(s) as f32, s);
        }

        #[test]
        fn a_similarity_passes_the_kernel_threshold_when_it_shows_at_or_above_it(
            t in 0.0f64..=1.0,
            step in -3i32..=3,
        ) {
            let k = kernel_threshold(t);
            let mut s = t as f32;
            for _ in 0..step.abs() {
                s = if step > 0 { s.next_up() } else { s.next_down() };
            }
            prop_assert_eq!(s >= k, shown(s) >= t, "t {} s {} k {}", t, s, k);
        }
    }
}
