//! The analytics a video task or a stream asks for, as requests name them, and what
//! turns their per-frame measures into events. Pure: the worker measures frames
//! (`video::run`), the merge and the stream agent call [`crowd_events`] on the series.
//!
//! Request shape: `{"name": "people_count", "targets": [...], "parameters": {...},
//! "callbacks": [...]}` (`analytic_name` is taken for `name`, as the Video Manager's
//! streams spell it). Which key names the analytic is not stated by the seed's
//! `videosdk` schema (reference notes §3, unconfirmed); both are accepted.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::ApiError;

/// Most callbacks one analytic may name (the People Count reference's limit).
pub const CALLBACKS_MAX: usize = 10;
/// Default sampling: every 10th frame (the People Count reference's default).
pub const RATE_PERIOD_DEFAULT: f64 = 10.0;
/// Default `probe_count`: sampled frames that confirm a change before it counts.
pub const PROBE_COUNT_DEFAULT: u32 = 3;
/// Highest `probe_count` taken.
pub const PROBE_COUNT_MAX: u32 = 100;
/// Person detector score threshold unless `parameters.min_score` says otherwise.
pub const PERSON_SCORE_DEFAULT: f32 = 0.5;
/// Face detector score threshold of `human_tracking` unless `parameters.min_score` says.
pub const FACE_SCORE_DEFAULT: f32 = 0.6;

/// One analytic of a request, as sent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyticRequest {
    /// `people_count` or `human_tracking`.
    #[serde(alias = "analytic_name")]
    pub name: String,
    /// What to add to the results (see each analytic).
    #[serde(default)]
    pub targets: Vec<String>,
    /// The analytic's parameters.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// Where to send each event as it is found (`{"type": "http", "url": ...}`).
    #[serde(default)]
    pub callbacks: Vec<Callback>,
}

/// Where events go besides the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Callback {
    /// `http`: the event is POSTed as JSON to `url`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Target URL (http or https).
    pub url: String,
}

/// How often frames are sampled: every `period` frames or seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// How many units between two sampled frames (> 0).
    pub period: f64,
    /// `frame` (the default) or `second`.
    #[serde(default)]
    pub unit: RateUnit,
}

/// Unit of a [`Rate`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RateUnit {
    /// Video frames.
    #[default]
    Frame,
    /// Seconds of video.
    Second,
}

impl Default for Rate {
    fn default() -> Rate {
        Rate {
            period: RATE_PERIOD_DEFAULT,
            unit: RateUnit::Frame,
        }
    }
}

impl Rate {
    /// The sampling period in frames of a video of `frame_rate` (at least 1).
    pub fn frames(&self, frame_rate: f64) -> u64 {
        let frames = match self.unit {
            RateUnit::Frame => self.period,
            RateUnit::Second => self.period * frame_rate,
        };
        (frames.round() as u64).max(1)
    }
}

/// A region of interest: only what lies in it counts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Roi {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub width: f32,
    /// Height.
    pub height: f32,
    /// `abs` (pixels of the video, the default) or `percent` (of its size).
    #[serde(default)]
    pub mode: RoiMode,
}

/// How a [`Roi`] is measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoiMode {
    /// Pixels of the video.
    #[default]
    Abs,
    /// Percent of the video's width and height.
    Percent,
}

impl Roi {
    /// Whether the point `(x, y)` (video pixels) lies in the region of a `width` ×
    /// `height` video.
    pub fn contains(&self, x: f32, y: f32, width: u32, height: u32) -> bool {
        let (sx, sy) = match self.mode {
            RoiMode::Abs => (1.0, 1.0),
            RoiMode::Percent => (width as f32 / 100.0, height as f32 / 100.0),
        };
        let (left, top) = (self.x * sx, self.y * sy);
        x >= left && x < left + self.width * sx && y >= top && y < top + self.height * sy
    }
}

