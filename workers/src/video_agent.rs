//! The worker as a Video Agent agent: every refresh period it announces itself, and while
//! it has room it takes streams that need an agent (pending ones, or those whose agent
//! went silent: its lease ran out). Each stream it holds is decoded with ffmpeg at the
//! source's own pace, people are counted on the sampled frames, `crowd` events go to the
//! analytics' callbacks as they end, and a feedback every refresh period renews the
//! lease and records the position reached — where the next agent resumes a file if this
//! one dies. A feedback that finds the stream stopped, deleted or taken ends the work.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use fanout::Services;
use fanout::error::ApiError;
use fanout::video::analytics::{self, Analytic, FrameCount, PeopleCount};
use fanout::video::media::{self, Container, FrameReader, Probe, Sampling, Segment};
use fanout::video::run::{count_people, decode_period};
use fanout::video::streams::{self, AgentRecord, Feedback, Held, REFRESH_MS, status};
use fanout::video::task::{ANALYSIS_SIDE, PROBE_TIMEOUT, Source, read_url};

/// What the agent is given.
#[derive(Debug, Clone, Copy)]
pub struct AgentOptions {
    /// Most streams processed at once (0: the worker is no agent).
    pub max_streams: u32,
    /// How long a stream stays held without feedback: another agent takes it after.
    pub lease: Duration,
}

/// Runs the agent until `stop`; the streams it holds are left to lapse to others.
pub async fn run(svc: Arc<Services>, options: AgentOptions, mut stop: watch::Receiver<bool>) {
    if options.max_streams == 0 {
        return;
    }
    let agent_id = Uuid::new_v4();
    let name = format!(
        "{}:{}",
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        std::process::id()
    );
    tracing::info!(%agent_id, max_streams = options.max_streams, "video agent started");
    let mut held: HashMap<Uuid, (Uuid, JoinHandle<()>)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(REFRESH_MS as u64));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        held.retain(|_, (_, handle)| !handle.is_finished());
        let record = AgentRecord {
            agent_id,
            name: name.clone(),
            max_streams: options.max_streams,
            streams: held.iter().map(|(s, (a, _))| (*a, *s)).collect(),
            last_seen: chrono::Utc::now().timestamp_millis(),
        };
        if let Err(err) = streams::announce(&svc, &record).await {
            tracing::warn!(%err, "agent announcement failed");
        }
        if held.len() as u32 >= options.max_streams {
            continue;
        }
        let open = match streams::open_streams(&svc).await {
            Ok(open) => open,
            Err(err) => {
                tracing::warn!(%err, "open streams not read");
                continue;
            }
        };
        for (account_id, stream_id) in open {
            if held.len() as u32 >= options.max_streams {
                break;
            }
            if held.contains_key(&stream_id) {
                continue;
            }
            let lease_ms = options.lease.as_millis() as i64;
            match streams::claim(&svc, account_id, stream_id, agent_id, lease_ms).await {
                Ok(Some(h)) => {
                    tracing::info!(%stream_id, claim = h.claim, "stream taken");
                    let svc = svc.clone();
                    let handle = tokio::spawn(async move { process(&svc, h, lease_ms).await });
                    held.insert(stream_id, (account_id, handle));
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(%err, %stream_id, "claim failed"),
            }
        }
    }
    for (_, (_, handle)) in held {
        handle.abort();
    }
}

/// Processes one held stream to its end, its failure, or its loss.
async fn process(svc: &Services, held: Held, lease_ms: i64) {
    let stream_id = held.stream.stream_id;
    let mut position = held.stream.processing.position;
    let outcome = analyse(svc, &held, lease_ms, &mut position).await;
    let failure = match outcome {
        Ok(Ended::Source) => None,
        Ok(Ended::Released) => {
            tracing::info!(%stream_id, "stream stopped, deleted or taken: released");
            return;
        }
        Err(reason) => Some(reason),
    };
    if let Err(err) = streams::finish(svc, &held, position, failure).await {
        tracing::warn!(%err, %stream_id, "stream end not recorded; its lease will lapse");
    }
}

/// Why processing ended without a failure.
enum Ended {
    /// The source ended.
    Source,
    /// The stream is no longer this agent's.
    Released,
}

/// A crowd detector over a live series of counts: events once they end.
struct Crowds {
    index: usize,
    params: PeopleCount,
    series: Vec<FrameCount>,
    /// Crowds starting before this frame were sent (by this agent or the one before).
    sent_until: u64,
}

impl Crowds {
    /// Adds a sampled frame; the crowds that ended with it.
    fn push(&mut self, count: FrameCount) -> Vec<analytics::Crowd> {
        self.series.push(count);
        let crowds = analytics::crowd_events(&self.params, &self.series, u64::MAX, f64::MAX);
        let ended: Vec<analytics::Crowd> = crowds
            .into_iter()
            .filter(|c| c.end_frame != u64::MAX && c.start_frame >= self.sent_until)
            .collect();
        if let Some(last) = ended.last() {
            self.sent_until = last.end_frame;
            // Frames before the last crowd's end no longer matter.
            let end = last.end_frame;
            self.series.retain(|f| f.frame >= end);
        } else if !crowd_open(&self.params, &self.series) {
            // No crowd standing: only a possible confirming run matters.
            let keep = self.params.probe_count as usize;
            if self.series.len() > keep {
                self.series.drain(..self.series.len() - keep);
            }
        }
        ended
    }

    /// The crowd still standing when the source ends, closed at `end`.
    fn close(&mut self, end: (u64, f64)) -> Vec<analytics::Crowd> {
        analytics::crowd_events(&self.params, &self.series, end.0, end.1)
            .into_iter()
            .filter(|c| c.start_frame >= self.sent_until)
            .collect()
    }
}

