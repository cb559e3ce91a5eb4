//! Videos through Debian's `ffprobe` and `ffmpeg` (5.1) run as child processes: what a
//! video holds ([`probe`]), its split into time ranges that start on keyframes
//! ([`plan_segments`]), and the sampled, scaled RGB frames of one range ([`FrameReader`]).
//!
//! The input is a local path or an http(s) URL (a presigned S3 URL: ffmpeg seeks with
//! Range requests). A frame belongs to exactly one segment and its number is counted from
//! the start of the whole video, so any split of a video yields the same frames: each
//! segment's decoder seeks to the keyframe its range starts on, keeps timestamps absolute
//! (`-copyts`) and selects frames by the same arithmetic on them as this module does.

use std::collections::VecDeque;
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::vision::geometry::Rgb;

/// The decoder's stderr lines kept for error messages.
const LOG_LINES: usize = 20;
/// How far past a segment's end the decoder's `trim` stops it: a margin above the
/// microsecond and time-base rounding of `trim`, so that only `select` decides which
/// frames near the end are kept.
const TRIM_MARGIN: f64 = 0.01;
/// The network read timeout for http(s) inputs, microseconds.
const RW_TIMEOUT_US: &str = "60000000";

/// Why a video could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// No video stream: not a media file, unreadable, damaged, or audio or a still image.
    #[error("the file is not a readable video: {0}")]
    NoVideo(String),
    /// `ffprobe` did not answer in the time given.
    #[error(
        "reading the video's metadata took too long (the file may be unreachable or too slow to read)"
    )]
    Timeout,
    /// `ffmpeg` or `ffprobe` could not be started.
    #[error("ffmpeg could not be started ({0}): install Debian's ffmpeg package")]
    Spawn(#[source] std::io::Error),
    /// The decoder failed or stopped early.
    #[error("the video does not decode: {0}")]
    Decode(String),
}

/// What ffprobe says of a video's first video stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// Seconds: the container's duration, else the stream's.
    pub duration: f64,
    /// Frames a second: the stream's average frame rate, else its base rate.
    pub frame_rate: f64,
    /// Frames: the stream's count when given, else `round(duration × frame_rate)`.
    pub frame_count: u64,
    /// Width of the frames as displayed (after any rotation the stream declares).
    pub width: u32,
    /// Height of the frames as displayed.
    pub height: u32,
    /// The codec's ffmpeg name (`h264`, `hevc`, `vp9`, …).
    pub codec: String,
    /// The stream's first timestamp, seconds (0 when absent).
    pub start_time: f64,
    /// Timestamps (seconds) of the keyframe packets, ascending.
    pub keyframes: Vec<f64>,
}

/// Runs `ffprobe` on `input` (a path or an http(s) URL) for its first video stream and
/// its keyframes, both within `timeout`. The keyframes come from demuxing every packet
/// (nothing is decoded): fast, but a URL's whole file crosses the network once.
pub async fn probe(input: &str, timeout: Duration) -> Result<Probe, MediaError> {
    probe_as(input, Container::File, timeout).await
}

/// What an input may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// A file in one of [`FILE_FORMATS`]: a playlist (HLS, DASH, concat) would have
    /// ffmpeg read its entries from wherever they point, unchecked (`outbound`).
    File,
    /// A live source given by a stream's URL: whatever ffmpeg reads.
    Live,
}

/// The demuxers a video file may need: MP4/MOV, Matroska/WebM, MPEG-TS and -PS, AVI,
/// FLV, ASF/WMV, MXF, NUT, Ogg, IVF and raw H.264/HEVC/MPEG-4/MJPEG streams.
const FILE_FORMATS: &str = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,mpegts,mpeg,avi,flv,asf,mxf,nut,ogg,ivf,h264,hevc,m4v,mjpeg";

/// [`probe`] of an input that may be `container`.
pub async fn probe_as(
    input: &str,
    container: Container,
    timeout: Duration,
) -> Result<Probe, MediaError> {
    let mut metadata = probe_command(input, container);
    metadata.args(["-v", "error", "-of", "json"]);
    metadata.args(["-show_format", "-show_streams"]);
    metadata.args(["-select_streams", "v:0", "-i", input]);
    let mut packets = probe_command(input, container);
    packets.args(["-v", "level+error", "-select_streams", "v:0"]);
    packets.args(["-show_entries", "packet=pts_time,flags", "-of", "csv=p=0"]);
    packets.args(["-i", input]);
    let (metadata, packets) = tokio::time::timeout(timeout, async {
        tokio::join!(metadata.output(), packets.output())
    })
    .await
    .map_err(|_| MediaError::Timeout)?;
    let metadata = metadata.map_err(MediaError::Spawn)?;
    if !metadata.status.success() {
        return Err(MediaError::NoVideo(last_message(&metadata.stderr, input)));
    }
    let parsed: ProbeJson = serde_json::from_slice(&metadata.stdout)
        .map_err(|e| MediaError::NoVideo(format!("ffprobe's answer does not parse ({e})")))?;
    let packets = packets.map_err(MediaError::Spawn)?;
    if !packets.status.success() {
        return Err(MediaError::NoVideo(last_message(&packets.stderr, input)));
    }
    let scan = scan_packets(&String::from_utf8_lossy(&packets.stdout));
    let probe = probe_of(&parsed, &scan)?;
    // A container error while every packet was read, with the packets ending well
    // before the stated duration: the file was cut short (an interrupted upload).
    let end = probe.start_time + probe.duration;
    if let Some(damage) = demuxer_error(&packets.stderr, input, &probe.codec)
        && scan
            .last
            .is_none_or(|last| last + 1.0 / probe.frame_rate < end - 0.5)
    {
        return Err(MediaError::NoVideo(format!(
            "it is truncated or damaged ({damage})"
        )));
    }
    Ok(probe)
}

