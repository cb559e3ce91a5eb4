//! Test videos: scenes of still images (or plain grey) encoded one after another into an
//! H.264 MP4 by `ffmpeg`, with keyframes exactly where the test wants them. Used by this
//! crate's tests and by the integration tests of the others.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A scene of a test clip: `image` (an encoded JPEG/PNG file path) or None for a plain
/// grey frame, shown for `seconds`.
#[derive(Debug, Clone, Copy)]
pub struct Scene<'a> {
    /// The picture shown, scaled to fit and padded black; grey when `None`.
    pub image: Option<&'a Path>,
    /// How long it is shown.
    pub seconds: u32,
}

/// Encodes the scenes one after another into an H.264 MP4 at `out` (size width x height,
/// each image scaled to fit and padded, `fps` frames a second, a keyframe every `gop`
/// frames, yuv420p, faststart), with ffmpeg; returns its path.
pub fn make_clip(
    out: &Path,
    scenes: &[Scene],
    width: u32,
    height: u32,
    fps: u32,
    gop: u32,
) -> std::io::Result<PathBuf> {
    if scenes.is_empty() || width == 0 || height == 0 || fps == 0 || gop == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a clip needs at least one scene and a positive size, frame rate and gop",
        ));
    }
    let mut command = Command::new("ffmpeg");
    command.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"]);
    let mut graph = String::new();
    for (i, scene) in scenes.iter().enumerate() {
        let seconds = scene.seconds.to_string();
        match scene.image {
            Some(image) => {
                command.args(["-loop", "1", "-framerate", &fps.to_string()]);
                command.args(["-t", &seconds]).arg("-i").arg(image);
            }
            None => {
                command.args(["-f", "lavfi", "-t", &seconds, "-i"]);
                command.arg(format!("color=c=gray:s={width}x{height}:r={fps}"));
            }
        }
        graph.push_str(&format!(
            "[{i}:v]scale={width}:{height}:force_original_aspect_ratio=decrease,\
             pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={fps},format=yuv420p[s{i}];"
        ));
    }
    for i in 0..scenes.len() {
        graph.push_str(&format!("[s{i}]"));
    }
    graph.push_str(&format!("concat=n={}:v=1:a=0[v]", scenes.len()));
    command.args(["-filter_complex", &graph, "-map", "[v]"]);
    command.args([
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
    ]);
    command.args([
        "-x264-params",
        &format!("keyint={gop}:min-keyint={gop}:scenecut=0"),
    ]);
    command
        .args(["-movflags", "+faststart", "-f", "mp4"])
        .arg(out);
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        return Err(std::io::Error::other(format!(
            "ffmpeg could not encode the clip ({}): {}",
            output.status,
            last.unwrap_or("no message")
        )));
    }
    Ok(out.to_path_buf())
}