/// `people_count`: people in sampled frames; `crowd` events over the stretches where
/// the count lies within the thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeopleCount {
    /// Sampling.
    pub rate: Rate,
    /// Sampled frames that must agree before a crowd starts or ends.
    pub probe_count: u32,
    /// A crowd has at least this many people.
    pub gte: Option<u32>,
    /// A crowd has at most this many people.
    pub lte: Option<u32>,
    /// Only people whose box centre lies here are counted.
    pub roi: Option<Roi>,
    /// Person detector threshold.
    pub min_score: f32,
    /// `coordinates` target: each event's overview lists the people's centres.
    pub coordinates: bool,
    /// `overview` target: each event keeps the frame with the most people as a JPEG.
    pub overview: bool,
    /// `frames` target (Fanout's): the result lists every sampled frame's count.
    pub frames: bool,
}

/// `people_count`'s `parameters` as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeopleCountParameters {
    #[serde(default)]
    rate: Option<Rate>,
    #[serde(default)]
    probe_count: Option<u32>,
    #[serde(default, rename = "people_count__gte")]
    gte: Option<u32>,
    #[serde(default, rename = "people_count__lte")]
    lte: Option<u32>,
    /// The older single threshold: a crowd has more people than this.
    #[serde(default)]
    people_count_threshold: Option<u32>,
    #[serde(default)]
    roi: Option<Roi>,
    #[serde(default)]
    min_score: Option<f32>,
}

/// `human_tracking`: faces found in sampled frames linked into tracks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HumanTracking {
    /// Sampling.
    pub rate: Rate,
    /// Face detector threshold.
    pub min_score: f32,
    /// Sampled frames a track may miss before it ends.
    pub skip_frames: u32,
    /// `aggregated_face_descriptor` target: each track gets a descriptor of its best
    /// sample (the vision module's default version).
    pub descriptor: bool,
    /// Only faces whose box centre lies here are tracked.
    pub roi: Option<Roi>,
}

/// `human_tracking`'s `parameters` as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HumanTrackingParameters {
    #[serde(default)]
    rate: Option<Rate>,
    #[serde(default)]
    min_score: Option<f32>,
    #[serde(default)]
    skip_frames: Option<u32>,
    #[serde(default)]
    roi: Option<Roi>,
}

/// Default sampled frames a track may miss.
pub const SKIP_FRAMES_DEFAULT: u32 = 3;

/// An analytic ready to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Analytic {
    /// See [`PeopleCount`].
    PeopleCount(PeopleCount),
    /// See [`HumanTracking`].
    HumanTracking(HumanTracking),
}

/// The names of the analytics this service runs (what agent info lists).
pub const NAMES: &[&str] = &["people_count", "human_tracking"];

impl Analytic {
    /// The analytic's name.
    pub fn name(&self) -> &'static str {
        match self {
            Analytic::PeopleCount(_) => "people_count",
            Analytic::HumanTracking(_) => "human_tracking",
        }
    }

    /// Its sampling.
    pub fn rate(&self) -> Rate {
        match self {
            Analytic::PeopleCount(p) => p.rate,
            Analytic::HumanTracking(h) => h.rate,
        }
    }
}

fn bad(at: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_json(format!("{at}: {why}"))
}

fn check_rate(at: &str, rate: Option<Rate>) -> Result<Rate, ApiError> {
    let rate = rate.unwrap_or_default();
    if !(rate.period.is_finite() && rate.period > 0.0 && rate.period <= 3600.0) {
        return Err(bad(at, "rate.period must be above 0 and at most 3600"));
    }
    Ok(rate)
}

fn check_score(at: &str, score: Option<f32>, default: f32) -> Result<f32, ApiError> {
    let score = score.unwrap_or(default);
    if !(0.05..=1.0).contains(&score) {
        return Err(bad(at, "min_score must be 0.05 to 1"));
    }
    Ok(score)
}

fn check_roi(at: &str, roi: Option<Roi>) -> Result<Option<Roi>, ApiError> {
    if let Some(r) = roi {
        let finite = [r.x, r.y, r.width, r.height].iter().all(|v| v.is_finite());
        if !finite || r.x < 0.0 || r.y < 0.0 || r.width <= 0.0 || r.height <= 0.0 {
            return Err(bad(at, "roi needs x, y >= 0 and width, height > 0"));
        }
    }
    Ok(roi)
}

fn check_targets(at: &str, targets: &[String], known: &[&str]) -> Result<(), ApiError> {
    for target in targets {
        if !known.contains(&target.as_str()) {
            return Err(bad(
                at,
                format!("target '{target}' is not one of {known:?}"),
            ));
        }
    }
    Ok(())
}

