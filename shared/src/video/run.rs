//! The worker's side of a video task: one segment decoded (only its range, frames
//! sampled at the analytics' rates) and measured frame by frame; the models run off the
//! async runtime. Also what a stream's agent runs on each frame ([`Measurer`]).

use std::sync::Arc;

use super::analytics::{Analytic, FrameCount, HumanTracking, PeopleCount};
use super::media::{Frame, FrameReader, Sampling};
use super::task::{
    ANALYSIS_SIDE, SegmentMeasures, SegmentOutput, SegmentPart, VideoContent, processing_error,
    read_url,
};
use super::tracking::Tracker;
use crate::error::ApiError;
use crate::kinds::SubtaskContext;
use crate::store::blobs;
use crate::vision::estimate;
use crate::vision::faces::{self, Extractor, Wanted};
use crate::vision::geometry::{Rect, Rgb};
use crate::vision::models::Models;
use crate::vision::people::PersonDetector;
use crate::vision::picture;

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The decoding period that serves every analytic: the gcd of their periods.
pub fn decode_period(analytics: &[Analytic], frame_rate: f64) -> u64 {
    analytics
        .iter()
        .map(|a| a.rate().frames(frame_rate))
        .fold(0, gcd)
        .max(1)
}

/// Per-analytic state over a run of frames.
enum State {
    People {
        params: PeopleCount,
        period: u64,
        frames: Vec<FrameCount>,
        /// The best frame of the current run of frames within the thresholds.
        run_best: Option<(u32, u64, Arc<Rgb>)>,
        /// Runs' best frames, to store as overviews.
        keep: Vec<(u64, Arc<Rgb>)>,
    },
    Faces {
        params: HumanTracking,
        period: u64,
        tracker: Tracker,
        /// The frame of each track's best sighting so far, by frame number.
        best_frames: Vec<(u64, Arc<Rgb>)>,
    },
}

/// Measures frames for a list of analytics.
pub struct Measurer {
    states: Vec<State>,
    video: (u32, u32),
}

impl Measurer {
    /// Measures for `analytics` on a `width` × `height` video of `frame_rate`.
    pub fn new(analytics: &[Analytic], frame_rate: f64, width: u32, height: u32) -> Measurer {
        let states = analytics
            .iter()
            .map(|a| match a {
                Analytic::PeopleCount(p) => State::People {
                    params: p.clone(),
                    period: p.rate.frames(frame_rate),
                    frames: Vec::new(),
                    run_best: None,
                    keep: Vec::new(),
                },
                Analytic::HumanTracking(h) => State::Faces {
                    params: h.clone(),
                    period: h.rate.frames(frame_rate),
                    tracker: Tracker::new(h.skip_frames),
                    best_frames: Vec::new(),
                },
            })
            .collect();
        Measurer {
            states,
            video: (width, height),
        }
    }

    /// Measures one decoded frame (its number decides which analytics see it).
    pub async fn frame(&mut self, frame: Frame) -> Result<(), ApiError> {
        let models = estimate::models()?;
        let image = Arc::new(frame.image);
        let (vw, vh) = self.video;
        let scale = vw as f32 / image.width as f32;
        let scale_y = vh as f32 / image.height as f32;
        for state in self.states.iter_mut() {
            match state {
                State::People {
                    params,
                    period,
                    frames,
                    run_best,
                    keep,
                } => {
                    if !frame.number.is_multiple_of(*period) {
                        continue;
                    }
                    let counted = count_people(
                        params,
                        image.clone(),
                        (frame.number, frame.time),
                        self.video,
                    )
                    .await?;
                    let count = counted.people_count;
                    if params.overview && params.within(count) {
                        if run_best.as_ref().is_none_or(|(c, _, _)| count > *c) {
                            *run_best = Some((count, frame.number, image.clone()));
                        }
                    } else if let Some((_, n, img)) = run_best.take() {
                        keep.push((n, img));
                    }
                    frames.push(counted);
                }
                State::Faces {
                    params,
                    period,
                    tracker,
                    best_frames,
                } => {
                    if !frame.number.is_multiple_of(*period) {
                        continue;
                    }
                    let img = image.clone();
                    let min_score = params.min_score;
                    let found = blocking(move || {
                        faces::detect(models, &img, min_score)
                            .map_err(|e| ApiError::internal("face detector", e))
                    })
                    .await?;
                    let boxes: Vec<(Rect, f32)> = found
                        .iter()
                        .map(|d| {
                            let r = d.rect;
                            Rect {
                                x: r.x * scale,
                                y: r.y * scale_y,
                                width: r.width * scale,
                                height: r.height * scale_y,
                            }
                        })
                        .zip(found.iter().map(|d| d.score))
                        .filter(|(r, _)| {
                            params.roi.is_none_or(|roi| {
                                roi.contains(r.x + r.width / 2.0, r.y + r.height / 2.0, vw, vh)
                            })
                        })
                        .collect();
                    tracker.update(frame.number, frame.time, &boxes);
                    if params.descriptor && !boxes.is_empty() {
                        // Only frames some track holds as its best are kept.
                        best_frames.push((frame.number, image.clone()));
                        let bests = tracker.best_frames();
                        best_frames.retain(|(n, _)| bests.contains(n));
                    }
                }
            }
        }
        Ok(())
    }

