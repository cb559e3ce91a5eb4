//! Boxes, points and the transforms between an image and a face crop: overlap,
//! weighted non-maximum suppression, the similarity transform that maps five detected
//! landmarks onto a template, and the bilinear warp that cuts the aligned crop.

/// A point in pixels (or in any one frame of reference).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Point {
    /// Horizontal, to the right.
    pub x: f32,
    /// Vertical, downwards.
    pub y: f32,
}

impl Point {
    /// The point `(x, y)`.
    pub const fn new(x: f32, y: f32) -> Point {
        Point { x, y }
    }
}

/// An axis-aligned box: top-left corner and size.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rect {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width (never negative).
    pub width: f32,
    /// Height (never negative).
    pub height: f32,
}

impl Rect {
    /// The box centred on `(cx, cy)` of size `w` × `h`.
    pub fn centred(cx: f32, cy: f32, w: f32, h: f32) -> Rect {
        Rect {
            x: cx - w / 2.0,
            y: cy - h / 2.0,
            width: w.max(0.0),
            height: h.max(0.0),
        }
    }

    /// Its area.
    pub fn area(&self) -> f32 {
        self.width * self.height
    }

    /// Intersection over union with `other` (0 when either is empty).
    pub fn iou(&self, other: &Rect) -> f32 {
        let left = self.x.max(other.x);
        let top = self.y.max(other.y);
        let right = (self.x + self.width).min(other.x + other.width);
        let bottom = (self.y + self.height).min(other.y + other.height);
        let inter = (right - left).max(0.0) * (bottom - top).max(0.0);
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }

    /// The box clipped to `[0, width) × [0, height)`.
    pub fn clipped(&self, width: f32, height: f32) -> Rect {
        let left = self.x.clamp(0.0, width);
        let top = self.y.clamp(0.0, height);
        let right = (self.x + self.width).clamp(0.0, width);
        let bottom = (self.y + self.height).clamp(0.0, height);
        Rect {
            x: left,
            y: top,
            width: right - left,
            height: bottom - top,
        }
    }
}

/// A detection: a box, a score in `[0, 1]` and landmarks in the same frame.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Detection {
    /// Where.
    pub rect: Rect,
    /// How sure.
    pub score: f32,
    /// Landmarks (the detector's own order).
    pub landmarks: Vec<Point>,
}

/// Weighted non-maximum suppression: detections are taken by falling score; each one
/// and every later one overlapping it by more than `threshold` (IoU) merge into one
/// whose box and landmarks are the score-weighted mean of the group and whose score is
/// the highest. Steadier boxes than plain suppression on a detector with many anchors
/// per face.
pub fn weighted_nms(mut detections: Vec<Detection>, threshold: f32) -> Vec<Detection> {
    detections.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut taken = vec![false; detections.len()];
    let mut out = Vec::new();
    for i in 0..detections.len() {
        if taken[i] {
            continue;
        }
        let head = &detections[i];
        let group: Vec<usize> = (i..detections.len())
            .filter(|&j| !taken[j] && (j == i || head.rect.iou(&detections[j].rect) > threshold))
            .collect();
        let total: f32 = group.iter().map(|&j| detections[j].score).sum();
        let mut merged = Detection {
            rect: Rect::default(),
            score: head.score,
            landmarks: vec![Point::default(); head.landmarks.len()],
        };
        for &j in &group {
            taken[j] = true;
            let d = &detections[j];
            let w = d.score / total;
            merged.rect.x += d.rect.x * w;
            merged.rect.y += d.rect.y * w;
            merged.rect.width += d.rect.width * w;
            merged.rect.height += d.rect.height * w;
            for (m, p) in merged.landmarks.iter_mut().zip(&d.landmarks) {
                m.x += p.x * w;
                m.y += p.y * w;
            }
        }
        out.push(merged);
    }
    out
}

/// A similarity transform (rotation, uniform scale, translation):
/// `x' = a·x − b·y + tx`, `y' = b·x + a·y + ty`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    /// Scale × cos(angle).
    pub a: f32,
    /// Scale × sin(angle).
    pub b: f32,
    /// Horizontal shift.
    pub tx: f32,
    /// Vertical shift.
    pub ty: f32,
}