/// Checks the callbacks of an analytic: `http` ones to http(s) URLs, at most
/// [`CALLBACKS_MAX`].
pub fn check_callbacks(at: &str, callbacks: &[Callback]) -> Result<(), ApiError> {
    if callbacks.len() > CALLBACKS_MAX {
        return Err(bad(at, format!("at most {CALLBACKS_MAX} callbacks")));
    }
    for callback in callbacks {
        if callback.kind != "http" {
            return Err(bad(
                at,
                format!(
                    "callback type '{}' is not served here (only 'http'; websocket subscriptions are not served, README)",
                    callback.kind
                ),
            ));
        }
        let url = callback.url.as_str();
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 2083 {
            return Err(bad(
                at,
                format!("callback url '{url}' is not an http(s) URL"),
            ));
        }
        if let Err(why) = crate::outbound::check_literal(url) {
            return Err(bad(at, format!("callback url '{url}': {why}")));
        }
    }
    Ok(())
}

/// Reads one analytic of a request at position `index` (for error messages); 12027
/// naming what is wrong.
pub fn parse(index: usize, request: &AnalyticRequest) -> Result<Analytic, ApiError> {
    let at = format!("analytics[{index}]");
    let parameters = match &request.parameters {
        Value::Null => Value::Object(Default::default()),
        other => other.clone(),
    };
    check_callbacks(&at, &request.callbacks)?;
    match request.name.as_str() {
        "people_count" => {
            check_targets(
                &at,
                &request.targets,
                &["coordinates", "overview", "frames"],
            )?;
            let p: PeopleCountParameters =
                serde_json::from_value(parameters).map_err(|e| bad(&at, e))?;
            let (gte, lte) = match (p.gte, p.lte, p.people_count_threshold) {
                (None, None, None) => (Some(1), None),
                (None, None, Some(t)) => (Some(t + 1), None),
                (gte, lte, None) => (gte, lte),
                _ => {
                    return Err(bad(
                        &at,
                        "people_count_threshold is the older form of people_count__gte: give one of them",
                    ));
                }
            };
            if let (Some(g), Some(l)) = (gte, lte)
                && g > l
            {
                return Err(bad(
                    &at,
                    "people_count__gte is above people_count__lte: no count can lie within them",
                ));
            }
            let probe_count = p.probe_count.unwrap_or(PROBE_COUNT_DEFAULT);
            if !(1..=PROBE_COUNT_MAX).contains(&probe_count) {
                return Err(bad(
                    &at,
                    format!("probe_count must be 1 to {PROBE_COUNT_MAX}"),
                ));
            }
            let has = |t: &str| request.targets.iter().any(|x| x == t);
            Ok(Analytic::PeopleCount(PeopleCount {
                rate: check_rate(&at, p.rate)?,
                probe_count,
                gte,
                lte,
                roi: check_roi(&at, p.roi)?,
                min_score: check_score(&at, p.min_score, PERSON_SCORE_DEFAULT)?,
                coordinates: has("coordinates"),
                overview: has("overview"),
                frames: has("frames"),
            }))
        }
        "human_tracking" => {
            let targets: Vec<String> = if request.targets.is_empty() {
                vec!["face_detection".to_string()]
            } else {
                request.targets.clone()
            };
            check_targets(
                &at,
                &targets,
                &["face_detection", "aggregated_face_descriptor"],
            )?;
            if !targets.iter().any(|t| t == "face_detection") {
                return Err(bad(
                    &at,
                    "human_tracking here tracks faces: targets must hold face_detection",
                ));
            }
            let p: HumanTrackingParameters =
                serde_json::from_value(parameters).map_err(|e| bad(&at, e))?;
            let skip_frames = p.skip_frames.unwrap_or(SKIP_FRAMES_DEFAULT);
            if skip_frames > 100 {
                return Err(bad(&at, "skip_frames must be 0 to 100"));
            }
            Ok(Analytic::HumanTracking(HumanTracking {
                rate: check_rate(&at, p.rate)?,
                min_score: check_score(&at, p.min_score, FACE_SCORE_DEFAULT)?,
                skip_frames,
                descriptor: targets.iter().any(|t| t == "aggregated_face_descriptor"),
                roi: check_roi(&at, p.roi)?,
            }))
        }
        other => Err(bad(
            &at,
            format!("analytic '{other}' is not available on this agent (it runs {NAMES:?})"),
        )),
    }
}

