//! Images made from the package-shipped ones (t1.jpg, zidane.jpg, bus.jpg): crops,
//! small rotations, scales, mirrors and brightness changes, JPEG-encoded, packed in a
//! zip — the estimator's big input, reproducible from a seed. Shared by the tests and
//! `workers/examples/estimator_bench.rs` (included by path).

use std::io::{Cursor, Write};
use std::path::Path;

use fanout::vision::geometry::{Point, Rgb, Similarity};
use fanout::vision::picture;

/// The package images the copies are made from.
pub const SOURCES: [&str; 3] = ["t1.jpg", "zidane.jpg", "bus.jpg"];
/// Longest side of a copy.
pub const MAX_SIDE: f32 = 480.0;

/// A small linear congruential generator (reproducible copies).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 40) as f32) / ((1u64 << 24) as f32)
    }

    fn between(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.next()
    }
}

/// Copy number `index` of `source`: a crop of 60 to 100 % of each side, rotated by up
/// to 8 degrees, scaled to at most [`MAX_SIDE`], mirrored every other time, brightness
/// times 0.7 to 1.3; JPEG at quality 85.
pub fn copy(source: &Rgb, index: u64) -> Vec<u8> {
    let mut lcg = Lcg(index.wrapping_mul(2_654_435_761).wrapping_add(17));
    let keep = lcg.between(0.6, 1.0);
    let (cw, ch) = (source.width as f32 * keep, source.height as f32 * keep);
    let (x0, y0) = (
        lcg.between(0.0, source.width as f32 - cw),
        lcg.between(0.0, source.height as f32 - ch),
    );
    let scale = (MAX_SIDE / cw.max(ch)).min(1.0);
    let (w, h) = ((cw * scale).round() as u32, (ch * scale).round() as u32);
    let angle = lcg.between(-8.0, 8.0).to_radians();
    let s = 1.0 / scale;
    let (a, b) = (s * angle.cos(), s * angle.sin());
    // Rotate about the crop's centre.
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let centre = Point::new(x0 + cw / 2.0, y0 + ch / 2.0);
    let to_source = Similarity {
        a,
        b,
        tx: centre.x - (a * cx - b * cy),
        ty: centre.y - (b * cx + a * cy),
    };
    let mut out = source.warp(w, h, &to_source);
    if index % 2 == 1 {
        let row = w as usize * 3;
        for line in out.pixels.chunks_exact_mut(row) {
            let flipped: Vec<u8> = line.chunks_exact(3).rev().flatten().copied().collect();
            line.copy_from_slice(&flipped);
        }
    }
    let light = lcg.between(0.7, 1.3);
    for p in &mut out.pixels {
        *p = (f32::from(*p) * light).round().clamp(0.0, 255.0) as u8;
    }
    picture::encode_jpeg(&out, 85)
}

/// A zip of `count` copies (`copies/<index>.jpg`, deflated), cycling over the sources
/// found in `images`.
pub fn zip(images: &Path, count: u64) -> Vec<u8> {
    let sources: Vec<Rgb> = SOURCES
        .iter()
        .map(|name| {
            let bytes = std::fs::read(images.join(name))
                .unwrap_or_else(|e| panic!("{name}: {e} (run `make models`)"));
            picture::decode(&bytes).expect("package image decodes")
        })
        .collect();
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for index in 0..count {
        let source = &sources[(index % sources.len() as u64) as usize];
        writer
            .start_file(
                format!("copies/{index:05}.jpg"),
                zip::write::SimpleFileOptions::default(),
            )
            .expect("zip entry");
        writer.write_all(&copy(source, index)).expect("zip write");
    }
    writer.finish().expect("zip").into_inner()
}
