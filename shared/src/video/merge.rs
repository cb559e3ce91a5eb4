//! A video task's result from its segments' measures: the per-frame series joined in
//! segment order, events found once over the whole video ([`analytics::crowd_events`],
//! [`tracking::join`]), `video_data` from the probe.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::analytics::{self, Analytic, FrameCount};
use super::media::Probe;
use super::task::{SegmentMeasures, SegmentOutput, VideoContent, processing_error};
use super::tracking::{self, BoxOut, Sighting, Track};
use crate::Services;
use crate::descriptor::FACERES_VERSION;
use crate::error::ApiError;
use crate::store::blobs;

/// Most overview images one analytic's result carries inline.
pub const OVERVIEWS_MAX: usize = 100;

/// A video task's result (also the synchronous answer of `/1/videosdk`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VideoResult {
    /// The video's measures.
    pub video_data: VideoData,
    /// Per analytic of the request, in its order.
    pub analytics: Vec<AnalyticResult>,
}

/// What the video is (member names are a Fanout choice: the seed leaves them open).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VideoData {
    /// Frames in the video.
    pub frame_count: u64,
    /// Frames per second.
    pub frame_rate: f64,
    /// Seconds.
    pub duration: f64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Codec name (ffprobe's).
    pub codec: String,
    /// Segments it was analysed in.
    pub segments: u32,
}

/// One analytic's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AnalyticResult {
    /// The analytic.
    pub name: String,
    /// Its events (`crowd` for people_count; none for human_tracking).
    pub events: Vec<CrowdEvent>,
    /// Face tracks (human_tracking).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracks: Option<Vec<TrackOut>>,
    /// Every sampled frame's count (people_count with the `frames` target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<Vec<FrameCount>>,
}

/// A `crowd` event: a stretch of the video where the people count stayed within the
/// thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CrowdEvent {
    /// Id (the same for the same task and stretch).
    pub event_id: Uuid,
    /// `crowd`.
    pub event_type: String,
    /// Where in the video.
    pub video_segment: VideoSegment,
    /// Most people in one frame of it.
    pub people_count: u32,
    /// The frame with the most people.
    pub overview: Overview,
}

/// A stretch of video.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VideoSegment {
    /// Start, seconds from the video's start.
    pub start_time_offset: f64,
    /// End (exclusive), seconds.
    pub end_time_offset: f64,
    /// First frame.
    pub start_frame: u64,
    /// First frame after it.
    pub end_frame: u64,
}

/// An event's overview frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Overview {
    /// Its time, seconds.
    pub time_offset: f64,
    /// Its frame number.
    pub frame: u64,
    /// People's box centres in video pixels (`coordinates` target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub people_coordinates: Option<Vec<[f32; 2]>>,
    /// The frame as a `data:image/jpeg;base64,` URL, longest side 640 (`overview`
    /// target; the first 100 events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// A face track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrackOut {
    /// Id (the same for the same task and track).
    pub track_id: Uuid,
    /// Where it was first seen.
    pub video_segment: VideoSegment,
    /// Sampled frames it was seen in.
    pub detections_count: u32,
    /// The best detection (its sample).
    pub best_sample: Sighting,
    /// First detection's box.
    pub first_bbox: BoxOut,
    /// Descriptor of the best sample (`aggregated_face_descriptor`): base64 of
    /// little-endian f32, version 1001 (as faces take it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptor: Option<String>,
    /// Its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptor_version: Option<u32>,
}

const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_9b52_4f0e_4c1e_9a51_7d36_0c55_e001);

fn event_id(task_id: u64, analytic: usize, what: &str, frame: u64) -> Uuid {
    Uuid::new_v5(
        &EVENT_NAMESPACE,
        format!("{task_id}/{analytic}/{what}/{frame}").as_bytes(),
    )
}

/// The video's end as a (frame, time) pair.
fn video_end(probe: &Probe) -> (u64, f64) {
    (probe.frame_count, probe.duration)
}