impl Similarity {
    /// Where `p` goes.
    pub fn apply(&self, p: Point) -> Point {
        Point {
            x: self.a * p.x - self.b * p.y + self.tx,
            y: self.b * p.x + self.a * p.y + self.ty,
        }
    }

    /// The transform that undoes this one (`None` when it collapses the plane).
    pub fn inverse(&self) -> Option<Similarity> {
        let norm = self.a * self.a + self.b * self.b;
        if norm <= f32::EPSILON {
            return None;
        }
        let (a, b) = (self.a / norm, -self.b / norm);
        Some(Similarity {
            a,
            b,
            tx: -(a * self.tx - b * self.ty),
            ty: -(b * self.tx + a * self.ty),
        })
    }

    /// The least-squares similarity taking `from[i]` to `to[i]` (closed form for the
    /// 2-D case: centre both sets, then the rotation-and-scale that best maps one onto
    /// the other). `None` with fewer than two points or all `from` points equal.
    pub fn estimate(from: &[Point], to: &[Point]) -> Option<Similarity> {
        let n = from.len().min(to.len());
        if n < 2 {
            return None;
        }
        let mean = |ps: &[Point]| {
            let (sx, sy) = ps[..n].iter().fold((0.0f64, 0.0f64), |(x, y), p| {
                (x + f64::from(p.x), y + f64::from(p.y))
            });
            (sx / n as f64, sy / n as f64)
        };
        let (fx, fy) = mean(from);
        let (tx, ty) = mean(to);
        let (mut dot, mut cross, mut var) = (0.0f64, 0.0f64, 0.0f64);
        for i in 0..n {
            let (ux, uy) = (f64::from(from[i].x) - fx, f64::from(from[i].y) - fy);
            let (vx, vy) = (f64::from(to[i].x) - tx, f64::from(to[i].y) - ty);
            dot += ux * vx + uy * vy;
            cross += ux * vy - uy * vx;
            var += ux * ux + uy * uy;
        }
        if var <= f64::EPSILON {
            return None;
        }
        let (a, b) = (dot / var, cross / var);
        Some(Similarity {
            a: a as f32,
            b: b as f32,
            tx: (tx - (a * fx - b * fy)) as f32,
            ty: (ty - (b * fx + a * fy)) as f32,
        })
    }
}

/// The five landmarks of a face aligned into a 112 × 112 crop — left eye, right eye,
/// nose tip, left and right mouth corners (the left as seen in the image) — the
/// template of the widely used 112 × 112 alignment.
pub const TEMPLATE_112: [Point; 5] = [
    Point::new(38.2946, 51.6963),
    Point::new(73.5318, 51.5014),
    Point::new(56.0252, 71.7366),
    Point::new(41.5493, 92.3655),
    Point::new(70.7299, 92.2041),
];

/// An RGB image, 8 bits per channel, rows top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width × height × 3` bytes.
    pub pixels: Vec<u8>,
}

impl Rgb {
    /// The channel values at `(x, y)`, black outside the image.
    fn at(&self, x: i64, y: i64) -> [f32; 3] {
        if x < 0 || y < 0 || x >= i64::from(self.width) || y >= i64::from(self.height) {
            return [0.0; 3];
        }
        let i = ((y as usize) * self.width as usize + x as usize) * 3;
        [
            f32::from(self.pixels[i]),
            f32::from(self.pixels[i + 1]),
            f32::from(self.pixels[i + 2]),
        ]
    }

