//! Zip archives of task results, written to S3 while they are built.
//!
//! A result archive (hundreds of thousands of CSV rows, thousands of images) can be far
//! larger than a worker's memory, so [`ZipUpload`] never holds it, nor one of its entries:
//! the `zip` crate's streaming writer ([`ZipWriter::new_stream`]) writes each entry's
//! header, then its data, then a data descriptor with the CRC and sizes, so nothing already
//! written is revisited. It writes into a `Spool` that [`ZipUpload`] empties into a
//! [`MultipartUpload`] after every call, and data goes in at most `CHUNK` (64 KiB) at a
//! time, so memory is one S3 part buffer, one chunk, and a central directory record per
//! entry (about a hundred bytes and the name), which the writer keeps until
//! [`ZipUpload::finish`] writes them out, in one piece, before they go into parts.
//!
//! Zip64: the writer switches the end of the archive to zip64 by itself when there are
//! more than 65,535 entries or the central directory lies beyond 4 GiB, and records an
//! entry's offset in zip64 form when the entry starts beyond 4 GiB. Only the sizes of an
//! entry must be chosen before it is written: zip64 sizes (`large_file`) cost 48 bytes per
//! entry and shut out readers without zip64, so an entry gets them only when it is known
//! to be large: when it is filled, from its first byte, by one S3 object
//! ([`ZipUpload::copy_object`], [`ZipUpload::copy_entries`]) of `ZIP64_ENTRY_FROM` (4 GB)
//! or more. An entry filled by [`ZipUpload::write`] has no known size and is limited to
//! 4 GiB; the writer fails rather than write a corrupt entry beyond.
//!
//! Every entry is dated with the time the archive began (UTC; zip has no time zones).

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

use aws_sdk_s3::primitives::ByteStream;
use chrono::{Datelike, Timelike, Utc};
use zip::write::{SimpleFileOptions, StreamWriter};
use zip::{CompressionMethod, DateTime, ZipWriter};

use super::dynamo::aws_error;
use super::multipart::MultipartUpload;
use crate::Services;
use crate::error::ApiError;

/// Most bytes handed to the zip writer at once, so what it produces between two moves
/// to the upload stays small.
const CHUNK: usize = 64 * 1024;

/// Entries of this length or more get zip64 sizes. It is below 4 GiB (the largest size
/// of the 32-bit fields) by 295 MB, room for deflate growing incompressible data.
const ZIP64_ENTRY_FROM: u64 = 4_000_000_000;

/// How an entry is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// As is: for data already compressed, such as JPEG or PNG images.
    Stored,
    /// Deflated: for text, such as CSV.
    Deflated,
}

/// A zip archive written to S3 as it is built (entries with data descriptors; zip64
/// when needed, e.g. more than 65,535 entries or > 4 GiB).
///
/// Calls go in order: [`ZipUpload::start_file`], then the entry's data through
/// [`ZipUpload::write`] or [`ZipUpload::copy_object`], then the next entry; or
/// [`ZipUpload::copy_entries`] for many entries at once; then [`ZipUpload::finish`]. After
/// an error, [`ZipUpload::abort`] it.
pub struct ZipUpload<'a> {
    svc: &'a Services,
    upload: MultipartUpload<'a>,
    zip: ZipStream<Spool>,
    /// The writer's sink, shared with it: what it wrote and the upload has not yet.
    spool: Spool,
}

impl<'a> ZipUpload<'a> {
    /// Begins `key` with content type application/zip.
    pub async fn begin(svc: &'a Services, key: &str) -> Result<Self, ApiError> {
        let upload = MultipartUpload::begin(svc, key, "application/zip").await?;
        let spool = Spool::default();
        Ok(ZipUpload {
            svc,
            upload,
            zip: ZipStream::new(spool.clone(), dos_time(Utc::now())),
            spool,
        })
    }

    /// Ends the current entry (if any) and starts entry `name`.
    pub async fn start_file(
        &mut self,
        name: &str,
        compression: Compression,
    ) -> Result<(), ApiError> {
        self.zip
            .start_file(name, compression)
            .map_err(|e| ApiError::internal("zip start_file", e))?;
        self.flush().await
    }

