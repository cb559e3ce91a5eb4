//! Vision benchmark, Fanout's side (bench/vision.sh runs it next to the Python pipeline):
//! decode each image, detect its faces, place their landmarks, align them and extract
//! FaceRes descriptors, one ONNX Runtime thread, for ROUNDS rounds over the images.
//! Prints one JSON line: images, faces, seconds, images/s, peak RSS.
//!
//! Usage: vision_bench ROUNDS IMAGE...

use std::time::Instant;

use fanout::vision::faces::{self, Extractor, Wanted};
use fanout::vision::models::{Models, models_dir};
use fanout::vision::picture;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().ok_or("ROUNDS")?.parse()?;
    let files: Vec<String> = args.collect();
    let images: Vec<Vec<u8>> = files.iter().map(std::fs::read).collect::<Result<_, _>>()?;
    let models = Models::load(&models_dir(), 1)?;
    let wanted = Wanted {
        descriptors: vec![Extractor::FaceRes],
        ..Wanted::default()
    };
    // One warm-up round, not timed (first runs allocate and plan).
    for bytes in &images {
        faces::analyse(&models, &picture::decode(bytes)?, 0.5, &wanted)?;
    }
    let started = Instant::now();
    let mut found = 0usize;
    for _ in 0..rounds {
        for bytes in &images {
            let image = picture::decode(bytes)?;
            found += faces::analyse(&models, &image, 0.5, &wanted)?.len();
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let count = rounds * images.len();
    println!(
        "{}",
        serde_json::json!({
            "pipeline": "fanout",
            "images": count,
            "faces": found,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "images_per_s": ((count as f64 / seconds) * 100.0).round() / 100.0,
            "peak_rss_mib": peak_rss_kib() / 1024,
        })
    );
    Ok(())
}
