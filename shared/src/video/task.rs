//! The video analysis task (`POST /1/videosdk`) as an engine task kind: stage 0 probes
//! the video (one subtask on a worker: ffprobe), stage 1 cuts it at keyframes into time
//! segments analysed in parallel (each worker decodes only its range), and the merge
//! joins the segments' per-frame measures into events, so that an event crossing a
//! segment boundary is one event and the result does not depend on how the video was
//! cut.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::analytics::{self, Analytic, AnalyticRequest, Callback, FrameCount};
use super::media::{self, Probe, Segment};
use super::tracking::Track;
use crate::Services;
use crate::error::{ApiError, ErrorCode};
use crate::kinds::{Merged, SubtaskContext, TaskContext, TaskKind, parse_content, to_json};
use crate::objects::uploads;
use crate::outbound;
use crate::store::blobs;
use crate::store::multipart::MultipartUpload;
use crate::tasks::model::{SubtaskStatus, TaskType};

/// Largest video taken (the `videosdk` limit of the reference notes: 1 GB).
pub const VIDEO_BYTES_MAX: u64 = 1 << 30;
/// Longest video a synchronous request analyses; longer ones need `deferred_task`.
pub const SYNC_SECONDS_MAX: f64 = 30.0;
/// Segment length when the request does not ask for a number of segments.
pub const SEGMENT_SECONDS: f64 = 20.0;
/// Most segments one video is cut into.
pub const SEGMENTS_MAX: u32 = 100;
/// Longest side of the frames the analytics see (the reference notes' tracker
/// `scale_result_size`); coordinates are given in the video's own pixels.
pub const ANALYSIS_SIDE: u32 = 640;
/// How long ffprobe may take on a video.
pub const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
/// How long the presigned URL a worker reads a stored video with works.
const READ_URL_LIFETIME: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// Body of `POST /1/videosdk`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VideoRequest {
    /// `{"enable": true}` runs the analysis in the background: the answer is a task id
    /// to poll at `/1/video/tasks/{task_id}`. Without it the answer waits for the result
    /// (videos of at most 30 s).
    pub deferred_task: DeferredTask,
    /// The video.
    pub video: VideoSource,
    /// What to analyse: `people_count`, `human_tracking`.
    pub analytics: Vec<AnalyticRequest>,
}

/// `deferred_task` of a request (its shape is not given by the seed; reference notes
/// §3: `{"enable": bool}`).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeferredTask {
    /// Run in the background.
    #[serde(default)]
    pub enable: bool,
}

/// Where the video is: `url` (http or https, read by the workers; or a key of the
/// account's upload area given as `url` or `key`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VideoSource {
    /// An http(s) URL the workers can read (with Range requests for seeking).
    pub url: Option<String>,
    /// A key of the account's upload area (`POST /1/uploads` with a video content type).
    pub key: Option<String>,
    /// How many segments to cut the video into (1 to 100; a Fanout field). By default
    /// one per 20 s.
    pub segments: Option<u32>,
}

/// The stored content of a video task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VideoContent {
    /// Where to read the video.
    pub source: Source,
    /// Segments asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<u32>,
    /// The analytics, checked.
    pub analytics: Vec<Analytic>,
    /// Each analytic's callbacks.
    pub callbacks: Vec<Vec<Callback>>,
    /// Whether a synchronous request waits for it (limits its length).
    pub sync: bool,
}

/// Where a task reads its video.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// An object of the account's upload area.
    Key(String),
    /// An http(s) URL.
    Url(String),
}

/// The stage-0 subtask's output and every stage-1 subtask's input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Probed {
    /// What ffprobe found.
    pub probe: Probe,
    /// Where a video given by URL was copied (the task's scratch): what the segments read.
    #[serde(default)]
    pub copy: Option<String>,
}

/// A stage-1 subtask: one segment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentPart {
    /// The video's measures (keyframes left out).
    pub probe: Probe,
    /// The range.
    pub segment: Segment,
    /// The copy of a video given by URL ([`Probed::copy`]).
    #[serde(default)]
    pub copy: Option<String>,
}

