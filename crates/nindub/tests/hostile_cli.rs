//! The command line against hostile input: special files as outputs,
//! absurd flags, a model file whose header lies. Every case is refused with
//! a reason before any work (or runs, where the input is legitimate), and
//! nothing that was there is destroyed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn nindub(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nindub"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the nindub binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Refused: exit status 1 (not an abort), the reason on stderr, said once.
fn refused(o: &Output, reason: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(reason), "expected `{reason}` in: {err}");
    assert_eq!(
        err.matches(reason).count(),
        1,
        "the cause is repeated: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

fn smollm2() -> PathBuf {
    nindub::assets::smollm2().unwrap()
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path; mkfifo only reads it.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

#[test]
fn outputs_that_are_not_files_are_refused_before_the_work() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let model = smollm2();
    let model = model.to_str().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let socket = dir.path().join("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let target = dir.path().join("target.txt");
    std::fs::write(&target, "keep me").unwrap();
    let link = dir.path().join("link.gguf");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let cases: [(PathBuf, &str); 5] = [
        (fifo.clone(), "not a regular file"),
        (socket.clone(), "not a regular file"),
        (link.clone(), "symbolic link"),
        (dir.path().to_path_buf(), "is a directory"),
        (file.join("under-a-file.gguf"), "Not a directory"),
    ];
    for (out, reason) in &cases {
        let t = Instant::now();
        let o = nindub(&[
            "quantize",
            "--scheme",
            "int8-g32",
            model,
            out.to_str().unwrap(),
        ]);
        refused(&o, reason);
        // Before minutes of quantizing, not after.
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{out:?}: {:?}",
            t.elapsed()
        );
    }
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(std::fs::metadata(&socket).unwrap().file_type().is_socket());
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    // The same rule for a report and for shard directories.
    let o = nindub(&[
        "stream",
        "--report",
        fifo.to_str().unwrap(),
        "--max-tokens",
        "1",
    ]);
    refused(&o, "not a regular file");
    let o = nindub(&["split", "--model", model, "--out", file.to_str().unwrap()]);
    refused(&o, "not a directory");
}

#[test]
fn absurd_flags_are_refused_before_the_model_loads() {
    let huge = u64::MAX.to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["generate", "--prompt", "Hi", "--stop", ""],
            "empty stop string",
        ),
        (
            vec!["generate", "--prompt", "Hi", "--max-tokens", "0"],
            "max_tokens",
        ),
        (
            vec!["generate", "--prompt", "Hi", "--max-tokens", &huge],
            "max_tokens",
        ),
        (vec!["stream", "--max-tokens", &huge], "max_tokens"),
        (vec!["serve", "--api-key", ""], "the key is empty"),
        (
            vec!["serve", "--max-body-bytes", "0"],
            "max_body_bytes is 0",
        ),
        (vec!["serve", "--max-tokens", "0"], "max_tokens is 0"),
        (
            vec!["serve", "--max-prompt-tokens", "0"],
            "max_prompt_tokens is 0",
        ),
        (vec!["serve", "--timeout-secs", "0"], "timeout is 0"),
        (
            vec!["serve", "--max-connections", "0"],
            "max_connections is 0",
        ),
        (vec!["serve", "--queue", "0"], "queue is 0"),
    ];
    for (args, reason) in cases {
        let t = Instant::now();
        let o = nindub(&args);
        refused(&o, reason);
        assert!(
            !stderr(&o).contains("loaded"),
            "{args:?}: the model was loaded first"
        );
        assert!(t.elapsed() < Duration::from_secs(30), "{args:?}");
    }
}

/// A copy of SmolLM2 with one u32 metadata value overwritten.
fn with_field(dir: &Path, key: &str, value: u32) -> PathBuf {
    let mut bytes = std::fs::read(smollm2()).unwrap();
    let at = nindub::model::gguf::spelled_at(&bytes, key).unwrap();
    assert_eq!(
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()),
        4,
        "{key} is a u32"
    );
    bytes[at + 4..at + 8].copy_from_slice(&value.to_le_bytes());
    let out = dir.join(format!("{key}.gguf"));
    std::fs::write(&out, bytes).unwrap();
    out
}

