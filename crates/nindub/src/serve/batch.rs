//! Many voices, one crystal: continuous batching.
//!
//! Decoding one token of a small model reads every weight once and does
//! little arithmetic with each byte: the memory bus, not the cores, sets
//! the pace. A batch of sequences stepped together reads the weights once
//! for all of them ([`FusedLlama::forward_batch`]), so while the bytes
//! dominate, eight streams cost little more than one. This is the worker
//! that makes it so for the server:
//!
//! - sequences **join and leave at token boundaries**: a request is
//!   admitted into the running batch at the next step, and a finished,
//!   cancelled or late one leaves it (its KV cache freed) at once;
//! - a new prompt is run **in chunks between decode steps** (chunked
//!   prefill): each pass holds every decoding sequence's next token plus
//!   as much prompt as the pass's row limit leaves, so running streams
//!   never wait for a whole prompt;
//! - admission is **by bytes**: each sequence reserves its KV cache for its
//!   prompt plus the tokens it may generate, out of the pool the engine
//!   reserved (its budget's KV cache); a request that does not fit waits in
//!   the queue, in order, and a full queue answers 503 with `Retry-After`.
//!
//! Each sequence keeps its own sampler and history ([`Sequence`]), so a
//! stream is the one the same request would get alone, token for token.
//!
//! A request for `n` samples joins as `n` sequences at once. The first
//! runs the prompt; the others wait, and when the prompt is done they
//! copy its KV cache ([`KvCache::copy_from`]) and draw their first token
//! from the same logits, each with its own seed: the prompt runs once for
//! all of them.

use std::time::Instant;

use super::protocol::ApiError;
use super::queue::{Event, Job, Outlet, Worker};
use crate::model::fused::BatchItem;
use crate::model::generate::{Sequence, StopReason};
use crate::model::kv_cache::{KvCache, kv_bytes};
use crate::model::tokenizer::GgufTokenizer;
use crate::monitor::RequestRecord;
use crate::stream::placement::PREFILL_CHUNK;

/// One sequence in the batch: a request, or one sample of it.
struct Slot {
    job: Job,
    /// The request's samples share a group.
    group: u64,
    /// A sample waiting for its group's first to finish the prompt.
    waiting: bool,
    seq: Sequence,
    cache: KvCache,
    /// Prompt tokens already run.
    prefilled: usize,
    /// The token this slot runs next while it decodes.
    next: [u32; 1],
    out: Outlet,
    record: RequestRecord,
    admitted: Instant,
    /// When the last prompt chunk ran (prefill ends, decoding starts).
    decoding_since: Option<Instant>,
}

impl Slot {
    fn prompt_left(&self) -> usize {
        self.job.prompt.len() - self.prefilled
    }
}

// ANCHOR: plan
/// Which tokens each sequence runs in the next pass, in slot order:
/// `(slot, tokens)`. Every decoding sequence runs its one next token; the
/// rows left (of `rows` in all) go to prompts, oldest first, in chunks.
pub fn plan(prompt_left: &[usize], rows: usize) -> Vec<(usize, usize)> {
    let decoding = prompt_left.iter().filter(|&&p| p == 0).count();
    let mut spare = rows.saturating_sub(decoding);
    let mut plan = vec![];
    for (slot, &left) in prompt_left.iter().enumerate() {
        if left == 0 {
            plan.push((slot, 1));
        } else if spare > 0 {
            let take = left.min(spare);
            spare -= take;
            plan.push((slot, take));
        }
    }
    plan
}
// ANCHOR_END: plan