/// What a segment's worker found, per analytic (in request order).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SegmentOutput {
    /// The segment's index.
    pub segment: u32,
    /// Frames decoded.
    pub frames_decoded: u64,
    /// Per analytic: its measures.
    pub analytics: Vec<SegmentMeasures>,
}

/// One analytic's measures over a segment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentMeasures {
    /// People per sampled frame, and the JPEG key of each frame kept as an overview.
    PeopleCount {
        /// Counts in frame order.
        frames: Vec<FrameCount>,
        /// Overview images stored: (frame number, S3 key).
        #[serde(default)]
        overviews: Vec<(u64, String)>,
    },
    /// Face tracks seen in the segment (joined across segments by the merge).
    HumanTracking {
        /// The segment's tracks.
        tracks: Vec<Track>,
    },
}

/// The task kind.
pub struct VideoAnalysis;

/// A video task's `task_id` as the Video Agent API shows it: a uuid carrying the
/// engine's task number (a Fanout design choice: the engine numbers its tasks, the seed
/// names video tasks by uuid). The first half is fixed, the second is the number.
pub fn video_task_uuid(task_id: u64) -> Uuid {
    Uuid::from_u64_pair(VIDEO_TASK_TAG, task_id)
}

/// The engine's task number in a video task uuid; none for any other uuid.
pub fn engine_task_id(uuid: Uuid) -> Option<u64> {
    let (tag, id) = uuid.as_u64_pair();
    (tag == VIDEO_TASK_TAG && id > 0).then_some(id)
}

/// First half of every video task uuid: "f0a7" "0001", version 8, then zeros.
const VIDEO_TASK_TAG: u64 = 0xf0a7_0001_0000_8000;

/// A video's read URL for ffmpeg: a presigned GET of a stored upload, or the client's
/// once its host resolves only to addresses the service connects to and it answers
/// with content (not a redirect, not an error).
pub async fn read_url(svc: &Services, source: &Source) -> Result<String, ApiError> {
    match source {
        Source::Key(key) => blobs::presigned_get(svc, key, READ_URL_LIFETIME, None).await,
        Source::Url(url) => {
            outbound::check_answer(url)
                .await
                .map_err(|why| processing_error(format!("{url} is not read: {why}")))?;
            Ok(url.clone())
        }
    }
}

/// How long the copy of a video given by URL may take.
const COPY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// A video over [`VIDEO_BYTES_MAX`] (45001).
fn too_big(bytes: u64) -> ApiError {
    processing_error(format!(
        "the video has {bytes} bytes, over the limit of {VIDEO_BYTES_MAX} (1 GiB)"
    ))
}

/// Copies the video at `url` to `key`: read once, through the client that connects only
/// to checked addresses and follows no redirect (`outbound`), and refused past
/// [`VIDEO_BYTES_MAX`] (announced or read); the bytes copied.
pub async fn copy_url(svc: &Services, url: &str, key: &str) -> Result<u64, ApiError> {
    let refused = |why: String| processing_error(format!("{url} is not read: {why}"));
    // A name is checked by the client's resolver, on the addresses it connects to.
    outbound::check_literal(url).map_err(refused)?;
    let client = outbound::client().map_err(|e| ApiError::internal("http client", e))?;
    let mut answer = outbound::get(client.get(url).timeout(COPY_TIMEOUT))
        .await
        .map_err(refused)?;
    if let Some(announced) = answer.content_length()
        && announced > VIDEO_BYTES_MAX
    {
        return Err(too_big(announced));
    }
    let mut upload = MultipartUpload::begin(svc, key, "application/octet-stream").await?;
    let copied = async {
        while let Some(chunk) = answer
            .chunk()
            .await
            .map_err(|e| refused(format!("reading it failed: {e}")))?
        {
            if upload.written() + chunk.len() as u64 > VIDEO_BYTES_MAX {
                return Err(too_big(upload.written() + chunk.len() as u64));
            }
            upload.write(&chunk).await?;
        }
        Ok(())
    }
    .await;
    match copied {
        Ok(()) => upload.finish().await,
        Err(err) => {
            upload.abort().await;
            Err(err)
        }
    }
}