#[test]
fn a_header_that_lies_is_refused_or_taken_as_a_claim() {
    let dir = tempfile::tempdir().unwrap();
    let lying_layers = with_field(dir.path(), "llama.block_count", (1 << 31) - 1);
    for cmd in ["inspect", "generate"] {
        let mut args = vec![cmd, "--model", lying_layers.to_str().unwrap()];
        if cmd == "inspect" {
            args.remove(1);
        } else {
            args.extend(["--prompt", "Hi", "--max-tokens", "2"]);
        }
        refused(&nindub(&args), "blocks declared");
        assert!(stderr(&nindub(&args)).contains("`llama.block_count`"));
    }
    // A context of 2^31 - 1 positions is what the file claims; the run
    // reserves what it needs.
    let long = with_field(dir.path(), "llama.context_length", (1 << 31) - 1);
    let long = long.to_str().unwrap();
    for engine in [&[][..], &["--candle"][..]] {
        let mut args = vec![
            "generate",
            "--model",
            long,
            "--prompt",
            "Hi",
            "--max-tokens",
            "2",
            "--temperature",
            "0",
        ];
        args.extend(engine);
        let o = nindub(&args);
        assert!(o.status.success(), "{engine:?}: {}", stderr(&o));
    }
    refused(
        &nindub(&[
            "generate",
            "--model",
            long,
            "--prompt",
            "Hi",
            "--context",
            &u32::MAX.to_string(),
        ]),
        "more than this machine's",
    );
}

#[test]
fn chat_survives_a_bad_line() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_nindub"))
        .args([
            "chat",
            "--max-tokens",
            "3",
            "--temperature",
            "0",
            "--context",
            "256",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"\xff\xfe not text\n").unwrap();
    stdin.write_all("word ".repeat(400).as_bytes()).unwrap();
    stdin.write_all(b"\nHello\n").unwrap();
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("not UTF-8"), "{err}");
    assert!(err.contains("the message was not kept"), "{err}");
    // The third line was answered.
    assert!(err.contains("generated in"), "{err}");
}

/// A journal with a torn line and forged records: listed with the bad line
/// named, and every forged record refused with a reason, never a panic.
#[test]
fn a_forged_journal_is_refused_line_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("runs.jsonl");
    let forged = |id: &str, commit: &str, dirty: bool, arg: Option<&str>| {
        serde_json::json!({
            "id": id, "experiment": "e", "name": "forged",
            "command": ["quantize", "--scheme", "int8-g32", "in.gguf", "out.gguf"],
            "git": {"commit": commit, "dirty": dirty, "root": dir.path()},
            "inputs": [], "params": {}, "metrics": [],
            "artifacts": [{"name": "output", "path": "/nonexistent/out.gguf", "arg": arg,
                           "md5": "0".repeat(32), "size": 1}],
            "agreement": "exact", "start_ms": 0, "end_ms": 0
        })
        .to_string()
    };
    let lines = [
        forged("aaaa0000", "abc", false, Some("out.gguf")),
        "{\"id\": \"torn".to_string(),
        forged("bbbb0000", &"f".repeat(40), true, Some("out.gguf")),
        forged("cccc0000", "é".repeat(20).as_str(), false, None),
    ];
    std::fs::write(&journal, lines.join("\n") + "\n").unwrap();
    let j = journal.to_str().unwrap();
    let list = nindub(&["runs", "--journal", j, "list"]);
    assert!(list.status.success(), "{}", stderr(&list));
    assert!(
        stderr(&list).contains("line 2 is not a record"),
        "{}",
        stderr(&list)
    );
    assert_eq!(String::from_utf8_lossy(&list.stdout).lines().count(), 4);
    // A commit the repository lacks, a dirty record, a commit that is not
    // hex, ids that name nothing.
    refused(
        &nindub(&["runs", "--journal", j, "reproduce", "aaaa"]),
        "has no commit abc",
    );
    refused(
        &nindub(&["runs", "--journal", j, "reproduce", "bbbb"]),
        "uncommitted changes",
    );
    refused(
        &nindub(&["runs", "--journal", j, "check", "cccc"]),
        "not bound",
    );
    refused(
        &nindub(&["runs", "--journal", j, "show", "dddd"]),
        "no run dddd",
    );
    refused(&nindub(&["runs", "--journal", j, "show", "a"]), "too short");
    refused(
        &nindub(&["runs", "hash", "/nonexistent/data"]),
        "cannot read /nonexistent/data",
    );
}

