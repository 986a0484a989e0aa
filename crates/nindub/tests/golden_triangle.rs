//! The Golden Triangle against the real tools: a DVC repository with a
//! local remote, an MLflow tracking server on loopback (SQLite backend,
//! artifacts served by the server), and `nindub --track`.
//!
//! Needs `mlflow`, `dvc` and a Python with the `mlflow` package in
//! `$CODEX_TRACK_BIN` (`cargo codex setup track` installs them; `cargo
//! codex test` runs this with `--ignored`), the pinned models, and a clean
//! checkout: the run it records is reproduced from HEAD.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use nindub::track::dvc;
use nindub::track::git::GitState;
use nindub::track::mlflow::Mlflow;
use nindub::track::{Journal, RunRecord};

fn tools() -> PathBuf {
    PathBuf::from(
        std::env::var_os("CODEX_TRACK_BIN").expect(
            "CODEX_TRACK_BIN names the folder with mlflow and dvc (cargo codex setup track)",
        ),
    )
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn dvc_cmd(ws: &Path) -> Command {
    let mut c = Command::new(tools().join("dvc"));
    c.current_dir(ws).env("DVC_NO_ANALYTICS", "1");
    c
}

/// `mlflow server` on a free loopback port, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.join("mlflow.log")).unwrap();
        let child = Command::new(tools().join("mlflow"))
            .args(["server", "--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
            .arg("--artifacts-destination")
            .arg(dir.join("artifacts"))
            .args(["--workers", "1"])
            // Its own process group: the server starts uvicorn and job
            // runners, and all of them are stopped together.
            .process_group(0)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting mlflow server");
        let server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        let agent = ureq::Agent::new_with_defaults();
        while agent.get(format!("{}/health", server.url)).call().is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(240),
                "mlflow server did not answer in 240 s; its log:\n{}",
                std::fs::read_to_string(dir.join("mlflow.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        eprintln!(
            "mlflow server {} up in {:.1} s",
            server.url,
            started.elapsed().as_secs_f64()
        );
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        std::thread::sleep(Duration::from_millis(500));
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nindub() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nindub"));
    c.env_remove("MLFLOW_TRACKING_URI");
    c
}

fn last_record(journal: &Path) -> RunRecord {
    Journal::new(journal)
        .read()
        .unwrap()
        .records
        .pop()
        .expect("a record")
}

#[test]
#[ignore = "needs mlflow and dvc: cargo codex test runs it"]
fn a_run_bound_to_commit_data_and_record_is_reproduced() {
    let repo = GitState::read(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
    assert!(
        !repo.dirty,
        "this test reproduces a run from HEAD: commit your changes first ({} is dirty)",
        repo.root.display()
    );
    let scratch = tempfile::tempdir().unwrap();
    let ws = scratch.path().join("workspace");
    let remote = scratch.path().join("remote");
    std::fs::create_dir_all(ws.join("data")).unwrap();

    // 1. DVC: the project's data and models in a real DVC repository.
    run(Command::new("git").arg("init").arg("-q").arg(&ws));
    run(dvc_cmd(&ws).args(["init", "-q"]));
    let gguf = nindub::assets::resolve("smollm2").unwrap();
    let minilm = nindub::assets::resolve("minilm").unwrap();
    let minilm = if minilm.is_dir() {
        minilm
    } else {
        minilm.parent().unwrap().to_path_buf()
    };
    let corpus = nindub::corpus::path().expect("the corpus (NINDUB_CORPUS)");
    let digits = nindub::assets::cache_dir().join("digits");
    let mut tracked = vec![];
    for src in [&gguf, &minilm, &corpus, &digits] {
        if !src.exists() {
            eprintln!("(skipping {}: not fetched)", src.display());
            continue;
        }
        let dest = ws.join("data").join(src.file_name().unwrap());
        run(Command::new("cp").arg("-r").arg(src).arg(&dest));
        tracked.push(dest);
    }
    let mut add = dvc_cmd(&ws);
    add.args(["add", "-q"]).args(&tracked);
    run(&mut add);
    run(dvc_cmd(&ws)
        .args(["remote", "add", "-q", "-d", "local"])
        .arg(&remote));
    run(dvc_cmd(&ws).args(["push", "-q"]));
    let status = text(&run(dvc_cmd(&ws).args(["status", "-c"])));
    assert!(status.contains("in sync"), "dvc status -c: {status}");
    for path in &tracked {
        let pointer = PathBuf::from(format!("{}.dvc", path.display()));
        let written = std::fs::read_to_string(&pointer).unwrap();
        let (name, from_dvc) = dvc::parse_pointer(&written).unwrap();
        let ours = dvc::hash_path(path).unwrap();
        eprintln!("dvc {}  nindub {}  {name}", from_dvc.md5, ours.md5);
        assert_eq!(
            ours, from_dvc,
            "{name}: nindub's DVC hash differs from dvc's"
        );
        assert_eq!(
            dvc::pointer_yaml(&name, &ours),
            written,
            "{name}: the .dvc file"
        );
        assert!(
            dvc::Remote::new(&remote).has(&ours.md5),
            "{name} not in the remote"
        );
    }

    // 2. A run recorded while no server listens: the journal keeps it.
    let journal = scratch.path().join("runs.jsonl");
    let model = ws.join("data").join(gguf.file_name().unwrap());
    let out1 = scratch.path().join("out/q8.gguf");
    let closed = format!(
        "http://127.0.0.1:{}",
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let quantize = |out: &Path, mlflow: &str| {
        let mut c = nindub();
        c.args([
            "--track",
            "quantize",
            "--scheme",
            "int8-g32",
            "--allow-requantize",
        ])
        .arg(&model)
        .arg(out)
        .env("NINDUB_RUNS", &journal)
        .env("MLFLOW_TRACKING_URI", mlflow);
        let o = run(&mut c);
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let said = quantize(&out1, &closed);
    assert!(said.contains("nindub runs sync"), "{said}");
    let offline = last_record(&journal);

    // 3. MLflow: the server gets the offline run by replay, and the next run
    // directly.
    let server = Server::start(scratch.path());
    let sync = run(nindub()
        .args(["runs", "sync", "--mlflow", &server.url])
        .env("NINDUB_RUNS", &journal));
    assert!(text(&sync).contains("1 sent, 0 already"), "{}", text(&sync));
    let again = run(nindub()
        .args(["runs", "sync", "--mlflow", &server.url])
        .env("NINDUB_RUNS", &journal));
    assert!(
        text(&again).contains("0 sent, 1 already"),
        "{}",
        text(&again)
    );
    let out2 = scratch.path().join("out/q8-again.gguf");
    quantize(&out2, &server.url);
    let online = last_record(&journal);
    assert_eq!(online.git.as_ref().unwrap().commit, repo.commit);
    assert!(!online.git.as_ref().unwrap().dirty);
    assert_eq!(
        record_md5(&online.artifacts, "output"),
        record_md5(&offline.artifacts, "output"),
        "quantization is deterministic: the same bytes twice"
    );

    // Read back through MLflow's REST API...
    let client = Mlflow::new(&server.url);
    let exp = client.experiment("alchemy-of-compression").unwrap();
    let run_id = client
        .find(&exp, &online.id)
        .unwrap()
        .expect("the run in MLflow");
    let got = client.get_run(&run_id).unwrap();
    let tag = |k: &str| {
        got["run"]["data"]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["key"] == k)
            .and_then(|t| t["value"].as_str())
            .map(String::from)
    };
    assert_eq!(tag("git_commit").as_deref(), Some(repo.commit.as_str()));
    let pinned =
        dvc::parse_pointer(&std::fs::read_to_string(format!("{}.dvc", model.display())).unwrap())
            .unwrap()
            .1;
    assert_eq!(
        tag("dvc_hash").as_deref(),
        Some(pinned.md5.as_str()),
        "MLflow's dvc_hash is what dvc computed"
    );
    assert_eq!(got["run"]["info"]["status"], "FINISHED");

    // ...and through MLflow's own Python client.
    let py = run(Command::new(tools().join("python")).arg("-c").arg(format!(
        r#"
import json, mlflow
c = mlflow.MlflowClient("{url}")
r = c.get_run("{run_id}")
print(json.dumps({{
  "git_commit": r.data.tags["git_commit"],
  "dvc_hash": r.data.tags["dvc_hash"],
  "tensors_quantized": r.data.metrics["tensors_quantized"],
  "scheme": r.data.params["scheme"],
  "artifacts": sorted(a.path for a in c.list_artifacts(r.info.run_id)),
}}))
"#,
        url = server.url
    )));
    let seen: serde_json::Value = serde_json::from_str(text(&py).trim()).unwrap();
    eprintln!("MLflow's Python client: {seen}");
    assert_eq!(seen["git_commit"], repo.commit.as_str());
    assert_eq!(seen["dvc_hash"], pinned.md5.as_str());
    assert_eq!(seen["scheme"], "int8-g32");
    let quantized = online.last_metrics()["tensors_quantized"];
    assert_eq!(seen["tensors_quantized"].as_f64(), Some(quantized));
    assert_eq!(
        seen["artifacts"],
        serde_json::json!(["nindub-run.json", "output"])
    );
    drop(server);

    // The artifact, added to DVC, gets the hash the record holds.
    let art = ws.join("data/q8.gguf");
    std::fs::copy(&out1, &art).unwrap();
    run(dvc_cmd(&ws).args(["add", "-q"]).arg(&art));
    let art_pin =
        dvc::parse_pointer(&std::fs::read_to_string(ws.join("data/q8.gguf.dvc")).unwrap())
            .unwrap()
            .1;
    assert_eq!(
        Some(art_pin.md5.as_str()),
        record_md5(&online.artifacts, "output")
    );

    // 4. A broken timeline: the data changes after the run.
    let bound = run(nindub()
        .args(["runs", "check", &online.id[..8], "--remote"])
        .arg(&remote)
        .env("NINDUB_RUNS", &journal));
    assert!(text(&bound).contains("bound"), "{}", text(&bound));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&model)
        .unwrap();
    std::io::Write::write_all(&mut f, b"one more byte").unwrap();
    drop(f);
    let dvc_says = text(&run(dvc_cmd(&ws).args(["status"])));
    assert!(dvc_says.contains("modified"), "dvc status: {dvc_says}");
    let broken = nindub()
        .args(["runs", "check", &online.id[..8], "--remote"])
        .arg(&remote)
        .env("NINDUB_RUNS", &journal)
        .output()
        .unwrap();
    assert!(!broken.status.success());
    let said = text(&broken);
    eprintln!("{said}");
    assert!(
        said.contains("DISCONNECT data: `model`") && said.contains("changed after the run"),
        "{said}"
    );
    assert!(said.contains(&pinned.md5), "{said}");

    // 5. Reproduce: the commit in a worktree, the data by hash from the
    // remote (the file in the workspace has changed), the same bytes out.
    let rep = run(nindub()
        .args(["runs", "reproduce", &online.id[..8], "--remote"])
        .arg(&remote)
        .env("NINDUB_RUNS", &journal));
    let said = text(&rep);
    eprintln!("{said}");
    assert!(said.contains("reproduced:"), "{said}");
    assert!(said.contains("ok   artifact output"), "{said}");
    assert!(!said.contains("DIFF"), "{said}");

    // 6. DVC itself restores the pinned version from the remote (its own
    // cache emptied first), and the timeline is whole again.
    std::fs::remove_dir_all(ws.join(".dvc/cache")).unwrap();
    let pointer = format!("{}.dvc", model.display());
    run(dvc_cmd(&ws).args(["pull", "-q", "--force"]).arg(&pointer));
    assert_eq!(dvc::hash_file(&model).unwrap().md5, pinned.md5);
    let whole = run(nindub()
        .args(["runs", "check", &online.id[..8], "--remote"])
        .arg(&remote)
        .env("NINDUB_RUNS", &journal));
    assert!(text(&whole).contains("bound"), "{}", text(&whole));
}

fn record_md5<'a>(refs: &'a [nindub::track::record::DataRef], name: &str) -> Option<&'a str> {
    refs.iter()
        .find(|r| r.name == name)
        .map(|r| r.hash.md5.as_str())
}
