//! The training loop's parts: seeded parameters, AdamW, checkpoints that
//! resume exactly, metrics as JSON lines, and the process's peak memory.
//!
//! Everything random is derived from one seed: the initial weights, the
//! order of the examples in each epoch ([`epoch_order`]), the dropout masks.
//! A run interrupted after a checkpoint and resumed therefore ends with the
//! same weights, bit for bit, as a run that was never interrupted (a test
//! proves it). candle's own CPU random generator cannot be seeded, so the
//! weights are drawn here with `rand`'s `StdRng`.
//!
//! The optimiser is AdamW written out (a dozen lines of tensor arithmetic)
//! rather than `candle_nn::AdamW`, because a checkpoint must hold its
//! moment estimates and candle keeps those private; a test checks that the
//! two take the same steps.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Shape, Tensor, Var};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, ctx};
use crate::fsx;

/// A seeded random generator for one purpose of one run: `stream` keeps
/// the weights, the epoch orders and the dropout masks independent.
pub fn rng(seed: u64, stream: u64) -> StdRng {
    StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stream)
}

/// The order of `n` examples in `epoch` of a run seeded with `seed`.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng(seed, 1_000 + epoch as u64));
    order
}

/// Trainable tensors with names, in the order they were created.
#[derive(Default)]
pub struct Params {
    names: Vec<String>,
    vars: Vec<Var>,
}

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a parameter with the given initial value.
    pub fn add(&mut self, name: &str, init: Tensor) -> Result<Tensor> {
        if self.names.iter().any(|n| n == name) {
            return Err(Error::invalid(
                "parameters",
                format!("`{name}` added twice"),
            ));
        }
        let var = ctx(&format!("parameter `{name}`"), Var::from_tensor(&init))?;
        let t = var.as_tensor().clone();
        self.names.push(name.to_string());
        self.vars.push(var);
        Ok(t)
    }

    /// Adds a parameter drawn uniformly from `[-bound, bound]`.
    pub fn uniform(
        &mut self,
        rng: &mut StdRng,
        name: &str,
        shape: impl Into<Shape>,
        bound: f32,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let v: Vec<f32> = (0..shape.elem_count())
            .map(|_| rng.random_range(-bound..=bound))
            .collect();
        let t = ctx(
            &format!("parameter `{name}`"),
            Tensor::from_vec(v, shape, device),
        )?;
        self.add(name, t)
    }

    /// Adds a parameter filled with `value` (norm gains, biases).
    pub fn constant(
        &mut self,
        name: &str,
        shape: impl Into<Shape>,
        value: f32,
        device: &Device,
    ) -> Result<Tensor> {
        let t = ctx(
            &format!("parameter `{name}`"),
            Tensor::full(value, shape, device),
        )?;
        self.add(name, t)
    }

    /// The number of scalar parameters.
    pub fn count(&self) -> usize {
        self.vars.iter().map(|v| v.elem_count()).sum()
    }

    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// `(name, tensor)` pairs, in creation order.
    pub fn named(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.names
            .iter()
            .map(|n| n.as_str())
            .zip(self.vars.iter().map(|v| v.as_tensor()))
    }

    /// Replaces every parameter's value with the tensor of the same name in
    /// `values`; names and shapes must match exactly.
    pub fn set_from(&self, values: &HashMap<String, Tensor>, source: &Path) -> Result<()> {
        for (name, var) in self.names.iter().zip(&self.vars) {
            let t = values.get(name).ok_or_else(|| Error::Metadata {
                path: source.to_path_buf(),
                field: name.clone(),
                reason: "tensor missing (was this checkpoint written by another model?)".into(),
            })?;
            if t.dims() != var.dims() {
                return Err(Error::Metadata {
                    path: source.to_path_buf(),
                    field: name.clone(),
                    reason: format!("shape {:?}, the model wants {:?}", t.dims(), var.dims()),
                });
            }
            ctx(&format!("restoring `{name}`"), var.set(t))?;
        }
        Ok(())
    }
}

// ANCHOR: adamw
/// AdamW's settings (the defaults are PyTorch's and candle's).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// AdamW (Loshchilov & Hutter): Adam with weight decay applied to the
/// weights directly, not through the gradient.
pub struct AdamW {
    pub config: AdamWConfig,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Steps taken.
    pub step: usize,
}

impl AdamW {
    pub fn new(params: &Params, config: AdamWConfig) -> Result<Self> {
        let zeros = |v: &Var| ctx("AdamW moments", v.zeros_like());
        Ok(AdamW {
            config,
            m: params.vars.iter().map(zeros).collect::<Result<_>>()?,
            v: params.vars.iter().map(zeros).collect::<Result<_>>()?,
            step: 0,
        })
    }

