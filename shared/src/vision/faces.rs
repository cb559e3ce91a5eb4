//! Faces of an image: detected (BlazeFace), aligned on five points, described (FaceRes
//! 1024-D, FaceNet 512-D) and estimated (age, gender, emotion, mask, head pose,
//! quality). Every network of a step runs once per image on a batch of its faces
//! (FaceNet's graph takes one face at a time).

use super::blazeface;
use super::geometry::{Detection, Point, Rgb, Similarity, TEMPLATE_112};
use super::models::{ModelError, Models, Net, Output};

/// The descriptor networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Extractor {
    /// HSE FaceRes: 1024 values.
    FaceRes,
    /// FaceNet Inception-ResNet-v1: 512 values.
    FaceNet,
}

impl Extractor {
    /// The length of its descriptors.
    pub fn length(self) -> usize {
        match self {
            Extractor::FaceRes => 1024,
            Extractor::FaceNet => 512,
        }
    }
}

/// The seven emotions, in the network's order.
pub const EMOTIONS: [&str; 7] = [
    "anger",
    "disgust",
    "fear",
    "happiness",
    "sadness",
    "surprise",
    "neutral",
];

/// What to compute for each face besides its box and landmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    /// Descriptors of these networks.
    pub descriptors: Vec<Extractor>,
    /// Age and gender (FaceRes's heads).
    pub basic_attributes: bool,
    /// The seven emotions.
    pub emotions: bool,
    /// Mask or not.
    pub mask: bool,
    /// Yaw, pitch, roll from the landmarks.
    pub head_pose: bool,
    /// The quality score.
    pub quality: bool,
}

/// Head pose in degrees: turned right is positive yaw, looking up positive pitch,
/// tilted clockwise (as seen) positive roll.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HeadPose {
    /// Left-right turn.
    pub yaw: f32,
    /// Up-down nod.
    pub pitch: f32,
    /// In-plane tilt.
    pub roll: f32,
}

/// One face found and what was computed for it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Face {
    /// Box (image pixels), score, BlazeFace's six keypoints.
    pub detection: Detection,
    /// The five alignment points (left eye, right eye, nose, mouth corners).
    pub five: [Point; 5],
    /// Descriptors asked for, each L2-normalised.
    pub descriptors: Vec<(Extractor, Vec<f32>)>,
    /// Age in years.
    pub age: Option<f32>,
    /// Probability of male (FaceRes's gender head).
    pub male: Option<f32>,
    /// Probabilities of [`EMOTIONS`].
    pub emotions: Option<[f32; 7]>,
    /// Probability of a mask.
    pub mask: Option<f32>,
    /// Head pose.
    pub head_pose: Option<HeadPose>,
    /// Quality in `[0, 1]`: detection confidence, size, sharpness and frontality.
    pub quality: Option<f32>,
}

fn shape_error(net: &Net, what: impl Into<String>) -> ModelError {
    ModelError::Shape {
        model: net.name(),
        what: what.into(),
    }
}

/// The output of `outputs` whose last dimension is `last` (and rows `rows`).
fn output_with<'o>(
    net: &Net,
    outputs: &'o [Output],
    last: usize,
    rows: usize,
) -> Result<&'o Output, ModelError> {
    outputs
        .iter()
        .find(|o| o.shape.last() == Some(&last) && o.values.len() == rows * last)
        .ok_or_else(|| shape_error(net, format!("no output of {rows} x {last}")))
}

/// The faces of `image` with at least `min_score`, best first.
pub fn detect(models: &Models, image: &Rgb, min_score: f32) -> Result<Vec<Detection>, ModelError> {
    let (tensor, boxed) = blazeface::input(image);
    let side = blazeface::INPUT as usize;
    let outputs = models.detector.run([1, 3, side, side], tensor)?;
    let regressors = output_with(
        &models.detector,
        &outputs,
        blazeface::VALUES,
        blazeface::ANCHORS,
    )?;
    let logits = output_with(&models.detector, &outputs, 1, blazeface::ANCHORS)?;
    Ok(blazeface::decode(
        &regressors.values,
        &logits.values,
        &blazeface::anchors(),
        &boxed,
        (image.width, image.height),
        min_score,
    ))
}

