//! Zip archives in S3 read entry by entry, through range requests: a client's upload (the
//! estimator's images) can be far larger than a worker's memory, so nothing here reads
//! the whole archive.
//!
//! [`entries`] reads the end of the archive (the end-of-central-directory record, and its
//! zip64 form when counts or offsets overflow 16/32 bits), then the central directory in
//! one range, and lists the files: name, where the local header starts, sizes, method.
//! [`read_entry`] reads one entry's local header and data (two range requests), inflates
//! it with at most `max_size + 1` bytes of output held (a zip bomb stops at the bound),
//! and checks its size and CRC-32 against the directory. Stored and deflated entries are
//! read; encrypted entries and other methods are refused by name.

use std::io::Read;

use serde::{Deserialize, Serialize};

use super::blobs;
use crate::Services;
use crate::error::ApiError;

const EOCD_SIGNATURE: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIGNATURE: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIGNATURE: u32 = 0x0606_4b50;
const CENTRAL_SIGNATURE: u32 = 0x0201_4b50;
const LOCAL_SIGNATURE: u32 = 0x0403_4b50;
const EOCD_LEN: usize = 22;
const ZIP64_LOCATOR_LEN: usize = 20;
const ZIP64_EOCD_LEN: usize = 56;
const CENTRAL_LEN: usize = 46;
const LOCAL_LEN: usize = 30;
/// The end record sits within its 22 bytes and a comment of at most 65,535 bytes, after
/// which a zip64 locator may precede it.
const TAIL_MAX: u64 = (EOCD_LEN + u16::MAX as usize + ZIP64_LOCATOR_LEN) as u64;
/// The largest central directory read (about 400,000 entries with 100-byte names).
pub const DIRECTORY_MAX: u64 = 64 << 20;

/// One file of an archive, as its central directory describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Path inside the archive.
    pub name: String,
    /// Offset of its local header.
    pub offset: u64,
    /// Size of its data as stored.
    pub compressed: u64,
    /// Size of its data once inflated.
    pub size: u64,
    /// 0 stored, 8 deflated.
    pub method: u16,
    /// CRC-32 of the inflated data.
    pub crc: u32,
    /// Bit 0 of the flags: encrypted.
    #[serde(default)]
    pub encrypted: bool,
}

impl Entry {
    /// A directory entry (its name ends with `/`), which holds no data.
    pub fn is_directory(&self) -> bool {
        self.name.ends_with('/')
    }
}

/// Why an archive or one of its entries cannot be read: a client's fault, shown with
/// the archive's or the entry's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnzipError {
    /// No end-of-central-directory record: not a zip archive, or cut short.
    #[error("not a zip archive (no end of central directory record)")]
    NotZip,
    /// The directory or an entry's header contradicts itself or the archive's size.
    #[error("corrupt zip archive: {0}")]
    Corrupt(String),
    /// Multi-disk archives are not read.
    #[error("multi-part zip archives are not supported")]
    MultiDisk,
    /// The central directory is larger than [`DIRECTORY_MAX`].
    #[error("zip central directory of {0} bytes is over the limit")]
    DirectoryTooLarge(u64),
    /// Encrypted, or compressed with a method other than stored or deflate.
    #[error("entry uses an unsupported {0}")]
    Unsupported(String),
    /// Inflates to more than the allowed size.
    #[error("entry inflates to more than {0} bytes")]
    TooLarge(u64),
    /// Its inflated size or CRC-32 differs from the directory's.
    #[error("entry data is corrupt: {0}")]
    BadData(String),
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("four bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("eight bytes"))
}

/// Where the central directory is and how many entries it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Directory {
    /// Entries in the archive.
    pub count: u64,
    /// Offset of the central directory.
    pub offset: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// What the tail of an archive says: the directory, or the offset of a zip64 end record
/// still to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// The classic end record was enough.
    Directory(Directory),
    /// The zip64 end record lies at this offset.
    Zip64At(u64),
}

