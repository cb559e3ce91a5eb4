//! The vision module as task kinds use it (workers only): the networks loaded once per
//! process, and an image's faces analysed off the async runtime, with an aligned sample
//! of each face for the objects a task creates from them.

use std::sync::OnceLock;

use super::faces::{self, Extractor, Face, Wanted};
use super::geometry::Rgb;
use super::models::Models;
use super::picture::{self, PictureError};
use crate::descriptor::{FACENET_VERSION, FACERES_VERSION};
use crate::error::ApiError;

/// Side of the sample kept for a face a task creates (JPEG, the face aligned with
/// margin, like a LUNA warp).
pub const SAMPLE_SIDE: u32 = 250;

/// The network of an extractable descriptor version.
pub fn extractor(version: u32) -> Option<Extractor> {
    match version {
        FACERES_VERSION => Some(Extractor::FaceRes),
        FACENET_VERSION => Some(Extractor::FaceNet),
        _ => None,
    }
}

/// The descriptor version of a network's output.
pub fn version_of(extractor: Extractor) -> u32 {
    match extractor {
        Extractor::FaceRes => FACERES_VERSION,
        Extractor::FaceNet => FACENET_VERSION,
    }
}

static MODELS: OnceLock<Result<Models, String>> = OnceLock::new();

/// The networks, loaded on first use ([`Models::from_env`]); a worker without them
/// fails the subtask with a clear reason (retried: the image may be fixed by a restart).
pub fn models() -> Result<&'static Models, ApiError> {
    MODELS
        .get_or_init(|| Models::from_env().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| ApiError::internal("vision models", e))
}

/// One analysed image.
#[derive(Debug, Clone)]
pub struct Analysed {
    /// Its size in pixels.
    pub width: u32,
    /// Its height.
    pub height: u32,
    /// The faces, best first.
    pub faces: Vec<Face>,
    /// A JPEG sample of each face, when asked for.
    pub samples: Vec<Vec<u8>>,
}

/// Decodes `bytes` and analyses its faces on a blocking thread; the outer error is the
/// service's (models, runtime), the inner one the image's (it does not decode).
pub async fn analyse(
    bytes: Vec<u8>,
    min_score: f32,
    wanted: Wanted,
    samples: bool,
) -> Result<Result<Analysed, PictureError>, ApiError> {
    let models = models()?;
    tokio::task::spawn_blocking(move || {
        let image = match picture::decode(&bytes) {
            Ok(image) => image,
            Err(err) => return Ok(Err(err)),
        };
        drop(bytes);
        let found = faces::analyse(models, &image, min_score, &wanted)
            .map_err(|e| ApiError::internal("vision", e))?;
        let samples = if samples {
            found.iter().map(|f| sample(&image, f)).collect()
        } else {
            Vec::new()
        };
        Ok(Ok(Analysed {
            width: image.width,
            height: image.height,
            faces: found,
            samples,
        }))
    })
    .await
    .map_err(|e| ApiError::internal("vision thread", e))?
}

/// The face aligned into a [`SAMPLE_SIDE`] square with margin, as JPEG.
fn sample(image: &Rgb, face: &Face) -> Vec<u8> {
    let crop = faces::aligned(image, &face.five, SAMPLE_SIDE, 2.0).unwrap_or_else(|| Rgb {
        width: SAMPLE_SIDE,
        height: SAMPLE_SIDE,
        pixels: vec![0; (SAMPLE_SIDE * SAMPLE_SIDE * 3) as usize],
    });
    picture::encode_jpeg(&crop, 90)
}