/// An `ffprobe` command for `input`, its child killed when dropped.
fn probe_command(input: &str, container: Container) -> Command {
    let mut command = Command::new("ffprobe");
    command
        .arg("-hide_banner")
        .args(input_options(input, container))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Input options: the demuxers a file may use ([`Container`]), then [`network_options`].
fn input_options(input: &str, container: Container) -> Vec<&'static str> {
    let mut options = match container {
        Container::File => vec!["-format_whitelist", FILE_FORMATS],
        Container::Live => Vec::new(),
    };
    options.extend(network_options(input));
    options
}

/// Input options for a network `input`: a read timeout and reconnection; no redirect
/// (its target would not have been checked: `outbound`) and no protocol but http(s)
/// under it.
fn network_options(input: &str) -> Vec<&'static str> {
    let lower = input.get(..8).unwrap_or(input).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        vec![
            "-rw_timeout",
            RW_TIMEOUT_US,
            "-reconnect",
            "1",
            "-reconnect_on_network_error",
            "1",
            "-max_redirects",
            "0",
            "-protocol_whitelist",
            "http,https,tcp,tls",
        ]
    } else {
        Vec::new()
    }
}

/// The part of ffprobe's JSON read.
#[derive(Deserialize)]
struct ProbeJson {
    #[serde(default)]
    streams: Vec<StreamJson>,
    format: Option<FormatJson>,
}

#[derive(Deserialize)]
struct StreamJson {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    start_time: Option<String>,
    duration: Option<String>,
    nb_frames: Option<String>,
    #[serde(default)]
    side_data_list: Vec<SideDataJson>,
    #[serde(default)]
    tags: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    disposition: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct SideDataJson {
    rotation: Option<f64>,
}

#[derive(Deserialize)]
struct FormatJson {
    format_name: Option<String>,
    duration: Option<String>,
}

/// What the packet listing tells: the keyframes and the last timestamp.
#[derive(Debug, Default)]
struct PacketScan {
    keyframes: Vec<f64>,
    last: Option<f64>,
}

/// Reads ffprobe's `pts_time,flags` CSV lines.
fn scan_packets(csv: &str) -> PacketScan {
    let mut scan = PacketScan::default();
    for line in csv.lines() {
        let mut fields = line.split(',');
        let (Some(time), Some(flags)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some(time) = seconds(Some(time)) else {
            continue;
        };
        scan.last = Some(scan.last.map_or(time, |last: f64| last.max(time)));
        if flags.contains('K') {
            scan.keyframes.push(time);
        }
    }
    scan.keyframes.sort_by(f64::total_cmp);
    scan.keyframes.dedup();
    scan
}

/// A finite number of seconds from ffprobe's text (`N/A` and absent are `None`).
fn seconds(text: Option<&str>) -> Option<f64> {
    text?.trim().parse::<f64>().ok().filter(|s| s.is_finite())
}

/// A positive rate from ffprobe's `num/den`.
fn rate(text: Option<&str>) -> Option<f64> {
    let (num, den) = text?.split_once('/')?;
    let (num, den) = (
        num.trim().parse::<f64>().ok()?,
        den.trim().parse::<f64>().ok()?,
    );
    let rate = num / den;
    (num > 0.0 && den > 0.0 && rate.is_finite()).then_some(rate)
}

/// The [`Probe`] of ffprobe's answer and the packet scan.
fn probe_of(parsed: &ProbeJson, scan: &PacketScan) -> Result<Probe, MediaError> {
    let no = |why: &str| MediaError::NoVideo(why.to_string());
    let format = parsed.format.as_ref();
    let Some(stream) = parsed
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("video"))
    else {
        return Err(no("it has no video stream"));
    };
    let still = format
        .and_then(|f| f.format_name.as_deref())
        .is_some_and(|name| name == "image2" || name.ends_with("_pipe"));
    let cover = stream
        .disposition
        .get("attached_pic")
        .and_then(serde_json::Value::as_i64)
        == Some(1);
    if still || cover {
        return Err(no("it is a still image, not a video"));
    }
    let (Some(width), Some(height)) = (stream.width, stream.height) else {
        return Err(no("its video stream has no frame size"));
    };
    if width == 0 || height == 0 {
        return Err(no("its video stream has no frame size"));
    }
    let Some(frame_rate) =
        rate(stream.avg_frame_rate.as_deref()).or_else(|| rate(stream.r_frame_rate.as_deref()))
    else {
        return Err(no("its frame rate is unknown"));
    };
    let start_time = seconds(stream.start_time.as_deref()).unwrap_or(0.0);
    let duration = seconds(format.and_then(|f| f.duration.as_deref()))
        .or_else(|| seconds(stream.duration.as_deref()))
        .filter(|d| *d > 0.0)
        .or_else(|| {
            scan.last
                .map(|last| last - start_time + 1.0 / frame_rate)
                .filter(|d| *d > 0.0)
        });
    let Some(duration) = duration else {
        return Err(no("its duration is unknown"));
    };
    let frame_count = stream
        .nb_frames
        .as_deref()
        .and_then(|n| n.trim().parse::<u64>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| (duration * frame_rate).round() as u64);
    let rotation = stream
        .side_data_list
        .iter()
        .find_map(|s| s.rotation)
        .or_else(|| {
            let rotate = stream.tags.get("rotate")?.as_str()?;
            rotate.trim().parse::<f64>().ok()
        })
        .unwrap_or(0.0);
    let quarter_turns = (rotation / 90.0).round() as i64;
    let (width, height) = if quarter_turns.rem_euclid(2) == 1 {
        (height, width)
    } else {
        (width, height)
    };
    Ok(Probe {
        duration,
        frame_rate,
        frame_count,
        width,
        height,
        codec: stream.codec_name.clone().unwrap_or_default(),
        start_time,
        keyframes: scan.keyframes.clone(),
    })
}

/// A time range of the video one subtask analyses: frames with start <= t < end
/// (the last segment takes every frame from its start on).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Its place in the plan, from 0.
    pub index: u32,
    /// Its first instant, seconds: the video's start or a keyframe's time.
    pub start: f64,
    /// The instant after it, seconds (the video's end for the last).
    pub end: f64,
    /// Whether it is the last (it then also takes frames at or past `end`).
    pub last: bool,
}

