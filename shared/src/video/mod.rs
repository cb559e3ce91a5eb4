//! The LUNA Video Agent surface (seed 001): videos read through Debian's `ffmpeg` and
//! `ffprobe` as child processes — what a video holds, its split into keyframe-aligned
//! segments and the sampled frames of a segment ([`media`]), and the clips the tests
//! encode ([`testclips`]).

pub mod analytics;
pub mod api;
pub mod callbacks;
pub mod media;
pub mod merge;
#[cfg(feature = "vision")]
pub mod run;
pub mod streams;
pub mod task;
pub mod testclips;
pub mod tracking;
