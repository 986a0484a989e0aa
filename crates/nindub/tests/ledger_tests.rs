//! `nindub ledger` (The Merchant's Ledger) from outside: it prints what the
//! library renders (the book's transcripts are rendered by the library, so
//! this holds them to the command), refuses nonsense with the input named,
//! and `--measure` generates with a real model and says whether its energy
//! was measured or estimated.

use std::process::{Command, Output};

use nindub::ledger::report::{self, DEFAULT_HOURS};
use nindub::ledger::{Inputs, Ledger};

fn nindub(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nindub"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the nindub binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn the_command_prints_what_the_library_renders() {
    let o = nindub(&["ledger"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ledger = Ledger::new(Inputs::default()).unwrap();
    assert_eq!(
        stdout(&o),
        report::render_unmeasured(&ledger, &DEFAULT_HOURS).unwrap()
    );
    let o = nindub(&[
        "ledger",
        "--hardware-price",
        "1599",
        "--load-watts",
        "450",
        "--idle-watts",
        "21",
        "--hours",
        "24,8,2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ledger = Ledger::new(Inputs {
        hardware_price: 1599.0,
        load_watts: 450.0,
        idle_watts: 21.0,
        ..Inputs::default()
    })
    .unwrap();
    assert_eq!(
        stdout(&o),
        report::render_unmeasured(&ledger, &[24.0, 8.0, 2.0]).unwrap()
    );
    let o = nindub(&["ledger", "--sources"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), report::sources());
}

#[test]
fn nonsense_is_refused_with_the_input_named() {
    for (args, reason) in [
        (vec!["--hardware-price", "-5"], "invalid hardware price"),
        (vec!["--lifetime-months", "0"], "invalid hardware lifetime"),
        (vec!["--electricity", "NaN"], "invalid electricity price"),
        (vec!["--cloud-spot", "inf"], "invalid cloud GPU spot"),
        (vec!["--hours", "25"], "more than the 24 hours a day has"),
        (vec!["--hours", "24,-1"], "invalid hours of use a day"),
        (vec!["--idle-watts", "500"], "invalid power when idle"),
        (vec!["--tokens-per-second", "0"], "invalid throughput"),
    ] {
        let mut all = vec!["ledger"];
        all.extend(args.iter().copied());
        let o = nindub(&all);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(reason),
            "{args:?}: expected `{reason}` in {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(stdout(&o).is_empty(), "{args:?} printed a ledger");
    }
}

#[test]
fn measure_runs_the_model_and_says_how_the_energy_was_obtained() {
    let model = nindub::assets::smollm2().unwrap();
    let o = nindub(&[
        "ledger",
        "--measure",
        "--model",
        model.to_str().unwrap(),
        "--measure-tokens",
        "8",
        "--hours",
        "24",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("measured now on this machine: 8 tokens"),
        "{out}"
    );
    let energy = out.lines().find(|l| l.starts_with("energy: ")).unwrap();
    match nindub::ledger::Rapl::probe() {
        Ok(_) => assert!(energy.contains("measured by RAPL"), "{energy}"),
        Err(reason) => {
            assert!(energy.contains("estimated"), "{energy}");
            assert!(energy.contains(&reason), "{energy} should say {reason}");
        }
    }
}