/// Splits the video into about `wanted` (at least 1) segments of equal length, each
/// inner boundary moved to the nearest keyframe; boundaries that fall on the start, past
/// the end or on the previous one are dropped, so there may be fewer. The segments are
/// contiguous, from `start_time` to `start_time + duration`, the last marked so.
pub fn plan_segments(probe: &Probe, wanted: u32) -> Vec<Segment> {
    let start = probe.start_time;
    let end = start + probe.duration;
    let wanted = wanted.max(1);
    let keys = &probe.keyframes;
    let mut bounds = vec![start];
    if probe.duration.is_finite() && probe.duration > 0.0 {
        for i in 1..wanted {
            let target = start + probe.duration * f64::from(i) / f64::from(wanted);
            // The nearest keyframe, the earlier one on a tie.
            let after = keys.partition_point(|k| *k < target);
            let nearest = match (after.checked_sub(1).map(|i| keys[i]), keys.get(after)) {
                (Some(before), Some(&next)) if next - target < target - before => next,
                (Some(before), _) => before,
                (None, Some(&next)) => next,
                (None, None) => break,
            };
            if nearest > *bounds.last().unwrap_or(&start) && nearest < end {
                bounds.push(nearest);
            }
        }
    }
    let count = bounds.len();
    bounds
        .iter()
        .enumerate()
        .map(|(i, &from)| Segment {
            index: i as u32,
            start: from,
            end: bounds.get(i + 1).copied().unwrap_or(end),
            last: i + 1 == count,
        })
        .collect()
}

/// One decoded frame: its number in the whole video and its time.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// `round((time − start_time) × frame_rate)`: its place in the whole video.
    pub number: u64,
    /// Its timestamp, seconds (on the video's own clock, like [`Probe::start_time`]).
    pub time: f64,
    /// Its pixels, at the sampled size.
    pub image: Rgb,
}

/// How to sample: every `period`-th frame of the whole video (frame number n =
/// round((t - start_time) * frame_rate), kept when n % period == 0), scaled so the longer
/// side is at most `max_side` (never enlarged; even sizes are fine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampling {
    /// Keep every `period`-th frame (0 counts as 1).
    pub period: u64,
    /// The longest side of a sampled frame, pixels (0: the video's own size).
    pub max_side: u32,
}

impl Sampling {
    /// The sampled frame size of a `width` × `height` video: the aspect kept (rounded to
    /// whole pixels, at least 1), the longer side at most `max_side`, never enlarged.
    pub fn size(&self, width: u32, height: u32) -> (u32, u32) {
        let longer = width.max(height);
        if self.max_side == 0 || longer <= self.max_side {
            return (width, height);
        }
        let scale = f64::from(self.max_side) / f64::from(longer);
        let side = |s: u32| ((f64::from(s) * scale).round() as u32).clamp(1, self.max_side);
        (side(width), side(height))
    }

    /// Whether frame `number` is sampled.
    pub fn keeps(&self, number: u64) -> bool {
        number.is_multiple_of(self.period.max(1))
    }
}

/// The sampled frames of one segment, decoded by an `ffmpeg` child as they are asked for;
/// the child is killed when the reader is dropped.
pub struct FrameReader {
    child: Child,
    stdout: ChildStdout,
    /// Each output frame's timestamp (seconds; `None` when it has none), from showinfo.
    stamps: mpsc::UnboundedReceiver<Option<f64>>,
    /// The stderr reader; its answer is the log once ffmpeg has closed stderr.
    log: Option<JoinHandle<Log>>,
    width: u32,
    height: u32,
    start_time: f64,
    frame_rate: f64,
    sampling: Sampling,
    segment: Segment,
    done: bool,
}

impl std::fmt::Debug for FrameReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameReader")
            .field("segment", &self.segment)
            .field("sampling", &self.sampling)
            .field("size", &(self.width, self.height))
            .finish_non_exhaustive()
    }
}

impl FrameReader {
    /// Starts decoding `segment` of `input` (probed as `probe`) with one decoding thread.
    /// Needs a Tokio runtime.
    pub fn start(
        input: &str,
        probe: &Probe,
        segment: &Segment,
        sampling: Sampling,
    ) -> Result<FrameReader, MediaError> {
        FrameReader::start_as(input, Container::File, probe, segment, sampling, 1)
    }

    /// [`FrameReader::start`] with `threads` decoding threads (0: ffmpeg's choice).
    pub fn start_with_threads(
        input: &str,
        probe: &Probe,
        segment: &Segment,
        sampling: Sampling,
        threads: u32,
    ) -> Result<FrameReader, MediaError> {
        FrameReader::start_as(input, Container::File, probe, segment, sampling, threads)
    }

