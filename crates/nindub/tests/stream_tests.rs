//! NINDUB: the layer-streamed engine on the real SmolLM2 gives the resident
//! model's logits bit for bit, whatever the budget, with or without
//! prefetch, from the GGUF or from shards; and refuses what it cannot do.

use nindub::assets;
use nindub::model::fused::FusedLlama;
use nindub::model::run::{self, RunConfig};
use nindub::model::sample::argmax;
use nindub::stream::source::ModelSource;
use nindub::stream::streamer::{self, StreamOptions};

const PROMPT: [u32; 6] = [504, 3575, 282, 4649, 314, 2114];

/// The prompt's logits, then eight greedy tokens with their logits.
fn trace(m: &mut FusedLlama) -> (Vec<Vec<f32>>, Vec<u32>) {
    let mut logits = vec![m.forward(&PROMPT).unwrap().to_vec()];
    let mut tokens = vec![];
    for _ in 0..8 {
        let next = argmax(logits.last().unwrap());
        tokens.push(next);
        logits.push(m.step(next).unwrap().to_vec());
    }
    (logits, tokens)
}

fn opts(budget: Option<u64>, prefetch: bool) -> StreamOptions {
    StreamOptions {
        budget,
        context: 32,
        prefetch,
        cold: false,
    }
}

#[test]
fn every_budget_gives_the_resident_logits_bit_for_bit() {
    let source = ModelSource::open(&assets::smollm2().unwrap()).unwrap();
    let mut resident = FusedLlama::open(&source, &opts(None, true)).unwrap();
    let all = resident.placement.clone();
    assert!(all.streamed.is_empty());
    let (want, want_tokens) = trace(&mut resident);
    // From "everything fits" down to "one layer at a time".
    let per_layer = (all.used - all.reserved) / all.resident.len() as u64;
    for prefetch in [true, false] {
        let buffers = if prefetch { 2 } else { 1 };
        let minimum = all.reserved + buffers * per_layer;
        for budget in [
            all.used,
            all.used - 3 * per_layer,
            minimum + 5 * per_layer,
            minimum,
        ] {
            let mut m = FusedLlama::open(&source, &opts(Some(budget), prefetch)).unwrap();
            let p = m.placement.clone();
            assert!(p.used <= budget, "{p}");
            if budget == minimum {
                assert!(p.resident.is_empty(), "{p}");
            }
            let (got, tokens) = trace(&mut m);
            assert_eq!(tokens, want_tokens, "{p}");
            assert!(got == want, "logits differ with prefetch {prefetch}: {p}");
            // Every pass read every streamed layer once.
            let stats = m.stream_stats();
            assert_eq!(stats.bytes_read, 9 * p.streamed_per_token, "{p}");
        }
        // One byte less than one layer at a time: refused, naming the layer
        // and the minimum.
        let e = FusedLlama::open(&source, &opts(Some(minimum - 1), prefetch))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("layer ") && e.contains(&format!("minimum budget is {minimum} bytes")),
            "{e}"
        );
    }
}

#[test]
fn cold_reads_change_nothing_but_where_the_bytes_come_from() {
    let source = ModelSource::open(&assets::smollm2().unwrap()).unwrap();
    let (want, _) = trace(&mut FusedLlama::open(&source, &opts(None, true)).unwrap());
    let mut cold = opts(Some(45_000_000), true);
    cold.cold = true;
    let mut m = FusedLlama::open(&source, &cold).unwrap();
    assert!(!m.placement.streamed.is_empty());
    assert!(trace(&mut m).0 == want);
}

#[test]
fn a_run_reports_its_timeline_and_what_it_streamed() {
    let source = ModelSource::open(&assets::smollm2().unwrap()).unwrap();
    let cfg = RunConfig {
        prompt: PROMPT.to_vec(),
        max_tokens: 4,
        opts: opts(Some(50_000_000), true),
        timeline: true,
    };
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    let observer = Box::new(move |_: &nindub::model::fused::LayerEvent| {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    let r = run::run(&source, &cfg, Some(observer)).unwrap();
    let layers = 30;
    // The prompt pass, then a pass for each token but the last (whose
    // logits nobody reads), each through every layer.
    assert_eq!(r.timeline.len(), 4 * layers);
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 4 * layers);
    assert_eq!(r.token_secs.len(), 4);
    assert_eq!(r.resident_layers + r.streamed_layers, layers);
    assert!(r.accounted <= 50_000_000);
    assert_eq!(r.bytes_read, 4 * r.streamed_per_token);
    // Bytes read only grow, by one pass's worth per pass.
    let last_of_pass: Vec<u64> = r
        .timeline
        .iter()
        .filter(|s| s.layer == layers - 1)
        .map(|s| s.bytes_read)
        .collect();
    for (i, b) in last_of_pass.iter().enumerate() {
        assert_eq!(*b, (i as u64 + 1) * r.streamed_per_token);
    }
    assert!(r.timeline.windows(2).all(|w| w[0].t <= w[1].t));
    assert!(r.peak_rss.unwrap_or(1) > 0);
    let bps = streamer::read_throughput(&source, 1 << 20, false).unwrap();
    assert!(bps.is_finite() && bps > 1e6, "{bps}");
}

#[test]
fn foreign_and_missing_models_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.gguf");
    std::fs::write(&text, "not a model at all, just words").unwrap();
    let e = ModelSource::open(&text).err().unwrap().to_string();
    assert!(e.contains("GGUF"), "{e}");
    let e = ModelSource::open(&dir.path().join("absent.gguf"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("absent.gguf"), "{e}");
}