/// Finds the end record in the last bytes of an archive (`tail`, which ends where the
/// archive ends).
pub fn parse_tail(tail: &[u8]) -> Result<Tail, UnzipError> {
    if tail.len() < EOCD_LEN {
        return Err(UnzipError::NotZip);
    }
    // The last signature whose comment length reaches exactly to the end.
    let at = (0..=tail.len() - EOCD_LEN)
        .rev()
        .find(|&i| {
            u32_at(tail, i) == EOCD_SIGNATURE
                && i + EOCD_LEN + usize::from(u16_at(tail, i + 20)) == tail.len()
        })
        .ok_or(UnzipError::NotZip)?;
    let record = &tail[at..];
    if u16_at(record, 4) != 0 && u16_at(record, 4) != u16::MAX {
        return Err(UnzipError::MultiDisk);
    }
    let count = u16_at(record, 10);
    let size = u32_at(record, 12);
    let offset = u32_at(record, 16);
    let overflows = count == u16::MAX || size == u32::MAX || offset == u32::MAX;
    if at >= ZIP64_LOCATOR_LEN && u32_at(tail, at - ZIP64_LOCATOR_LEN) == ZIP64_LOCATOR_SIGNATURE {
        return Ok(Tail::Zip64At(u64_at(tail, at - ZIP64_LOCATOR_LEN + 8)));
    }
    if overflows {
        return Err(UnzipError::Corrupt(
            "zip64 values without a zip64 locator".into(),
        ));
    }
    Ok(Tail::Directory(Directory {
        count: u64::from(count),
        offset: u64::from(offset),
        size: u64::from(size),
    }))
}

/// Reads a zip64 end-of-central-directory record.
pub fn parse_zip64_end(record: &[u8]) -> Result<Directory, UnzipError> {
    if record.len() < ZIP64_EOCD_LEN || u32_at(record, 0) != ZIP64_EOCD_SIGNATURE {
        return Err(UnzipError::Corrupt("bad zip64 end record".into()));
    }
    if u32_at(record, 16) != 0 {
        return Err(UnzipError::MultiDisk);
    }
    Ok(Directory {
        count: u64_at(record, 32),
        size: u64_at(record, 40),
        offset: u64_at(record, 48),
    })
}

/// Lists the entries of a central directory (`bytes`, exactly the directory).
pub fn parse_directory(bytes: &[u8], count: u64) -> Result<Vec<Entry>, UnzipError> {
    let corrupt = |what: &str| UnzipError::Corrupt(what.to_string());
    let mut entries = Vec::with_capacity(count.min(1 << 20) as usize);
    let mut at = 0usize;
    for _ in 0..count {
        if at + CENTRAL_LEN > bytes.len() || u32_at(bytes, at) != CENTRAL_SIGNATURE {
            return Err(corrupt("central directory ends early"));
        }
        let h = &bytes[at..];
        let flags = u16_at(h, 8);
        let method = u16_at(h, 10);
        let crc = u32_at(h, 16);
        let mut compressed = u64::from(u32_at(h, 20));
        let mut size = u64::from(u32_at(h, 24));
        let name_len = usize::from(u16_at(h, 28));
        let extra_len = usize::from(u16_at(h, 30));
        let comment_len = usize::from(u16_at(h, 32));
        let mut offset = u64::from(u32_at(h, 42));
        let end = CENTRAL_LEN + name_len + extra_len + comment_len;
        if h.len() < end {
            return Err(corrupt("central directory entry ends early"));
        }
        let name = String::from_utf8_lossy(&h[CENTRAL_LEN..CENTRAL_LEN + name_len]).into_owned();
        // Zip64 extended information: the 8-byte values of the fields that overflowed,
        // in the order size, compressed size, offset.
        let mut extra = &h[CENTRAL_LEN + name_len..CENTRAL_LEN + name_len + extra_len];
        while extra.len() >= 4 {
            let id = u16_at(extra, 0);
            let len = usize::from(u16_at(extra, 2));
            if extra.len() < 4 + len {
                return Err(corrupt("extra field ends early"));
            }
            if id == 0x0001 {
                let mut field = &extra[4..4 + len];
                for value in [&mut size, &mut compressed, &mut offset] {
                    if *value == u64::from(u32::MAX) {
                        if field.len() < 8 {
                            return Err(corrupt("zip64 extra field too short"));
                        }
                        *value = u64_at(field, 0);
                        field = &field[8..];
                    }
                }
            }
            extra = &extra[4 + len..];
        }
        entries.push(Entry {
            name,
            offset,
            compressed,
            size,
            method,
            crc,
            encrypted: flags & 1 == 1,
        });
        at += end;
    }
    Ok(entries)
}

/// What reading an archive gives: a service failure outside, the archive's own problem
/// (the client's, to be shown with its name) inside.
pub type Unzipped<T> = Result<Result<T, UnzipError>, ApiError>;