/// A video processing error (45001) with `detail`.
pub fn processing_error(detail: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::VideoProcessing,
        format!("Stream processing error: {detail}"),
    )
}

/// Checks a client's http(s) URL: a scheme ffmpeg reads over the network only, and no
/// host given as an address the service will not connect to (`outbound`).
pub fn check_url(url: &str) -> Result<(), ApiError> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ApiError::bad_json("video.url must be an http or https URL"));
    }
    if url.len() > 2083 {
        return Err(ApiError::bad_json(
            "video.url is longer than 2083 characters",
        ));
    }
    outbound::check_literal(url).map_err(|why| ApiError::bad_json(format!("video.url: {why}")))
}

/// Checks a request and returns the content to store.
pub async fn validate_request(
    svc: &Services,
    account_id: Uuid,
    request: &VideoRequest,
) -> Result<VideoContent, ApiError> {
    let source = match (&request.video.url, &request.video.key) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_json("video: give url or key, not both"));
        }
        (None, None) => return Err(ApiError::bad_json("video: url or key is required")),
        (Some(url), None) if url.starts_with(&uploads::area_prefix(account_id)) => {
            Source::Key(url.clone())
        }
        (Some(url), None) => {
            check_url(url)?;
            Source::Url(url.clone())
        }
        (None, Some(key)) => Source::Key(key.clone()),
    };
    if let Source::Key(key) = &source {
        uploads::check_key(account_id, "video.key", key)?;
        match blobs::head(svc, key).await? {
            None => {
                return Err(ApiError::bad_json(format!(
                    "video.key: nothing is uploaded at '{key}'"
                )));
            }
            Some(head) if head.size > VIDEO_BYTES_MAX => {
                return Err(too_big(head.size));
            }
            Some(_) => {}
        }
    }
    if let Some(n) = request.video.segments
        && !(1..=SEGMENTS_MAX).contains(&n)
    {
        return Err(ApiError::bad_json(format!(
            "video.segments must be 1 to {SEGMENTS_MAX}"
        )));
    }
    if request.analytics.is_empty() || request.analytics.len() > 10 {
        return Err(ApiError::bad_json("analytics must hold 1 to 10 analytics"));
    }
    let analytics = request
        .analytics
        .iter()
        .enumerate()
        .map(|(i, a)| analytics::parse(i, a))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(VideoContent {
        source,
        segments: request.video.segments,
        analytics,
        callbacks: request
            .analytics
            .iter()
            .map(|a| a.callbacks.clone())
            .collect(),
        sync: !request.deferred_task.enable,
    })
}

/// How many segments a video of `duration` seconds is cut into when none are asked for.
pub fn default_segments(duration: f64) -> u32 {
    ((duration / SEGMENT_SECONDS).ceil() as u32).clamp(1, SEGMENTS_MAX)
}

