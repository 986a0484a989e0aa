//! The digits experiment: the data and its split, clear errors for bad
//! files and settings, exact resumption, and the quick experiment's
//! direction (teacher better than the hard-label student, distillation
//! better still than hard labels).

use std::io::Write;
use std::path::Path;

use candle_core::{Device, Tensor};
use lab::digits::{
    self, Digits, DistillSettings, Experiment, LrSchedule, Mlp, RunConfig, split_indices, train,
    train_model,
};
use nindub::distill::train::AdamWConfig;

fn data() -> Digits {
    Digits::load_asset().expect("the digits asset")
}

fn asset_path() -> std::path::PathBuf {
    nindub::assets::asset("digits")
        .unwrap()
        .ensure()
        .unwrap()
        .join("digits.csv.gz")
}

fn gz(path: &Path, text: &str) {
    let f = std::fs::File::create(path).unwrap();
    let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap();
}

fn err(r: nindub::Result<impl Sized>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_data_loads_with_a_fixed_stratified_split() {
    let d = data();
    assert_eq!(d.n_train() + d.n_test(), digits::ROWS);
    assert_eq!((d.n_train(), d.n_test()), (1258, 539));
    assert_eq!(d.train_x.dims(), &[1258, 64]);
    assert_eq!(d.test_x.dims(), &[539, 64]);
    assert_eq!(d.train_y.dims(), &[1258]);
    assert_eq!(d.test_y.dims(), &[539]);
    let max = d.train_x.max_all().unwrap().to_scalar::<f32>().unwrap();
    let min = d.train_x.min_all().unwrap().to_scalar::<f32>().unwrap();
    assert_eq!((min, max), (0.0, 1.0), "pixels / 16 span [0, 1]");
    // Disjoint, covering every row, in file order.
    let mut all: Vec<usize> = d.train_rows.iter().chain(&d.test_rows).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..digits::ROWS).collect::<Vec<_>>());
    assert!(d.test_rows.windows(2).all(|w| w[0] < w[1]));
    // Stratified: every class keeps 30 % (rounded) of its rows in the test set.
    for c in 0..10u32 {
        let train = d.train_labels.iter().filter(|&&y| y == c).count();
        let test = d.test_labels.iter().filter(|&&y| y == c).count();
        assert_eq!(
            test,
            ((train + test) as f64 * 0.3).round() as usize,
            "class {c}"
        );
    }
    // Deterministic: the same split on every load, pinned here so that a
    // change of generator cannot move it silently.
    let again = data();
    assert_eq!(again.test_rows, d.test_rows);
    assert_eq!(
        again.train_x.to_vec2::<f32>().unwrap(),
        d.train_x.to_vec2::<f32>().unwrap()
    );
    assert_eq!(&d.test_rows[..8], PINNED_TEST_ROWS);
    let (train, test) = split_indices(&d.train_labels);
    assert_eq!(train.len() + test.len(), d.n_train());
}

const PINNED_TEST_ROWS: &[usize] = &[2, 8, 10, 11, 13, 24, 26, 30];

#[test]
fn bad_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Missing.
    let e = err(Digits::load(&dir.path().join("nope.csv.gz")));
    assert!(e.contains("nope.csv.gz"), "{e}");
    // Truncated gzip.
    let bytes = std::fs::read(asset_path()).unwrap();
    let cut = dir.path().join("cut.csv.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = err(Digits::load(&cut));
    assert!(e.contains("cut.csv.gz") && e.contains("truncated"), "{e}");
    // Foreign: binary that is not text.
    let bin = dir.path().join("weights.bin");
    std::fs::write(&bin, [0u8, 159, 146, 150, 255, 0, 1]).unwrap();
    let e = err(Digits::load(&bin));
    assert!(e.contains("weights.bin") && e.contains("digits CSV"), "{e}");
    // Wrong column count (a gzip of the wrong table).
    let wrong = dir.path().join("iris.csv.gz");
    gz(&wrong, "5.1,3.5,1.4,0.2,0\n4.9,3.0,1.4,0.2,0\n");
    let e = err(Digits::load(&wrong));
    assert!(e.contains("line 1 has 5 columns, expected 65"), "{e}");
    // A label outside 0..9, on line 2.
    let row = |label: &str| format!("{}{label}\n", "0,".repeat(64));
    let bad = dir.path().join("label.csv");
    std::fs::write(&bad, row("3") + &row("12")).unwrap();
    let e = err(Digits::load(&bad));
    assert!(e.contains("line 2") && e.contains("label `12`"), "{e}");
    // A pixel outside 0..16.
    let px = dir.path().join("pixel.csv");
    std::fs::write(&px, format!("17,{}1\n", "0,".repeat(63))).unwrap();
    let e = err(Digits::load(&px));
    assert!(e.contains("pixel `17`"), "{e}");
    // Empty.
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    assert!(err(Digits::load(&empty)).contains("no rows"));
}