/// Serves the queue in batches of up to `queue.parallel()` sequences until
/// it closes. A replacement model is taken when the batch has drained; one
/// the fused engine does not run is served in turn from then on.
pub(crate) fn run(w: &mut Worker) {
    let mut active: Vec<Slot> = vec![];
    // The model's shape, its context and the KV pool (the cache the engine
    // reserved, within its budget): read again after every swap.
    let shape = |w: &Worker| {
        let context = w.generator.decoder.capacity();
        let arch = w.generator.arch().clone();
        (kv_bytes(&arch, context), arch, context)
    };
    let (mut pool, mut arch, mut context) = shape(w);
    let mut tokenizer = w.generator.tokenizer.clone();
    let mut group: u64 = 0;
    loop {
        if active.is_empty() {
            if !w.queue.wait_for_work() {
                return;
            }
            w.between_jobs();
            if w.generator.fused().is_none() {
                return super::queue::serve_in_turn(w);
            }
            (pool, arch, context) = shape(w);
            tokenizer = w.generator.tokenizer.clone();
        }
        // Join: while there is a free place, room in the pool, and no
        // model swap or canary run waiting for the batch to drain.
        let mut reserved: u64 = active.iter().map(|s| s.cache.bytes()).sum();
        while active.len() < w.queue.parallel() && !w.due() {
            let places = w.queue.parallel() - active.len();
            let need = |job: &Job| job.n.max(1) as u64 * kv_bytes(&arch, positions(job, context));
            let Some(job) = w
                .queue
                .take_if(|job| job.n.max(1) <= places && reserved + need(job) <= pool)
            else {
                break;
            };
            let mut record = w.new_record();
            let admitted = Instant::now();
            let Some(first) = Outlet::open(&job, &w.metrics, &mut w.monitor, &mut record) else {
                w.log(&record);
                w.queue.finish(0.0);
                continue;
            };
            let n = job.n.max(1);
            let seqs: crate::error::Result<Vec<Sequence>> = (0..n)
                .map(|i| Sequence::new(&job.prompt, &job.sample_config(i), context))
                .collect();
            let seqs = match seqs {
                Ok(seqs) => seqs,
                Err(e) => {
                    first.close(&job, Err(e), &w.metrics, &w.monitor);
                    w.log(&record);
                    w.queue.finish(0.0);
                    continue;
                }
            };
            w.queue.also_running(n - 1);
            group += 1;
            for (i, seq) in seqs.into_iter().enumerate() {
                let cache = KvCache::new(&arch, seq.positions());
                reserved += cache.bytes();
                let record = if i == 0 {
                    std::mem::take(&mut record)
                } else {
                    let mut r = w.new_record();
                    r.prompt.clone_from(&job.prompt);
                    r
                };
                active.push(Slot {
                    job: job.clone(),
                    group,
                    waiting: i > 0,
                    seq,
                    cache,
                    prefilled: 0,
                    next: [0],
                    out: first.sample(i),
                    record,
                    admitted,
                    decoding_since: None,
                });
            }
        }
        w.metrics.kv_reserved.set(reserved as i64);
        w.metrics.set_queue(w.queue.depth());
        // Leave: clients gone since the last pass.
        for slot in &mut active {
            if slot.job.events.is_closed() {
                slot.out.gone = true;
                slot.seq.stop(StopReason::Callback);
            }
        }
        finish_done(w, &mut active);
        if active.is_empty() {
            continue;
        }
        // A sample whose group lost its first sequence (a failed pass)
        // runs the prompt itself.
        for i in 0..active.len() {
            let g = active[i].group;
            if active[i].waiting && !active.iter().any(|s| s.group == g && !s.waiting) {
                active[i].waiting = false;
            }
        }
        // The sequences that run: all but the samples that wait.
        let running: Vec<usize> = (0..active.len()).filter(|&i| !active[i].waiting).collect();
        let left: Vec<usize> = running.iter().map(|&i| active[i].prompt_left()).collect();
        let plan: Vec<(usize, usize)> = plan(&left, w.pass_rows.min(PREFILL_CHUNK))
            .into_iter()
            .map(|(k, n)| (running[k], n))
            .collect();
        let Some(fused) = w.generator.fused() else {
            // Swaps happen only between batches: not reached.
            return super::queue::serve_in_turn(w);
        };
        let result = {
            let mut items: Vec<BatchItem<'_>> = Vec::with_capacity(plan.len());
            let mut slots = active.iter_mut().enumerate();
            for &(i, n) in &plan {
                let Some((_, s)) = slots.find(|(j, _)| *j == i) else {
                    break;
                };
                let tokens = match s.prompt_left() {
                    0 => &s.next[..],
                    _ => &s.job.prompt[s.prefilled..s.prefilled + n],
                };
                items.push(BatchItem {
                    cache: &mut s.cache,
                    tokens,
                });
            }
            fused.forward_batch(&mut items).map(|l| l.to_vec())
        };
        let logits = match result {
            Ok(l) => l,
            Err(e) => {
                // The pass failed for every sequence in it.
                for &(i, _) in plan.iter().rev() {
                    let mut s = active.remove(i);
                    fail(&mut s, format!("generation failed: {e}"));
                    w.log(&s.record);
                    w.queue.finish(s.admitted.elapsed().as_secs_f64());
                }
                continue;
            }
        };
        let vocab = arch.vocab_size as usize;
        let mut forks = vec![];
        for (row, &(i, n)) in plan.iter().enumerate() {
            let s = &mut active[i];
            s.prefilled = (s.prefilled + n).min(s.job.prompt.len());
            if s.prompt_left() > 0 {
                continue;
            }
            let logits = &logits[row * vocab..(row + 1) * vocab];
            if s.decoding_since.is_none() && s.job.n > 1 {
                forks.push((i, row));
            }
            advance(w, s, logits, &tokenizer);
        }
        // The prompt is done: the waiting samples take its KV cache and
        // draw their first token from its logits.
        for (leader, row) in forks {
            let logits = &logits[row * vocab..(row + 1) * vocab];
            for j in 0..active.len() {
                if !(active[j].waiting && active[j].group == active[leader].group) {
                    continue;
                }
                let (from, to) = pair(&mut active, leader, j);
                if let Err(e) = to.cache.copy_from(&from.cache) {
                    fail(to, format!("generation failed: {e}"));
                    continue;
                }
                to.waiting = false;
                to.prefilled = to.job.prompt.len();
                advance(w, to, logits, &tokenizer);
            }
        }
        finish_done(w, &mut active);
    }
}

