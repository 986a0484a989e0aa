//! Many voices, one crystal: a batch of sequences decoded in one pass over
//! the weights gives every sequence exactly what it gets alone, whatever
//! the other sequences do, and the server built on it streams the same
//! text to concurrent clients as to one, frees a slot when a client hangs
//! up, and never reserves more KV cache than its pool.

mod common;
use common::{metric, wait_for_health};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use candle_core::Device;
use nindub::assets;
use nindub::model::fused::{BatchItem, FusedLlama};
use nindub::model::generate::{Generator, LoadOptions};
use nindub::model::gguf::GgufFile;
use nindub::model::kv_cache::kv_bytes;
use nindub::serve::client::Client;
use nindub::serve::{ServeConfig, Server};
use nindub::stream::streamer::StreamOptions;
use serde_json::{Value, json};

fn engine() -> FusedLlama {
    let file = GgufFile::open(&assets::smollm2().unwrap()).unwrap();
    FusedLlama::with_budget(&file, None, 512).unwrap()
}

/// Three sequences' tokens: prompts of different lengths, then tokens to
/// decode one at a time.
fn scripts() -> Vec<Vec<u32>> {
    vec![
        (1..=9).map(|t| t * 37).collect(),
        (1..=14).map(|t| 1000 + t * 11).collect(),
        (1..=5).map(|t| 20000 + t * 3).collect(),
    ]
}

// ANCHOR: identical
#[test]
fn a_batched_pass_gives_each_sequence_its_own_logits_bit_for_bit() {
    let mut m = engine();
    let vocab = m.arch.vocab_size as usize;
    let scripts = scripts();
    // Alone: each script's prompt (its first 4 tokens), then one token at a time.
    let alone: Vec<Vec<Vec<f32>>> = scripts
        .iter()
        .map(|s| {
            m.clear_cache();
            let mut out = vec![m.forward(&s[..4]).unwrap().to_vec()];
            for &t in &s[4..] {
                out.push(m.step(t).unwrap().to_vec());
            }
            out
        })
        .collect();
    // Together: sequence k joins at step k (its prompt runs beside the
    // others' decode steps), and leaves when its script ends.
    let mut caches: Vec<_> = scripts.iter().map(|s| m.new_cache(s.len())).collect();
    let mut next = vec![0usize; scripts.len()];
    for step in 0.. {
        let mut who = vec![];
        let mut items = vec![];
        for (k, (cache, s)) in caches.iter_mut().zip(&scripts).enumerate() {
            if step < k || next[k] >= s.len() {
                continue;
            }
            let n = if next[k] == 0 { 4 } else { 1 };
            items.push(BatchItem {
                cache,
                tokens: &s[next[k]..next[k] + n],
            });
            who.push((k, n));
        }
        if items.is_empty() {
            break;
        }
        let logits = m.forward_batch(&mut items).unwrap().to_vec();
        for (row, &(k, n)) in who.iter().enumerate() {
            let index = if next[k] == 0 { 0 } else { next[k] - 3 };
            let got = &logits[row * vocab..(row + 1) * vocab];
            let want = &alone[k][index];
            assert!(
                got.iter()
                    .zip(want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "sequence {k}, output {index}, batch of {}: the logits differ",
                who.len()
            );
            next[k] += n;
        }
    }
    assert!(next.iter().zip(&scripts).all(|(n, s)| *n == s.len()));
}
// ANCHOR_END: identical

#[test]
fn a_batch_refuses_what_it_cannot_hold() {
    let mut m = engine();
    let mut small = m.new_cache(3);
    let tokens = [1u32, 2, 3, 4];
    let e = m
        .forward_batch(&mut [BatchItem {
            cache: &mut small,
            tokens: &tokens,
        }])
        .unwrap_err()
        .to_string();
    assert!(e.contains("reserved"), "{e}");
    // Nothing was written: the cache still takes what it was reserved for.
    assert_eq!(small.position(), 0);
    assert!(
        m.forward_batch(&mut [BatchItem {
            cache: &mut small,
            tokens: &tokens[..3],
        }])
        .is_ok()
    );
    let e = m.forward_batch(&mut []).unwrap_err().to_string();
    assert!(e.contains("a pass takes 1 to"), "{e}");
    let long = vec![5u32; 65];
    let mut big = m.new_cache(100);
    let e = m
        .forward_batch(&mut [BatchItem {
            cache: &mut big,
            tokens: &long,
        }])
        .unwrap_err()
        .to_string();
    assert!(e.contains("65 tokens"), "{e}");
    let bad = [u32::MAX];
    let e = m
        .forward_batch(&mut [BatchItem {
            cache: &mut big,
            tokens: &bad,
        }])
        .unwrap_err()
        .to_string();
    assert!(e.contains("outside the vocabulary"), "{e}");
}

const MODEL: &str = "SmolLM2-135M-Instruct.Q4_1";

fn server(g: Generator, parallel: usize) -> Server {
    let mut cfg = ServeConfig::new(MODEL);
    cfg.addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.parallel = parallel;
    Server::start(g, cfg).unwrap()
}

fn generator() -> Generator {
    Generator::load(&assets::smollm2().unwrap(), &Device::Cpu).unwrap()
}

fn completion(k: usize, max_tokens: usize, seed: Option<u64>) -> Value {
    let mut body = json!({
        "model": MODEL,
        "prompt": format!("Story {k}. The lighthouse keeper climbed the stairs and"),
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream_options": { "include_usage": true },
    });
    if let Some(seed) = seed {
        body["temperature"] = json!(0.9);
        body["seed"] = json!(seed);
    }
    body
}

/// What a request streams: the text, and the usage of the last chunk.
fn streamed(client: &Client, body: &Value) -> (String, Value) {
    let (mut texts, _, usage) = samples(client, body, 1);
    (texts.remove(0), usage)
}

// ANCHOR: same_streams
#[test]
fn concurrent_clients_get_the_streams_they_would_get_alone() {
    // Greedy and seeded-sampled requests of different lengths.
    let bodies: Vec<Value> = (0..6)
        .map(|k| completion(k, 12 + 4 * k, (k % 2 == 1).then_some(k as u64)))
        .collect();
    // Alone: one request at a time (the serial worker: the Ritual).
    let serial = server(generator(), 1);
    let client = Client::new(&serial.url());
    let alone: Vec<(String, Value)> = bodies.iter().map(|b| streamed(&client, b)).collect();
    drop(serial);
    // Together: six clients arriving 30 ms apart on a batch of 4 (two wait
    // for a place, and join as others leave).
    let batched = server(generator(), 4);
    let client = Client::new(&batched.url());
    let handles: Vec<_> = bodies
        .iter()
        .cloned()
        .enumerate()
        .map(|(k, b)| {
            let c = client.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30 * k as u64));
                streamed(&c, &b)
            })
        })
        .collect();
    for (k, (h, want)) in handles.into_iter().zip(&alone).enumerate() {
        let got = h.join().unwrap();
        assert_eq!(got.0, want.0, "client {k}: the batch changed the stream");
        assert_eq!(got.1, want.1, "client {k}: the usage differs");
        assert!(got.1["completion_tokens"].as_u64().unwrap() <= 12 + 4 * k as u64);
    }
    wait_for_health(&client, &|h| h["queue"]["running"] == 0);
    assert_eq!(metric(&client, "nindub_kv_reserved_bytes "), 0.0);
}
// ANCHOR_END: same_streams

