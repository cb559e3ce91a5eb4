//! `human_tracking`'s tracker: faces found in sampled frames linked into tracks by box
//! overlap (greedy, best overlap first), a track ending after `skip_frames` sampled
//! frames without a match; each track keeps its best detection as its sample. Tracks cut
//! by a segment boundary are joined by the merge ([`join`]). Pure: the worker feeds it
//! detections.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::vision::geometry::Rect;

/// Least overlap (IoU) between a track's last box and a detection for them to be linked.
pub const LINK_IOU: f32 = 0.3;

/// A box in video pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BoxOut {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub width: f32,
    /// Height.
    pub height: f32,
}

impl From<Rect> for BoxOut {
    fn from(r: Rect) -> BoxOut {
        BoxOut {
            x: r.x,
            y: r.y,
            width: r.width,
            height: r.height,
        }
    }
}

impl From<BoxOut> for Rect {
    fn from(b: BoxOut) -> Rect {
        Rect {
            x: b.x,
            y: b.y,
            width: b.width,
            height: b.height,
        }
    }
}

/// One detection of a track.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Sighting {
    /// Frame number in the whole video.
    pub frame: u64,
    /// Seconds from the video's start.
    pub time_offset: f64,
    /// Where.
    pub bbox: BoxOut,
    /// Detector score.
    pub score: f32,
}

/// A face followed over frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Track {
    /// First sighting.
    pub first: Sighting,
    /// Last sighting.
    pub last: Sighting,
    /// The sighting with the best score (the track's sample).
    pub best: Sighting,
    /// Sampled frames it was seen in.
    pub sightings: u32,
    /// Descriptor of the best sample (with `aggregated_face_descriptor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptor: Option<Vec<f32>>,
}

impl Track {
    fn start(s: Sighting) -> Track {
        Track {
            first: s,
            last: s,
            best: s,
            sightings: 1,
            descriptor: None,
        }
    }

    fn extend(&mut self, s: Sighting) {
        self.last = s;
        self.sightings += 1;
        if s.score > self.best.score {
            self.best = s;
        }
    }

    /// Appends `later` (a continuation of this track).
    fn absorb(&mut self, later: Track) {
        self.last = later.last;
        self.sightings += later.sightings;
        if later.best.score > self.best.score {
            self.best = later.best;
            self.descriptor = later.descriptor;
        }
    }
}

/// Links sightings frame by frame.
#[derive(Debug, Default)]
pub struct Tracker {
    skip_frames: u32,
    /// Open tracks and the sampled frames they have missed since their last sighting.
    open: Vec<(Track, u32)>,
    closed: Vec<Track>,
}

impl Tracker {
    /// A tracker ending a track after `skip_frames` sampled frames without it.
    pub fn new(skip_frames: u32) -> Tracker {
        Tracker {
            skip_frames,
            ..Tracker::default()
        }
    }

