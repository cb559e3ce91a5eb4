//! The face detector's arithmetic around the network: BlazeFace full-range (MediaPipe's
//! `face_detection_full_range`) takes a 192 × 192 RGB square scaled to `[-1, 1]` and
//! answers, for each of 2304 anchors (a 48 × 48 grid, stride 4, one anchor per cell),
//! 16 regressed values — box centre offset and size, then six keypoints (right eye, left
//! eye, nose tip, mouth centre, right ear, left ear, as the subject sees them) — and one
//! logit. This module builds the anchors, letterboxes an image into the input square,
//! decodes the outputs back into image pixels and merges overlapping detections.

pub use super::geometry::Letterbox;
use super::geometry::{Detection, Point, Rect, Rgb, letterboxed, weighted_nms};

/// Side of the network's input square.
pub const INPUT: u32 = 192;
/// Anchors (and rows of each output).
pub const ANCHORS: usize = 48 * 48;
/// Values regressed per anchor.
pub const VALUES: usize = 16;
/// Keypoints per detection.
pub const KEYPOINTS: usize = 6;
/// Score under which a detection is dropped (MediaPipe's setting for this model).
pub const MIN_SCORE: f32 = 0.6;
/// Overlap above which detections merge.
pub const NMS_IOU: f32 = 0.3;
/// Logits are clipped to this before the sigmoid.
const LOGIT_CLIP: f32 = 100.0;

/// Anchor centres in input units (`0..1`), row by row: the centre of each cell of the
/// 48 × 48 grid.
pub fn anchors() -> Vec<Point> {
    let grid = 48;
    let mut out = Vec::with_capacity(ANCHORS);
    for y in 0..grid {
        for x in 0..grid {
            out.push(Point::new(
                (x as f32 + 0.5) / grid as f32,
                (y as f32 + 0.5) / grid as f32,
            ));
        }
    }
    out
}

/// The network's input for `image`: NCHW `[1, 3, 192, 192]`, values in `[-1, 1]`, the
/// image letterboxed (bilinear, black padding), and how it was placed.
pub fn input(image: &Rgb) -> (Vec<f32>, Letterbox) {
    let side = INPUT as usize;
    let mut tensor = vec![-1.0f32; 3 * side * side];
    let boxed = letterboxed(image, INPUT, |x, y, v| {
        for c in 0..3 {
            tensor[c * side * side + y * side + x] = v[c] / 127.5 - 1.0;
        }
    });
    (tensor, boxed)
}

fn sigmoid(logit: f32) -> f32 {
    1.0 / (1.0 + (-logit.clamp(-LOGIT_CLIP, LOGIT_CLIP)).exp())
}

/// Decodes the network's outputs — `regressors` (`ANCHORS × VALUES`) and `logits`
/// (`ANCHORS`) — into detections in image pixels: those scoring at least `min_score`,
/// overlapping ones merged, best first. Boxes are clipped to the image.
pub fn decode(
    regressors: &[f32],
    logits: &[f32],
    anchors: &[Point],
    boxed: &Letterbox,
    image: (u32, u32),
    min_score: f32,
) -> Vec<Detection> {
    let side = INPUT as f32;
    let mut found = Vec::new();
    for (i, anchor) in anchors.iter().enumerate().take(ANCHORS) {
        let Some(&logit) = logits.get(i) else { break };
        let score = sigmoid(logit);
        if score < min_score {
            continue;
        }
        let Some(r) = regressors.get(i * VALUES..(i + 1) * VALUES) else {
            break;
        };
        // Offsets and sizes are in input pixels, relative to the anchor's centre.
        let centre = Point::new(anchor.x * side + r[0], anchor.y * side + r[1]);
        let (w, h) = (r[2], r[3]);
        let top_left = boxed.to_image(Point::new(centre.x - w / 2.0, centre.y - h / 2.0));
        let bottom_right = boxed.to_image(Point::new(centre.x + w / 2.0, centre.y + h / 2.0));
        let rect = Rect {
            x: top_left.x,
            y: top_left.y,
            width: bottom_right.x - top_left.x,
            height: bottom_right.y - top_left.y,
        };
        let landmarks = (0..KEYPOINTS)
            .map(|k| {
                boxed.to_image(Point::new(
                    anchor.x * side + r[4 + 2 * k],
                    anchor.y * side + r[5 + 2 * k],
                ))
            })
            .collect();
        found.push(Detection {
            rect,
            score,
            landmarks,
        });
    }
    let mut merged = weighted_nms(found, NMS_IOU);
    for d in &mut merged {
        d.rect = d.rect.clipped(image.0 as f32, image.1 as f32);
    }
    merged.retain(|d| d.rect.area() > 0.0);
    merged
}

