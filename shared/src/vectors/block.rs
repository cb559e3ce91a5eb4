//! A block keeps the ids and the unit-normalised descriptors of many objects in two flat
//! buffers, so that the kernel can hand rows straight to a matrix multiply and the collect
//! stage can write the whole thing to S3 as one object. Normalising once on the way in
//! turns every later cosine similarity into a plain dot product.
//!
//! The binary form is deliberately dumb: a fixed 20-byte header (magic `FVB1`, format
//! version as u32, dim as u32 and count as u64, all little-endian), then
//! `count` ids of 16 bytes (RFC 4122 byte order), then `count * dim` little-endian f32
//! values row by row. The header is a multiple of four bytes and so are the ids, so the
//! values stay 4-byte aligned relative to the start of the buffer.

use std::ops::Range;

use uuid::Uuid;

const MAGIC: [u8; 4] = *b"FVB1";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 20;

/// Object ids with their descriptors, normalised to unit length, in one compact buffer:
/// what the collect stage writes to S3 and match subtasks read.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    ids: Vec<Uuid>,
    dim: usize,
    values: Vec<f32>,
}

/// Why bytes are not a block (truncated, bad magic, unknown version, sizes disagree).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlockError {
    /// Fewer bytes than the header or than the header says the body needs.
    #[error("vector block truncated: {needed} bytes needed, {got} present")]
    Truncated {
        /// Bytes the header or body requires.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// The first four bytes are not the block magic: some other object.
    #[error("not a vector block (bad magic)")]
    BadMagic,
    /// Written by a newer format this build does not read.
    #[error("vector block format version {0} is not supported (this build reads {VERSION})")]
    UnknownVersion(u32),
    /// The header's dim and count do not account for the length (trailing bytes, or a
    /// product that overflows).
    #[error("vector block sizes disagree: header implies {expected} bytes, {got} present")]
    SizeMismatch {
        /// Length the header implies, saturated on overflow.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// A NaN or infinite value: never written by [`Block::to_bytes`], so the bytes are
    /// garbled.
    #[error("vector block value {index} is not finite")]
    NotFinite {
        /// Position of the value in the flat row-major buffer.
        index: usize,
    },
}

impl Block {
    /// An empty block of descriptors of length `dim`.
    pub fn new(dim: usize) -> Block {
        Block::with_capacity(dim, 0)
    }

    /// An empty block with room for `rows` objects, to avoid regrowing while collecting.
    pub fn with_capacity(dim: usize, rows: usize) -> Block {
        Block {
            ids: Vec::with_capacity(rows),
            dim,
            values: Vec::with_capacity(rows * dim),
        }
    }

    /// Appends one object; the descriptor is scaled to unit length (a zero vector stays
    /// zero, so its similarity to anything is 0). Panics if descriptor.len() != dim.
    pub fn push(&mut self, id: Uuid, descriptor: &[f32]) {
        assert_eq!(
            descriptor.len(),
            self.dim,
            "descriptor length {} does not match block dim {}",
            descriptor.len(),
            self.dim
        );
        // The norm in f64 neither overflows for large values nor loses the small ones, and
        // dividing in f64 rounds each component once: vectors whose unit form is exactly
        // representable come out exact, which the kernel's tie tests rely on.
        let norm = descriptor
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt();
        self.ids.push(id);
        if norm > 0.0 && norm.is_finite() {
            self.values
                .extend(descriptor.iter().map(|&v| (f64::from(v) / norm) as f32));
        } else {
            self.values.extend(std::iter::repeat_n(0.0, self.dim));
        }
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no objects.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Descriptor length.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Object ids, in row order.
    pub fn ids(&self) -> &[Uuid] {
        &self.ids
    }

    /// The unit descriptor of row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    /// All rows as one row-major buffer of `len() * dim()` values: what the kernel
    /// multiplies.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// A copy of rows `range`, values untouched (not renormalised): splitting a block into
    /// per-subtask pieces must not change a single similarity.
    pub fn slice(&self, range: Range<usize>) -> Block {
        Block {
            ids: self.ids[range.clone()].to_vec(),
            dim: self.dim,
            values: self.values[range.start * self.dim..range.end * self.dim].to_vec(),
        }
    }

    /// Binary form: a small header (magic, format version, dim, count), then ids (16
    /// bytes each), then little-endian f32 values.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.ids.len() * 16 + self.values.len() * 4);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.dim as u32).to_le_bytes());
        out.extend_from_slice(&(self.ids.len() as u64).to_le_bytes());
        for id in &self.ids {
            out.extend_from_slice(id.as_bytes());
        }
        for v in &self.values {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Reads the form [`Block::to_bytes`] writes, checking every size before allocating.
    pub fn from_bytes(bytes: &[u8]) -> Result<Block, BlockError> {
        if bytes.len() < HEADER_LEN {
            // Say "bad magic" rather than "truncated" for short garbage that is not even
            // the start of a block.
            let head = &bytes[..bytes.len().min(4)];
            if head != &MAGIC[..head.len()] {
                return Err(BlockError::BadMagic);
            }
            return Err(BlockError::Truncated {
                needed: HEADER_LEN,
                got: bytes.len(),
            });
        }
        if bytes[..4] != MAGIC {
            return Err(BlockError::BadMagic);
        }
        let version = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(BlockError::UnknownVersion(version));
        }
        let dim = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
        let count = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
        let expected = usize::try_from(count)
            .ok()
            .and_then(|count| {
                let row = 16usize.checked_add(dim.checked_mul(4)?)?;
                HEADER_LEN.checked_add(count.checked_mul(row)?)
            })
            .ok_or(BlockError::SizeMismatch {
                expected: usize::MAX,
                got: bytes.len(),
            })?;
        if bytes.len() < expected {
            return Err(BlockError::Truncated {
                needed: expected,
                got: bytes.len(),
            });
        }
        if bytes.len() > expected {
            return Err(BlockError::SizeMismatch {
                expected,
                got: bytes.len(),
            });
        }
        let count = count as usize;
        let ids_end = HEADER_LEN + count * 16;
        let ids = bytes[HEADER_LEN..ids_end]
            .chunks_exact(16)
            .map(|chunk| Uuid::from_bytes(chunk.try_into().expect("16 bytes")))
            .collect();
        let values: Vec<f32> = bytes[ids_end..]
            .chunks_exact(4)
            .map(|chunk| f32::from_le_bytes(chunk.try_into().expect("4 bytes")))
            .collect();
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            return Err(BlockError::NotFinite { index });
        }
        Ok(Block { ids, dim, values })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn block_from(rows: &[(u128, Vec<f32>)], dim: usize) -> Block {
        let mut block = Block::new(dim);
        for (id, descriptor) in rows {
            block.push(Uuid::from_u128(*id), descriptor);
        }
        block
    }

    #[test]
    fn push_normalises_and_keeps_zero_vectors_zero() {
        let block = block_from(&[(1, vec![3.0, 4.0]), (2, vec![0.0, 0.0])], 2);
        assert_eq!(block.len(), 2);
        assert_eq!(block.row(0), &[0.6, 0.8]);
        assert_eq!(block.row(1), &[0.0, 0.0]);
        assert_eq!(block.ids(), &[Uuid::from_u128(1), Uuid::from_u128(2)]);
    }

    #[test]
    fn push_keeps_huge_and_tiny_values_finite() {
        let block = block_from(&[(1, vec![3e38, 3e38]), (2, vec![1e-40, 0.0])], 2);
        let expected = std::f32::consts::FRAC_1_SQRT_2;
        assert!((block.row(0)[0] - expected).abs() < 1e-7);
        assert_eq!(block.row(1), &[1.0, 0.0]);
    }

    #[test]
    #[should_panic(expected = "does not match block dim")]
    fn push_rejects_a_wrong_length() {
        Block::new(3).push(Uuid::nil(), &[1.0, 2.0]);
    }

    #[test]
    fn slice_copies_rows_verbatim() {
        let block = block_from(
            &[
                (1, vec![1.0, 2.0]),
                (2, vec![3.0, 1.0]),
                (3, vec![0.5, 0.5]),
            ],
            2,
        );
        let part = block.slice(1..3);
        assert_eq!(part.ids(), &block.ids()[1..3]);
        assert_eq!(part.row(0), block.row(1));
        assert_eq!(part.row(1), block.row(2));
    }

    #[test]
    fn empty_block_round_trips() {
        for dim in [0, 7] {
            let block = Block::new(dim);
            let bytes = block.to_bytes();
            assert_eq!(bytes.len(), HEADER_LEN);
            assert_eq!(Block::from_bytes(&bytes).unwrap(), block);
        }
    }

    #[test]
    fn header_errors_are_named() {
        let block = block_from(&[(1, vec![1.0, 0.0, 0.0])], 3);
        let bytes = block.to_bytes();
        assert_eq!(Block::from_bytes(b"{\"a\""), Err(BlockError::BadMagic));
        assert_eq!(
            Block::from_bytes(&bytes[..10]),
            Err(BlockError::Truncated {
                needed: 20,
                got: 10
            })
        );
        let mut other = bytes.clone();
        other[0] = b'X';
        assert_eq!(Block::from_bytes(&other), Err(BlockError::BadMagic));
        let mut newer = bytes.clone();
        newer[4] = 2;
        assert_eq!(
            Block::from_bytes(&newer),
            Err(BlockError::UnknownVersion(2))
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            Block::from_bytes(&longer),
            Err(BlockError::SizeMismatch {
                expected: bytes.len(),
                got: bytes.len() + 1
            })
        );
        let mut huge = bytes.clone();
        huge[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            Block::from_bytes(&huge),
            Err(BlockError::SizeMismatch { .. })
        ));
        let mut nan = bytes.clone();
        let at = bytes.len() - 4;
        nan[at..].copy_from_slice(&f32::NAN.to_le_bytes());
        assert_eq!(
            Block::from_bytes(&nan),
            Err(BlockError::NotFinite { index: 2 })
        );
    }

    fn rows_strategy() -> impl Strategy<Value = (usize, Vec<(u128, Vec<f32>)>)> {
        (0usize..6).prop_flat_map(|dim| {
            let row = (any::<u128>(), prop::collection::vec(-1e3f32..1e3, dim));
            (Just(dim), prop::collection::vec(row, 0..12))
        })
    }

    proptest! {
        #[test]
        fn round_trips_through_bytes((dim, rows) in rows_strategy()) {
            let block = block_from(&rows, dim);
            let bytes = block.to_bytes();
            prop_assert_eq!(bytes.len(), HEADER_LEN + rows.len() * (16 + 4 * dim));
            prop_assert_eq!(Block::from_bytes(&bytes).unwrap(), block);
        }

        #[test]
        fn rejects_every_truncation((dim, rows) in rows_strategy(), cut in any::<prop::sample::Index>()) {
            let bytes = block_from(&rows, dim).to_bytes();
            let cut = cut.index(bytes.len());
            prop_assert!(Block::from_bytes(&bytes[..cut]).is_err());
        }

        #[test]
        fn garbled_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), magic in any::<bool>()) {
            let mut bytes = bytes;
            if magic && bytes.len() >= 8 {
                bytes[..4].copy_from_slice(&MAGIC);
                bytes[4..8].copy_from_slice(&VERSION.to_le_bytes());
            }
            if let Ok(block) = Block::from_bytes(&bytes) {
                prop_assert_eq!(block.to_bytes(), bytes);
            }
        }
    }
}
