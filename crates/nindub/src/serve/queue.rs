//! One model, many clients: a bounded queue in front of a single worker.
//!
//! The model (and its KV cache) lives on one thread, which serves requests
//! in turn. A request that arrives while `capacity` others are waiting is
//! refused at once with a time to come back ([`super::admission::admit`]): a clean 503 now
//! beats a slow death of every client later. A job whose client has gone
//! (its event receiver dropped) is skipped, or stopped at its next token.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

use super::admission::{admit, held_back};
use super::metrics::Metrics;
use super::protocol::ApiError;
use crate::model::generate::{GenerateConfig, Generator, StopReason};
use crate::monitor::{MonitorConfig, QualityLog, QualityMonitor, RequestRecord, canary};

/// A model waiting to replace the served one ([`super::Server::swap_model`]).
pub type SwapSlot = Arc<Mutex<Option<Generator>>>;

/// A request, tokenized and checked, waiting for the model.
pub struct Job {
    pub prompt: Vec<u32>,
    pub config: GenerateConfig,
    /// Candidates reported per token (0: none).
    pub top_logprobs: usize,
    pub arrived: Instant,
    /// After this, the job is abandoned (503, `timeout_error`).
    pub deadline: Instant,
    pub events: UnboundedSender<Event>,
}

/// What the worker tells the request's handler.
#[derive(Debug)]
pub enum Event {
    /// One generated token, and the text it releases (text that could be
    /// the start of a stop string is held back until it cannot).
    Token {
        text: String,
        token: TokenInfo,
    },
    /// The end: the rest of the text and the accounting.
    Done(Summary),
    Failed(ApiError),
}

/// A generated token as the API reports it.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub id: u32,
    /// The text this token decodes to alone.
    pub text: String,
    pub logprob: f32,
    /// The most probable candidates: (text, log-probability).
    pub top: Vec<(String, f32)>,
}

#[derive(Debug, Clone)]
pub struct Summary {
    /// The whole generated text (after stop strings are cut).
    pub text: String,
    /// What had not been released with a token.
    pub tail: String,
    /// `stop` (end of sequence or stop string) or `length`.
    pub finish_reason: &'static str,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub queued_secs: f64,
    /// From arrival to the first token (queue + prefill + first step).
    pub ttft_secs: Option<f64>,
    pub generate_secs: f64,
}

struct State {
    waiting: VecDeque<Job>,
    running: usize,
    /// Exponential moving average of a job's service time.
    mean_service_secs: f64,
    closed: bool,
}

/// The bounded queue.
pub struct Queue {
    state: Mutex<State>,
    ready: Condvar,
    capacity: usize,
}