#[test]
fn a_hang_up_frees_the_slot_and_the_pool_bounds_the_batch() {
    // A pool of 700 positions: a request of 1 + 400 fits, a second one
    // does not (though a place in the batch is free): it waits until the
    // first client hangs up.
    let path = assets::smollm2().unwrap();
    let opts = LoadOptions {
        stream: StreamOptions {
            context: 700,
            ..Default::default()
        },
        ..Default::default()
    };
    let g = Generator::open(&path, &opts).unwrap();
    let one = kv_bytes(g.arch(), 401) as f64;
    let s = server(g, 4);
    let client = Client::new(&s.url());
    let long = |k: usize| {
        let mut b = completion(k, 400, None);
        b["prompt"] = json!("Once");
        b
    };
    let hang_up = Arc::new(AtomicBool::new(false));
    let a = {
        let (c, h, body) = (client.clone(), hang_up.clone(), long(0));
        std::thread::spawn(move || {
            c.stream("/v1/completions", &body, |_| !h.load(Ordering::Relaxed))
        })
    };
    wait_for_health(&client, &|h| h["queue"]["running"] == 1);
    assert_eq!(metric(&client, "nindub_kv_reserved_bytes "), one);
    let b = {
        let (c, body) = (client.clone(), long(1));
        std::thread::spawn(move || streamed(&c, &body))
    };
    wait_for_health(&client, &|h| h["queue"]["waiting"] == 1);
    assert_eq!(metric(&client, "nindub_kv_reserved_bytes "), one);
    hang_up.store(true, Ordering::Relaxed);
    let _ = a.join().unwrap();
    // A's slot and KV go at its next token: B runs, alone in the pool.
    let (text, usage) = b.join().unwrap();
    assert!(!text.is_empty());
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0);
    wait_for_health(&client, &|h| h["queue"]["running"] == 0);
    assert_eq!(metric(&client, "nindub_kv_reserved_bytes "), 0.0);
    assert_eq!(metric(&client, "nindub_cancelled_total "), 1.0);
}