fn small(seed: u64) -> RunConfig {
    RunConfig {
        hidden: vec![32],
        input_dropout: 0.1,
        hidden_dropout: 0.2,
        epochs: 6,
        batch_size: 100,
        optimizer: AdamWConfig {
            lr: 3e-3,
            ..Default::default()
        },
        seed,
        distill: None,
        schedule: LrSchedule::Cosine,
        stop_after: None,
    }
}

#[test]
fn bad_settings_are_refused() {
    let d = data();
    let n = d.n_train();
    let e = err(train(
        &d,
        &RunConfig {
            epochs: 0,
            ..small(1)
        },
        None,
        None,
        false,
    ));
    assert!(e.contains("epochs"), "{e}");
    for b in [0, n + 1] {
        let e = err(train(
            &d,
            &RunConfig {
                batch_size: b,
                ..small(1)
            },
            None,
            None,
            false,
        ));
        assert!(
            e.contains("batch size") && e.contains(&n.to_string()),
            "{e}"
        );
    }
    let kd = RunConfig {
        distill: Some(DistillSettings {
            temperature: 4.0,
            alpha: 0.5,
            t_squared: true,
        }),
        ..small(1)
    };
    let zeros = |r, c| Tensor::zeros((r, c), candle_core::DType::F32, &Device::Cpu).unwrap();
    let e = err(train(&d, &kd, Some(&zeros(n - 1, 10)), None, false));
    assert!(
        e.contains("teacher logits") && e.contains(&format!("[{n}, 10]")),
        "{e}"
    );
    let e = err(train(&d, &kd, Some(&zeros(n, 11)), None, false));
    assert!(e.contains("[1258, 11]"), "{e}");
    assert!(err(train(&d, &kd, None, None, false)).contains("no teacher logits"));
    let e = err(train(&d, &small(1), Some(&zeros(n, 10)), None, false));
    assert!(e.contains("no distillation settings"), "{e}");
    let bad_t = RunConfig {
        distill: Some(DistillSettings {
            temperature: 0.0,
            alpha: 0.5,
            t_squared: true,
        }),
        ..small(1)
    };
    assert!(err(train(&d, &bad_t, Some(&zeros(n, 10)), None, false)).contains("T must be"));
    let e = err(train(
        &d,
        &RunConfig {
            hidden_dropout: 1.0,
            ..small(1)
        },
        None,
        None,
        false,
    ));
    assert!(e.contains("dropout"), "{e}");
    let m = Mlp::new(&[8], 0.0, 0.0, 1, &Device::Cpu).unwrap();
    assert!(err(m.forward(&zeros(3, 63), None)).contains("[n, 64]"));
}

fn tensors(path: &Path) -> Vec<(String, Vec<u32>)> {
    let mut t: Vec<(String, Vec<u32>)> = candle_core::safetensors::load(path, &Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(k, v)| {
            let bits = v
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect();
            (k, bits)
        })
        .collect();
    t.sort();
    t
}

