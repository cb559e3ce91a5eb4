//! The vision module on the models and images `make models` lays out (package-shipped:
//! insightface's t1.jpg, six people; ultralytics' bus.jpg and zidane.jpg): detection
//! counts, gender on t1, same-person descriptors closer than different-person ones over
//! augmented copies, and unreadable images refused with a reason.

mod common;
use common::{image, models, models_dir};

use fanout::vision::faces::{self, Extractor, Face, Wanted};
use fanout::vision::geometry::Rgb;
use fanout::vision::picture::{self, PictureError};

const EVERYTHING: fn() -> Wanted = || Wanted {
    descriptors: vec![Extractor::FaceRes, Extractor::FaceNet],
    basic_attributes: true,
    emotions: true,
    mask: true,
    head_pose: true,
    quality: true,
};

/// The faces of an image, left to right.
fn faces_of(image: &Rgb) -> Vec<Face> {
    let mut found = faces::analyse(models(), image, 0.5, &EVERYTHING()).unwrap();
    found.sort_by(|a, b| a.detection.rect.x.total_cmp(&b.detection.rect.x));
    found
}

fn descriptor(face: &Face, which: Extractor) -> &[f32] {
    &face
        .descriptors
        .iter()
        .find(|(e, _)| *e == which)
        .expect("asked for")
        .1
}

/// The image mirrored left to right.
fn mirrored(image: &Rgb) -> Rgb {
    let (w, h) = (image.width as usize, image.height as usize);
    let mut pixels = Vec::with_capacity(image.pixels.len());
    for y in 0..h {
        for x in (0..w).rev() {
            let i = (y * w + x) * 3;
            pixels.extend_from_slice(&image.pixels[i..i + 3]);
        }
    }
    Rgb {
        width: image.width,
        height: image.height,
        pixels,
    }
}

/// The image brighter by `gain` and re-encoded as a lower-quality JPEG.
fn brighter_jpeg(image: &Rgb, gain: f32) -> Rgb {
    let pixels = image
        .pixels
        .iter()
        .map(|&p| (f32::from(p) * gain).min(255.0) as u8)
        .collect();
    let bright = Rgb {
        width: image.width,
        height: image.height,
        pixels,
    };
    picture::decode(&picture::encode_jpeg(&bright, 70)).unwrap()
}

#[test]
fn six_faces_on_t1_with_landmarks_inside_their_boxes() {
    let t1 = image("t1.jpg");
    let found = faces_of(&t1);
    assert_eq!(
        found.len(),
        6,
        "{:?}",
        found.iter().map(|f| f.detection.score).collect::<Vec<_>>()
    );
    for face in &found {
        let r = face.detection.rect;
        for p in &face.five[..3] {
            assert!(
                p.x >= r.x && p.x <= r.x + r.width && p.y >= r.y && p.y <= r.y + r.height,
                "{face:?}"
            );
        }
        let q = face.quality.unwrap();
        assert!((0.0..=1.0).contains(&q));
        let pose = face.head_pose.unwrap();
        assert!(pose.yaw.abs() < 70.0 && pose.roll.abs() < 30.0, "{pose:?}");
        assert!(
            face.mask.unwrap() < 0.5,
            "nobody on t1 wears a mask: {face:?}"
        );
        let emotions = face.emotions.unwrap();
        assert!((emotions.iter().sum::<f32>() - 1.0).abs() < 1e-3);
    }
    // zidane.jpg: two men; bus.jpg: faces of the people by the bus.
    assert_eq!(faces_of(&image("zidane.jpg")).len(), 2);
    assert!(!faces_of(&image("bus.jpg")).is_empty());
}

#[test]
fn gender_on_t1_matches_who_is_who() {
    // Left to right on t1.jpg: woman, woman, man, man, man, woman.
    let truth = [false, false, true, true, true, false];
    let found = faces_of(&image("t1.jpg"));
    let male: Vec<bool> = found.iter().map(|f| f.male.unwrap() > 0.5).collect();
    assert_eq!(male, truth);
    for face in &found {
        let age = face.age.unwrap();
        assert!((10.0..80.0).contains(&age), "{age}");
    }
}

#[test]
fn the_same_person_is_closer_than_anyone_else_under_augmentation() {
    let t1 = image("t1.jpg");
    let original = faces_of(&t1);
    assert_eq!(original.len(), 6);
    // A mirrored copy (the faces come right to left), and a brighter, recompressed one.
    let mut flipped = faces_of(&mirrored(&t1));
    flipped.reverse();
    let bright = faces_of(&brighter_jpeg(&t1, 1.1));
    assert_eq!((flipped.len(), bright.len()), (6, 6));
    for which in [Extractor::FaceRes, Extractor::FaceNet] {
        let mut worst_same = f32::MAX;
        let mut best_other = f32::MIN;
        for copy in [&flipped, &bright] {
            for (i, a) in original.iter().enumerate() {
                for (j, b) in copy.iter().enumerate() {
                    let cos = faces::cosine(descriptor(a, which), descriptor(b, which));
                    if i == j {
                        worst_same = worst_same.min(cos);
                    } else {
                        best_other = best_other.max(cos);
                    }
                }
            }
        }
        println!("{which:?}: same person >= {worst_same:.3}, different people <= {best_other:.3}");
        assert!(
            worst_same > best_other,
            "{which:?}: {worst_same} vs {best_other}"
        );
        assert_eq!(descriptor(&original[0], which).len(), which.length());
    }
}

#[test]
fn a_mirrored_face_turns_and_tilts_the_other_way() {
    let t1 = image("t1.jpg");
    let original = faces_of(&t1);
    let mut flipped = faces_of(&mirrored(&t1));
    flipped.reverse();
    assert_eq!(flipped.len(), original.len());
    let turned = original
        .iter()
        .filter(|f| f.head_pose.unwrap().yaw.abs() > 10.0)
        .count();
    assert!(turned >= 2, "t1 has faces turned aside");
    for (a, b) in original.iter().zip(&flipped) {
        let (p, q) = (a.head_pose.unwrap(), b.head_pose.unwrap());
        // A face clearly turned one way is turned the other way in the mirror; the tilt
        // changes sign; the nod stays. (Landmarks of faces of 100 pixels are good to a
        // few pixels: a few degrees.)
        if p.yaw.abs() > 15.0 {
            assert!(p.yaw * q.yaw < 0.0, "{p:?} vs {q:?}");
        }
        assert!((p.roll + q.roll).abs() < 6.0, "{p:?} vs {q:?}");
        assert!((p.pitch - q.pitch).abs() < 10.0, "{p:?} vs {q:?}");
    }
}

#[test]
fn unreadable_images_are_refused_with_a_reason() {
    assert_eq!(picture::decode(b"not an image"), Err(PictureError::Format));
    let bytes = std::fs::read(models_dir().join("images/t1.jpg")).unwrap();
    let cut = &bytes[..bytes.len() / 4];
    match picture::decode(cut) {
        Err(PictureError::Corrupt(_)) => {}
        // A cut JPEG may decode with its bottom missing; then it is still an image.
        Ok(image) => assert_eq!(image.width, picture::decode(&bytes).unwrap().width),
        Err(other) => panic!("{other:?}"),
    }
    // An image with no face: none found, nothing fails.
    let blank = Rgb {
        width: 320,
        height: 240,
        pixels: vec![128; 320 * 240 * 3],
    };
    assert!(faces_of(&blank).is_empty());
}
