//! Images in: JPEG or PNG bytes decoded into [`Rgb`], within limits, every failure a
//! clear reason (the estimator names the image it could not read).

use image::{ImageFormat, ImageReader, Limits};

use super::geometry::Rgb;

/// The largest image side decoded.
pub const MAX_SIDE: u32 = 8192;
/// The most pixels decoded (about 48 MB of RGB).
pub const MAX_PIXELS: u64 = 16_000_000;

/// Why an image could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PictureError {
    /// Neither JPEG nor PNG.
    #[error("not a JPEG or PNG image")]
    Format,
    /// Larger than the limits.
    #[error(
        "image of {width}x{height} pixels is over the limit ({MAX_SIDE} a side, {MAX_PIXELS} pixels)"
    )]
    TooLarge {
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
    },
    /// The decoder failed (truncated or corrupt data).
    #[error("image does not decode: {0}")]
    Corrupt(String),
}

/// Decodes JPEG or PNG `bytes` into RGB (alpha dropped, grey expanded).
pub fn decode(bytes: &[u8]) -> Result<Rgb, PictureError> {
    let format = image::guess_format(bytes).map_err(|_| PictureError::Format)?;
    if !matches!(format, ImageFormat::Jpeg | ImageFormat::Png) {
        return Err(PictureError::Format);
    }
    let mut reader = ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| PictureError::Corrupt(e.to_string()))?;
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(PictureError::TooLarge { width, height });
    }
    reader = ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_PIXELS * 4 + (1 << 20));
    reader.limits(limits);
    let decoded = reader
        .decode()
        .map_err(|e| PictureError::Corrupt(e.to_string()))?
        .into_rgb8();
    Ok(Rgb {
        width: decoded.width(),
        height: decoded.height(),
        pixels: decoded.into_raw(),
    })
}

/// Encodes `image` as JPEG at `quality` (a face's sample, an overview frame).
pub fn encode_jpeg(image: &Rgb, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
    encoder
        .encode(
            &image.pixels,
            image.width,
            image.height,
            image::ExtendedColorType::Rgb8,
        )
        .expect("an RGB buffer of its own size encodes");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: u32, height: u32) -> Rgb {
        let mut pixels = Vec::new();
        for y in 0..height {
            for x in 0..width {
                pixels.extend([(x * 255 / width) as u8, (y * 255 / height) as u8, 128]);
            }
        }
        Rgb {
            width,
            height,
            pixels,
        }
    }

    #[test]
    fn jpeg_round_trips_and_other_bytes_are_refused_with_a_reason() {
        let image = gradient(64, 48);
        let back = decode(&encode_jpeg(&image, 95)).unwrap();
        assert_eq!((back.width, back.height), (64, 48));
        let worst = image
            .pixels
            .iter()
            .zip(&back.pixels)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(worst < 24, "{worst}");
        assert_eq!(decode(b"GIF89a......"), Err(PictureError::Format));
        assert_eq!(decode(b"plain text"), Err(PictureError::Format));
        let jpeg = encode_jpeg(&image, 90);
        let truncated = &jpeg[..jpeg.len() / 3];
        assert!(matches!(decode(truncated), Err(PictureError::Corrupt(_))));
    }

    #[test]
    fn png_with_alpha_decodes_to_rgb() {
        let mut png = Vec::new();
        let rgba = image::RgbaImage::from_pixel(3, 2, image::Rgba([10, 20, 30, 0]));
        rgba.write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        let back = decode(&png).unwrap();
        assert_eq!(back.pixels, [10, 20, 30].repeat(6));
    }
}