/// `(&v[i], &mut v[j])` for `i != j`.
fn pair<T>(v: &mut [T], i: usize, j: usize) -> (&T, &mut T) {
    if i < j {
        let (a, b) = v.split_at_mut(j);
        (&a[i], &mut b[0])
    } else {
        let (a, b) = v.split_at_mut(i);
        (&b[0], &mut a[j])
    }
}

/// A sequence whose prompt is done draws its next token from `logits`
/// and sends it.
fn advance(w: &mut Worker, s: &mut Slot, logits: &[f32], tokenizer: &GgufTokenizer) {
    s.decoding_since.get_or_insert_with(Instant::now);
    match s.seq.advance(logits, tokenizer) {
        Ok(Some(step)) => {
            if !s
                .out
                .send(&s.job, &step, &w.metrics, &mut w.monitor, &mut s.record)
            {
                s.seq.stop(StopReason::Callback);
            }
            s.next = [step.token];
        }
        Ok(None) => {}
        Err(e) => fail(s, format!("sampling failed: {e}")),
    }
}

/// Fails the request `s` belongs to, and stops `s`.
fn fail(s: &mut Slot, message: String) {
    let _ = s.job.events.send(Event::Failed(ApiError::new(
        500,
        "server_error",
        "generation_failed",
        message,
    )));
    s.out.gone = true;
    s.seq.stop(StopReason::Callback);
}

/// The positions a job reserves: its prompt and what it may generate,
/// within the context.
fn positions(job: &Job, context: usize) -> usize {
    (job.prompt.len() + job.config.max_tokens).min(context)
}

/// Answers and removes the sequences that ended; their caches are freed.
fn finish_done(w: &mut Worker, active: &mut Vec<Slot>) {
    let mut i = 0;
    while i < active.len() {
        if active[i].seq.stop_reason().is_none() {
            i += 1;
            continue;
        }
        let s = active.remove(i);
        let prompt_secs = s
            .decoding_since
            .map_or(0.0, |t| (t - s.admitted).as_secs_f64());
        let generate_secs = s.decoding_since.map_or(0.0, |t| t.elapsed().as_secs_f64());
        let generation = s.seq.finish(prompt_secs, generate_secs);
        s.out.close(&s.job, Ok(generation), &w.metrics, &w.monitor);
        w.log(&s.record);
        w.queue.finish(s.admitted.elapsed().as_secs_f64());
    }
    let reserved: u64 = active.iter().map(|s| s.cache.bytes()).sum();
    w.metrics.kv_reserved.set(reserved as i64);
    w.metrics.set_queue(w.queue.depth());
}

#[cfg(test)]
mod tests {
    use super::plan;

    #[test]
    fn decoders_first_then_prompts_in_chunks() {
        // Three decoding, one prompt of 100 tokens: 61 of it fit.
        assert_eq!(
            plan(&[0, 100, 0, 0], 64),
            vec![(0, 1), (1, 61), (2, 1), (3, 1)]
        );
        // Two prompts: the older takes what it needs, the next the rest.
        assert_eq!(plan(&[10, 100], 64), vec![(0, 10), (1, 54)]);
        // No spare rows: prompts wait, decoders never do.
        assert_eq!(plan(&[0, 0, 5], 2), vec![(0, 1), (1, 1)]);
        assert!(plan(&[], 64).is_empty());
    }
}