/// The face of `five` cut and aligned into a `size` × `size` crop, the 112 × 112
/// template scaled so that its square fills `1 / margin` of the crop, centred.
pub fn aligned(image: &Rgb, five: &[Point; 5], size: u32, margin: f32) -> Option<Rgb> {
    let scale = size as f32 / (112.0 * margin);
    let offset = (size as f32 - 112.0 * scale) / 2.0;
    let template: Vec<Point> = TEMPLATE_112
        .iter()
        .map(|p| Point::new(p.x * scale + offset, p.y * scale + offset))
        .collect();
    let to_crop = Similarity::estimate(five, &template)?;
    Some(image.warp(size, size, &to_crop.inverse()?))
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// NHWC values of crops, each pixel mapped by `map`.
fn nhwc(crops: &[Rgb], map: impl Fn(f32) -> f32) -> Vec<f32> {
    crops
        .iter()
        .flat_map(|c| c.pixels.iter().map(|&p| map(f32::from(p))))
        .collect()
}

fn softmax_if_needed(values: &mut [f32]) {
    let sum: f32 = values.iter().sum();
    if values.iter().all(|v| *v >= 0.0) && (sum - 1.0).abs() < 1e-3 {
        return;
    }
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = values.iter().map(|v| (v - max).exp()).collect();
    let total: f32 = exps.iter().sum();
    for (v, e) in values.iter_mut().zip(exps) {
        *v = e / total;
    }
}

/// How far a nose tip stands in front of the eyes, in half eye distances.
const NOSE_DEPTH: f32 = 0.8;

/// Head pose from the five points: roll is the eye line's angle; yaw how far the nose
/// sits from the eyes' midpoint across the eye line, relative to the eye distance; pitch
/// how far the nose sits between the eye line and the mouth line, against a frontal
/// face's share (the template's). Rough (landmarks, no 3-D model), in degrees.
pub fn head_pose(five: &[Point; 5]) -> HeadPose {
    let [left, right, nose, mouth_left, mouth_right] = *five;
    let (ex, ey) = (right.x - left.x, right.y - left.y);
    let eye_distance = (ex * ex + ey * ey).sqrt().max(1e-3);
    let roll = ey.atan2(ex).to_degrees();
    let (ux, uy) = (ex / eye_distance, ey / eye_distance);
    let eyes = Point::new((left.x + right.x) / 2.0, (left.y + right.y) / 2.0);
    let mouth = Point::new(
        (mouth_left.x + mouth_right.x) / 2.0,
        (mouth_left.y + mouth_right.y) / 2.0,
    );
    // Nose offset along the eye line, and down from it (perpendicular).
    let along = (nose.x - eyes.x) * ux + (nose.y - eyes.y) * uy;
    let down_nose = -(nose.x - eyes.x) * uy + (nose.y - eyes.y) * ux;
    let down_mouth = (-(mouth.x - eyes.x) * uy + (mouth.y - eyes.y) * ux).max(1e-3);
    // Eyes at ±E and the nose tip NOSE_DEPTH·E in front of them: turned by θ, the nose
    // shows NOSE_DEPTH·E·sin θ off the eyes' midpoint, the eyes E·cos θ either side.
    let yaw = (2.0 * along / eye_distance / NOSE_DEPTH)
        .atan()
        .to_degrees();
    // The template's nose sits at 0.5 of the way from the eye line to the mouth line.
    let t = &TEMPLATE_112;
    let frontal =
        (t[2].y - (t[0].y + t[1].y) / 2.0) / ((t[3].y + t[4].y) / 2.0 - (t[0].y + t[1].y) / 2.0);
    let pitch = ((down_nose / down_mouth - frontal) * 2.0)
        .clamp(-1.0, 1.0)
        .asin()
        .to_degrees();
    HeadPose { yaw, pitch, roll }
}

/// Sharpness of a crop: the variance of its grey Laplacian, mapped into `[0, 1)`.
fn sharpness(crop: &Rgb) -> f32 {
    let (w, h) = (crop.width as usize, crop.height as usize);
    let grey: Vec<f32> = crop
        .pixels
        .chunks_exact(3)
        .map(|p| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
        .collect();
    let mut values = Vec::new();
    for y in 1..h.saturating_sub(1) {
        for x in 1..w.saturating_sub(1) {
            let c = grey[y * w + x];
            values.push(
                grey[y * w + x - 1]
                    + grey[y * w + x + 1]
                    + grey[(y - 1) * w + x]
                    + grey[(y + 1) * w + x]
                    - 4.0 * c,
            );
        }
    }
    if values.is_empty() {
        return 0.0;
    }
    let mean = values.iter().sum::<f32>() / values.len() as f32;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / values.len() as f32;
    variance / (variance + 100.0)
}

/// The quality of a face: the product of its detection score, a size term (full at 80
/// pixels between the eyes' outer span and the mouth — about a 100-pixel face), the
/// sharpness of its aligned crop and a frontality term (full when yaw and pitch are 0,
/// half at 45 degrees).
fn quality(face: &Face, crop: &Rgb, pose: &HeadPose) -> f32 {
    let size = (face.detection.rect.width.min(face.detection.rect.height) / 100.0).min(1.0);
    let turn = (pose.yaw.abs().max(pose.pitch.abs()) / 90.0).min(1.0);
    let frontal = 1.0 - turn;
    (face.detection.score * size * sharpness(crop) * frontal).clamp(0.0, 1.0)
}

/// Side of the landmark network's input.
const LANDMARK_INPUT: usize = 48;

/// The five alignment points of each detected face, from MTCNN's output network run on
/// the square around its box: BlazeFace's keypoints come from a 192-pixel view of the
/// whole image, too coarse for the faces of a group photo, and it gives no mouth
/// corners. A face the network cannot place keeps the points made from BlazeFace's.
pub fn five_points(
    models: &Models,
    image: &Rgb,
    detections: &[Detection],
) -> Result<Vec<[Point; 5]>, ModelError> {
    let side_px = LANDMARK_INPUT as f32;
    let squares: Vec<(f32, f32, f32)> = detections
        .iter()
        .map(|d| {
            let side = d.rect.width.max(d.rect.height).max(1.0);
            let (cx, cy) = (
                d.rect.x + d.rect.width / 2.0,
                d.rect.y + d.rect.height / 2.0,
            );
            (cx - side / 2.0, cy - side / 2.0, side)
        })
        .collect();
    // Width-major (N, W, H, C), values (p - 127.5) / 128, as the network was trained.
    let mut tensor = Vec::with_capacity(squares.len() * LANDMARK_INPUT * LANDMARK_INPUT * 3);
    for &(x0, y0, side) in &squares {
        let scale = side / side_px;
        let to_source = Similarity {
            a: scale,
            b: 0.0,
            tx: x0 + 0.5 * scale - 0.5,
            ty: y0 + 0.5 * scale - 0.5,
        };
        let crop = image.warp(LANDMARK_INPUT as u32, LANDMARK_INPUT as u32, &to_source);
        for x in 0..LANDMARK_INPUT {
            for y in 0..LANDMARK_INPUT {
                let i = (y * LANDMARK_INPUT + x) * 3;
                tensor.extend(
                    crop.pixels[i..i + 3]
                        .iter()
                        .map(|&p| (f32::from(p) - 127.5) / 128.0),
                );
            }
        }
    }
    let n = squares.len();
    let outputs = models
        .landmarks
        .run([n, LANDMARK_INPUT, LANDMARK_INPUT, 3], tensor)?;
    let points = output_with(&models.landmarks, &outputs, 10, n)?;
    Ok(detections
        .iter()
        .zip(&squares)
        .enumerate()
        .map(|(i, (d, &(x0, y0, side)))| {
            let row = &points.values[i * 10..(i + 1) * 10];
            let placed = row.iter().all(|v| (-0.25..=1.25).contains(v));
            match (placed, blazeface::five_points(&d.landmarks)) {
                (false, Some(rough)) => rough,
                _ => {
                    std::array::from_fn(|k| Point::new(x0 + row[k] * side, y0 + row[5 + k] * side))
                }
            }
        })
        .collect())
}

/// Detects the faces of `image` and computes what `wanted` asks for each.
pub fn analyse(
    models: &Models,
    image: &Rgb,
    min_score: f32,
    wanted: &Wanted,
) -> Result<Vec<Face>, ModelError> {
    let detections = detect(models, image, min_score)?;
    if detections.is_empty() {
        return Ok(Vec::new());
    }
    let fives = five_points(models, image, &detections)?;
    let mut faces: Vec<Face> = detections
        .into_iter()
        .zip(fives)
        .map(|(detection, five)| Face {
            detection,
            five,
            ..Face::default()
        })
        .collect();
    let n = faces.len();
    let fives: Vec<[Point; 5]> = faces.iter().map(|f| f.five).collect();
    let crops = |size: u32, margin: f32| -> Vec<Rgb> {
        fives
            .iter()
            .map(|five| {
                aligned(image, five, size, margin).unwrap_or(Rgb {
                    width: size,
                    height: size,
                    pixels: vec![0; (size * size * 3) as usize],
                })
            })
            .collect()
    };
    let faceres_needed =
        wanted.basic_attributes || wanted.descriptors.contains(&Extractor::FaceRes);
    if faceres_needed {
        let batch = crops(224, 1.3);
        let outputs = models.faceres.run([n, 224, 224, 3], nhwc(&batch, |p| p))?;
        let descriptors = output_with(&models.faceres, &outputs, 1024, n)?;
        let gender = output_with(&models.faceres, &outputs, 1, n)?;
        let age = output_with(&models.faceres, &outputs, 100, n)?;
        for (i, face) in faces.iter_mut().enumerate() {
            if wanted.descriptors.contains(&Extractor::FaceRes) {
                let mut d = descriptors.values[i * 1024..(i + 1) * 1024].to_vec();
                normalise(&mut d);
                face.descriptors.push((Extractor::FaceRes, d));
            }
            if wanted.basic_attributes {
                face.male = Some(gender.values[i]);
                let mut bins = age.values[i * 100..(i + 1) * 100].to_vec();
                softmax_if_needed(&mut bins);
                face.age = Some(bins.iter().enumerate().map(|(a, p)| a as f32 * p).sum());
            }
        }
    }
    if wanted.descriptors.contains(&Extractor::FaceNet) {
        for (face, crop) in faces.iter_mut().zip(crops(160, 1.3)) {
            let mut values = nhwc(std::slice::from_ref(&crop), |p| p);
            let count = values.len() as f32;
            let mean = values.iter().sum::<f32>() / count;
            let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / count).sqrt();
            let std = std.max(1.0 / count.sqrt());
            values.iter_mut().for_each(|v| *v = (*v - mean) / std);
            let outputs = models.facenet.run([1, 160, 160, 3], values)?;
            let mut d = output_with(&models.facenet, &outputs, 512, 1)?
                .values
                .clone();
            normalise(&mut d);
            face.descriptors.push((Extractor::FaceNet, d));
        }
    }
    if wanted.emotions {
        let batch = crops(64, 1.1);
        let grey: Vec<f32> = batch
            .iter()
            .flat_map(|c| {
                c.pixels.chunks_exact(3).map(|p| {
                    let g = (0.2989 * f32::from(p[0])
                        + 0.587 * f32::from(p[1])
                        + 0.114 * f32::from(p[2]))
                        / 255.0;
                    g * 2.0 - 1.0
                })
            })
            .collect();
        let outputs = models.emotion.run([n, 64, 64, 1], grey)?;
        let scores = output_with(&models.emotion, &outputs, 7, n)?;
        for (i, face) in faces.iter_mut().enumerate() {
            let mut p: [f32; 7] = scores.values[i * 7..(i + 1) * 7].try_into().expect("seven");
            softmax_if_needed(&mut p);
            face.emotions = Some(p);
        }
    }
    if wanted.mask {
        let batch = crops(224, 1.2);
        let outputs = models
            .mask
            .run([n, 224, 224, 3], nhwc(&batch, |p| p / 127.5 - 1.0))?;
        let scores = output_with(&models.mask, &outputs, 2, n)?;
        for (i, face) in faces.iter_mut().enumerate() {
            face.mask = Some(scores.values[i * 2]);
        }
    }
    if wanted.head_pose || wanted.quality {
        let batch = crops(112, 1.0);
        for (face, crop) in faces.iter_mut().zip(batch) {
            let pose = head_pose(&face.five);
            if wanted.quality {
                face.quality = Some(quality(face, &crop, &pose));
            }
            if wanted.head_pose {
                face.head_pose = Some(pose);
            }
        }
    }
    Ok(faces)
}

/// Cosine similarity of two descriptors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frontal_face_has_no_pose_and_a_turned_one_has_yaw() {
        let pose = head_pose(&TEMPLATE_112);
        assert!(
            pose.yaw.abs() < 1.0 && pose.pitch.abs() < 1.0 && pose.roll.abs() < 1.0,
            "{pose:?}"
        );
        let mut turned = TEMPLATE_112;
        turned[2].x += 15.0;
        assert!(head_pose(&turned).yaw > 20.0);
        let tilt = Similarity {
            a: 10f32.to_radians().cos(),
            b: 10f32.to_radians().sin(),
            tx: 0.0,
            ty: 0.0,
        };
        let tilted = TEMPLATE_112.map(|p| tilt.apply(p));
        let pose = head_pose(&tilted);
        assert!(
            (pose.roll - 10.0).abs() < 0.5 && pose.yaw.abs() < 1.0,
            "{pose:?}"
        );
    }

    #[test]
    fn softmax_applies_only_to_logits() {
        let mut p = [0.25f32, 0.75];
        softmax_if_needed(&mut p);
        assert_eq!(p, [0.25, 0.75]);
        let mut l = [0.0f32, 0.0];
        softmax_if_needed(&mut l);
        assert_eq!(l, [0.5, 0.5]);
    }
}