/// One sampled frame's people count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FrameCount {
    /// Frame number in the whole video.
    pub frame: u64,
    /// Seconds from the video's start.
    pub time_offset: f64,
    /// People counted.
    pub people_count: u32,
    /// Their box centres in video pixels (with the `coordinates` target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub people_coordinates: Option<Vec<[f32; 2]>>,
}

/// A stretch of the video where a crowd stood, before ids and images are attached.
#[derive(Debug, Clone, PartialEq)]
pub struct Crowd {
    /// First frame of the crowd (the first sampled frame of its confirming run).
    pub start_frame: u64,
    /// Its time.
    pub start_time: f64,
    /// First frame after it (the first sampled frame of the run that ended it, or the
    /// frame count at the video's end).
    pub end_frame: u64,
    /// Its time.
    pub end_time: f64,
    /// Most people seen in one frame of it.
    pub people_count: u32,
    /// Index in the series of the first frame with that many people.
    pub peak: usize,
}

impl PeopleCount {
    /// Whether `count` people make a crowd.
    pub fn within(&self, count: u32) -> bool {
        self.gte.is_none_or(|g| count >= g) && self.lte.is_none_or(|l| count <= l)
    }
}

/// The crowds of a series of sampled frames in frame order: the state changes once
/// `probe_count` frames in a row disagree with it, at the first of them. A crowd still
/// standing at the end ends at (`end_frame`, `end_time`), the video's end. The same
/// series gives the same crowds however it was cut into segments.
pub fn crowd_events(
    params: &PeopleCount,
    series: &[FrameCount],
    end_frame: u64,
    end_time: f64,
) -> Vec<Crowd> {
    let mut crowds = Vec::new();
    let mut open: Option<Crowd> = None;
    // The run of frames disagreeing with the state: where it began and its length.
    let mut run: Option<(usize, u32)> = None;
    for (i, f) in series.iter().enumerate() {
        let within = params.within(f.people_count);
        let disagrees = within != open.is_some();
        if disagrees {
            let (first, len) = match run {
                Some((first, len)) => (first, len + 1),
                None => (i, 1),
            };
            run = Some((first, len));
            if len >= params.probe_count {
                let start = &series[first];
                match open.take() {
                    None => {
                        open = Some(Crowd {
                            start_frame: start.frame,
                            start_time: start.time_offset,
                            end_frame,
                            end_time,
                            people_count: 0,
                            peak: first,
                        })
                    }
                    Some(mut crowd) => {
                        crowd.end_frame = start.frame;
                        crowd.end_time = start.time_offset;
                        crowds.push(crowd);
                    }
                }
                run = None;
            }
        } else {
            run = None;
        }
    }
    if let Some(crowd) = open {
        crowds.push(crowd);
    }
    // Each crowd's peak: the first frame inside it with the most people.
    for crowd in crowds.iter_mut() {
        let inside = series
            .iter()
            .enumerate()
            .filter(|(_, f)| f.frame >= crowd.start_frame && f.frame < crowd.end_frame);
        let mut best: Option<(usize, u32)> = None;
        for (j, f) in inside {
            if best.is_none_or(|(_, c)| f.people_count > c) {
                best = Some((j, f.people_count));
            }
        }
        if let Some((j, c)) = best {
            crowd.peak = j;
            crowd.people_count = c;
        }
    }
    crowds
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(gte: u32, probe: u32) -> PeopleCount {
        let request: AnalyticRequest = serde_json::from_value(json!({
            "name": "people_count",
            "parameters": {"people_count__gte": gte, "probe_count": probe}
        }))
        .unwrap();
        match parse(0, &request).unwrap() {
            Analytic::PeopleCount(p) => p,
            other => panic!("{other:?}"),
        }
    }

    fn series(counts: &[u32]) -> Vec<FrameCount> {
        counts
            .iter()
            .enumerate()
            .map(|(i, &c)| FrameCount {
                frame: i as u64 * 10,
                time_offset: i as f64,
                people_count: c,
                people_coordinates: None,
            })
            .collect()
    }

    #[test]
    fn a_crowd_starts_and_ends_once_probe_count_frames_agree() {
        let p = params(2, 3);
        // A blip of two frames does not start a crowd; three do, from the first.
        let s = series(&[0, 2, 2, 0, 0, 3, 2, 4, 2, 1, 0, 0, 0, 0]);
        let crowds = crowd_events(&p, &s, 140, 14.0);
        assert_eq!(crowds.len(), 1, "{crowds:?}");
        let c = &crowds[0];
        assert_eq!((c.start_frame, c.end_frame), (50, 90));
        assert_eq!((c.start_time, c.end_time), (5.0, 9.0));
        assert_eq!(c.people_count, 4);
        assert_eq!(s[c.peak].people_count, 4);
    }

    #[test]
    fn a_short_dip_inside_a_crowd_does_not_end_it_and_the_end_of_video_closes_it() {
        let p = params(2, 2);
        let s = series(&[2, 2, 0, 2, 5, 0, 0]);
        let crowds = crowd_events(&p, &s, 70, 7.0);
        assert_eq!(crowds.len(), 1);
        assert_eq!((crowds[0].start_frame, crowds[0].end_frame), (0, 50));
        assert_eq!(crowds[0].people_count, 5);
        let open = crowd_events(&p, &series(&[0, 3, 3, 3]), 40, 4.0);
        assert_eq!(open.len(), 1);
        assert_eq!((open[0].start_frame, open[0].end_frame), (10, 40));
        assert_eq!(open[0].end_time, 4.0);
    }

    #[test]
    fn probe_count_one_follows_every_frame() {
        let p = params(1, 1);
        let crowds = crowd_events(&p, &series(&[1, 0, 1, 1, 0]), 50, 5.0);
        let spans: Vec<_> = crowds
            .iter()
            .map(|c| (c.start_frame, c.end_frame))
            .collect();
        assert_eq!(spans, vec![(0, 10), (20, 40)]);
    }

    #[test]
    fn thresholds_and_names_are_checked() {
        let bad = |v: Value| {
            let request: AnalyticRequest = serde_json::from_value(v).unwrap();
            parse(3, &request).unwrap_err().detail
        };
        assert!(bad(json!({"name": "fight"})).contains("not available"));
        assert!(
            bad(json!({"name": "people_count", "parameters": {"people_count__gte": 5, "people_count__lte": 2}}))
                .contains("above")
        );
        assert!(
            bad(json!({"name": "people_count", "parameters": {"probe_count": 0}}))
                .contains("probe_count")
        );
        assert!(
            bad(json!({"name": "people_count", "parameters": {"rate": {"period": 0}}}))
                .contains("rate")
        );
        assert!(
            bad(json!({"name": "people_count", "parameters": {"colour": 1}}))
                .contains("analytics[3]")
        );
        assert!(bad(json!({"name": "people_count", "targets": ["faces"]})).contains("target"));
        assert!(
            bad(json!({"name": "people_count", "callbacks": [{"type": "luna-ws-notification", "url": "x"}]}))
                .contains("not served")
        );
        assert!(
            bad(json!({"name": "human_tracking", "targets": ["body_detection"]}))
                .contains("body_detection")
        );
        // The older threshold means "more than".
        let request: AnalyticRequest = serde_json::from_value(
            json!({"analytic_name": "people_count", "parameters": {"people_count_threshold": 2}}),
        )
        .unwrap();
        let Analytic::PeopleCount(p) = parse(0, &request).unwrap() else {
            panic!()
        };
        assert!(!p.within(2) && p.within(3));
    }

    #[test]
    fn rates_in_seconds_become_frames_and_rois_take_percent() {
        let r = Rate {
            period: 0.5,
            unit: RateUnit::Second,
        };
        assert_eq!(r.frames(25.0), 13);
        assert_eq!(Rate::default().frames(30.0), 10);
        let roi = Roi {
            x: 50.0,
            y: 0.0,
            width: 50.0,
            height: 100.0,
            mode: RoiMode::Percent,
        };
        assert!(roi.contains(150.0, 10.0, 200, 100));
        assert!(!roi.contains(90.0, 10.0, 200, 100));
    }
}
