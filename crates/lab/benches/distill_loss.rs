//! The distillation loss over a language model's vocabulary: composed from
//! candle's operations (autograd) against the one fused operation whose
//! backward pass is the derived gradient, and the student's own forward
//! and backward pass for scale.
//!
//! `cargo bench -p nindub --bench distill_loss` prints, for a batch of 512
//! positions × 49,152 tokens (the book's language-model step), the median
//! time of the loss forward and forward + backward, each way.

use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use nindub::distill::loss::{self, KdConfig};
use nindub::distill::student::{Student, StudentConfig};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time(runs: usize, mut f: impl FnMut() -> Res<()>) -> Res<f64> {
    f()?;
    let mut t = vec![];
    for _ in 0..runs {
        let start = Instant::now();
        f()?;
        t.push(start.elapsed().as_secs_f64());
    }
    Ok(median(t))
}

fn main() -> Res<()> {
    let (rows, vocab, k) = (512usize, 49_152usize, 32usize);
    let dev = Device::Cpu;
    let runs = 5;
    let z = Var::from_tensor(&(Tensor::randn(0f32, 3.0, (rows, vocab), &dev)?))?;
    let teacher = Tensor::randn(0f32, 3.0, (rows, vocab), &dev)?;
    let (idx, val) = loss::top_k(&teacher, k)?;
    let labels = Tensor::zeros(rows, DType::U32, &dev)?;
    let cfg = KdConfig::new(2.0, 0.5, true)?;
    println!(
        "distillation loss, {rows} positions × {vocab} classes, teacher top-{k}, {} threads, median of {runs}",
        rayon::current_num_threads()
    );
    let composed_f = time(runs, || {
        loss::kd_loss_topk(z.as_tensor(), &idx, &val, &labels, &cfg)?;
        Ok(())
    })?;
    let composed_fb = time(runs, || {
        let l = loss::kd_loss_topk(z.as_tensor(), &idx, &val, &labels, &cfg)?;
        l.total.backward()?;
        Ok(())
    })?;
    let fused_f = time(runs, || {
        loss::kd_loss_topk_fused(z.as_tensor(), &idx, &val, &labels, &cfg)?;
        Ok(())
    })?;
    let fused_fb = time(runs, || {
        let l = loss::kd_loss_topk_fused(z.as_tensor(), &idx, &val, &labels, &cfg)?;
        l.total.backward()?;
        Ok(())
    })?;
    println!("{:<34} {:>10} {:>20}", "", "forward", "forward + backward");
    println!(
        "{:<34} {:>8.0} ms {:>17.0} ms",
        "composed (candle ops, autograd)",
        composed_f * 1e3,
        composed_fb * 1e3
    );
    println!(
        "{:<34} {:>8.0} ms {:>17.0} ms",
        "fused (one op, derived backward)",
        fused_f * 1e3,
        fused_fb * 1e3
    );
    println!(
        "{:<34} {:>10.1}× {:>19.1}×",
        "speed-up",
        composed_f / fused_f,
        composed_fb / fused_fb
    );
    let student = Student::new(StudentConfig::small(vocab, 128, 4, 128, 0), 1, &dev)?;
    let tokens = Tensor::zeros((rows / 128, 128), DType::U32, &dev)?;
    let step = time(runs, || {
        let logits = student.forward(&tokens)?;
        let l = loss::kd_loss_topk_fused(&logits, &idx, &val, &labels, &cfg)?;
        l.total.backward()?;
        Ok(())
    })?;
    println!(
        "{:<34} {:>8.0} ms  (the book's student, {} parameters, fused loss)",
        "student forward + backward",
        step * 1e3,
        student.params.count()
    );
    Ok(())
}