    /// [`FrameReader::start_with_threads`] on an input that may be `container`.
    pub fn start_as(
        input: &str,
        container: Container,
        probe: &Probe,
        segment: &Segment,
        sampling: Sampling,
        threads: u32,
    ) -> Result<FrameReader, MediaError> {
        let (width, height) = sampling.size(probe.width, probe.height);
        let mut command = Command::new("ffmpeg");
        command.args(["-nostdin", "-hide_banner", "-nostats"]);
        command.args(["-loglevel", "level+info"]);
        command.args(["-threads", &threads.to_string()]);
        command.args(["-filter_threads", "1"]);
        command.args(input_options(input, container));
        // Timestamps stay the stream's own; -ss is taken as one of them (not as an offset
        // from the file's start) and seeks to the last keyframe at or before it, with no
        // trim of ffmpeg's own: the filter below decides every frame. A segment starts on
        // a keyframe time as ffprobe prints it (to the microsecond, so up to half a
        // microsecond early): seeking a microsecond later lands on that keyframe, not on
        // the one before.
        command.args(["-copyts", "-seek_timestamp", "1", "-noaccurate_seek"]);
        if segment.start > probe.start_time {
            command.args(["-ss", &format!("{:.6}", segment.start + 1e-6)]);
        }
        command.args(["-i", input, "-map", "0:v:0", "-an", "-sn", "-dn"]);
        command.args(["-vf", &filter(probe, segment, sampling, width, height)]);
        command.args(["-fps_mode", "passthrough", "-f", "rawvideo"]);
        command.args(["-pix_fmt", "rgb24", "pipe:1"]);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(MediaError::Spawn)?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(MediaError::Decode("ffmpeg's output is not readable".into()));
        };
        let (sender, stamps) = mpsc::unbounded_channel();
        let log = tokio::spawn(read_log(
            stderr,
            sender,
            input.to_string(),
            probe.codec.clone(),
        ));
        Ok(FrameReader {
            child,
            stdout,
            stamps,
            log: Some(log),
            width,
            height,
            start_time: probe.start_time,
            frame_rate: probe.frame_rate,
            sampling,
            segment: *segment,
            done: false,
        })
    }

    /// The next sampled frame of the segment, in order; None at its end. An ffmpeg failure
    /// (non-zero exit, corrupt data reported on stderr as fatal) is an Err with stderr's
    /// last lines. Not cancel-safe: after a call dropped midway, drop the reader.
    pub async fn next(&mut self) -> Result<Option<Frame>, MediaError> {
        let length = self.width as usize * self.height as usize * 3;
        loop {
            if self.done {
                return Ok(None);
            }
            let mut pixels = vec![0u8; length];
            let mut filled = 0;
            while filled < length {
                match self.stdout.read(&mut pixels[filled..]).await {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => return Err(self.fail(format!("its output broke off ({e})")).await),
                }
            }
            if filled == 0 {
                return self.finish().await.map(|()| None);
            }
            if filled < length {
                return Err(self
                    .fail("it stopped in the middle of a frame".into())
                    .await);
            }
            let time = match self.stamps.recv().await {
                Some(Some(time)) => time,
                Some(None) => return Err(self.fail("a frame has no timestamp".into()).await),
                None => return Err(self.fail("a frame came without its timestamp".into()).await),
            };
            let number = ((time - self.start_time) * self.frame_rate).round();
            // The filter has chosen by this arithmetic already: this only guards it.
            let inside =
                time >= self.segment.start && (self.segment.last || time < self.segment.end);
            if number < 0.0 || !inside || !self.sampling.keeps(number as u64) {
                continue;
            }
            return Ok(Some(Frame {
                number: number as u64,
                time,
                image: Rgb {
                    width: self.width,
                    height: self.height,
                    pixels,
                },
            }));
        }
    }

    /// The decoded frames' width and height.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The end of ffmpeg's output: its exit and its log decide whether the segment was
    /// read whole.
    async fn finish(&mut self) -> Result<(), MediaError> {
        self.done = true;
        let status = self.child.wait().await;
        let log = self.take_log().await;
        match status {
            Ok(status) if status.success() => match log.fatal {
                Some(fatal) => Err(MediaError::Decode(format!(
                    "the input could not be read to the end ({fatal})"
                ))),
                None => Ok(()),
            },
            Ok(status) => Err(MediaError::Decode(format!(
                "ffmpeg failed ({status}): {}",
                log.tail()
            ))),
            Err(e) => Err(MediaError::Decode(format!("ffmpeg was lost ({e})"))),
        }
    }

    /// Stops the child and explains why with its last lines.
    async fn fail(&mut self, why: String) -> MediaError {
        self.done = true;
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let log = self.take_log().await;
        MediaError::Decode(format!("{why}: {}", log.tail()))
    }

    /// The log, once ffmpeg has closed its stderr.
    async fn take_log(&mut self) -> Log {
        match self.log.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => Log::default(),
        }
    }
}

impl Drop for FrameReader {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if let Some(task) = self.log.take() {
            task.abort();
        }
    }
}

/// The `-vf` chain: stop a little past the end, keep the segment's sampled frames, scale
/// them (area averaging: the sharpest for shrinking, and cheaper than the default
/// bicubic), report each one's timestamp.
fn filter(probe: &Probe, segment: &Segment, sampling: Sampling, width: u32, height: u32) -> String {
    // Numbers are written in Rust's shortest round-trip form, which ffmpeg's expression
    // parser reads back to the same doubles: the comparisons here are those of `next`.
    let mut keep = format!("gte(t,{})", segment.start);
    if !segment.last {
        keep.push_str(&format!("*lt(t,{})", segment.end));
    }
    let period = sampling.period.max(1);
    if period > 1 {
        keep = format!(
            "eq(mod(round((t-({}))*{}),{period}),0)*{keep}",
            probe.start_time, probe.frame_rate
        );
    }
    let mut chain = String::new();
    if !segment.last {
        chain.push_str(&format!("trim=end={:.6},", segment.end + TRIM_MARGIN));
    }
    chain.push_str(&format!(
        "select='{keep}',scale={width}:{height}:flags=area,format=rgb24,showinfo=checksum=0"
    ));
    chain
}

/// What ffmpeg said on stderr, besides the frames' timestamps.
#[derive(Debug, Default)]
struct Log {
    /// The last lines, without their prefixes, each marked when it is a warning or worse.
    lines: VecDeque<(bool, String)>,
    /// The first error of the input itself (its container or its transport), not of the
    /// decoder (whose errors ffmpeg conceals and counts).
    fatal: Option<String>,
}