/// A run stopped after 3 of 6 epochs and resumed from its checkpoint ends
/// with the same weights and optimiser moments, bit for bit, as a run never
/// interrupted: dropout, distillation and the cosine schedule included.
#[test]
fn an_interrupted_run_resumes_exactly() {
    let d = data();
    let (teacher, _) = train_model(
        &d,
        &RunConfig {
            epochs: 2,
            ..small(9)
        },
        None,
        None,
        false,
    )
    .unwrap();
    let logits = digits::teacher_logits(&teacher, &d).unwrap();
    let cfg = RunConfig {
        distill: Some(DistillSettings {
            temperature: 4.0,
            alpha: 0.5,
            t_squared: true,
        }),
        ..small(3)
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let whole = train(&d, &cfg, Some(&logits), Some(a.path()), false).unwrap();
    assert_eq!(whole.resumed_from_epoch, None);
    let first = RunConfig {
        stop_after: Some(3),
        ..cfg.clone()
    };
    let part = train(&d, &first, Some(&logits), Some(b.path()), false).unwrap();
    assert_eq!(part.curve.len(), 3);
    let rest = train(&d, &cfg, Some(&logits), Some(b.path()), false).unwrap();
    assert_eq!(rest.resumed_from_epoch, Some(3));
    let ckpt = digits::CHECKPOINT;
    let (ta, tb) = (tensors(&a.path().join(ckpt)), tensors(&b.path().join(ckpt)));
    assert_eq!(
        ta.len(),
        2 * 3 * 2,
        "2 layers × (weight, bias) × (param, m, v)"
    );
    assert!(
        ta == tb,
        "resumed weights differ from the uninterrupted run's"
    );
    assert_eq!(rest.test_errors, whole.test_errors);
    let curve = |r: &digits::RunReport| -> Vec<(usize, usize, usize)> {
        r.curve
            .iter()
            .map(|e| (e.step, e.epoch, e.test_errors))
            .collect()
    };
    assert_eq!(curve(&rest), curve(&whole));
    let lines = std::fs::read_to_string(b.path().join(digits::METRICS)).unwrap();
    assert_eq!(lines.lines().count(), 6, "{lines}");
    // A finished run called again trains nothing and reports the same.
    let again = train(&d, &cfg, Some(&logits), Some(b.path()), false).unwrap();
    assert_eq!(
        (again.resumed_from_epoch, again.test_errors),
        (Some(6), whole.test_errors)
    );
    // Other settings in the same directory are refused.
    let other = RunConfig {
        optimizer: AdamWConfig {
            lr: 1e-3,
            ..cfg.optimizer
        },
        ..cfg.clone()
    };
    let e = err(train(&d, &other, Some(&logits), Some(b.path()), false));
    assert!(e.contains("other settings"), "{e}");
    // So is another teacher.
    let e = err(train(
        &d,
        &cfg,
        Some(&(logits * 2.0).unwrap()),
        Some(b.path()),
        false,
    ));
    assert!(e.contains("another teacher"), "{e}");
}

/// The quick experiment, as CI runs it: the teacher beats the hard-label
/// student, and distillation beats hard labels.
#[test]
fn the_quick_experiment_points_the_right_way() {
    let d = data();
    let table = Experiment::quick().run(&d, None, false).unwrap();
    println!("{}", table.markdown());
    println!(
        "teacher {:?}; best {:?}; gap recovered {:?}; {:.1} s",
        table.teacher, table.best, table.gap_recovered, table.wall_s
    );
    let hard = table.row("hard").unwrap().mean_errors;
    assert!(
        (table.teacher.test_errors as f64) < hard,
        "teacher {} vs hard-label student {hard}",
        table.teacher.test_errors
    );
    let distilled: Vec<f64> = table.rows[1..].iter().map(|r| r.mean_errors).collect();
    let mean = distilled.iter().sum::<f64>() / distilled.len() as f64;
    assert!(mean < hard, "distilled {distilled:?} vs hard {hard}");
    let t4 = table.row("t4-t2").unwrap().mean_errors;
    assert!(t4 < hard, "T=4 with T²: {t4} vs hard {hard}");
    assert_eq!(table.rows.len(), 1 + 2 * 2);
    assert!(table.rows.iter().all(|r| r.errors.len() == 3));
    let json = serde_json::to_string(&table).unwrap();
    assert!(json.contains("\"t20-no-t2\""));
    assert!(table.chart().unwrap().0.contains("<svg"));
}

/// The full experiment (several minutes): `cargo test -p nindub --test
/// digits_tests -- --ignored --nocapture`.
#[test]
#[ignore]
fn the_full_experiment() {
    let d = data();
    let table = Experiment::full().run(&d, None, true).unwrap();
    println!("{}", table.markdown());
    println!("{}", serde_json::to_string_pretty(&table).unwrap());
    let gap = table.gap_recovered.unwrap();
    assert!(gap >= 0.5, "distillation recovers {gap:.2} of the gap");
}