    /// The bilinear sample at `p` (pixel centres at integer coordinates).
    pub fn sample(&self, p: Point) -> [f32; 3] {
        let (x0, y0) = (p.x.floor(), p.y.floor());
        let (fx, fy) = (p.x - x0, p.y - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        let mut out = [0.0; 3];
        let corners = [
            (x0, y0, (1.0 - fx) * (1.0 - fy)),
            (x0 + 1, y0, fx * (1.0 - fy)),
            (x0, y0 + 1, (1.0 - fx) * fy),
            (x0 + 1, y0 + 1, fx * fy),
        ];
        for (x, y, w) in corners {
            if w == 0.0 {
                continue;
            }
            let v = self.at(x, y);
            for c in 0..3 {
                out[c] += v[c] * w;
            }
        }
        out
    }

    /// The `width × height` image whose pixel `q` is this image's bilinear sample at
    /// `to_source(q)`.
    pub fn warp(&self, width: u32, height: u32, to_source: &Similarity) -> Rgb {
        let mut pixels = Vec::with_capacity(width as usize * height as usize * 3);
        for y in 0..height {
            for x in 0..width {
                let v = self.sample(to_source.apply(Point::new(x as f32, y as f32)));
                pixels.extend(v.iter().map(|c| c.round().clamp(0.0, 255.0) as u8));
            }
        }
        Rgb {
            width,
            height,
            pixels,
        }
    }

    /// The face of `landmarks` (five, in [`TEMPLATE_112`]'s order) aligned into a
    /// 112 × 112 crop; `None` when the landmarks are degenerate.
    pub fn align_112(&self, landmarks: &[Point]) -> Option<Rgb> {
        let to_crop = Similarity::estimate(landmarks, &TEMPLATE_112)?;
        Some(self.warp(112, 112, &to_crop.inverse()?))
    }
}

/// How an image sits in a network's square input: scaled by `scale` (keeping its
/// aspect) and shifted by `(dx, dy)` input pixels, centred, its longer side filling the
/// square.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// Input pixels per image pixel.
    pub scale: f32,
    /// Horizontal padding, input pixels.
    pub dx: f32,
    /// Vertical padding, input pixels.
    pub dy: f32,
}

impl Letterbox {
    /// The letterbox of a `width × height` image in a square of `side` pixels.
    pub fn of(width: u32, height: u32, side: u32) -> Letterbox {
        let scale = side as f32 / width.max(height).max(1) as f32;
        Letterbox {
            scale,
            dx: (side as f32 - width as f32 * scale) / 2.0,
            dy: (side as f32 - height as f32 * scale) / 2.0,
        }
    }

    /// An input-square point (input pixels) in image pixels.
    pub fn to_image(&self, p: Point) -> Point {
        Point::new((p.x - self.dx) / self.scale, (p.y - self.dy) / self.scale)
    }

    /// An image point (image pixels) in input pixels.
    pub fn to_input(&self, p: Point) -> Point {
        Point::new(p.x * self.scale + self.dx, p.y * self.scale + self.dy)
    }
}