/// Five alignment points from BlazeFace's six keypoints: the eyes and the nose tip as
/// they are; the mouth corners, which it does not give, placed either side of the mouth
/// centre along the eye line, at the spread the alignment template has (0.83 of the eye
/// distance). Order: left eye, right eye, nose, left and right mouth corner, left as
/// seen in the image.
pub fn five_points(keypoints: &[Point]) -> Option<[Point; 5]> {
    if keypoints.len() < 4 {
        return None;
    }
    // BlazeFace's "right eye" is the subject's: on the image's left.
    let (a, b) = (keypoints[0], keypoints[1]);
    let (left, right) = if a.x <= b.x { (a, b) } else { (b, a) };
    let (nose, mouth) = (keypoints[2], keypoints[3]);
    let (ex, ey) = (right.x - left.x, right.y - left.y);
    let half = 0.83 / 2.0;
    Some([
        left,
        right,
        nose,
        Point::new(mouth.x - ex * half, mouth.y - ey * half),
        Point::new(mouth.x + ex * half, mouth.y + ey * half),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_cover_the_square_in_cell_centres() {
        let a = anchors();
        assert_eq!(a.len(), ANCHORS);
        assert_eq!(a[0], Point::new(0.5 / 48.0, 0.5 / 48.0));
        assert_eq!(a[48], Point::new(0.5 / 48.0, 1.5 / 48.0));
        assert_eq!(a[ANCHORS - 1], Point::new(47.5 / 48.0, 47.5 / 48.0));
    }

    #[test]
    fn the_letterbox_centres_the_longer_side() {
        let wide = Letterbox::of(400, 200, INPUT);
        assert_eq!(
            wide,
            Letterbox {
                scale: 0.48,
                dx: 0.0,
                dy: 48.0
            }
        );
        let back = wide.to_image(Point::new(96.0, 96.0));
        assert!((back.x - 200.0).abs() < 1e-3 && (back.y - 100.0).abs() < 1e-3);
        // Black padding reads as -1; a white image's pixels as 1.
        let white = Rgb {
            width: 400,
            height: 200,
            pixels: vec![255; 400 * 200 * 3],
        };
        let (tensor, _) = input(&white);
        assert_eq!(tensor.len(), 3 * 192 * 192);
        assert_eq!(tensor[0], -1.0);
        assert!((tensor[96 * 192 + 96] - 1.0).abs() < 1e-6);
        assert!((tensor[2 * 192 * 192 + 96 * 192 + 96] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn outputs_decode_into_image_pixels_and_merge() {
        let anchors = anchors();
        let mut regressors = vec![0.0f32; ANCHORS * VALUES];
        let mut logits = vec![-10.0f32; ANCHORS];
        // Two neighbouring anchors see one 40 × 40 face centred at input (98, 98) —
        // anchor 24,24 is centred at (98, 98) — with its nose at the centre.
        for (cell, dx) in [(24 * 48 + 24, 0.0f32), (24 * 48 + 25, -4.0)] {
            logits[cell] = 5.0;
            let r = &mut regressors[cell * VALUES..(cell + 1) * VALUES];
            r[0] = dx;
            r[2] = 40.0;
            r[3] = 40.0;
            r[8] = dx; // nose, keypoint 2
        }
        let boxed = Letterbox::of(384, 384, INPUT);
        let found = decode(
            &regressors,
            &logits,
            &anchors,
            &boxed,
            (384, 384),
            MIN_SCORE,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        let face = &found[0];
        assert!((face.rect.width - 80.0).abs() < 1e-3, "{face:?}");
        assert!((face.rect.x - (196.0 - 40.0)).abs() < 1e-3, "{face:?}");
        assert!((face.landmarks[2].x - 196.0).abs() < 1e-3);
        assert!(face.score > 0.99);
        // Nothing above the threshold: nothing found.
        let none = decode(
            &regressors,
            &vec![-10.0; ANCHORS],
            &anchors,
            &boxed,
            (384, 384),
            MIN_SCORE,
        );
        assert!(none.is_empty());
    }

    #[test]
    fn five_points_put_the_mouth_corners_along_the_eye_line() {
        let keypoints = [
            Point::new(60.0, 40.0), // the subject's right eye, on the image's right
            Point::new(40.0, 40.0),
            Point::new(50.0, 50.0),
            Point::new(50.0, 60.0),
        ];
        let five = five_points(&keypoints).unwrap();
        assert_eq!(five[0], Point::new(40.0, 40.0));
        assert_eq!(five[1], Point::new(60.0, 40.0));
        assert!((five[3].x - (50.0 - 8.3)).abs() < 1e-4 && five[3].y == 60.0);
        assert!((five[4].x - (50.0 + 8.3)).abs() < 1e-4);
        assert!(five_points(&keypoints[..3]).is_none());
    }
}