    /// One sampled frame's detections (boxes in video pixels, scores).
    pub fn update(&mut self, frame: u64, time_offset: f64, detections: &[(Rect, f32)]) {
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (t, (track, _)) in self.open.iter().enumerate() {
            let last: Rect = track.last.bbox.into();
            for (d, (rect, _)) in detections.iter().enumerate() {
                let iou = last.iou(rect);
                if iou >= LINK_IOU {
                    pairs.push((iou, t, d));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let mut track_used = vec![false; self.open.len()];
        let mut det_used = vec![false; detections.len()];
        let sighting = |d: usize| Sighting {
            frame,
            time_offset,
            bbox: detections[d].0.into(),
            score: detections[d].1,
        };
        for (_, t, d) in pairs {
            if track_used[t] || det_used[d] {
                continue;
            }
            track_used[t] = true;
            det_used[d] = true;
            self.open[t].0.extend(sighting(d));
            self.open[t].1 = 0;
        }
        let mut still_open = Vec::with_capacity(self.open.len());
        for (t, (track, missed)) in std::mem::take(&mut self.open).into_iter().enumerate() {
            let missed = if track_used[t] { missed } else { missed + 1 };
            if missed > self.skip_frames {
                self.closed.push(track);
            } else {
                still_open.push((track, missed));
            }
        }
        self.open = still_open;
        for (d, used) in det_used.iter().enumerate() {
            if !used {
                self.open.push((Track::start(sighting(d)), 0));
            }
        }
    }

    /// The frames holding some track's best sighting.
    pub fn best_frames(&self) -> Vec<u64> {
        self.open
            .iter()
            .map(|(t, _)| t.best.frame)
            .chain(self.closed.iter().map(|t| t.best.frame))
            .collect()
    }

    /// Every track, in order of first sighting.
    pub fn finish(mut self) -> Vec<Track> {
        self.closed.extend(self.open.into_iter().map(|(t, _)| t));
        self.closed.sort_by(|a, b| {
            a.first
                .frame
                .cmp(&b.first.frame)
                .then(a.first.bbox.x.total_cmp(&b.first.bbox.x))
        });
        self.closed
    }
}

/// Joins the tracks of consecutive segments (each list in order of first sighting):
/// a track of a later segment continues one that was last seen at most `gap_frames`
/// before its first sighting with overlapping boxes. Tracks come out in order of first
/// sighting.
pub fn join(segments: Vec<Vec<Track>>, gap_frames: u64) -> Vec<Track> {
    let mut joined: Vec<Track> = Vec::new();
    // Tracks of earlier segments that may continue (one per track: each is taken once).
    let mut previous: Vec<usize> = Vec::new();
    for tracks in segments {
        let mut open_here = Vec::new();
        let mut taken = vec![false; previous.len()];
        for track in tracks {
            let first: Rect = track.first.bbox.into();
            let mut best: Option<(f32, usize)> = None;
            for (p, &j) in previous.iter().enumerate() {
                let before = &joined[j];
                if taken[p]
                    || before.last.frame >= track.first.frame
                    || track.first.frame - before.last.frame > gap_frames
                {
                    continue;
                }
                let iou = Rect::from(before.last.bbox).iou(&first);
                if iou >= LINK_IOU && best.is_none_or(|(b, _)| iou > b) {
                    best = Some((iou, p));
                }
            }
            match best {
                Some((_, p)) => {
                    taken[p] = true;
                    let j = previous[p];
                    joined[j].absorb(track);
                    open_here.push(j);
                }
                None => {
                    joined.push(track);
                    open_here.push(joined.len() - 1);
                }
            }
        }
        // A track of an earlier segment not continued here may still be continued by
        // the next segment only if it ended near this segment's end: keep them all; the
        // gap check decides.
        for (p, j) in previous.into_iter().enumerate() {
            if !taken[p] {
                open_here.push(j);
            }
        }
        previous = open_here;
    }
    joined.sort_by(|a, b| {
        a.first
            .frame
            .cmp(&b.first.frame)
            .then(a.first.bbox.x.total_cmp(&b.first.bbox.x))
    });
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: f32) -> (Rect, f32) {
        (
            Rect {
                x,
                y: 10.0,
                width: 40.0,
                height: 40.0,
            },
            0.9,
        )
    }

    #[test]
    fn two_faces_moving_slowly_give_two_tracks() {
        let mut tracker = Tracker::new(2);
        for i in 0..10u64 {
            let dx = i as f32 * 3.0;
            tracker.update(i * 5, i as f64, &[rect(10.0 + dx), rect(200.0 - dx)]);
        }
        let tracks = tracker.finish();
        assert_eq!(tracks.len(), 2);
        assert!(tracks.iter().all(|t| t.sightings == 10));
        assert_eq!(tracks[0].first.frame, 0);
        assert_eq!(tracks[0].last.frame, 45);
    }

    #[test]
    fn a_track_survives_skip_frames_misses_and_ends_after() {
        let mut tracker = Tracker::new(1);
        tracker.update(0, 0.0, &[rect(10.0)]);
        tracker.update(5, 0.2, &[]);
        tracker.update(10, 0.4, &[rect(12.0)]);
        tracker.update(15, 0.6, &[]);
        tracker.update(20, 0.8, &[]);
        tracker.update(25, 1.0, &[rect(12.0)]);
        let tracks = tracker.finish();
        assert_eq!(tracks.len(), 2, "{tracks:?}");
        assert_eq!(tracks[0].sightings, 2);
        assert_eq!(tracks[1].first.frame, 25);
    }

    #[test]
    fn tracks_cut_by_a_segment_boundary_join() {
        let run = |from: u64, to: u64| {
            let mut tracker = Tracker::new(2);
            for f in (from..to).step_by(5) {
                tracker.update(f, f as f64 / 25.0, &[rect(10.0), rect(300.0)]);
            }
            tracker.finish()
        };
        let whole = join(vec![run(0, 100)], 15);
        let cut = join(vec![run(0, 25), run(25, 60), run(60, 100)], 15);
        assert_eq!(whole.len(), 2);
        assert_eq!(cut.len(), 2, "{cut:?}");
        for (a, b) in whole.iter().zip(&cut) {
            assert_eq!(
                (a.first.frame, a.last.frame, a.sightings),
                (b.first.frame, b.last.frame, b.sightings)
            );
        }
        // A face that reappears long after is another track.
        let apart = join(vec![run(0, 25), run(200, 225)], 15);
        assert_eq!(apart.len(), 4);
    }
}
