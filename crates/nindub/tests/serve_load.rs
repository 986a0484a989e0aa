//! Load on the real `nindub serve` process, over loopback: 8 clients at
//! once, a fixed number of requests each, and one client killed mid-stream.
//! Every request completes correctly or gets a clean 503; the process stays
//! up and its memory bounded; the killed stream does not stall the others.

mod common;

use std::time::{Duration, Instant};

use common::{memory_kb, serve};
use nindub::serve::client::Client;
use serde_json::json;

const CLIENTS: usize = 8;
const REQUESTS: usize = 3;

#[test]
fn eight_clients_get_answers_or_clean_503s() {
    let served = serve(&["--queue", "3"]);
    let pid = served.child.id();
    let client = Client::new(&served.url);
    // Warm up: one answer, then measure memory.
    let (status, _) = client
        .post(
            "/v1/completions",
            &json!({ "prompt": "Hello", "max_tokens": 4 }),
        )
        .unwrap();
    assert_eq!(status, 200);
    let (warm_rss, _) = memory_kb(pid).unwrap();

    let started = Instant::now();
    let mut threads = vec![];
    // The client that will be killed: a long stream, abandoned after 3 tokens.
    {
        let c = client.clone();
        threads.push(std::thread::spawn(move || {
            let mut seen = 0;
            let s = c
                .stream(
                    "/v1/chat/completions",
                    &json!({ "messages": [{ "role": "user", "content": "Write a very long story." }], "max_tokens": 1000, "temperature": 0.8, "seed": 1 }),
                    |_| {
                        seen += 1;
                        seen < 4
                    },
                )
                .unwrap();
            vec![(s.status, !s.saw_done, "killed".to_string())]
        }));
    }
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..CLIENTS {
        let c = client.clone();
        threads.push(std::thread::spawn(move || {
            let mut outcomes = vec![];
            for r in 0..REQUESTS {
                let body = json!({
                    "messages": [{ "role": "user", "content": format!("Client {i}, request {r}: name a colour.") }],
                    "max_tokens": 6, "temperature": 0.7, "seed": i * 10 + r,
                    "stream_options": { "include_usage": true },
                });
                let s = c.stream("/v1/chat/completions", &body, |_| true).unwrap();
                let ok = match s.status {
                    200 => {
                        let usage = &s.chunks.last().unwrap()["usage"];
                        s.saw_done
                            && s.error.is_none()
                            && usage["completion_tokens"].as_u64() == Some(s.token_chunks as u64)
                            && s.token_chunks >= 1
                    }
                    503 => s.error.as_ref().is_some_and(|e| e["error"]["code"] == "queue_full"),
                    _ => false,
                };
                outcomes.push((s.status, ok, format!("{:?}", s.error)));
                if s.status == 503 {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            outcomes
        }));
    }
    let outcomes: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let elapsed = started.elapsed();
    let (killed, rest) = outcomes.split_at(1);
    assert_eq!(killed[0].0, 200);
    assert!(killed[0].1, "the killed stream was not cut short");
    for (status, ok, detail) in rest {
        assert!(*ok, "a request ended badly: {status} {detail}");
    }
    let served_ok = rest.iter().filter(|o| o.0 == 200).count();
    let refused = rest.iter().filter(|o| o.0 == 503).count();
    assert_eq!(served_ok + refused, CLIENTS * REQUESTS);
    assert!(served_ok >= 3, "only {served_ok} answered");
    eprintln!(
        "load: {served_ok} answered, {refused} refused with 503, in {:.1} s",
        elapsed.as_secs_f64()
    );

    // The process is alive, answers, and did not run away with memory.
    let (status, health) = client.get("/health").unwrap();
    assert_eq!(status, 200);
    assert_eq!(health["queue"]["waiting"], 0);
    let (_, metrics) = client.get("/metrics").unwrap();
    let metrics = metrics.as_str().unwrap();
    assert!(metrics.contains("nindub_cancelled_total 1"), "{metrics}");
    assert!(metrics.contains(&format!("nindub_queue_rejected_total {refused}")));
    let (rss, peak) = memory_kb(pid).unwrap();
    eprintln!("memory: warm {warm_rss} kB, after {rss} kB, peak {peak} kB");
    assert!(
        rss < warm_rss + 64 * 1024,
        "RSS grew from {warm_rss} to {rss} kB"
    );
    assert!(peak < 1024 * 1024, "peak RSS {peak} kB");
}
