//! The gateway binary's log, as `make run` writes it to a terminal or a file: one access
//! line per request (method, path, status, time, request id) and, off a terminal, no
//! colour codes. Needs the local stack's environment (`make test`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn every_request_gets_one_plain_access_line() {
    let log = std::env::temp_dir().join(format!("gateway-log-{}.txt", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env("FANOUT_ADDR", "127.0.0.1:0")
        .env_remove("FANOUT_LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .rsplit(' ')
        .next()
        .expect("the gateway prints its address")
        .to_string();
    let id = "1536751345,8b8b5937-2e9c-4e8b-a7a7-5caf86621b5a";
    let client = reqwest::Client::new();
    let version = client
        .get(format!("{url}/version"))
        .header("Luna-Request-Id", id)
        .send()
        .await
        .unwrap();
    assert_eq!(version.status(), 200);
    let refused = client
        .get(format!("{url}/1/faces?account_id=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let unknown = client.get(format!("{url}/1/nothing")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);

    let start = Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.matches("access").count() >= 3 || start.elapsed() > Duration::from_secs(10) {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&log);
    assert!(!text.contains('\u{1b}'), "colour codes in a file:\n{text}");
    let access: Vec<&str> = text.lines().filter(|l| l.contains(" access:")).collect();
    assert_eq!(access.len(), 3, "{text}");
    assert!(access[0].contains("GET /version 200"), "{}", access[0]);
    assert!(
        access[0].contains(&format!("request_id={id}")),
        "{}",
        access[0]
    );
    assert!(access[0].contains("ms="), "{}", access[0]);
    assert!(access[1].contains("GET /1/faces 401"), "{}", access[1]);
    assert!(
        !access[1].contains("account_id"),
        "the query stays out: {}",
        access[1]
    );
    assert!(access[2].contains("GET /1/nothing 404"), "{}", access[2]);
}