/// The entries of the zip archive at `key` (directories included), or why the archive
/// cannot be read; `None` when there is no such object.
pub async fn entries(
    svc: &Services,
    key: &str,
) -> Result<Option<Result<Vec<Entry>, UnzipError>>, ApiError> {
    let Some(head) = blobs::head(svc, key).await? else {
        return Ok(None);
    };
    let len = head.size;
    let start = len.saturating_sub(TAIL_MAX);
    let Some(tail) = blobs::get_range(svc, key, start, len).await? else {
        return Ok(None);
    };
    let directory = match parse_tail(&tail) {
        Err(err) => return Ok(Some(Err(err))),
        Ok(Tail::Directory(d)) => d,
        Ok(Tail::Zip64At(at)) => {
            if at + ZIP64_EOCD_LEN as u64 > len {
                return Ok(Some(Err(UnzipError::Corrupt(
                    "zip64 end record beyond the archive".into(),
                ))));
            }
            let record = blobs::get_range(svc, key, at, at + ZIP64_EOCD_LEN as u64)
                .await?
                .unwrap_or_default();
            match parse_zip64_end(&record) {
                Ok(d) => d,
                Err(err) => return Ok(Some(Err(err))),
            }
        }
    };
    if directory.size > DIRECTORY_MAX {
        return Ok(Some(Err(UnzipError::DirectoryTooLarge(directory.size))));
    }
    if directory.offset + directory.size > len {
        return Ok(Some(Err(UnzipError::Corrupt(
            "central directory beyond the archive".into(),
        ))));
    }
    let bytes = blobs::get_range(
        svc,
        key,
        directory.offset,
        directory.offset + directory.size,
    )
    .await?
    .unwrap_or_default();
    Ok(Some(parse_directory(&bytes, directory.count)))
}

/// Inflates one entry's stored data (`data`, exactly its compressed bytes), holding at
/// most `max_size + 1` bytes, and checks size and CRC-32 against the directory.
pub fn inflate(entry: &Entry, data: &[u8], max_size: u64) -> Result<Vec<u8>, UnzipError> {
    if entry.encrypted {
        return Err(UnzipError::Unsupported("encryption".into()));
    }
    if entry.size > max_size {
        return Err(UnzipError::TooLarge(max_size));
    }
    let mut out = Vec::with_capacity(entry.size.min(max_size) as usize);
    match entry.method {
        0 => out.extend_from_slice(data),
        8 => {
            flate2::read::DeflateDecoder::new(data)
                .take(max_size + 1)
                .read_to_end(&mut out)
                .map_err(|e| UnzipError::BadData(e.to_string()))?;
        }
        other => {
            return Err(UnzipError::Unsupported(format!(
                "compression method {other}"
            )));
        }
    }
    if out.len() as u64 > max_size {
        return Err(UnzipError::TooLarge(max_size));
    }
    if out.len() as u64 != entry.size {
        return Err(UnzipError::BadData(format!(
            "{} bytes inflated, the directory says {}",
            out.len(),
            entry.size
        )));
    }
    if crc32fast::hash(&out) != entry.crc {
        return Err(UnzipError::BadData("CRC-32 mismatch".into()));
    }
    Ok(out)
}