/// Letterboxes `image` into a `side × side` input: `put(x, y, rgb)` for every input
/// pixel the image covers, with the image sampled bilinearly at that pixel's centre
/// (pixels of the padding are not visited); how the image was placed.
pub fn letterboxed(
    image: &Rgb,
    side: u32,
    mut put: impl FnMut(usize, usize, [f32; 3]),
) -> Letterbox {
    let boxed = Letterbox::of(image.width, image.height, side);
    let side = side as usize;
    for y in 0..side {
        for x in 0..side {
            // The centre of the input pixel, in image pixel coordinates.
            let p = boxed.to_image(Point::new(x as f32 + 0.5, y as f32 + 0.5));
            let (ix, iy) = (p.x - 0.5, p.y - 0.5);
            if ix < -0.5
                || iy < -0.5
                || ix > image.width as f32 - 0.5
                || iy > image.height as f32 - 0.5
            {
                continue;
            }
            put(x, y, image.sample(Point::new(ix, iy)));
        }
    }
    boxed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-3
    }

    #[test]
    fn overlap_is_intersection_over_union() {
        let a = Rect {
            x: 0.0,
            y: 0.0,
            width: 10.0,
            height: 10.0,
        };
        let b = Rect {
            x: 5.0,
            y: 0.0,
            width: 10.0,
            height: 10.0,
        };
        assert!(close(a.iou(&b), 50.0 / 150.0));
        assert!(close(a.iou(&a), 1.0));
        let far = Rect {
            x: 20.0,
            y: 20.0,
            width: 1.0,
            height: 1.0,
        };
        assert_eq!(a.iou(&far), 0.0);
        assert_eq!(a.iou(&Rect::default()), 0.0);
        let clipped = Rect {
            x: -5.0,
            y: 2.0,
            width: 10.0,
            height: 20.0,
        }
        .clipped(8.0, 8.0);
        assert_eq!(
            clipped,
            Rect {
                x: 0.0,
                y: 2.0,
                width: 5.0,
                height: 6.0
            }
        );
    }

    #[test]
    fn overlapping_detections_merge_by_score_and_apart_ones_stay() {
        let d = |x: f32, score: f32| Detection {
            rect: Rect {
                x,
                y: 0.0,
                width: 10.0,
                height: 10.0,
            },
            score,
            landmarks: vec![Point::new(x, 1.0)],
        };
        let out = weighted_nms(vec![d(0.0, 0.25), d(1.0, 0.75), d(50.0, 0.5)], 0.3);
        assert_eq!(out.len(), 2);
        assert!(close(out[0].score, 0.75));
        assert!(close(out[0].rect.x, 0.75), "{:?}", out[0]);
        assert!(close(out[0].landmarks[0].x, 0.75));
        assert!(close(out[1].rect.x, 50.0));
        assert!(weighted_nms(Vec::new(), 0.3).is_empty());
    }

    #[test]
    fn a_similarity_is_recovered_from_its_points_and_undone_by_its_inverse() {
        let truth = Similarity {
            a: 1.2 * 0.3f32.cos(),
            b: 1.2 * 0.3f32.sin(),
            tx: 7.0,
            ty: -3.0,
        };
        let from = TEMPLATE_112.to_vec();
        let to: Vec<Point> = from.iter().map(|p| truth.apply(*p)).collect();
        let found = Similarity::estimate(&from, &to).unwrap();
        for (x, y) in [
            (found.a, truth.a),
            (found.b, truth.b),
            (found.tx, truth.tx),
            (found.ty, truth.ty),
        ] {
            assert!((x - y).abs() < 1e-3, "{found:?} vs {truth:?}");
        }
        let back = found.inverse().unwrap();
        for p in &from {
            let q = back.apply(found.apply(*p));
            assert!(close(q.x, p.x) && close(q.y, p.y));
        }
        assert!(Similarity::estimate(&from[..1], &to[..1]).is_none());
        let same = [Point::new(1.0, 1.0); 3];
        assert!(Similarity::estimate(&same, &to[..3]).is_none());
    }

    #[test]
    fn alignment_puts_the_landmarks_on_the_template() {
        // A 200 × 200 image, dark everywhere but a bright 5 × 5 spot at each landmark of
        // a face twice the template's size, shifted: the aligned crop is bright at the
        // template's points.
        let (w, h) = (200u32, 200u32);
        let mut pixels = vec![0u8; (w * h * 3) as usize];
        let landmarks: Vec<Point> = TEMPLATE_112
            .iter()
            .map(|p| Point::new(p.x * 1.5 + 20.0, p.y * 1.5 + 10.0))
            .collect();
        for p in &landmarks {
            for dy in -2..=2 {
                for dx in -2..=2 {
                    let (x, y) = (
                        (p.x.round() as i64 + dx) as usize,
                        (p.y.round() as i64 + dy) as usize,
                    );
                    let i = (y * w as usize + x) * 3;
                    pixels[i..i + 3].copy_from_slice(&[255, 255, 255]);
                }
            }
        }
        let image = Rgb {
            width: w,
            height: h,
            pixels,
        };
        let crop = image.align_112(&landmarks).unwrap();
        assert_eq!((crop.width, crop.height), (112, 112));
        for p in TEMPLATE_112 {
            let i = ((p.y.round() as usize) * 112 + p.x.round() as usize) * 3;
            assert!(crop.pixels[i] > 200, "dark at {p:?}");
        }
        let corner = &crop.pixels[0..3];
        assert_eq!(corner, &[0, 0, 0]);
    }
}