    /// Appends to the current entry.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), ApiError> {
        for chunk in bytes.chunks(CHUNK) {
            self.zip
                .write(chunk)
                .map_err(|e| ApiError::internal("zip write", e))?;
            self.flush().await?;
        }
        Ok(())
    }

    /// Appends the whole body of S3 object `key` (same bucket) to the current entry,
    /// streamed chunk by chunk (never collected whole); returns its length. A missing
    /// object is an [`ApiError::internal`].
    pub async fn copy_object(&mut self, key: &str) -> Result<u64, ApiError> {
        let (len, mut body) = self.get_object(key).await?;
        self.open_entry(len)?;
        let mut copied = 0;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| ApiError::internal("s3 get_object body", e))?
        {
            self.write(&chunk).await?;
            copied += chunk.len() as u64;
        }
        Ok(copied)
    }

    /// Splits S3 object `key` into consecutive entries: for each `(name, len)` in
    /// `entries`, starts entry `name` ([`Compression::Stored`]) and copies the next `len`
    /// bytes of the object into it, streaming. The object's length must equal the sum
    /// (else an [`ApiError::internal`]).
    pub async fn copy_entries(
        &mut self,
        key: &str,
        entries: &[(String, u64)],
    ) -> Result<(), ApiError> {
        let (len, mut body) = self.get_object(key).await?;
        let expected: u64 = entries.iter().map(|(_, len)| len).sum();
        if len != expected {
            return Err(ApiError::internal(
                "zip copy_entries",
                format!("{key} has {len} bytes, its entries {expected}"),
            ));
        }
        // What a chunk of the body held beyond the entry it was read for.
        let mut carry = None;
        for (name, len) in entries {
            self.start_file(name, Compression::Stored).await?;
            self.open_entry(*len)?;
            let mut left = *len;
            while left > 0 {
                let mut chunk = match carry.take() {
                    Some(chunk) => chunk,
                    None => body
                        .try_next()
                        .await
                        .map_err(|e| ApiError::internal("s3 get_object body", e))?
                        .ok_or_else(|| {
                            ApiError::internal("s3 get_object body", format!("{key} ended early"))
                        })?,
                };
                let take = left.min(chunk.len() as u64) as usize;
                let rest = chunk.split_off(take);
                self.write(&chunk).await?;
                left -= take as u64;
                if !rest.is_empty() {
                    carry = Some(rest);
                }
            }
        }
        Ok(())
    }

    /// Writes the central directory and completes the upload; returns the archive size.
    ///
    /// On failure the upload is aborted.
    pub async fn finish(self) -> Result<u64, ApiError> {
        let ZipUpload {
            mut upload,
            zip,
            spool,
            ..
        } = self;
        let ended = match zip.finish() {
            Ok(()) => upload.write(&spool.take()).await,
            Err(err) => Err(ApiError::internal("zip finish", err)),
        };
        match ended {
            Ok(()) => upload.finish().await,
            Err(err) => {
                upload.abort().await;
                Err(err)
            }
        }
    }

    /// Aborts the upload.
    pub async fn abort(self) {
        self.upload.abort().await;
    }

    /// Opens the started entry, expecting `len` bytes, so a large one gets zip64 sizes.
    fn open_entry(&mut self, len: u64) -> Result<(), ApiError> {
        self.zip
            .open_entry(len)
            .map_err(|e| ApiError::internal("zip start_file", e))
    }

    /// Moves what the writer produced into the upload.
    async fn flush(&mut self) -> Result<(), ApiError> {
        let bytes = self.spool.take();
        self.upload.write(&bytes).await
    }

    /// The length and body of object `key`; a missing object is an internal error.
    async fn get_object(&self, key: &str) -> Result<(u64, ByteStream), ApiError> {
        let out = self
            .svc
            .aws
            .s3
            .get_object()
            .bucket(&self.svc.config.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| ApiError::internal("s3 get_object", aws_error(&e)))?;
        let len = out.content_length.unwrap_or(0).max(0) as u64;
        Ok((len, out.body))
    }
}

/// The zip writer's sink: a buffer it shares with [`ZipUpload`], which empties it into the
/// upload after each call (the writer is synchronous, the upload is not).
#[derive(Clone, Default)]
struct Spool(Arc<Mutex<Vec<u8>>>);