    /// One update of every parameter that has a gradient in `grads`.
    pub fn step(&mut self, params: &Params, grads: &GradStore) -> Result<()> {
        let c = self.config;
        self.step += 1;
        let t = self.step as i32;
        let (bc1, bc2) = (1.0 - c.beta1.powi(t), 1.0 - c.beta2.powi(t));
        for (i, var) in params.vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            ctx(
                "AdamW step",
                (|| {
                    // m ← β₁m + (1−β₁)g,  v ← β₂v + (1−β₂)g²
                    self.m[i] = ((&self.m[i] * c.beta1)? + (g * (1.0 - c.beta1))?)?;
                    self.v[i] = ((&self.v[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
                    // θ ← θ(1 − ηλ) − η · m̂ / (√v̂ + ε)
                    let m_hat = (&self.m[i] / bc1)?;
                    let v_hat = (&self.v[i] / bc2)?;
                    let update = (m_hat / (v_hat.sqrt()? + c.eps)?)?;
                    let decayed = (var.as_tensor() * (1.0 - c.lr * c.weight_decay))?;
                    var.set(&(decayed - (update * c.lr)?)?)
                })(),
            )?;
        }
        Ok(())
    }
}
// ANCHOR_END: adamw

/// Where a run stands: saved with every checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimiser steps taken.
    pub step: usize,
    /// Seed of the run (a resumed run must keep it).
    pub seed: u64,
    /// A description of the run's settings; resuming with other settings is
    /// refused.
    pub fingerprint: String,
}

const STATE_KEY: &str = "nindub.train_state";

/// Writes parameters, optimiser moments and the state into one safetensors
/// file, atomically (a run killed while writing leaves the previous
/// checkpoint intact).
pub fn save_checkpoint(
    path: &Path,
    params: &Params,
    opt: &AdamW,
    state: &TrainState,
) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (i, (name, t)) in params.named().enumerate() {
        tensors.push((format!("param.{name}"), t.clone()));
        tensors.push((format!("adam_m.{name}"), opt.m[i].clone()));
        tensors.push((format!("adam_v.{name}"), opt.v[i].clone()));
    }
    let mut meta = HashMap::new();
    meta.insert(
        STATE_KEY.to_string(),
        serde_json::to_string(state).map_err(|e| Error::Json {
            context: "checkpoint state".into(),
            source: e,
        })?,
    );
    let bytes = safetensors::serialize(tensors, Some(meta)).map_err(|e| Error::Foreign {
        path: path.to_path_buf(),
        expected: "safetensors",
        reason: e.to_string(),
    })?;
    fsx::write_atomic(path, &bytes)
}

/// Restores a checkpoint into `params` and `opt`; the error names the file
/// and what is wrong with it (truncated, foreign, another model's).
pub fn load_checkpoint(path: &Path, params: &Params, opt: &mut AdamW) -> Result<TrainState> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let foreign = |reason: String| Error::Foreign {
        path: path.to_path_buf(),
        expected: "nindub checkpoint (safetensors)",
        reason,
    };
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| foreign(e.to_string()))?;
    let state = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(STATE_KEY))
        .ok_or_else(|| foreign(format!("no `{STATE_KEY}` in its metadata")))?;
    let state: TrainState = serde_json::from_str(state).map_err(|e| foreign(e.to_string()))?;
    let device = params
        .vars
        .first()
        .map(|v| v.device().clone())
        .unwrap_or(Device::Cpu);
    let all = candle_core::safetensors::load_buffer(&bytes, &device)
        .map_err(|e| foreign(e.to_string()))?;
    let section = |prefix: &str| -> HashMap<String, Tensor> {
        all.iter()
            .filter_map(|(k, t)| k.strip_prefix(prefix).map(|n| (n.to_string(), t.clone())))
            .collect()
    };
    let (p, m, v) = (section("param."), section("adam_m."), section("adam_v."));
    params.set_from(&p, path)?;
    for (i, name) in params.names.iter().enumerate() {
        let get = |map: &HashMap<String, Tensor>, what: &str| {
            map.get(name)
                .filter(|t| t.dims() == params.vars[i].dims())
                .cloned()
                .ok_or_else(|| foreign(format!("{what} of `{name}` missing or misshapen")))
        };
        opt.m[i] = get(&m, "first moment")?;
        opt.v[i] = get(&v, "second moment")?;
    }
    opt.step = state.step;
    Ok(state)
}

/// Saves parameters alone (a trained model), optionally converted to `dtype`.
pub fn save_weights(path: &Path, params: &Params, dtype: DType) -> Result<()> {
    let tensors = params
        .named()
        .map(|(n, t)| Ok((n.to_string(), ctx("saving weights", t.to_dtype(dtype))?)))
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(tensors, None).map_err(|e| Error::Foreign {
        path: path.to_path_buf(),
        expected: "safetensors",
        reason: e.to_string(),
    })?;
    fsx::write_atomic(path, &bytes)
}