impl Log {
    /// The last lines as one message: the warnings and errors among them when there are
    /// any (not ffmpeg's description of its streams), else the very last lines.
    fn tail(&self) -> String {
        let complaints: Vec<&str> = self
            .lines
            .iter()
            .filter(|(complaint, _)| *complaint)
            .map(|(_, line)| line.as_str())
            .collect();
        let lines = if complaints.is_empty() {
            let all: Vec<&str> = self.lines.iter().map(|(_, line)| line.as_str()).collect();
            all[all.len().saturating_sub(5)..].to_vec()
        } else {
            complaints[complaints.len().saturating_sub(8)..].to_vec()
        };
        if lines.is_empty() {
            return "no message".into();
        }
        lines.join(" / ")
    }
}

/// Reads ffmpeg's stderr to its end: sends each showinfo frame's timestamp, keeps the
/// other lines.
async fn read_log(
    stderr: ChildStderr,
    stamps: mpsc::UnboundedSender<Option<f64>>,
    input: String,
    codec: String,
) -> Log {
    let mut reader = BufReader::new(stderr);
    let mut log = Log::default();
    let mut time_base: Option<f64> = None;
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match reader.read_until(b'\n', &mut raw).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&raw);
        for line in text.split(['\r', '\n']).filter(|l| !l.trim().is_empty()) {
            let parsed = Line::parse(line);
            if parsed
                .context
                .is_some_and(|c| c.starts_with("Parsed_showinfo"))
            {
                if let Some(rest) = parsed.message.split("config in time_base:").nth(1) {
                    time_base = rate(rest.split(',').next());
                } else if let Some(pts) = showinfo_pts(parsed.message) {
                    let time = match (pts, time_base) {
                        (Some(pts), Some(base)) => Some(pts as f64 * base),
                        _ => None,
                    };
                    let _ = stamps.send(time);
                }
                continue;
            }
            let message = parsed.text(&input);
            if log.fatal.is_none() && parsed.is_input_error(&codec) {
                log.fatal = Some(message.clone());
            }
            if log.lines.len() == LOG_LINES {
                log.lines.pop_front();
            }
            let complaint = matches!(parsed.level, Some("warning" | "error" | "fatal" | "panic"));
            log.lines.push_back((complaint, message));
        }
    }
    log
}

/// The `pts:` of a showinfo frame line: `Some(None)` for `NOPTS`, `None` when the line
/// is not a frame's.
fn showinfo_pts(message: &str) -> Option<Option<i64>> {
    let (_, rest) = message.split_once(" pts:")?;
    let value = rest.split_whitespace().next()?;
    Some(value.parse::<i64>().ok())
}

/// A stderr line of ffmpeg or ffprobe under `-loglevel level+…`: `[context @ 0x…]
/// [level] message`, both prefixes optional.
#[derive(Debug, PartialEq)]
struct Line<'a> {
    context: Option<&'a str>,
    level: Option<&'a str>,
    message: &'a str,
}

impl<'a> Line<'a> {
    fn parse(line: &'a str) -> Line<'a> {
        let mut parsed = Line {
            context: None,
            level: None,
            message: line.trim(),
        };
        while let Some(rest) = parsed.message.strip_prefix('[') {
            let Some((inside, after)) = rest.split_once("] ") else {
                break;
            };
            if let Some((name, _)) = inside.split_once(" @ ") {
                parsed.context = Some(name);
            } else if matches!(
                inside,
                "quiet"
                    | "panic"
                    | "fatal"
                    | "error"
                    | "warning"
                    | "info"
                    | "verbose"
                    | "debug"
                    | "trace"
            ) {
                parsed.level = Some(inside);
            } else {
                break;
            }
            parsed.message = after.trim_start();
        }
        parsed
    }

    /// The message for a user: the input's name (a presigned URL) left out.
    fn text(&self, input: &str) -> String {
        let message = self.message.trim();
        let message = message
            .strip_prefix(input)
            .and_then(|m| m.strip_prefix(':'))
            .unwrap_or(message)
            .trim();
        if input.is_empty() {
            message.to_string()
        } else {
            message.replace(input, "the input")
        }
    }

    /// An error of the input itself: at error level or worse, from neither the decoder
    /// (named like the codec), the parser (`NULL`), nor ffmpeg's count of decoding
    /// errors — from the demuxer, the transport or ffmpeg's report of a failed read.
    fn is_input_error(&self, codec: &str) -> bool {
        if !matches!(self.level, Some("error" | "fatal" | "panic")) {
            return false;
        }
        match self.context {
            Some(context) => context != "NULL" && context != codec,
            None => !self.message.starts_with("Error while decoding stream"),
        }
    }
}

/// The last line of `stderr` worth showing, for a user.
fn last_message(stderr: &[u8], input: &str) -> String {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .rev()
        .map(|l| Line::parse(l).text(input))
        .find(|l| !l.is_empty())
        .unwrap_or_else(|| "ffprobe failed without a message".into())
}

/// The first error of the input itself in ffprobe's `level+error` stderr.
fn demuxer_error(stderr: &[u8], input: &str, codec: &str) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .map(Line::parse)
        .find(|l| l.is_input_error(codec))
        .map(|l| l.text(input))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::video::testclips::{Scene, make_clip};

    const PROBE_TIME: Duration = Duration::from_secs(60);