impl Spool {
    /// Takes everything written so far.
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut spooled = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        spooled.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The synchronous half of [`ZipUpload`]: a streaming zip writer into any sink, which
/// decides each entry's options.
///
/// A started entry is opened (its local header written) only when its data or the next
/// entry comes, so that an entry filled from an object of known length can be opened with
/// zip64 sizes when that length needs them.
struct ZipStream<W: Write> {
    zip: ZipWriter<StreamWriter<W>>,
    /// Modification time of every entry.
    modified: DateTime,
    /// The entry started but not opened yet.
    started: Option<(String, Compression)>,
}

impl<W: Write> ZipStream<W> {
    /// An empty archive whose entries are dated `modified`.
    fn new(sink: W, modified: DateTime) -> Self {
        ZipStream {
            zip: ZipWriter::new_stream(sink),
            modified,
            started: None,
        }
    }

    /// Ends the current entry and starts entry `name`.
    fn start_file(&mut self, name: &str, compression: Compression) -> zip::result::ZipResult<()> {
        // An entry started and never written to is still an (empty) entry.
        self.open_entry(0)?;
        self.started = Some((name.to_string(), compression));
        Ok(())
    }

    /// Opens the started entry, if not yet open, for `len` bytes (0 when unknown).
    fn open_entry(&mut self, len: u64) -> zip::result::ZipResult<()> {
        let Some((name, compression)) = self.started.take() else {
            return Ok(());
        };
        let method = match compression {
            Compression::Stored => CompressionMethod::Stored,
            Compression::Deflated => CompressionMethod::Deflated,
        };
        let options = SimpleFileOptions::default()
            .compression_method(method)
            .last_modified_time(self.modified)
            .large_file(len >= ZIP64_ENTRY_FROM);
        self.zip.start_file(name, options)
    }

    /// Appends to the current entry.
    fn write(&mut self, bytes: &[u8]) -> zip::result::ZipResult<()> {
        self.open_entry(0)?;
        self.zip.write_all(bytes)?;
        Ok(())
    }

    /// Ends the last entry and writes the central directory.
    fn finish(mut self) -> zip::result::ZipResult<()> {
        self.open_entry(0)?;
        self.zip.finish()?;
        Ok(())
    }
}

/// `now` as a zip (MS-DOS) time; the zip epoch, 1980-01-01, if outside 1980..=2107.
fn dos_time(now: chrono::DateTime<Utc>) -> DateTime {
    let (year, month, day) = (now.year(), now.month() as u8, now.day() as u8);
    let (hour, minute, second) = (now.hour() as u8, now.minute() as u8, now.second() as u8);
    u16::try_from(year)
        .ok()
        .and_then(|year| DateTime::from_date_and_time(year, month, day, hour, minute, second).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Read};

    use zip::ZipArchive;

    use super::*;

    /// Builds an archive the way [`ZipUpload`] does: through a spool emptied after every
    /// call into what stands for the upload.
    struct Built {
        zip: ZipStream<Spool>,
        spool: Spool,
        out: Vec<u8>,
    }

    impl Built {
        fn new() -> Self {
            let spool = Spool::default();
            let modified = dos_time(Utc::now());
            Built {
                zip: ZipStream::new(spool.clone(), modified),
                spool,
                out: Vec::new(),
            }
        }

        fn start(&mut self, name: &str, compression: Compression) {
            self.zip.start_file(name, compression).unwrap();
            self.out.extend(self.spool.take());
        }

        fn write(&mut self, bytes: &[u8]) {
            for chunk in bytes.chunks(CHUNK) {
                self.zip.write(chunk).unwrap();
                let produced = self.spool.take();
                // What waits for the upload stays within a chunk and the encoder's buffer.
                assert!(produced.len() <= 2 * CHUNK, "{} bytes", produced.len());
                self.out.extend(produced);
            }
        }

        fn finish(mut self) -> ZipArchive<Cursor<Vec<u8>>> {
            self.zip.finish().unwrap();
            self.out.extend(self.spool.take());
            ZipArchive::new(Cursor::new(self.out)).unwrap()
        }
    }

    fn read(archive: &mut ZipArchive<Cursor<Vec<u8>>>, index: usize) -> (String, Vec<u8>) {
        let mut file = archive.by_index(index).unwrap();
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).unwrap();
        (file.name().unwrap().to_string(), bytes)
    }

