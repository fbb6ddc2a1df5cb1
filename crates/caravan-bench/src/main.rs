//! `caravan-bench`: load generators that need more than wrk offers.
//!
//! `caravan-bench blocking-wakeup <http-addr> <node-id> <waiters>` opens
//! `waiters` blocking queries on one node, changes that node once, and
//! reports how long each query took to return after the write was
//! acknowledged. Everything is bounded: one write, waits of at most 120 s.

use std::time::{Duration, Instant};

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * fraction).round() as usize]
}

async fn blocking_wakeup(http_addr: &str, node_id: &str, waiters: usize) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(waiters + 8)
        .build()
        .map_err(|e| e.to_string())?;
    let node_url = format!("http://{http_addr}/v1/node/{node_id}");
    let first = client
        .get(&node_url)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let index: u64 = first
        .headers()
        .get("x-nomad-index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or("no index header")?;
    let node: serde_json::Value = first.json().await.map_err(|e| e.to_string())?;
    let next = if node["SchedulingEligibility"] == "eligible" {
        "ineligible"
    } else {
        "eligible"
    };

    let mut tasks = Vec::with_capacity(waiters);
    for _ in 0..waiters {
        let client = client.clone();
        let url = format!("{node_url}?index={index}&wait=120s");
        tasks.push(tokio::spawn(async move {
            let response = client.get(&url).send().await.map_err(|e| e.to_string())?;
            let _ = response.bytes().await.map_err(|e| e.to_string())?;
            Ok::<Instant, String>(Instant::now())
        }));
    }
    // Let every query reach the server and start waiting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    if tasks.iter().any(|task| task.is_finished()) {
        return Err("a blocking query returned before the change".into());
    }
    let body = serde_json::json!({"Eligibility": next}).to_string();
    let sent = Instant::now();
    let write = client
        .post(format!("{node_url}/eligibility"))
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let acknowledged = Instant::now();
    if !write.status().is_success() {
        return Err(format!("the write failed: {}", write.status()));
    }
    // Waiters are woken when the write applies, which can be before its
    // acknowledgement reaches us; measure from when the write was sent.
    let mut after_send = Vec::with_capacity(waiters);
    for task in tasks {
        let done = task.await.map_err(|e| e.to_string())??;
        after_send.push(done.saturating_duration_since(sent).as_secs_f64() * 1000.0);
    }
    after_send.sort_by(|a, b| a.total_cmp(b));
    let round = |ms: f64| (ms * 100.0).round() / 100.0;
    println!(
        "{}",
        serde_json::json!({
            "waiters": waiters,
            "write_acknowledged_ms": round((acknowledged - sent).as_secs_f64() * 1000.0),
            "woken_after_write_sent_p50_ms": round(percentile(&after_send, 0.5)),
            "woken_after_write_sent_p99_ms": round(percentile(&after_send, 0.99)),
            "woken_after_write_sent_max_ms": round(percentile(&after_send, 1.0)),
        })
    );
    Ok(())
}

fn main() {
    caravan_tls::install_default_provider();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["blocking-wakeup", addr, node, waiters] => match waiters.parse::<usize>() {
            Ok(waiters) if (1..=5000).contains(&waiters) => {
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())
                    .and_then(|runtime| runtime.block_on(blocking_wakeup(addr, node, waiters)))
            }
            _ => Err("waiters must be between 1 and 5000".to_string()),
        },
        _ => {
            Err("usage: caravan-bench blocking-wakeup <http-addr> <node-id> <waiters>".to_string())
        }
    };
    if let Err(error) = outcome {
        eprintln!("caravan-bench: {error}");
        std::process::exit(1);
    }
}