    /// A fresh directory for one test's files.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fanout-media-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A PNG test pattern (`testsrc2`) of `width` × `height` in `dir`.
    fn pattern(dir: &Path, width: u32, height: u32) -> PathBuf {
        let path = dir.join("pattern.png");
        let status = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=s={width}x{height}:d=1"))
            .args(["-frames:v", "1"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        path
    }

    /// `input`'s streams copied into `output` with the options given (another container,
    /// other metadata).
    fn remux(input: &Path, output: &Path, options: &[&str]) {
        let status = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
            .arg(input)
            .args(["-c", "copy"])
            .args(options)
            .arg(output)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Grey, the pattern, grey: two seconds each.
    fn three_scenes(dir: &Path, name: &str, fps: u32, gop: u32) -> PathBuf {
        let image = pattern(dir, 320, 240);
        let scenes = [
            Scene {
                image: None,
                seconds: 2,
            },
            Scene {
                image: Some(&image),
                seconds: 2,
            },
            Scene {
                image: None,
                seconds: 2,
            },
        ];
        make_clip(&dir.join(name), &scenes, 320, 240, fps, gop).unwrap()
    }

    /// Every sampled frame of `input` split into about `wanted` segments, each read by its
    /// own reader, in order.
    async fn read_split(input: &str, probe: &Probe, wanted: u32, sampling: Sampling) -> Vec<Frame> {
        let mut frames = Vec::new();
        for segment in plan_segments(probe, wanted) {
            let mut reader = FrameReader::start(input, probe, &segment, sampling).unwrap();
            while let Some(frame) = reader.next().await.unwrap() {
                assert!(frame.time >= segment.start && (segment.last || frame.time < segment.end));
                assert_eq!(
                    frame.image.pixels.len(),
                    frame.image.width as usize * frame.image.height as usize * 3
                );
                frames.push(frame);
            }
        }
        frames
    }

    fn probe_of_size(width: u32, height: u32) -> Probe {
        Probe {
            duration: 6.0,
            frame_rate: 25.0,
            frame_count: 150,
            width,
            height,
            codec: "h264".into(),
            start_time: 0.0,
            keyframes: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
        }
    }

    /// Segments are contiguous, cover the video and start on keyframes.
    fn assert_plan(probe: &Probe, segments: &[Segment]) {
        assert!(!segments.is_empty());
        assert_eq!(segments[0].start, probe.start_time);
        let last = segments.last().unwrap();
        assert!(last.last && (last.end - (probe.start_time + probe.duration)).abs() < 1e-9);
        for (i, s) in segments.iter().enumerate() {
            assert_eq!(s.index as usize, i);
            assert!(s.start < s.end);
            assert_eq!(s.last, i + 1 == segments.len());
            if i > 0 {
                assert_eq!(s.start, segments[i - 1].end);
                assert!(
                    probe.keyframes.contains(&s.start),
                    "{} is not a keyframe",
                    s.start
                );
            }
        }
    }

    #[tokio::test]
    async fn probe_reads_the_stream_and_its_keyframes() {
        let dir = scratch("probe");
        let clip = three_scenes(&dir, "clip.mp4", 25, 25);
        let probe = probe(clip.to_str().unwrap(), PROBE_TIME).await.unwrap();
        assert!((probe.duration - 6.0).abs() < 0.05, "{probe:?}");
        assert_eq!(probe.frame_rate, 25.0);
        assert_eq!(probe.frame_count, 150);
        assert_eq!((probe.width, probe.height), (320, 240));
        assert_eq!(probe.codec, "h264");
        assert_eq!(probe.start_time, 0.0);
        assert_eq!(probe.keyframes.len(), 6, "{:?}", probe.keyframes);
        for (i, k) in probe.keyframes.iter().enumerate() {
            assert!((k - i as f64).abs() < 0.001, "{:?}", probe.keyframes);
        }
        // It survives serialisation as is.
        let json = serde_json::to_string(&probe).unwrap();
        assert_eq!(serde_json::from_str::<Probe>(&json).unwrap(), probe);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_rotated_stream_is_probed_and_decoded_upright() {
        let dir = scratch("rotated");
        let clip = three_scenes(&dir, "clip.mp4", 25, 25);
        let rotated = dir.join("rotated.mp4");
        remux(&clip, &rotated, &["-metadata:s:v:0", "rotate=90"]);
        let input = rotated.to_str().unwrap();
        let probe = probe(input, PROBE_TIME).await.unwrap();
        assert_eq!((probe.width, probe.height), (240, 320));
        let sampling = Sampling {
            period: 50,
            max_side: 160,
        };
        let frames = read_split(input, &probe, 1, sampling).await;
        assert_eq!(
            frames.iter().map(|f| f.number).collect::<Vec<_>>(),
            [0, 50, 100]
        );
        assert_eq!((frames[0].image.width, frames[0].image.height), (120, 160));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn segments_start_on_keyframes_and_cover_the_video() {
        let dir = scratch("plan");
        let clip = three_scenes(&dir, "clip.mp4", 25, 25);
        let probe = probe(clip.to_str().unwrap(), PROBE_TIME).await.unwrap();
        let one = plan_segments(&probe, 1);
        assert_plan(&probe, &one);
        assert_eq!(one.len(), 1);
        let three = plan_segments(&probe, 3);
        assert_plan(&probe, &three);
        assert_eq!(
            three.iter().map(|s| s.start).collect::<Vec<_>>(),
            [0.0, 2.0, 4.0]
        );
        let ten = plan_segments(&probe, 10);
        assert_plan(&probe, &ten);
        // Targets 0.6, 1.2, … 5.4 snap to 1, 1, 2, 2, 3, 4, 4, 5, 5: five boundaries.
        assert_eq!(
            ten.iter().map(|s| s.start).collect::<Vec<_>>(),
            [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        );
        let hundred = plan_segments(&probe, 100);
        assert_plan(&probe, &hundred);
        assert!(hundred.len() <= 6);
        assert_eq!(plan_segments(&probe, 0), one);
        assert_eq!(plan_segments(&probe, 7), plan_segments(&probe, 7));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn boundaries_that_collapse_are_dropped() {
        // Only the first keyframe: one segment, however many are wanted.
        let mut probe = probe_of_size(320, 240);
        probe.keyframes = vec![0.0];
        assert_eq!(
            plan_segments(&probe, 8),
            [Segment {
                index: 0,
                start: 0.0,
                end: 6.0,
                last: true
            }]
        );
        probe.keyframes.clear();
        assert_eq!(plan_segments(&probe, 8).len(), 1);
        // A boundary that snaps to the start or past the end is dropped.
        probe.keyframes = vec![0.0, 6.5];
        assert_eq!(plan_segments(&probe, 2).len(), 1);
        // Between two keyframes at the same distance, the earlier.
        probe.keyframes = vec![0.0, 2.0, 4.0];
        let starts: Vec<f64> = plan_segments(&probe, 2).iter().map(|s| s.start).collect();
        assert_eq!(starts, [0.0, 2.0]);
        // A keyframe clock offset by the stream's start.
        probe.start_time = 1.4;
        probe.keyframes = vec![1.4, 2.4, 3.4, 4.4, 5.4, 6.4];
        let segments = plan_segments(&probe, 2);
        assert_eq!(
            segments,
            [
                Segment {
                    index: 0,
                    start: 1.4,
                    end: 4.4,
                    last: false
                },
                Segment {
                    index: 1,
                    start: 4.4,
                    end: 7.4,
                    last: true
                },
            ]
        );
    }

    #[test]
    fn sampling_scales_the_longer_side_down_only() {
        let sampling = Sampling {
            period: 1,
            max_side: 640,
        };
        let probe = probe_of_size(1920, 1080);
        assert_eq!(sampling.size(probe.width, probe.height), (640, 360));
        assert_eq!(sampling.size(1080, 1920), (360, 640));
        assert_eq!(sampling.size(320, 240), (320, 240));
        assert_eq!(sampling.size(640, 480), (640, 480));
        assert_eq!(
            Sampling {
                period: 1,
                max_side: 0
            }
            .size(1920, 1080),
            (1920, 1080)
        );
        assert_eq!(sampling.size(10_000, 10), (640, 1));
        assert!(
            Sampling {
                period: 0,
                max_side: 0
            }
            .keeps(7)
        );
        assert!(
            Sampling {
                period: 5,
                max_side: 0
            }
            .keeps(10)
        );
        assert!(
            !Sampling {
                period: 5,
                max_side: 0
            }
            .keeps(11)
        );
    }

    #[test]
    fn stderr_lines_are_parsed_and_classified() {
        let frame =
            "[Parsed_showinfo_4 @ 0x55a6] [info] n:   1 pts:  28160 pts_time:2.2     pos: 16174";
        let line = Line::parse(frame);
        assert_eq!(line.context, Some("Parsed_showinfo_4"));
        assert_eq!(line.level, Some("info"));
        assert_eq!(showinfo_pts(line.message), Some(Some(28160)));
        assert_eq!(showinfo_pts("n: 0 pts:NOPTS pts_time:NOPTS"), Some(None));
        assert_eq!(
            showinfo_pts("config in time_base: 1/12800, frame_rate: 25/1"),
            None
        );
        let partial = Line::parse(
            "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x56] [error] stream 0, offset 0x4658b: partial file",
        );
        assert!(partial.is_input_error("h264"));
        assert_eq!(
            partial.text("x.mp4"),
            "stream 0, offset 0x4658b: partial file"
        );
        for concealed in [
            "[h264 @ 0x56] [error] Invalid NAL unit size (10303 > 8582).",
            "[NULL @ 0x56] [error] missing picture in access unit with size 8586",
            "[error] Error while decoding stream #0:0: Invalid data found when processing input",
            "[warning] x.mp4: corrupt input packet in stream 0",
        ] {
            assert!(
                !Line::parse(concealed).is_input_error("h264"),
                "{concealed}"
            );
        }
        // The input's name (a presigned URL) stays out of messages.
        let url = "https://bucket.s3.amazonaws.com/v.mp4?X-Amz-Signature=abc";
        let failed = format!("{url}: Server returned 403 Forbidden (access denied)");
        assert_eq!(
            Line::parse(&failed).text(url),
            "Server returned 403 Forbidden (access denied)"
        );
        assert_eq!(
            last_message(
                format!("{url}: Invalid data found when processing input\n").as_bytes(),
                url
            ),
            "Invalid data found when processing input"
        );
    }

    /// The key property: a video read whole or in 3 or 10 segments yields the same frames
    /// — numbers and pixels — none twice, none missing; on an MP4 whose clock starts at 0
    /// and on the same stream in MPEG-TS, whose clock starts at 1.4 s.
    #[tokio::test]
    async fn every_split_yields_the_same_frames() {
        let dir = scratch("splits");
        // A keyframe every 12 frames: boundaries that are not multiples of the period.
        let clip = three_scenes(&dir, "clip.mp4", 25, 12);
        let ts = dir.join("clip.ts");
        remux(&clip, &ts, &["-f", "mpegts"]);
        for input in [clip.to_str().unwrap(), ts.to_str().unwrap()] {
            let probe = probe(input, PROBE_TIME).await.unwrap();
            assert_eq!(probe.keyframes.len(), 13, "{input}: {probe:?}");
            assert_eq!(plan_segments(&probe, 10).len(), 10, "{input}");
            for period in [5u64, 1] {
                let sampling = Sampling {
                    period,
                    max_side: 160,
                };
                let whole = read_split(input, &probe, 1, sampling).await;
                let expected: Vec<u64> = (0..150).filter(|n| n % period == 0).collect();
                let numbers: Vec<u64> = whole.iter().map(|f| f.number).collect();
                assert_eq!(numbers, expected, "{input}, period {period}");
                for frame in &whole {
                    let t = probe.start_time + frame.number as f64 / 25.0;
                    assert!((frame.time - t).abs() < 1e-6);
                    assert_eq!((frame.image.width, frame.image.height), (160, 120));
                    // The middle scene is the pattern, the others plain grey.
                    let grey = frame.image.pixels.iter().all(|&c| c.abs_diff(128) <= 3);
                    assert_eq!(
                        grey,
                        !(50..100).contains(&frame.number),
                        "frame {}",
                        frame.number
                    );
                }
                for wanted in [3, 10] {
                    let split = read_split(input, &probe, wanted, sampling).await;
                    let numbers: Vec<u64> = split.iter().map(|f| f.number).collect();
                    assert_eq!(
                        numbers, expected,
                        "{input}, period {period}, {wanted} segments"
                    );
                    assert!(
                        split == whole,
                        "{input}, period {period}, {wanted} segments: pixels differ"
                    );
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The same on a 29.97 fps stream in Matroska, whose millisecond clock gives times no
    /// binary fraction holds (ffprobe's keyframe times, the boundaries, are rounded).
    #[tokio::test]
    async fn every_split_yields_the_same_frames_at_ntsc_rate() {
        let dir = scratch("ntsc");
        let clip = three_scenes(&dir, "clip.mp4", 25, 25);
        let mkv = dir.join("clip.mkv");
        let status = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
            .arg(&clip)
            .args([
                "-vf",
                "fps=30000/1001",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
            ])
            .args(["-x264-params", "keyint=14:min-keyint=14:scenecut=0"])
            .arg(&mkv)
            .status()
            .unwrap();
        assert!(status.success());
        let input = mkv.to_str().unwrap();
        let probe = probe(input, PROBE_TIME).await.unwrap();
        assert!(
            (probe.frame_rate - 30000.0 / 1001.0).abs() < 1e-9,
            "{probe:?}"
        );
        assert_eq!(plan_segments(&probe, 10).len(), 10);
        for period in [7u64, 1] {
            let sampling = Sampling {
                period,
                max_side: 160,
            };
            let whole = read_split(input, &probe, 1, sampling).await;
            let numbers: Vec<u64> = whole.iter().map(|f| f.number).collect();
            let expected: Vec<u64> = (0..numbers.len() as u64).map(|i| i * period).collect();
            assert_eq!(numbers, expected, "period {period}");
            assert!(numbers.last().unwrap() + period >= probe.frame_count - 1);
            for wanted in [3, 10] {
                let split = read_split(input, &probe, wanted, sampling).await;
                assert!(split == whole, "period {period}, {wanted} segments");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Random bytes are no video; a faststart MP4 cut in half is reported by the probe
    /// (its packets stop at 3 s of 6 with the demuxer's "partial file") and by the
    /// reader (ffmpeg exits 0 after the frames it could read, but its demuxer logged
    /// "partial file" at error level): neither hangs nor panics.
    #[tokio::test]
    async fn corrupt_and_truncated_files_are_reported() {
        let dir = scratch("corrupt");
        let noise = dir.join("noise.mp4");
        let mut bytes = vec![0u8; 64 * 1024];
        getrandom::fill(&mut bytes).unwrap();
        std::fs::write(&noise, &bytes).unwrap();
        let error = probe(noise.to_str().unwrap(), PROBE_TIME)
            .await
            .unwrap_err();
        assert!(matches!(error, MediaError::NoVideo(_)), "{error:?}");
        let message = error.to_string();
        assert!(
            message.starts_with("the file is not a readable video: "),
            "{message}"
        );
        assert!(!message.contains("noise.mp4"), "{message}");

        let missing = dir.join("missing.mp4");
        let error = probe(missing.to_str().unwrap(), PROBE_TIME)
            .await
            .unwrap_err();
        assert!(matches!(error, MediaError::NoVideo(_)), "{error:?}");

        let clip = three_scenes(&dir, "clip.mp4", 25, 25);
        let whole = std::fs::read(&clip).unwrap();
        let cut = dir.join("cut.mp4");
        std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
        let input = cut.to_str().unwrap();
        let error = probe(input, PROBE_TIME).await.unwrap_err();
        assert!(matches!(error, MediaError::NoVideo(_)), "{error:?}");
        assert!(error.to_string().contains("truncated"), "{error}");

        // Read with the whole clip's probe, as a reader started before the damage would.
        let probe = probe(clip.to_str().unwrap(), PROBE_TIME).await.unwrap();
        let sampling = Sampling {
            period: 1,
            max_side: 160,
        };
        let mut numbers = Vec::new();
        let mut errors = Vec::new();
        for segment in plan_segments(&probe, 3) {
            let outcome = tokio::time::timeout(Duration::from_secs(60), async {
                let mut reader = FrameReader::start(input, &probe, &segment, sampling).unwrap();
                loop {
                    match reader.next().await {
                        Ok(Some(frame)) => numbers.push(frame.number),
                        Ok(None) => return None,
                        Err(e) => return Some(e),
                    }
                }
            })
            .await
            .expect("the reader hangs");
            errors.extend(outcome);
        }
        // The cut falls inside the packet of the keyframe at 2 s (the pattern's, most of
        // the file): the frames before it come out, once and in order; the segments that
        // need that packet (the first to see its own end) end with the demuxer's
        // complaint, not with a silent early end.
        assert_eq!(numbers, (0..50).collect::<Vec<u64>>());
        assert!(!errors.is_empty());
        for error in errors {
            assert!(matches!(error, MediaError::Decode(_)), "{error:?}");
            assert!(error.to_string().contains("partial file"), "{error}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A playlist would have ffmpeg read its entries from wherever they point: a video
    /// file is read with the file demuxers only; a live source may be one.
    #[tokio::test]
    async fn a_playlist_is_no_video_file_but_may_be_a_live_source() {
        let dir = scratch("playlist");
        let clip = three_scenes(&dir, "clip.mp4", 25, 25);
        let ts = dir.join("part.ts");
        remux(&clip, &ts, &["-f", "mpegts"]);
        let playlist = dir.join("list.m3u8");
        std::fs::write(
            &playlist,
            "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\npart.ts\n#EXT-X-ENDLIST\n",
        )
        .unwrap();
        let input = playlist.to_str().unwrap();
        let error = probe(input, PROBE_TIME).await.unwrap_err();
        assert!(matches!(error, MediaError::NoVideo(_)), "{error:?}");
        let live = probe_as(input, Container::Live, PROBE_TIME).await.unwrap();
        assert_eq!(live.frame_count, 150, "{live:?}");
        // The containers of the other tests stay readable as files.
        assert!(probe(ts.to_str().unwrap(), PROBE_TIME).await.is_ok());
    }
}