#[async_trait]
impl TaskKind for VideoAnalysis {
    fn name(&self) -> &'static str {
        "video_analysis"
    }

    fn task_type(&self) -> TaskType {
        TaskType::VideoAnalysis
    }

    async fn validate(
        &self,
        _svc: &Services,
        _account_id: Uuid,
        content: Value,
        _now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        // The route checks the request (`validate_request`) and stores its content;
        // here it is only read back.
        let content: VideoContent = parse_content(content)?;
        to_json(&content)
    }

    async fn plan(&self, task: &TaskContext<'_>, stage: u32) -> Result<Vec<Value>, ApiError> {
        match stage {
            0 => Ok(vec![Value::Null]),
            1 => {
                let content: VideoContent = task.content()?;
                let probed = probed(task).await?;
                let probe = probed.probe.clone();
                if content.sync && probe.duration > SYNC_SECONDS_MAX {
                    return Err(ApiError::new(
                        ErrorCode::VideoTooLongForSync,
                        format!(
                            "the video lasts {:.1} s; a synchronous request takes at most {SYNC_SECONDS_MAX} s: send it with \"deferred_task\": {{\"enable\": true}} and poll /1/video/tasks/{{task_id}}",
                            probe.duration
                        ),
                    ));
                }
                let wanted = content
                    .segments
                    .unwrap_or_else(|| default_segments(probe.duration));
                let segments = media::plan_segments(&probe, wanted);
                let light = Probe {
                    keyframes: Vec::new(),
                    ..probe
                };
                segments
                    .into_iter()
                    .map(|segment| {
                        to_json(&SegmentPart {
                            probe: light.clone(),
                            segment,
                            copy: probed.copy.clone(),
                        })
                    })
                    .collect()
            }
            _ => Ok(Vec::new()),
        }
    }

    async fn execute(&self, subtask: &SubtaskContext<'_>) -> Result<Value, ApiError> {
        let content: VideoContent = subtask.task_content()?;
        if subtask.subtask.subtask.stage == 0 {
            // A video given by URL is read from its server once, here, into the task's
            // scratch: the probe and every segment read the copy.
            let (source, copy) = match &content.source {
                Source::Url(url) => {
                    let key = blobs::task_scratch_key(subtask.task.task_id, "video");
                    copy_url(subtask.svc, url, &key).await?;
                    (Source::Key(key.clone()), Some(key))
                }
                key => (key.clone(), None),
            };
            let url = read_url(subtask.svc, &source).await?;
            let probe = media::probe(&url, PROBE_TIMEOUT)
                .await
                .map_err(processing_error)?;
            if probe.duration <= 0.0 || probe.frame_count == 0 {
                return Err(processing_error("the video has no frames"));
            }
            return to_json(&Probed { probe, copy });
        }
        #[cfg(feature = "vision")]
        {
            let part: SegmentPart = subtask.content()?;
            to_json(&super::run::segment(subtask, &content, &part).await?)
        }
        #[cfg(not(feature = "vision"))]
        {
            Err(crate::kinds::without_vision("video analysis"))
        }
    }

    async fn merge(&self, task: &TaskContext<'_>) -> Result<Merged, ApiError> {
        let content: VideoContent = task.content()?;
        let probe = probed(task).await?.probe;
        let subtasks = task.subtasks(1).await?;
        if let Some(failed) = subtasks
            .iter()
            .find(|s| s.subtask.status != SubtaskStatus::Done)
        {
            // The segment's own error says why (a corrupt stretch, a lost source).
            let id = failed.subtask.subtask_id;
            let errors = crate::tasks::api::task_errors(task.svc, task.task.task_id).await?;
            let detail = errors
                .iter()
                .find(|e| e.subtask_id == Some(id))
                .map(|e| e.detail.clone())
                .unwrap_or_else(|| format!("segment {id} did not finish"));
            return Err(ApiError::new(ErrorCode::VideoProcessing, detail));
        }
        let mut outputs: Vec<SegmentOutput> = task.outputs(subtasks).await?;
        outputs.sort_by_key(|o| o.segment);
        let result =
            super::merge::result(task.svc, task.task.task_id, &content, &probe, &outputs).await?;
        let bytes = serde_json::to_vec(&result).map_err(|e| ApiError::internal("result", e))?;
        blobs::put(
            task.svc,
            &blobs::result_key(task.task.task_id),
            bytes,
            "application/json",
        )
        .await?;
        super::callbacks::deliver_task_events(task.svc, task.task, &content, &result).await?;
        Ok(Merged::Stored)
    }
}

/// The stage-0 output: the video's probe.
async fn probed(task: &TaskContext<'_>) -> Result<Probed, ApiError> {
    let outcomes = task.outcomes::<Probed, Value>(0).await?;
    outcomes.outputs.into_iter().next().ok_or_else(|| {
        processing_error("the video could not be probed (its stage-0 subtask failed)")
    })
}