/// GPTQ's calibration flags: a text that is missing, not text, or too
/// short for the windows asked, and a damping that is not positive, are
/// refused with the reason, and nothing is written.
#[test]
fn bad_calibration_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let model = smollm2();
    let model = model.to_str().unwrap();
    let out = dir.path().join("out.gguf");
    let binary = dir.path().join("binary.txt");
    std::fs::write(&binary, [0xffu8, 0xfe, 0x00, 0x41]).unwrap();
    let short = dir.path().join("short.txt");
    std::fs::write(&short, "To be, or not to be.").unwrap();
    let cases: [(Vec<&str>, &str); 4] = [
        (
            vec!["--calibrate", "/nonexistent/calibration.txt"],
            "/nonexistent/calibration.txt",
        ),
        (
            vec!["--calibrate", binary.to_str().unwrap()],
            "invalid UTF-8",
        ),
        (
            vec!["--calibrate", short.to_str().unwrap()],
            "32 windows of 256 tokens",
        ),
        (
            vec!["--calibrate", short.to_str().unwrap(), "--damp", "0"],
            "--damp must be a positive number",
        ),
    ];
    // GPTQ writes GGML's grids, not the Codex's own encodings.
    let mut args = vec!["quantize", "--scheme", "int8-g32", "--calibrate"];
    let corpus = nindub::corpus::path().unwrap();
    args.extend([corpus.to_str().unwrap(), "--calibration-windows", "1"]);
    args.extend([model, out.to_str().unwrap()]);
    refused(&nindub(&args), "one of the Codex's encodings");
    assert!(!out.exists());
    for (flags, reason) in cases {
        let mut args = vec!["quantize", "--recipe", "q4_0"];
        args.extend(flags);
        args.extend([model, out.to_str().unwrap()]);
        refused(&nindub(&args), reason);
        assert!(!out.exists(), "{args:?} wrote {out:?}");
    }
}

#[test]
fn bad_schemas_and_agent_flags_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = smollm2();
    let model = model.to_str().unwrap();
    let generate = |schema: &Path| {
        nindub(&[
            "generate",
            "--model",
            model,
            "--prompt",
            "x",
            "--json-schema",
            schema.to_str().unwrap(),
        ])
    };
    let missing = dir.path().join("missing.json");
    refused(&generate(&missing), "reading the JSON schema");
    let not_json = dir.path().join("not.json");
    std::fs::write(&not_json, "{\"type\": ").unwrap();
    refused(&generate(&not_json), "compiling the JSON schema");
    let pattern = dir.path().join("pattern.json");
    std::fs::write(
        &pattern,
        r#"{"type": "object", "properties": {"id": {"type": "string", "pattern": "^[a-z]+$"}}}"#,
    )
    .unwrap();
    refused(
        &generate(&pattern),
        "at /properties/id: `pattern` is not supported",
    );
    let agent = |extra: &[&str]| {
        let mut a = vec!["agent", "--model", model, "--task", "What is 2+2?"];
        a.extend(extra);
        nindub(&a)
    };
    refused(&agent(&["--tools", "calc,web"]), "unknown tool `web`");
    refused(
        &agent(&["--tools", "read_file", "--sandbox", "/no/such/dir"]),
        "the sandbox /no/such/dir",
    );
}