    /// Bytes that deflate cannot shrink much (xorshift), so chunks stay chunk-sized.
    fn noise(len: usize) -> Vec<u8> {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    /// CRC-32 (IEEE), bit by bit: an oracle independent of the zip crate.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn entries_read_back_with_names_methods_and_contents() {
        let csv = "id,name\n".to_string() + &"1,alice\n2,bob\n".repeat(1000);
        let mut built = Built::new();
        built.start("rows.csv", Compression::Deflated);
        built.write(csv.as_bytes());
        built.start("empty.txt", Compression::Stored);
        built.start("images/a.jpg", Compression::Stored);
        built.write(&[0xFF, 0xD8, 0xFF, 0xD9]);
        let mut archive = built.finish();

        assert_eq!(archive.len(), 3);
        assert_eq!(read(&mut archive, 0), ("rows.csv".into(), csv.into_bytes()));
        assert_eq!(read(&mut archive, 1), ("empty.txt".into(), Vec::new()));
        assert_eq!(
            read(&mut archive, 2),
            ("images/a.jpg".into(), vec![0xFF, 0xD8, 0xFF, 0xD9])
        );
        let rows = archive.by_index(0).unwrap();
        assert_eq!(rows.compression(), CompressionMethod::Deflated);
        assert!(rows.compressed_size() < rows.size() / 10);
        drop(rows);
        assert_eq!(
            archive.by_index(2).unwrap().compression(),
            CompressionMethod::Stored
        );
    }

    #[test]
    fn an_archive_without_entries_is_valid() {
        let archive = Built::new().finish();
        assert_eq!(archive.len(), 0);
    }

    #[test]
    fn crc_of_an_entry_written_in_many_chunks_matches() {
        let data = noise(5 * CHUNK + 123);
        for compression in [Compression::Stored, Compression::Deflated] {
            let mut built = Built::new();
            built.start("noise.bin", compression);
            built.write(&data);
            let mut archive = built.finish();
            assert_eq!(archive.by_index(0).unwrap().crc32(), crc32(&data));
            // Reading to the end checks the CRC again, against the data.
            assert_eq!(read(&mut archive, 0).1, data);
        }
    }

    #[test]
    fn more_than_65535_entries_read_back() {
        const ENTRIES: usize = 70_000;
        let mut built = Built::new();
        for i in 0..ENTRIES {
            built.start(&format!("{i}.txt"), Compression::Stored);
            built.write(i.to_string().as_bytes());
        }
        let mut archive = built.finish();
        assert_eq!(archive.len(), ENTRIES);
        for i in [0, 65_534, 65_535, 65_536, ENTRIES - 1] {
            assert_eq!(
                read(&mut archive, i),
                (format!("{i}.txt"), i.to_string().into_bytes())
            );
        }
    }

    #[test]
    fn an_entry_opened_as_large_reads_back() {
        let mut built = Built::new();
        built.start("big.bin", Compression::Stored);
        built.zip.open_entry(ZIP64_ENTRY_FROM).unwrap();
        built.write(b"not that big");
        built.start("small.txt", Compression::Deflated);
        built.write(b"small");
        let mut archive = built.finish();
        assert_eq!(read(&mut archive, 0).1, b"not that big");
        assert_eq!(read(&mut archive, 1).1, b"small");
        // A local header is 30 fixed bytes, extra field length at 28, then the name and the
        // extra fields: the large entry's start with zip64 (id 0x0001), the small one has none.
        let second = archive.by_index(1).unwrap().header_start() as usize;
        let bytes = archive.into_inner().into_inner();
        let extra = 30 + "big.bin".len();
        assert_eq!(bytes[extra..extra + 2], [1, 0]);
        assert_eq!(bytes[second + 28..second + 30], [0, 0]);
    }

    #[test]
    fn dos_time_keeps_the_time_or_falls_back_to_the_zip_epoch() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-03-04T05:06:08Z")
            .unwrap()
            .with_timezone(&Utc);
        let time = dos_time(now);
        assert_eq!((time.year(), time.month(), time.day()), (2026, 3, 4));
        assert_eq!((time.hour(), time.minute(), time.second()), (5, 6, 8));
        let far = chrono::DateTime::parse_from_rfc3339("2200-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(dos_time(far), DateTime::default());
    }
}