/// Reads and inflates one entry of the archive at `key` (at most `max_size` bytes
/// inflated); `None` when the archive is gone.
pub async fn read_entry(
    svc: &Services,
    key: &str,
    entry: &Entry,
    max_size: u64,
) -> Unzipped<Option<Vec<u8>>> {
    if entry.encrypted {
        return Ok(Err(UnzipError::Unsupported("encryption".into())));
    }
    let Some(header) =
        blobs::get_range(svc, key, entry.offset, entry.offset + LOCAL_LEN as u64).await?
    else {
        return Ok(Ok(None));
    };
    if header.len() < LOCAL_LEN || u32_at(&header, 0) != LOCAL_SIGNATURE {
        return Ok(Err(UnzipError::Corrupt(format!(
            "no local header at offset {}",
            entry.offset
        ))));
    }
    let skip = LOCAL_LEN as u64 + u64::from(u16_at(&header, 26)) + u64::from(u16_at(&header, 28));
    let start = entry.offset + skip;
    let Some(data) = blobs::get_range(svc, key, start, start + entry.compressed).await? else {
        return Ok(Ok(None));
    };
    if data.len() as u64 != entry.compressed {
        return Ok(Err(UnzipError::Corrupt("entry data ends early".into())));
    }
    Ok(inflate(entry, &data, max_size).map(Some))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};
    use zip::write::SimpleFileOptions;

    fn archive(files: &[(&str, &[u8], zip::CompressionMethod)], comment: &str) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data, method) in files {
            writer
                .start_file(
                    *name,
                    SimpleFileOptions::default().compression_method(*method),
                )
                .unwrap();
            writer.write_all(data).unwrap();
        }
        writer.set_comment(comment.to_string()).unwrap();
        writer.finish().unwrap().into_inner()
    }

    fn read_all(bytes: &[u8]) -> Vec<(Entry, Result<Vec<u8>, UnzipError>)> {
        let tail_start = bytes.len().saturating_sub(TAIL_MAX as usize);
        let Tail::Directory(d) = parse_tail(&bytes[tail_start..]).unwrap() else {
            panic!("small archives have no zip64 end");
        };
        let dir = &bytes[d.offset as usize..(d.offset + d.size) as usize];
        parse_directory(dir, d.count)
            .unwrap()
            .into_iter()
            .map(|e| {
                let h = &bytes[e.offset as usize..];
                let skip = LOCAL_LEN + usize::from(u16_at(h, 26)) + usize::from(u16_at(h, 28));
                let data = &h[skip..skip + e.compressed as usize];
                let out = inflate(&e, data, 1 << 20);
                (e, out)
            })
            .collect()
    }

    #[test]
    fn stored_and_deflated_entries_read_back() {
        let big = vec![7u8; 100_000];
        let bytes = archive(
            &[
                ("a/one.jpg", b"first", zip::CompressionMethod::Stored),
                ("two.png", &big, zip::CompressionMethod::Deflated),
            ],
            "a comment with PK\x05\x06 inside",
        );
        let read = read_all(&bytes);
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].0.name, "a/one.jpg");
        assert_eq!(read[0].1.as_deref().unwrap(), b"first");
        assert_eq!(read[1].0.method, 8);
        assert!(read[1].0.compressed < 1000);
        assert_eq!(read[1].1.as_deref().unwrap(), big.as_slice());
    }

    #[test]
    fn bombs_and_corruption_are_refused() {
        let big = vec![0u8; 2 << 20];
        let bytes = archive(&[("bomb.jpg", &big, zip::CompressionMethod::Deflated)], "");
        let read = read_all(&bytes);
        assert_eq!(read[0].1, Err(UnzipError::TooLarge(1 << 20)));
        // A lying directory (claims a small size) still stops at the bound.
        let mut liar = read[0].0.clone();
        liar.size = 10;
        let h = &bytes[liar.offset as usize..];
        let skip = LOCAL_LEN + usize::from(u16_at(h, 26)) + usize::from(u16_at(h, 28));
        let data = &h[skip..skip + liar.compressed as usize];
        assert_eq!(
            inflate(&liar, data, 1 << 20),
            Err(UnzipError::TooLarge(1 << 20))
        );
        // A flipped byte of stored data fails the CRC.
        let ok = archive(
            &[("x.jpg", b"hello world", zip::CompressionMethod::Stored)],
            "",
        );
        let read = read_all(&ok);
        let e = &read[0].0;
        let mut data = b"hello world".to_vec();
        data[0] ^= 1;
        assert!(matches!(
            inflate(e, &data, 100),
            Err(UnzipError::BadData(_))
        ));
        assert_eq!(
            parse_tail(b"not a zip at all, clearly not"),
            Err(UnzipError::NotZip)
        );
        assert!(parse_directory(&[0u8; 10], 1).is_err());
    }

    #[test]
    fn zip64_end_records_are_followed() {
        // 70,000 empty entries force the zip64 end record.
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for i in 0..70_000 {
            writer
                .start_file(format!("{i}"), SimpleFileOptions::default())
                .unwrap();
        }
        let bytes = writer.finish().unwrap().into_inner();
        let tail_start = bytes.len().saturating_sub(TAIL_MAX as usize);
        let Tail::Zip64At(at) = parse_tail(&bytes[tail_start..]).unwrap() else {
            panic!("expected a zip64 end record");
        };
        let d = parse_zip64_end(&bytes[at as usize..]).unwrap();
        assert_eq!(d.count, 70_000);
        let dir = &bytes[d.offset as usize..(d.offset + d.size) as usize];
        let entries = parse_directory(dir, d.count).unwrap();
        assert_eq!(entries[69_999].name, "69999");
    }
}
