//! An MLflow tracking server, spoken to over its REST API (`/api/2.0/
//! mlflow/...`): experiments, runs, params, tags, metrics with steps, and
//! artifacts through the server's artifact proxy. This is the same API the
//! Python client calls; a run logged here reads back through either.
//!
//! Params are write-once in MLflow, metrics append-only, tags last-write-
//! wins. A batch takes at most 1000 metrics, 100 params and 100 tags, so a
//! record is sent in as many batches as it needs.

use std::time::Duration;

use serde_json::{Value, json};

use super::dvc;
use super::journal::Journal;
use super::record::RunRecord;
use crate::error::{Error, Result};

/// The tag that carries nindub's own run id (so a replay finds a run it
/// already sent instead of sending it twice).
pub const RUN_ID_TAG: &str = "nindub_run_id";

/// A tracking server at a base URL like `http://127.0.0.1:5000`.
#[derive(Clone)]
pub struct Mlflow {
    base: String,
    agent: ureq::Agent,
}

/// What a replay did.
#[derive(Debug, Default)]
pub struct Replay {
    /// (nindub id, MLflow run id) of the runs sent now.
    pub sent: Vec<(String, String)>,
    /// Runs the server already had.
    pub already: Vec<(String, String)>,
}

impl Mlflow {
    pub fn new(base: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .into();
        Mlflow {
            base: base.trim_end_matches('/').to_string(),
            agent,
        }
    }

    /// `$MLFLOW_TRACKING_URI` when it names an HTTP server.
    pub fn from_env() -> Option<Self> {
        let uri = std::env::var("MLFLOW_TRACKING_URI").ok()?;
        (uri.starts_with("http://") || uri.starts_with("https://")).then(|| Mlflow::new(&uri))
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/2.0/{path}", self.base)
    }