/// Builds the result of a task from its segments' outputs (in segment order).
pub async fn result(
    svc: &Services,
    task_id: u64,
    content: &VideoContent,
    probe: &Probe,
    outputs: &[SegmentOutput],
) -> Result<VideoResult, ApiError> {
    let mut analytics_out = Vec::with_capacity(content.analytics.len());
    for (index, analytic) in content.analytics.iter().enumerate() {
        let measures = outputs.iter().map(|o| {
            o.analytics
                .get(index)
                .ok_or_else(|| processing_error(format!("segment {} has no measures", o.segment)))
        });
        match analytic {
            Analytic::PeopleCount(params) => {
                let mut series: Vec<FrameCount> = Vec::new();
                let mut overviews: Vec<(u64, String)> = Vec::new();
                for m in measures {
                    match m? {
                        SegmentMeasures::PeopleCount {
                            frames,
                            overviews: o,
                        } => {
                            series.extend(frames.iter().cloned());
                            overviews.extend(o.iter().cloned());
                        }
                        other => {
                            return Err(ApiError::internal("video merge", format!("{other:?}")));
                        }
                    }
                }
                check_order(&series)?;
                let (end_frame, end_time) = video_end(probe);
                let crowds = analytics::crowd_events(params, &series, end_frame, end_time);
                let mut events = Vec::with_capacity(crowds.len());
                for (n, crowd) in crowds.iter().enumerate() {
                    let peak = &series[crowd.peak];
                    let image = match overviews.iter().find(|(f, _)| *f == peak.frame) {
                        Some((_, key)) if params.overview && n < OVERVIEWS_MAX => {
                            blobs::get(svc, key).await?.map(|jpeg| {
                                format!("data:image/jpeg;base64,{}", STANDARD.encode(jpeg))
                            })
                        }
                        _ => None,
                    };
                    events.push(CrowdEvent {
                        event_id: event_id(task_id, index, "crowd", crowd.start_frame),
                        event_type: "crowd".to_string(),
                        video_segment: VideoSegment {
                            start_time_offset: crowd.start_time,
                            end_time_offset: crowd.end_time,
                            start_frame: crowd.start_frame,
                            end_frame: crowd.end_frame,
                        },
                        people_count: crowd.people_count,
                        overview: Overview {
                            time_offset: peak.time_offset,
                            frame: peak.frame,
                            people_coordinates: peak.people_coordinates.clone(),
                            image,
                        },
                    });
                }
                analytics_out.push(AnalyticResult {
                    name: analytic.name().to_string(),
                    events,
                    tracks: None,
                    frames: params.frames.then_some(series),
                });
            }
            Analytic::HumanTracking(params) => {
                let mut per_segment: Vec<Vec<Track>> = Vec::new();
                for m in measures {
                    match m? {
                        SegmentMeasures::HumanTracking { tracks } => {
                            per_segment.push(tracks.clone())
                        }
                        other => {
                            return Err(ApiError::internal("video merge", format!("{other:?}")));
                        }
                    }
                }
                let period = params.rate.frames(probe.frame_rate);
                let gap = period * (u64::from(params.skip_frames) + 1);
                let tracks = tracking::join(per_segment, gap)
                    .into_iter()
                    .map(|t| track_out(task_id, index, t))
                    .collect();
                analytics_out.push(AnalyticResult {
                    name: analytic.name().to_string(),
                    events: Vec::new(),
                    tracks: Some(tracks),
                    frames: None,
                });
            }
        }
    }
    Ok(VideoResult {
        video_data: VideoData {
            frame_count: probe.frame_count,
            frame_rate: probe.frame_rate,
            duration: probe.duration,
            width: probe.width,
            height: probe.height,
            codec: probe.codec.clone(),
            segments: outputs.len() as u32,
        },
        analytics: analytics_out,
    })
}

fn track_out(task_id: u64, index: usize, t: Track) -> TrackOut {
    let descriptor = t.descriptor.as_deref().map(crate::descriptor::to_base64);
    TrackOut {
        track_id: Uuid::new_v5(
            &EVENT_NAMESPACE,
            format!(
                "{task_id}/{index}/track/{}/{}",
                t.first.frame,
                t.first.bbox.x.to_bits()
            )
            .as_bytes(),
        ),
        video_segment: VideoSegment {
            start_time_offset: t.first.time_offset,
            end_time_offset: t.last.time_offset,
            start_frame: t.first.frame,
            end_frame: t.last.frame,
        },
        detections_count: t.sightings,
        best_sample: t.best,
        first_bbox: t.first.bbox,
        descriptor_version: descriptor.as_ref().map(|_| FACERES_VERSION),
        descriptor,
    }
}

/// The joined series must be in frame order with no frame twice (segments are disjoint).
fn check_order(series: &[FrameCount]) -> Result<(), ApiError> {
    match series.windows(2).find(|w| w[0].frame >= w[1].frame) {
        Some(w) => Err(ApiError::internal(
            "video merge",
            format!(
                "frames out of order across segments: {} then {}",
                w[0].frame, w[1].frame
            ),
        )),
        None => Ok(()),
    }
}
