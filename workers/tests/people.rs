//! The person detector (SSDLite MobileNetV2, `ssdlite-person.onnx`) on the models and
//! images `make models` lays out: two men on zidane.jpg, one on each side; at least one
//! person on bus.jpg (its people are small once letterboxed into 300 × 300); four to six
//! of t1.jpg's six; the same boxes on a second run.

mod common;
use common::{image, models};

use std::time::Instant;

use fanout::vision::geometry::Rgb;
use fanout::vision::people::{Detection, PersonDetector};

/// The people of an image, timed, printed (`--nocapture` shows them).
fn people(name: &str) -> (Rgb, Vec<Detection>) {
    let image = image(name);
    let started = Instant::now();
    let found = PersonDetector::new(models()).detect(&image).unwrap();
    println!(
        "{name} ({}x{}): {} people in {:.1} ms",
        image.width,
        image.height,
        found.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    for d in &found {
        println!("  {:?} score {:.3}", d.bbox, d.score);
    }
    (image, found)
}

/// Every box inside the image, not empty, scored at least the threshold, best first.
fn check_boxes(image: &Rgb, found: &[Detection]) {
    for d in found {
        let b = d.bbox;
        assert!(b.width > 0.0 && b.height > 0.0, "{b:?}");
        assert!(b.x >= 0.0 && b.y >= 0.0, "{b:?}");
        assert!(b.x + b.width <= image.width as f32 + 1e-3, "{b:?}");
        assert!(b.y + b.height <= image.height as f32 + 1e-3, "{b:?}");
        assert!((0.5..=1.0).contains(&d.score), "{d:?}");
    }
    assert!(found.windows(2).all(|w| w[0].score >= w[1].score));
}

#[test]
fn zidane_has_two_men_one_on_each_side() {
    let (image, mut found) = people("zidane.jpg");
    check_boxes(&image, &found);
    assert_eq!(found.len(), 2, "{found:?}");
    found.sort_by(|a, b| a.bbox.x.total_cmp(&b.bbox.x));
    let centre = |d: &Detection| {
        (
            d.bbox.x + d.bbox.width / 2.0,
            d.bbox.y + d.bbox.height / 2.0,
        )
    };
    let (w, h) = (image.width as f32, image.height as f32);
    // Zidane stands right of centre, the other man on the left.
    let (lx, ly) = centre(&found[0]);
    let (rx, ry) = centre(&found[1]);
    assert!(lx < w / 2.0, "left man's centre at {lx}");
    assert!(rx > w / 2.0, "right man's centre at {rx}");
    for (y, d) in [(ly, &found[0]), (ry, &found[1])] {
        assert!(y > h * 0.25 && y < h * 0.85, "centre height {y}");
        // A standing person: a tall box, a good part of the image's height.
        assert!(d.bbox.height > h * 0.5, "{d:?}");
    }
    // Two separate people, not one split in two.
    assert!(found[0].bbox.iou(&found[1].bbox) < 0.2);
}

#[test]
fn bus_has_at_least_one_person() {
    let (image, found) = people("bus.jpg");
    check_boxes(&image, &found);
    assert!(!found.is_empty());
}

#[test]
fn t1_has_four_to_six_people() {
    let (image, found) = people("t1.jpg");
    check_boxes(&image, &found);
    assert!((4..=6).contains(&found.len()), "{} people", found.len());
}

#[test]
fn the_detector_is_deterministic() {
    for name in ["zidane.jpg", "t1.jpg", "bus.jpg"] {
        let (_, first) = people(name);
        let (_, second) = people(name);
        assert_eq!(first, second, "{name}");
    }
}

#[test]
fn a_higher_threshold_keeps_a_subset() {
    let image = image("t1.jpg");
    let detector = PersonDetector::new(models());
    let all = detector.detect(&image).unwrap();
    let strict = detector.with_min_score(0.8).detect(&image).unwrap();
    assert!(strict.len() <= all.len());
    assert!(strict.iter().all(|d| d.score >= 0.8 && all.contains(d)));
}
