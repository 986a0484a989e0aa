//! `digits`: the command line runs a real (small) distillation and refuses
//! bad settings with a sentence, not a panic.

use std::process::Command;

fn digits(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_digits"))
        .args(args)
        .output()
        .expect("the digits binary runs")
}

#[test]
fn digits_trains_a_teacher_and_a_distilled_student() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let run = digits(&[
        "--quick",
        "--epochs",
        "5",
        "--temperature",
        "4",
        "--out",
        dir,
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("teacher"), "{stdout}");
    assert!(stdout.contains("distilled at T = 4"), "{stdout}");
    assert!(out.path().join("teacher/metrics.jsonl").exists());
}

#[test]
fn bad_settings_are_refused_with_a_reason() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    for (args, expect) in [
        (vec!["--temperature", "0", "--out", dir], "T must be"),
        (vec!["--alpha", "1.5", "--out", dir], "α must be"),
    ] {
        let run = digits(&args);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