impl Queue {
    pub fn new(capacity: usize) -> Self {
        Queue {
            state: Mutex::new(State {
                waiting: VecDeque::new(),
                running: 0,
                mean_service_secs: 1.0,
                closed: false,
            }),
            ready: Condvar::new(),
            capacity,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the queue half-updated: every
        // change below is a single push, pop or assignment.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a job, or says in how many seconds to retry.
    pub fn submit(&self, job: Job) -> Result<(), u64> {
        let mut s = self.lock();
        admit(
            s.waiting.len(),
            s.running,
            self.capacity,
            s.mean_service_secs,
        )?;
        s.waiting.push_back(job);
        self.ready.notify_one();
        Ok(())
    }

    /// (waiting, running).
    pub fn depth(&self) -> (usize, usize) {
        let s = self.lock();
        (s.waiting.len(), s.running)
    }

    /// Wakes the worker for good: it finishes and exits.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    fn next(&self) -> Option<Job> {
        let mut s = self.lock();
        loop {
            if s.closed {
                return None;
            }
            if let Some(job) = s.waiting.pop_front() {
                s.running += 1;
                return Some(job);
            }
            s = self.ready.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn finish(&self, secs: f64) {
        let mut s = self.lock();
        s.running -= 1;
        s.mean_service_secs = 0.8 * s.mean_service_secs + 0.2 * secs;
    }
}

/// Starts the worker thread that owns the model. Before each job it takes
/// a replacement model from `swap` if one is there, and runs the canaries
/// when they are due (once at start, then after every `canary_every` jobs).
pub fn spawn_worker(
    mut generator: Generator,
    queue: Arc<Queue>,
    metrics: Arc<Metrics>,
    watch: MonitorConfig,
    swap: SwapSlot,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("nindub-worker".into())
        .spawn(move || {
            let mut monitor = QualityMonitor::new(watch.windows, watch.embedding_norms.clone());
            let mut served = 0usize;
            let mut log = watch
                .log
                .as_deref()
                .and_then(|p| match QualityLog::open(p) {
                    Ok(l) => Some(l),
                    Err(e) => {
                        eprintln!("nindub: no quality log: {e}");
                        None
                    }
                });
            run_canaries(&mut generator, &watch, &metrics);
            while let Some(job) = queue.next() {
                let started = Instant::now();
                metrics.set_queue(queue.depth());
                let next = swap.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(next) = next {
                    generator = next;
                    metrics.model_swaps.inc();
                }
                // Canaries due after the last job run now, before this one
                // (on the model that will serve it): a scrape between two
                // requests never races a canary run.
                if watch.canary_every > 0 && served > 0 && served % watch.canary_every == 0 {
                    run_canaries(&mut generator, &watch, &metrics);
                }
                served += 1;
                let mut record = RequestRecord {
                    request: served,
                    ..RequestRecord::default()
                };
                serve_job(&mut generator, job, &metrics, &mut monitor, &mut record);
                if let Some(log) = &mut log {
                    log.write(&record);
                }
                queue.finish(started.elapsed().as_secs_f64());
                metrics.set_queue(queue.depth());
            }
        })
}

/// Scores the canaries, if there are any. A failed run (a canary that no
/// longer fits the context) counts as accuracy 0: it is the model's fault
/// as much as a wrong answer.
fn run_canaries(g: &mut Generator, watch: &MonitorConfig, metrics: &Metrics) {
    let Some(set) = &watch.canaries else { return };
    let score = canary::score(g, set).unwrap_or(canary::CanaryScore {
        accuracy: 0.0,
        logprob_mean: f64::NEG_INFINITY,
        tokens: 0,
        exact: 0,
        canaries: set.canaries.len(),
    });
    metrics.record_canary(&score);
}

// ANCHOR: serve_job
fn serve_job(
    g: &mut Generator,
    job: Job,
    metrics: &Metrics,
    monitor: &mut QualityMonitor,
    record: &mut RequestRecord,
) {
    if job.events.is_closed() {
        metrics.cancelled.inc();
        return;
    }
    if Instant::now() >= job.deadline {
        metrics.timed_out.inc();
        let _ = job.events.send(Event::Failed(timeout()));
        return;
    }
    let queued_secs = job.arrived.elapsed().as_secs_f64();
    let mut released = 0; // bytes of text sent so far
    let mut text = String::new();
    let mut ttft = None;
    let mut gone = false;
    let mut late = false;
    monitor.observe_prompt(&job.prompt);
    record.prompt.clone_from(&job.prompt);
    let result = g.generate(&job.prompt, &job.config, |step| {
        ttft.get_or_insert_with(|| job.arrived.elapsed().as_secs_f64());
        // The Infrastructure Canon: what the model's own distribution says.
        monitor.observe_token(step.token, step.model_prob, step.entropy);
        metrics.record_token(step.model_prob, step.entropy);
        record.tokens.push(step.token);
        record.prob.push(step.model_prob);
        record.entropy.push(step.entropy);
        text.push_str(&step.text);
        let safe = (text.len() - held_back(&text, &job.config.stop)).max(released);
        let token = TokenInfo {
            id: step.token,
            text: step.piece.clone(),
            logprob: step.logprob,
            top: step
                .candidates
                .iter()
                .take(job.top_logprobs)
                .map(|(_, t, p)| (t.clone(), p.ln()))
                .collect(),
        };
        let delta = text.get(released..safe).unwrap_or_default().to_string();
        released = safe;
        gone = job
            .events
            .send(Event::Token { text: delta, token })
            .is_err();
        late = Instant::now() >= job.deadline;
        !gone && !late
    });
    metrics.record_quality(&monitor.snapshot());
    let event = match result {
        Err(e) => Event::Failed(ApiError::new(
            500,
            "server_error",
            "generation_failed",
            format!("generation failed: {e}"),
        )),
        // The tokens of a cancelled or late generation were computed all
        // the same: they count.
        Ok(out) if gone => {
            metrics.record_generation(&out, ttft);
            metrics.cancelled.inc();
            return;
        }
        Ok(out) if late => {
            metrics.record_generation(&out, ttft);
            metrics.timed_out.inc();
            Event::Failed(timeout())
        }
        Ok(out) => {
            metrics.record_generation(&out, ttft);
            Event::Done(Summary {
                tail: out.text.get(released..).unwrap_or_default().to_string(),
                finish_reason: match out.stop_reason {
                    StopReason::MaxTokens => "length",
                    _ => "stop",
                },
                prompt_tokens: out.prompt_tokens,
                completion_tokens: out.tokens.len(),
                queued_secs,
                ttft_secs: ttft,
                generate_secs: out.generate_secs,
                text: out.text,
            })
        }
    };
    let _ = job.events.send(event);
}
// ANCHOR_END: serve_job

/// The server's own deadline passed: 503, the status of a server that
/// cannot serve the request now (504 is a gateway's, waiting on an upstream;
/// 408 is for a client too slow to send its request). The error's type
/// tells it from a full queue.
fn timeout() -> ApiError {
    ApiError::new(
        503,
        "timeout_error",
        "request_timeout",
        "the request took longer than the server's time limit",
    )
}