/// Each sample's text, by the choices' `index`, the number of chunks that
/// ended one, and the usage.
fn samples(client: &Client, body: &Value, n: usize) -> (Vec<String>, usize, Value) {
    let mut texts = vec![String::new(); n];
    let (mut finished, mut usage) = (0, Value::Null);
    let stats = client
        .stream("/v1/completions", body, |chunk| {
            for c in chunk["choices"].as_array().into_iter().flatten() {
                let i = c["index"].as_u64().unwrap() as usize;
                texts[i].push_str(c["text"].as_str().unwrap());
                finished += usize::from(!c["finish_reason"].is_null());
            }
            if !chunk["usage"].is_null() {
                usage = chunk["usage"].clone();
            }
            true
        })
        .unwrap();
    assert_eq!(stats.status, 200, "{:?}", stats.error);
    assert!(stats.saw_done, "the stream ended without [DONE]");
    (texts, finished, usage)
}

// ANCHOR: samples
#[test]
fn sample_i_of_n_is_the_request_alone_with_seed_plus_i() {
    // The batch (the prompt run once, its cache copied) and the serial
    // worker (candle's engine: the samples one after another).
    let candle = {
        let opts = LoadOptions {
            engine: nindub::model::generate::Engine::Candle,
            ..Default::default()
        };
        Generator::open(&assets::smollm2().unwrap(), &opts).unwrap()
    };
    for (g, n) in [(generator(), 3), (candle, 2)] {
        let s = server(g, 4);
        let client = Client::new(&s.url());
        let mut body = completion(7, 10, Some(40));
        body["n"] = json!(n);
        let (texts, finished, usage) = samples(&client, &body, n);
        assert_eq!(finished, n, "one last chunk per sample");
        let mut completion_tokens = 0;
        for (i, text) in texts.iter().enumerate() {
            let (alone, u) = streamed(&client, &completion(7, 10, Some(40 + i as u64)));
            assert_eq!(*text, alone, "sample {i} differs from seed 40 + {i} alone");
            assert_eq!(usage["prompt_tokens"], u["prompt_tokens"]);
            completion_tokens += u["completion_tokens"].as_u64().unwrap();
        }
        // The prompt counted once, every sample's tokens.
        assert_eq!(usage["completion_tokens"], completion_tokens);
        // Sampled at 0.9, three draws of ten tokens are not all one text.
        assert!(texts.iter().any(|t| *t != texts[0]), "{texts:?}");
        // Unstreamed: the same choices, in order.
        body["stream"] = json!(false);
        body.as_object_mut().unwrap().remove("stream_options");
        let (status, v) = client.post("/v1/completions", &body).unwrap();
        assert_eq!(status, 200, "{v}");
        let got: Vec<&str> = v["choices"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                assert_eq!(c["index"], i);
                c["text"].as_str().unwrap()
            })
            .collect();
        assert_eq!(got, texts);
        wait_for_health(&client, &|h| h["queue"]["running"] == 0);
        assert_eq!(metric(&client, "nindub_kv_reserved_bytes "), 0.0);
    }
}
// ANCHOR_END: samples

#[test]
fn more_samples_than_the_server_holds_are_refused() {
    let opts = LoadOptions {
        stream: StreamOptions {
            context: 700,
            ..Default::default()
        },
        ..Default::default()
    };
    let s = server(
        Generator::open(&assets::smollm2().unwrap(), &opts).unwrap(),
        2,
    );
    let client = Client::new(&s.url());
    let mut body = completion(1, 4, None);
    body.as_object_mut().unwrap().remove("stream_options");
    body["n"] = json!(3);
    let (status, v) = client.post("/v1/completions", &body).unwrap();
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["param"], "n");
    // Two samples of 400 tokens do not fit in the 700 positions reserved;
    // one does.
    body["n"] = json!(2);
    body["max_tokens"] = json!(400);
    let (status, v) = client.post("/v1/completions", &body).unwrap();
    assert_eq!(status, 400, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("KV positions; the server holds 700"),
        "{message}"
    );
    body["n"] = json!(1);
    body["max_tokens"] = json!(2);
    let (status, v) = client.post("/v1/completions", &body).unwrap();
    assert_eq!(status, 200, "{v}");
}
