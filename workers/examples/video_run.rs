//! Video analysis run (see BENCHMARKS.md, "Video"): a clip of `MINUTES` minutes made by
//! ffmpeg from the package images (scenes of no one, two men and six people, 10 s each,
//! 640 × 360, 25 fps, a keyframe a second) uploaded into a new account's upload area; one
//! deferred `people_count` task over it (every `PERIOD`th frame) in `SEGMENTS` segments,
//! created through the domain API; waits for it and prints one JSON line: frames, sampled
//! frames, segments, wall time from creation to done, sampled frames/s, crowds found.
//! Workers run as separate processes (bench/video.sh).
//!
//! `cargo run --release -p fanout-workers --example video_run -- 10 10 20`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fanout::Services;
use fanout::objects::uploads;
use fanout::store::blobs;
use fanout::tasks::model::TaskStatus;
use fanout::tasks::store as task_store;
use fanout::video::api;
use fanout::video::task::VideoRequest;
use fanout::video::testclips::{Scene, make_clip};
use serde_json::{Value, json};
use uuid::Uuid;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let minutes = args.first().copied().unwrap_or(10);
    let period = args.get(1).copied().unwrap_or(10);
    let segments = args.get(2).copied().unwrap_or(20);
    let models = std::env::var_os("FANOUT_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".fanout/models"));
    let images = models.join("images");
    let (zidane, t1) = (images.join("zidane.jpg"), images.join("t1.jpg"));
    let mut scenes = Vec::new();
    for _ in 0..minutes * 2 {
        scenes.push(Scene {
            image: None,
            seconds: 10,
        });
        scenes.push(Scene {
            image: Some(&zidane),
            seconds: 10,
        });
        scenes.push(Scene {
            image: Some(&t1),
            seconds: 10,
        });
    }
    let dir = std::env::temp_dir().join(format!("fanout-video-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let clip = make_clip(&dir.join("bench.mp4"), &scenes, 640, 360, 25, 25)?;
    let bytes = std::fs::read(&clip)?;
    std::fs::remove_dir_all(&dir)?;
    let svc = Services::from_env().await?;
    let account_id = Uuid::new_v4();
    let key = format!("{}bench.mp4", uploads::area_prefix(account_id));
    blobs::put(&svc, &key, bytes, "video/mp4").await?;
    let request: VideoRequest = serde_json::from_value(json!({
        "deferred_task": {"enable": true},
        "video": {"key": key, "segments": segments},
        "analytics": [{"name": "people_count",
                       "parameters": {"people_count__gte": 2, "rate": {"period": period}}}]
    }))?;
    let start = Instant::now();
    let (task_id, _) = api::create(&svc, account_id, &request).await?;
    let record = loop {
        let record = task_store::load(&svc, task_id).await?.expect("task stored");
        if record.task_status.is_final() {
            break record;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(record.task_status, TaskStatus::Done, "{record:?}");
    let result: Value = serde_json::from_slice(
        &blobs::get(&svc, &blobs::result_key(task_id))
            .await?
            .expect("result stored"),
    )?;
    let frames = result["video_data"]["frame_count"].as_u64().unwrap_or(0);
    let sampled = frames.div_ceil(u64::from(period));
    println!(
        "{}",
        json!({
            "minutes": minutes,
            "frames": frames,
            "sampled_frames": sampled,
            "segments": result["video_data"]["segments"],
            "seconds": (seconds * 10.0).round() / 10.0,
            "sampled_frames_per_second": (sampled as f64 / seconds * 10.0).round() / 10.0,
            "crowds": result["analytics"][0]["events"].as_array().map(Vec::len),
        })
    );
    Ok(())
}
