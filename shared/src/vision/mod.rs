//! Faces from images: detection, alignment and — with the models `make models` lays out
//! — descriptors and estimations. Its own room, run by workers only (never inside an
//! API function: the models and their runtime stay out of the Lambda binary).
//!
//! The arithmetic around the networks is plain Rust and always built: boxes, weighted
//! non-maximum suppression, the similarity alignment onto the 112 × 112 template
//! ([`geometry`]), and the BlazeFace detector's anchors, input and decoding
//! ([`blazeface`]).

pub mod blazeface;
pub mod geometry;
