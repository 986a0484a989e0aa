//! `nindub distill`: the command line refuses bad settings with a
//! sentence, not a panic.

use std::process::Command;

fn nindub(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nindub"))
        .args(args)
        .output()
        .expect("the nindub binary runs")
}

#[test]
fn bad_settings_are_refused_with_a_reason() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    for (args, expect) in [
        (
            vec!["distill", "lm", "--temperature=-1", "--out", dir],
            "T must be",
        ),
        (
            vec![
                "distill",
                "lm",
                "--corpus",
                "/nonexistent/corpus.txt",
                "--out",
                dir,
            ],
            "corpus.txt",
        ),
    ] {
        let run = nindub(&args);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
