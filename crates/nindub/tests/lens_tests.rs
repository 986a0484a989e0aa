//! Hidden-state norms, the logit lens, and the plots that show them.

use candle_core::Device;
use nindub::generate::Generator;
use nindub::llama::ForwardOptions;
use nindub::plot::{Heatmap, LineChart};
use nindub::{Error, assets, lens, sample};

fn generator() -> Generator {
    Generator::load(&assets::smollm2().unwrap(), &Device::Cpu).unwrap()
}

/// The lens of the last layer is the model's own output: the final norm
/// and head applied to the last hidden state give the forward pass's logits.
#[test]
fn the_last_layer_through_the_lens_is_the_forward_pass() {
    let mut g = generator();
    let ids = g.tokenizer.encode("The capital of France is").unwrap();
    g.model.clear_cache();
    let out = g
        .model
        .forward(
            &ids,
            &ForwardOptions {
                all_logits: true,
                hidden_states: true,
                ..Default::default()
            },
        )
        .unwrap();
    let via_lens = g.model.lens(out.hidden_states.last().unwrap()).unwrap();
    let diff = (via_lens - &out.logits)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-4, "lens and forward differ by {diff}");

    let lens = lens::logit_lens(&mut g.model, &g.tokenizer, &ids).unwrap();
    let layers = g.model.arch.num_layers as usize + 1;
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
    assert_eq!(g.model.position(), 0);
}

#[test]
fn hidden_norms_cover_every_layer_and_position() {
    let mut g = generator();
    let ids = g.tokenizer.encode("Once upon a time").unwrap();
    let norms = lens::hidden_norms(&mut g.model, &ids).unwrap();
    assert_eq!(norms.len(), g.model.arch.num_layers as usize + 1);
    for row in &norms {
        assert_eq!(row.len(), ids.len());
        assert!(row.iter().all(|v| v.is_finite() && *v > 0.0));
    }
    // The residual stream grows: the last layer's output is larger than the
    // embedding at every position.
    let (first, last) = (&norms[0], &norms[norms.len() - 1]);
    assert!(first.iter().zip(last).all(|(a, b)| b > a));
    assert!(matches!(
        lens::hidden_norms(&mut g.model, &[]),
        Err(Error::Invalid { .. })
    ));
}

#[test]
fn plots_refuse_what_they_cannot_draw() {
    assert!(LineChart::default().draw().is_err());
    let bad = Heatmap {
        col_labels: vec!["a".into(), "b".into()],
        cells: vec![vec![("x".into(), 0.5)]],
        ..Default::default()
    };
    assert!(bad.draw().is_err());
    let good = Heatmap {
        title: "t".into(),
        row_labels: vec!["r".into()],
        col_labels: vec!["a & b".into()],
        cells: vec![vec![("<x>".into(), 0.5)]],
        legend: String::new(),
    };
    let svg = good.draw().unwrap().0;
    assert!(svg.contains("&lt;x&gt;") && svg.contains("a &amp; b"));
    let chart = LineChart {
        series: vec![("s".into(), vec![(0.1, 1.0), (10.0, 100.0)])],
        log_x: true,
        log_y: true,
        ..Default::default()
    };
    assert!(chart.draw().unwrap().0.starts_with("<svg"));
    // Infinite values (an exact round trip's SQNR) are left out, not looped on.
    let inf = LineChart {
        series: vec![(
            "s".into(),
            vec![(0.0, 1.0), (1.0, f64::INFINITY), (2.0, 3.0)],
        )],
        ..Default::default()
    };
    assert!(inf.draw().is_ok());
    let only_inf = LineChart {
        series: vec![("s".into(), vec![(0.0, f64::INFINITY)])],
        ..Default::default()
    };
    assert!(only_inf.draw().is_err());
}
