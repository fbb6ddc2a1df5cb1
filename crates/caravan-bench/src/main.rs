//! `caravan-bench`: load generators that need more than wrk offers.
//!
//! `caravan-bench blocking-wakeup <http-addr> <node-id> <waiters>` opens
//! `waiters` blocking queries on one node, changes that node once, and
//! reports how long each query took to return after the write was
//! acknowledged. Everything is bounded: one write, waits of at most 120 s.
//!
//! `caravan-bench blocking-spread <http-addr> <waiters>` opens one blocking
//! `GET /v1/node/:id?index=N` on each of `waiters` different nodes (the
//! cluster must have that many), changes one of those nodes once, and counts
//! how many queries return within 3 s of the write (the target is 1: a write
//! wakes only the waiters of what it touched). Waits are 30 s at most.
//!
//! `caravan-bench snapshot-write <dir> <nodes> <v2|v3>` builds a state of
//! `nodes` fingerprinted nodes and writes its Raft snapshot into `dir` in
//! the given format; `caravan-bench snapshot-read <dir>` restores it as a
//! server does at start. Each prints its time, file size and peak RSS as
//! JSON (`bench/snapshot.sh` runs them).

use std::time::{Duration, Instant};

mod snapshot;

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

async fn get_json(
    client: &reqwest::Client,
    url: &str,
) -> Result<(Option<u64>, serde_json::Value), String> {
    let reply = client.get(url).send().await.map_err(|e| e.to_string())?;
    let index = reply
        .headers()
        .get("x-nomad-index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = reply.json().await.map_err(|e| e.to_string())?;
    Ok((index, body))
}

/// `stats.state.<key>` of `/v1/agent/self`, if the server reports it.
async fn state_stat(client: &reqwest::Client, http_addr: &str, key: &str) -> Option<u64> {
    let (_, body) = get_json(client, &format!("http://{http_addr}/v1/agent/self"))
        .await
        .ok()?;
    body["stats"]["state"][key].as_str()?.parse().ok()
}

async fn blocking_spread(http_addr: &str, waiters: usize) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(waiters + 8)
        .build()
        .map_err(|e| e.to_string())?;
    let (_, list) = get_json(&client, &format!("http://{http_addr}/v1/nodes")).await?;
    let ids: Vec<String> = list
        .as_array()
        .ok_or("the node list is not an array")?
        .iter()
        .filter_map(|node| node["ID"].as_str().map(str::to_string))
        .take(waiters)
        .collect();
    if ids.len() < waiters {
        return Err(format!("only {} nodes, {waiters} needed", ids.len()));
    }
    let mut indexes = Vec::with_capacity(waiters);
    for id in &ids {
        let (index, _) = get_json(&client, &format!("http://{http_addr}/v1/node/{id}")).await?;
        indexes.push(index.ok_or("no index header")?);
    }
    let waiting_before = state_stat(&client, http_addr, "blocking_waiters").await;
    let (returned_tx, mut returned) = tokio::sync::mpsc::unbounded_channel();
    for (position, (id, index)) in ids.iter().zip(&indexes).enumerate() {
        let client = client.clone();
        let url = format!("http://{http_addr}/v1/node/{id}?index={index}&wait=30s");
        let returned_tx = returned_tx.clone();
        tokio::spawn(async move {
            let outcome = match client.get(&url).send().await {
                Ok(response) => response
                    .bytes()
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(error) => Err(error.to_string()),
            };
            let _ = returned_tx.send((position, Instant::now(), outcome));
        });
    }
    // Every query must be registered and waiting before the write: by the
    // server's count when it reports one, else after a pause.
    let registered_by = Instant::now() + Duration::from_secs(20);
    match waiting_before {
        Some(before) => loop {
            let now = state_stat(&client, http_addr, "blocking_waiters")
                .await
                .unwrap_or(0);
            if now >= before + waiters as u64 {
                break;
            }
            if Instant::now() > registered_by {
                return Err(format!(
                    "only {} of {waiters} queries waiting",
                    now - before
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        },
        None => tokio::time::sleep(Duration::from_secs(3)).await,
    }
    if let Ok((position, _, outcome)) = returned.try_recv() {
        return Err(format!(
            "query {position} returned before the change: {outcome:?}"
        ));
    }
    let woken_before = state_stat(&client, http_addr, "woken_waiters").await;
    let changed = waiters / 2;
    let node_url = format!("http://{http_addr}/v1/node/{}", ids[changed]);
    let (_, node) = get_json(&client, &node_url).await?;
    let next = if node["SchedulingEligibility"] == "eligible" {
        "ineligible"
    } else {
        "eligible"
    };
    let sent = Instant::now();
    let write = client
        .post(format!("{node_url}/eligibility"))
        .body(serde_json::json!({"Eligibility": next}).to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !write.status().is_success() {
        return Err(format!("the write failed: {}", write.status()));
    }
    let window = sent + Duration::from_secs(3);
    let mut woken = Vec::new();
    while let Ok(Some((position, at, outcome))) =
        tokio::time::timeout_at(window.into(), returned.recv()).await
    {
        outcome.map_err(|error| format!("query {position} failed: {error}"))?;
        woken.push((
            position,
            at.saturating_duration_since(sent).as_secs_f64() * 1000.0,
        ));
    }
    let woken_by_server = match (
        woken_before,
        state_stat(&client, http_addr, "woken_waiters").await,
    ) {
        (Some(before), Some(after)) => serde_json::json!(after - before),
        _ => serde_json::Value::Null,
    };
    println!(
        "{}",
        serde_json::json!({
            "waiters": waiters,
            "distinct_nodes": waiters,
            "returned_within_3s_of_the_write": woken.len(),
            "the_changed_nodes_query_returned": woken.iter().any(|(position, _)| *position == changed),
            "woken_by_the_server_count": woken_by_server,
            "first_return_after_write_ms": woken.first().map(|(_, ms)| (ms * 100.0).round() / 100.0),
        })
    );
    Ok(())
}

fn print_json(value: serde_json::Value) {
    println!("{value}");
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
        ["blocking-spread", addr, waiters] => match waiters.parse::<usize>() {
            Ok(waiters) if (1..=5000).contains(&waiters) => {
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())
                    .and_then(|runtime| runtime.block_on(blocking_spread(addr, waiters)))
            }
            _ => Err("waiters must be between 1 and 5000".to_string()),
        },
        ["snapshot-write", dir, nodes, format] => match nodes.parse::<usize>() {
            Ok(nodes) if (1..=1_000_000).contains(&nodes) => snapshot::write(dir, nodes, format).map(print_json),
            _ => Err("nodes must be between 1 and 1000000".to_string()),
        },
        ["snapshot-read", dir] => snapshot::read(dir).map(print_json),
        _ => Err("usage: caravan-bench blocking-wakeup <http-addr> <node-id> <waiters> | blocking-spread <http-addr> <waiters> | snapshot-write <dir> <nodes> <v2|v3> | snapshot-read <dir>".to_string()),
    };
    if let Err(error) = outcome {
        eprintln!("caravan-bench: {error}");
        std::process::exit(1);
    }
}
