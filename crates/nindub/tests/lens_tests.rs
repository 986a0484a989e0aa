//! Hidden-state norms and the logit lens, on candle's engine.

use candle_core::Device;
use nindub::model::generate::{Engine, Generator, LoadOptions};
use nindub::model::lens;
use nindub::model::llama::ForwardOptions;
use nindub::model::llama::Llama;
use nindub::model::sample;
use nindub::{Error, assets};

/// SmolLM2 on candle's engine, the one that shows hidden states.
fn generator() -> Generator {
    let opts = LoadOptions {
        engine: Engine::Candle,
        device: Device::Cpu,
        ..Default::default()
    };
    Generator::open(&assets::smollm2().unwrap(), &opts).unwrap()
}

fn model(g: &mut Generator) -> &mut Llama {
    g.candle().unwrap()
}

/// The lens of the last layer is the model's own output: the final norm
/// and head applied to the last hidden state give the forward pass's logits.
#[test]
fn the_last_layer_through_the_lens_is_the_forward_pass() {
    let mut g = generator();
    let ids = g.tokenizer.encode("The capital of France is").unwrap();
    model(&mut g).clear_cache();
    let out = model(&mut g)
        .forward(
            &ids,
            &ForwardOptions {
                all_logits: true,
                hidden_states: true,
                ..Default::default()
            },
        )
        .unwrap();
    let via_lens = model(&mut g)
        .lens(out.hidden_states.last().unwrap())
        .unwrap();
    let diff = (via_lens - &out.logits)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-4, "lens and forward differ by {diff}");

    let tokenizer = g.tokenizer.clone();
    let lens = lens::logit_lens(model(&mut g), &tokenizer, &ids).unwrap();
    let layers = g.arch().num_layers as usize + 1;
    assert_eq!(lens.cells.len(), layers);
    assert!(lens.cells.iter().all(|row| row.len() == ids.len()));
    let last: Vec<f32> = out.logits.get(ids.len() - 1).unwrap().to_vec1().unwrap();
    assert_eq!(lens.answer.token, sample::argmax(&last));
    assert_eq!(lens.answer_rank[layers - 1], 0);
    assert!((lens.answer_prob[layers - 1] - lens.answer.prob).abs() < 1e-6);
    // Tied embeddings: the embedding row read through the head mostly
    // predicts the input token itself.
    let own = lens.cells[0]
        .iter()
        .zip(&ids)
        .filter(|(c, t)| c.token == **t)
        .count();
    assert!(2 * own > ids.len(), "{own} of {} positions", ids.len());
    // The lens leaves the cache empty for the next user.
    assert_eq!(model(&mut g).position(), 0);
}

#[test]
fn hidden_norms_cover_every_layer_and_position() {
    let mut g = generator();
    let ids = g.tokenizer.encode("Once upon a time").unwrap();
    let norms = lens::hidden_norms(model(&mut g), &ids).unwrap();
    assert_eq!(norms.len(), g.arch().num_layers as usize + 1);
    for row in &norms {
        assert_eq!(row.len(), ids.len());
        assert!(row.iter().all(|v| v.is_finite() && *v > 0.0));
    }
    // The residual stream grows: the last layer's output is larger than the
    // embedding at every position.
    let (first, last) = (&norms[0], &norms[norms.len() - 1]);
    assert!(first.iter().zip(last).all(|(a, b)| b > a));
    assert!(matches!(
        lens::hidden_norms(model(&mut g), &[]),
        Err(Error::Invalid { .. })
    ));
}