/// Metrics as JSON lines, one object per evaluation.
pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsLog {
    /// Opens `path`. A fresh run starts an empty file; a resumed run keeps
    /// the lines up to `keep_until_step` (those after the checkpoint were
    /// written by the interrupted run and will be written again).
    pub fn open(path: &Path, keep_until_step: Option<usize>) -> Result<Self> {
        let kept = match keep_until_step {
            None => String::new(),
            Some(step) => std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .filter(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .ok()
                        .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                        .is_some_and(|s| s as usize <= step)
                })
                .map(|l| format!("{l}\n"))
                .collect(),
        };
        fsx::write_atomic(path, kept.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(MetricsLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one record (it should carry a `step` field).
    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<()> {
        let line = serde_json::to_string(record).map_err(|e| Error::Json {
            context: "metrics".into(),
            source: e,
        })?;
        writeln!(self.file, "{line}").map_err(|e| Error::io(&self.path, e))
    }
}

/// The process's peak resident memory (`VmHWM`), where the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A dropout mask for `shape` with drop probability `p`: kept entries are
/// scaled by `1 / (1 − p)` so the expected activation is unchanged.
pub fn dropout_mask(rng: &mut StdRng, shape: &[usize], p: f32, device: &Device) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let keep = 1.0 / (1.0 - p);
    let v: Vec<f32> = (0..n)
        .map(|_| if rng.random::<f32>() < p { 0.0 } else { keep })
        .collect();
    ctx("dropout mask", Tensor::from_vec(v, shape, device))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::Optimizer;

    fn quadratic(params: &Params, target: &Tensor) -> Tensor {
        let w = params.vars()[0].as_tensor();
        (w - target).unwrap().sqr().unwrap().sum_all().unwrap()
    }

    #[test]
    fn adamw_takes_candles_steps() {
        let dev = Device::Cpu;
        let target = Tensor::new(&[1.0f32, -2.0, 3.0, 0.5], &dev).unwrap();
        let mut ours = Params::new();
        ours.uniform(&mut rng(7, 0), "w", 4, 1.0, &dev).unwrap();
        let theirs = Var::from_tensor(ours.vars()[0].as_tensor()).unwrap();
        let cfg = AdamWConfig {
            lr: 0.05,
            weight_decay: 0.1,
            ..Default::default()
        };
        let mut a = AdamW::new(&ours, cfg).unwrap();
        let mut b = candle_nn::AdamW::new(
            vec![theirs.clone()],
            candle_nn::ParamsAdamW {
                lr: cfg.lr,
                beta1: cfg.beta1,
                beta2: cfg.beta2,
                eps: cfg.eps,
                weight_decay: cfg.weight_decay,
            },
        )
        .unwrap();
        for _ in 0..20 {
            a.step(&ours, &quadratic(&ours, &target).backward().unwrap())
                .unwrap();
            let loss = (theirs.as_tensor() - &target)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap();
            b.backward_step(&loss).unwrap();
        }
        let d = (ours.vars()[0].as_tensor() - theirs.as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-6, "AdamW differs from candle's by {d}");
    }

    #[test]
    fn checkpoints_round_trip_and_refuse_garbage() {
        let dev = Device::Cpu;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ckpt.safetensors");
        let mut p = Params::new();
        p.uniform(&mut rng(1, 0), "a", (3, 2), 1.0, &dev).unwrap();
        p.constant("b", 3, 1.0, &dev).unwrap();
        let mut opt = AdamW::new(&p, AdamWConfig::default()).unwrap();
        let target = Tensor::zeros((3, 2), DType::F32, &dev).unwrap();
        opt.step(&p, &quadratic(&p, &target).backward().unwrap())
            .unwrap();
        let state = TrainState {
            epoch: 1,
            step: 1,
            seed: 1,
            fingerprint: "test".into(),
        };
        save_checkpoint(&path, &p, &opt, &state).unwrap();
        let mut q = Params::new();
        q.uniform(&mut rng(2, 0), "a", (3, 2), 1.0, &dev).unwrap();
        q.constant("b", 3, 0.0, &dev).unwrap();
        let mut opt2 = AdamW::new(&q, AdamWConfig::default()).unwrap();
        assert_eq!(load_checkpoint(&path, &q, &mut opt2).unwrap(), state);
        let same = |x: &Tensor, y: &Tensor| {
            x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
                == y.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        assert!(same(p.vars()[0].as_tensor(), q.vars()[0].as_tensor()));
        assert!(same(&opt.v[0], &opt2.v[0]));
        // Truncated: a clear error naming the file.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let e = load_checkpoint(&path, &q, &mut opt2)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("ckpt.safetensors"), "{e}");
        // Another model's checkpoint: the missing tensor is named.
        let mut r = Params::new();
        r.constant("c", 3, 0.0, &dev).unwrap();
        save_checkpoint(&path, &p, &opt, &state).unwrap();
        let mut opt3 = AdamW::new(&r, AdamWConfig::default()).unwrap();
        let e = load_checkpoint(&path, &r, &mut opt3)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("`c`"), "{e}");
    }

    #[test]
    fn metrics_resume_drops_lines_after_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        let mut log = MetricsLog::open(&path, None).unwrap();
        for step in [10, 20, 30] {
            log.write(&serde_json::json!({ "step": step })).unwrap();
        }
        drop(log);
        let mut log = MetricsLog::open(&path, Some(20)).unwrap();
        log.write(&serde_json::json!({ "step": 30, "again": true }))
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.lines().last().unwrap().contains("again"));
    }
}
