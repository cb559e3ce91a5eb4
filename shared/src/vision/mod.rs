//! Faces from images: detection, alignment and — with the models `make models` lays out
//! — descriptors and estimations. Its own room, run by workers only (never inside an
//! API function: the models and their runtime stay out of the Lambda binary).
//!
//! The arithmetic around the networks is plain Rust and always built: boxes, weighted
//! non-maximum suppression, the similarity alignment onto the 112 × 112 template
//! ([`geometry`]), and the BlazeFace detector's anchors, input and decoding
//! ([`blazeface`]). With the `vision` feature (the workers): image decoding
//! ([`picture`]), the networks under ONNX Runtime ([`models`]) and the pipeline that
//! runs them on the faces of an image ([`faces`]).

pub mod blazeface;
#[cfg(feature = "vision")]
pub mod estimate;
#[cfg(feature = "vision")]
pub mod faces;
pub mod geometry;
#[cfg(feature = "vision")]
pub mod models;
pub mod people;
#[cfg(feature = "vision")]
pub mod picture;