    fn answer(
        &self,
        op: &str,
        resp: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, Value)> {
        let mut resp = resp.map_err(|e| Error::Mlflow {
            op: op.into(),
            reason: format!("{} is not reachable: {e}", self.base),
        })?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let value = if text.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&text).map_err(|_| Error::Mlflow {
                op: op.into(),
                reason: format!(
                    "HTTP {status}, not JSON: {}",
                    text.chars().take(200).collect::<String>()
                ),
            })?
        };
        Ok((status, value))
    }

    fn ok(&self, op: &str, (status, v): (u16, Value)) -> Result<Value> {
        if status == 200 {
            return Ok(v);
        }
        Err(Error::Mlflow {
            op: op.into(),
            reason: format!(
                "HTTP {status} {}: {}",
                v["error_code"].as_str().unwrap_or(""),
                v["message"].as_str().unwrap_or("")
            ),
        })
    }

    fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let r = self.agent.post(&self.url(path)).send_json(body);
        let a = self.answer(path, r)?;
        self.ok(path, a)
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<(u16, Value)> {
        let mut req = self.agent.get(&self.url(path));
        for (k, v) in query {
            req = req.query(*k, *v);
        }
        let r = req.call();
        self.answer(path, r)
    }

    /// The id of the experiment called `name`, created when missing.
    pub fn experiment(&self, name: &str) -> Result<String> {
        let op = "mlflow/experiments/get-by-name";
        let (status, v) = self.get(op, &[("experiment_name", name)])?;
        if status == 200 {
            if let Some(id) = v["experiment"]["experiment_id"].as_str() {
                return Ok(id.to_string());
            }
        } else if v["error_code"] != "RESOURCE_DOES_NOT_EXIST" {
            self.ok(op, (status, v))?;
        }
        let v = self.post("mlflow/experiments/create", &json!({ "name": name }))?;
        v["experiment_id"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| Error::Mlflow {
                op: "mlflow/experiments/create".into(),
                reason: format!("no experiment_id in {v}"),
            })
    }

    /// A run as MLflow's `runs/get` returns it (`{"run": {"info", "data"}}`).
    pub fn get_run(&self, run_id: &str) -> Result<Value> {
        let op = "mlflow/runs/get";
        let a = self.get(op, &[("run_id", run_id)])?;
        self.ok(op, a)
    }

    /// The MLflow run id of the run nindub recorded as `id`, if the server
    /// has it.
    pub fn find(&self, experiment_id: &str, id: &str) -> Result<Option<String>> {
        if !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid("run id", format!("`{id}` is not hex")));
        }
        let v = self.post(
            "mlflow/runs/search",
            &json!({
                "experiment_ids": [experiment_id],
                "filter": format!("tags.{RUN_ID_TAG} = '{id}'"),
                "max_results": 1,
            }),
        )?;
        Ok(v["runs"][0]["info"]["run_id"].as_str().map(String::from))
    }

    // ANCHOR: log
    /// Sends one record: a run with its tags (`git_commit`, `dvc_hash`,
    /// MLflow's own `mlflow.source.git.*`), params, every metric at its
    /// step, the artifacts (through the server's artifact proxy) and the
    /// record itself as `nindub-run.json`. Returns MLflow's run id.
    pub fn log(&self, record: &RunRecord) -> Result<String> {
        let experiment_id = self.experiment(&record.experiment)?;
        let mut tags = vec![
            (RUN_ID_TAG.to_string(), record.id.clone()),
            ("mlflow.runName".into(), record.name.clone()),
            ("mlflow.source.type".into(), "LOCAL".into()),
            ("mlflow.source.name".into(), "nindub".into()),
            ("nindub.command".into(), record.command.join(" ")),
        ];
        if let Some(g) = &record.git {
            tags.push(("git_commit".into(), g.commit.clone()));
            tags.push(("mlflow.source.git.commit".into(), g.commit.clone()));
            tags.push(("git_dirty".into(), g.dirty.to_string()));
        }
        if let Some(first) = record.inputs.first() {
            tags.push(("dvc_hash".into(), first.hash.md5.clone()));
        }
        for i in &record.inputs {
            tags.push((format!("dvc_hash.{}", i.name), i.hash.md5.clone()));
        }
        for a in &record.artifacts {
            tags.push((format!("artifact_md5.{}", a.name), a.hash.md5.clone()));
        }
        let tag_json = |(k, v): &(String, String)| json!({ "key": k, "value": v });
        let created = self.post(
            "mlflow/runs/create",
            &json!({
                "experiment_id": experiment_id,
                "run_name": record.name,
                "start_time": record.start_ms,
                "tags": tags.iter().map(tag_json).collect::<Vec<_>>(),
            }),
        )?;
        let info = &created["run"]["info"];
        let run_id = info["run_id"]
            .as_str()
            .ok_or_else(|| Error::Mlflow {
                op: "mlflow/runs/create".into(),
                reason: format!("no run_id in {created}"),
            })?
            .to_string();
        let params: Vec<Value> = record
            .params
            .iter()
            .map(|(k, v)| json!({ "key": k, "value": v }))
            .collect();
        let metrics: Vec<Value> = record
            .metrics
            .iter()
            .map(|m| json!({ "key": m.key, "value": m.value, "step": m.step, "timestamp": m.timestamp_ms }))
            .collect();
        for chunk in params.chunks(100) {
            self.post(
                "mlflow/runs/log-batch",
                &json!({ "run_id": run_id, "params": chunk }),
            )?;
        }
        for chunk in metrics.chunks(1000) {
            self.post(
                "mlflow/runs/log-batch",
                &json!({ "run_id": run_id, "metrics": chunk }),
            )?;
        }
        let root = info["artifact_uri"].as_str().unwrap_or_default();
        let record_json = serde_json::to_vec_pretty(record).map_err(|e| Error::Json {
            context: "serialising a run record".into(),
            source: e,
        })?;
        self.put_artifact(root, "nindub-run.json", &mut &record_json[..])?;
        for a in &record.artifacts {
            if a.hash.is_dir() {
                for (rel, path) in dvc::files(&a.path)? {
                    let mut f = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
                    self.put_artifact(root, &format!("{}/{rel}", a.name), &mut f)?;
                }
            } else {
                let mut f = std::fs::File::open(&a.path).map_err(|e| Error::io(&a.path, e))?;
                let file = a.path.file_name().map(|n| n.to_string_lossy().into_owned());
                self.put_artifact(
                    root,
                    &format!("{}/{}", a.name, file.unwrap_or_default()),
                    &mut f,
                )?;
            }
        }
        self.post(
            "mlflow/runs/update",
            &json!({ "run_id": run_id, "status": "FINISHED", "end_time": record.end_ms }),
        )?;
        Ok(run_id)
    }
    // ANCHOR_END: log

    /// Uploads one artifact file through the server's proxy
    /// (`mlflow-artifacts:/…` roots only: a server started with
    /// `--no-serve-artifacts` stores artifacts where only its clients' own
    /// file systems reach).
    fn put_artifact(&self, root: &str, rel: &str, body: &mut dyn std::io::Read) -> Result<()> {
        let op = "mlflow-artifacts/artifacts";
        let Some(prefix) = root.strip_prefix("mlflow-artifacts:") else {
            return Err(Error::Mlflow {
                op: op.into(),
                reason: format!(
                    "the run's artifact root `{root}` is not served by the tracking server; start it with --serve-artifacts"
                ),
            });
        };
        let path = format!("{}/{rel}", prefix.trim_start_matches('/'));
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{path}", self.base);
        let r = self.agent.put(&url).send(ureq::SendBody::from_reader(body));
        let a = self.answer(op, r)?;
        self.ok(op, a).map(drop)
    }

    /// Sends every journal record the server does not have yet.
    pub fn replay(&self, journal: &Journal) -> Result<Replay> {
        let mut done = Replay::default();
        for record in journal.read()?.records {
            let exp = self.experiment(&record.experiment)?;
            match self.find(&exp, &record.id)? {
                Some(run) => done.already.push((record.id, run)),
                None => {
                    let run = self.log(&record)?;
                    done.sent.push((record.id, run));
                }
            }
        }
        Ok(done)
    }
}