fn crowd_open(params: &PeopleCount, series: &[FrameCount]) -> bool {
    analytics::crowd_events(params, series, u64::MAX, f64::MAX)
        .last()
        .is_some_and(|c| c.end_frame == u64::MAX)
}

async fn analyse(
    svc: &Services,
    held: &Held,
    lease_ms: i64,
    position: &mut f64,
) -> Result<Ended, String> {
    let stream = &held.stream;
    let reference = &stream.data.reference;
    let source = if reference.starts_with("uploads/") {
        Source::Key(reference.clone())
    } else {
        Source::Url(reference.clone())
    };
    let url = read_url(svc, &source).await.map_err(|e| e.detail)?;
    let is_file = stream.data.kind == "file";
    // A live URL may be a playlist; a file is read with the file demuxers only.
    let container = if is_file {
        Container::File
    } else {
        Container::Live
    };
    let probe: Probe = media::probe_as(&url, container, PROBE_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let start = if is_file { *position } else { probe.start_time };
    let segment = Segment {
        index: 0,
        start: start.max(probe.start_time),
        end: probe.start_time + probe.duration.max(0.0),
        last: true,
    };
    let analytics = &stream.processing.analytics;
    let sampling = Sampling {
        period: decode_period(analytics, probe.frame_rate),
        max_side: ANALYSIS_SIDE,
    };
    let mut reader = FrameReader::start_as(&url, container, &probe, &segment, sampling, 1)
        .map_err(|e| e.to_string())?;
    let mut crowds: Vec<Crowds> = analytics
        .iter()
        .enumerate()
        .filter_map(|(index, a)| match a {
            Analytic::PeopleCount(p) => Some(Crowds {
                index,
                params: p.clone(),
                series: Vec::new(),
                sent_until: stream.processing.sent_until,
            }),
            Analytic::HumanTracking(_) => None,
        })
        .collect();
    // A file is read at its own frame rate, as a camera would send it.
    let wall_start = tokio::time::Instant::now();
    let mut last_feedback = tokio::time::Instant::now();
    let video = (probe.width, probe.height);
    let mut last_frame = (0u64, segment.start);
    let mut sent_any = false;
    loop {
        let frame = match reader.next().await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(err) => return Err(err.to_string()),
        };
        if is_file {
            let due = wall_start + Duration::from_secs_f64((frame.time - segment.start).max(0.0));
            tokio::time::sleep_until(due).await;
        }
        last_frame = (frame.number, frame.time);
        let image = Arc::new(frame.image);
        for c in crowds.iter_mut() {
            if !frame
                .number
                .is_multiple_of(c.params.rate.frames(probe.frame_rate))
            {
                continue;
            }
            let counted = count_people(&c.params, image.clone(), last_frame, video)
                .await
                .map_err(|e| e.detail)?;
            let ended = c.push(counted);
            for crowd in &ended {
                send_event(svc, held, c.index, crowd);
            }
            // An event sent is recorded at once, so a successor does not send it again.
            sent_any |= !ended.is_empty();
        }
        *position = frame.time;
        let sent_until = crowds.iter().map(|c| c.sent_until).max().unwrap_or(0);
        if sent_any || last_feedback.elapsed() >= Duration::from_millis(REFRESH_MS as u64) {
            sent_any = false;
            last_feedback = tokio::time::Instant::now();
            match streams::feedback(svc, held, *position, sent_until, lease_ms).await {
                Ok(Feedback::Go) => {}
                Ok(Feedback::Stop) => return Ok(Ended::Released),
                Err(err) => tracing::warn!(%err, "feedback failed; retried at the next"),
            }
        }
    }
    let end = (
        probe.frame_count.max(last_frame.0 + 1),
        probe.start_time + probe.duration,
    );
    for c in crowds.iter_mut() {
        for crowd in c.close(end) {
            send_event(svc, held, c.index, &crowd);
        }
    }
    *position = end.1;
    Ok(Ended::Source)
}

/// Sends a crowd event to the analytic's callbacks in the background (a slow or failing
/// callback never holds the analysis); failures go to the stream's logs.
fn send_event(svc: &Services, held: &Held, index: usize, crowd: &analytics::Crowd) {
    let stream = &held.stream;
    let Some(callbacks) = stream.processing.callbacks.get(index).cloned() else {
        return;
    };
    if callbacks.is_empty() {
        return;
    }
    let event_id = Uuid::new_v5(
        &stream.stream_id,
        format!("{index}/{}", crowd.start_frame).as_bytes(),
    );
    let now = fanout::timestamps::format(fanout::timestamps::now());
    let body = json!({
        "account_id": stream.account_id,
        "event_create_time": now,
        "event_end_time": now,
        "event_type": "crowd",
        "source": stream.source,
        "event_source_group": stream.event_source_group,
        "event": {
            "stream_id": stream.stream_id,
            "event_id": event_id,
            "analytic_index": index,
            "people_count": crowd.people_count,
            "video_segment": {
                "start_time_offset": crowd.start_time,
                "end_time_offset": crowd.end_time,
                "start_frame": crowd.start_frame,
                "end_frame": crowd.end_frame,
            },
            "location": stream.location,
        },
    });
    let svc = svc.clone();
    let stream = stream.clone();
    tokio::spawn(async move {
        for callback in &callbacks {
            if let Err(reason) = fanout::video::callbacks::post(callback, &body).await {
                tracing::warn!(%reason, stream_id = %stream.stream_id, "callback failed");
                let logged: Result<(), ApiError> =
                    streams::write_log(&svc, &stream, status::IN_PROGRESS, Some(reason), None)
                        .await;
                if let Err(err) = logged {
                    tracing::warn!(%err, "callback failure not logged");
                }
            }
        }
    });
}