    /// Ends the run: the measures per analytic; overview frames stored under `prefix`.
    pub async fn finish(
        self,
        svc: &crate::Services,
        prefix: &str,
    ) -> Result<Vec<SegmentMeasures>, ApiError> {
        let models = estimate::models()?;
        let (vw, vh) = self.video;
        let mut out = Vec::with_capacity(self.states.len());
        for (index, state) in self.states.into_iter().enumerate() {
            match state {
                State::People {
                    frames,
                    run_best,
                    mut keep,
                    ..
                } => {
                    keep.extend(run_best.map(|(_, n, img)| (n, img)));
                    let mut overviews = Vec::with_capacity(keep.len());
                    for (n, img) in keep {
                        let jpeg = blocking(move || Ok(picture::encode_jpeg(&img, 85))).await?;
                        let key = format!("{prefix}{index}/{n}.jpg");
                        blobs::put(svc, &key, jpeg, "image/jpeg").await?;
                        overviews.push((n, key));
                    }
                    out.push(SegmentMeasures::PeopleCount { frames, overviews });
                }
                State::Faces {
                    params,
                    tracker,
                    best_frames,
                    ..
                } => {
                    let mut tracks = tracker.finish();
                    if params.descriptor {
                        for track in tracks.iter_mut() {
                            let Some((_, img)) =
                                best_frames.iter().find(|(n, _)| *n == track.best.frame)
                            else {
                                continue;
                            };
                            let img = img.clone();
                            let want: Rect = track.best.bbox.into();
                            let scale =
                                (vw as f32 / img.width as f32, vh as f32 / img.height as f32);
                            track.descriptor =
                                blocking(move || descriptor_of(models, &img, want, scale)).await?;
                        }
                    }
                    out.push(SegmentMeasures::HumanTracking { tracks });
                }
            }
        }
        Ok(out)
    }
}

/// The people of one frame (`image`, the picture of frame `at` = (number, time) as
/// decoded) for `params`, in a `video` of that size (width, height): counted where their box centres lie in the
/// region of interest, centres in video pixels with the `coordinates` target.
pub async fn count_people(
    params: &PeopleCount,
    image: Arc<Rgb>,
    at: (u64, f64),
    video: (u32, u32),
) -> Result<FrameCount, ApiError> {
    let models = estimate::models()?;
    let (vw, vh) = video;
    let scale = (
        vw as f32 / image.width as f32,
        vh as f32 / image.height as f32,
    );
    let min_score = params.min_score;
    let people = blocking(move || {
        PersonDetector::new(models)
            .with_min_score(min_score)
            .detect(&image)
            .map_err(|e| ApiError::internal("person detector", e))
    })
    .await?;
    let centres: Vec<[f32; 2]> = people
        .iter()
        .map(|d| {
            let b = d.bbox;
            [
                (b.x + b.width / 2.0) * scale.0,
                (b.y + b.height / 2.0) * scale.1,
            ]
        })
        .filter(|c| params.roi.is_none_or(|r| r.contains(c[0], c[1], vw, vh)))
        .collect();
    Ok(FrameCount {
        frame: at.0,
        time_offset: at.1,
        people_count: centres.len() as u32,
        people_coordinates: params.coordinates.then_some(centres),
    })
}

/// The FaceRes descriptor of the face of `image` that best overlaps `want` (video
/// pixels; `scale` maps the image's pixels to the video's).
fn descriptor_of(
    models: &Models,
    image: &Rgb,
    want: Rect,
    scale: (f32, f32),
) -> Result<Option<Vec<f32>>, ApiError> {
    let wanted = Wanted {
        descriptors: vec![Extractor::FaceRes],
        ..Wanted::default()
    };
    let found = faces::analyse(models, image, 0.3, &wanted)
        .map_err(|e| ApiError::internal("face descriptor", e))?;
    let best = found
        .into_iter()
        .map(|f| {
            let r = f.detection.rect;
            let in_video = Rect {
                x: r.x * scale.0,
                y: r.y * scale.1,
                width: r.width * scale.0,
                height: r.height * scale.1,
            };
            (in_video.iou(&want), f)
        })
        .filter(|(iou, _)| *iou > 0.3)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    Ok(best.and_then(|(_, f)| f.descriptors.into_iter().next().map(|(_, d)| d)))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal("vision thread", e))?
}

/// Analyses one segment of a task's video.
pub async fn segment(
    subtask: &SubtaskContext<'_>,
    content: &VideoContent,
    part: &SegmentPart,
) -> Result<SegmentOutput, ApiError> {
    let source = match &part.copy {
        Some(key) => super::task::Source::Key(key.clone()),
        None => content.source.clone(),
    };
    let url = read_url(subtask.svc, &source).await?;
    let probe = &part.probe;
    let sampling = Sampling {
        period: decode_period(&content.analytics, probe.frame_rate),
        max_side: ANALYSIS_SIDE,
    };
    let mut reader =
        FrameReader::start(&url, probe, &part.segment, sampling).map_err(processing_error)?;
    let mut measurer = Measurer::new(
        &content.analytics,
        probe.frame_rate,
        probe.width,
        probe.height,
    );
    let mut decoded = 0u64;
    loop {
        subtask.check_cancelled()?;
        let Some(frame) = reader.next().await.map_err(processing_error)? else {
            break;
        };
        decoded += 1;
        measurer.frame(frame).await?;
    }
    drop(reader);
    let prefix = format!(
        "{}video/{}/",
        crate::store::blobs::task_scratch_prefix(subtask.task.task_id),
        part.segment.index
    );
    Ok(SegmentOutput {
        segment: part.segment.index,
        frames_decoded: decoded,
        analytics: measurer.finish(subtask.svc, &prefix).await?,
    })
}
