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
use crate::model::generate::{GenerateConfig, Generation, Generator, Step, StopReason};
use crate::monitor::{MonitorConfig, QualityLog, QualityMonitor, RequestRecord, canary};

/// A model waiting to replace the served one ([`super::Server::swap_model`]).
pub type SwapSlot = Arc<Mutex<Option<Generator>>>;

/// A request, tokenized and checked, waiting for the model.
#[derive(Clone)]
pub struct Job {
    pub prompt: Vec<u32>,
    pub config: GenerateConfig,
    /// Candidates reported per token (0: none).
    pub top_logprobs: usize,
    /// Independent samples of the prompt (`n`); sample `i` draws with the
    /// config's seed + `i`.
    pub n: usize,
    pub arrived: Instant,
    /// After this, the job is abandoned (503, `timeout_error`).
    pub deadline: Instant,
    pub events: UnboundedSender<Event>,
}

impl Job {
    /// The settings of sample `i`: the request's, with seed + `i` (so
    /// sample `i` is what the same request with `n = 1` and that seed
    /// would get).
    pub fn sample_config(&self, i: usize) -> GenerateConfig {
        let mut config = self.config.clone();
        config.sampling.seed = config.sampling.seed.wrapping_add(i as u64);
        config
    }
}

/// What the worker tells the request's handler. `sample` is the index of
/// the sample (the API's choice) the event belongs to.
#[derive(Debug)]
pub enum Event {
    /// One generated token, and the text it releases (text that could be
    /// the start of a stop string is held back until it cannot).
    Token {
        sample: usize,
        text: String,
        token: TokenInfo,
    },
    /// The end of one sample: the rest of its text and the accounting.
    Done(Summary),
    /// The request failed (all of its samples).
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
    /// The sample this ends.
    pub sample: usize,
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
    /// Requests generated at once (1: one after another).
    parallel: usize,
}

impl Queue {
    pub fn new(capacity: usize) -> Self {
        Self::with_parallel(capacity, 1)
    }

    /// A queue in front of a worker that generates `parallel` requests at
    /// once: the work ahead of a refused client drains that much faster.
    pub fn with_parallel(capacity: usize, parallel: usize) -> Self {
        Queue {
            parallel: parallel.max(1),
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

    /// Requests generated at once.
    pub fn parallel(&self) -> usize {
        self.parallel
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
            s.mean_service_secs / self.parallel as f64,
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

    /// Blocks until a job waits (true) or the queue closes (false).
    pub(crate) fn wait_for_work(&self) -> bool {
        let mut s = self.lock();
        loop {
            if s.closed {
                return false;
            }
            if !s.waiting.is_empty() {
                return true;
            }
            s = self.ready.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The job at the head of the line, if `fits` says it fits now; the
    /// line keeps its order (a large request is not overtaken forever).
    pub(crate) fn take_if(&self, fits: impl FnOnce(&Job) -> bool) -> Option<Job> {
        let mut s = self.lock();
        if s.closed || !s.waiting.front().is_some_and(fits) {
            return None;
        }
        let job = s.waiting.pop_front()?;
        s.running += 1;
        Some(job)
    }

    /// `k` more sequences of a job already taken run (its other samples):
    /// each is finished on its own.
    pub(crate) fn also_running(&self, k: usize) {
        self.lock().running += k;
    }

    pub(crate) fn finish(&self, secs: f64) {
        let mut s = self.lock();
        s.running -= 1;
        s.mean_service_secs = 0.8 * s.mean_service_secs + 0.2 * secs;
    }
}

/// Starts the worker thread that owns the model. Before each job it takes
/// a replacement model from `swap` if one is there, and runs the canaries
/// when they are due (once at start, then after every `canary_every` jobs).
/// With `queue.parallel() > 1` and the fused engine, the jobs are
/// generated together ([`super::batch`]); otherwise one after another.
pub fn spawn_worker(
    generator: Generator,
    pass_rows: usize,
    queue: Arc<Queue>,
    metrics: Arc<Metrics>,
    watch: MonitorConfig,
    swap: SwapSlot,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("nindub-worker".into())
        .spawn(move || {
            let mut w = Worker::new(generator, pass_rows, queue, metrics, watch, swap);
            if w.queue.parallel() > 1 && w.generator.fused().is_some() {
                super::batch::run(&mut w);
            } else {
                serve_in_turn(&mut w);
            }
        })
}

/// Serves the queue one job after another until it closes.
pub(crate) fn serve_in_turn(w: &mut Worker) {
    while let Some(job) = w.queue.next() {
        let started = Instant::now();
        w.metrics.set_queue(w.queue.depth());
        w.between_jobs();
        let mut record = w.new_record();
        serve_job(
            &mut w.generator,
            job,
            &w.metrics,
            &mut w.monitor,
            &mut record,
        );
        w.log(&record);
        w.queue.finish(started.elapsed().as_secs_f64());
        w.metrics.set_queue(w.queue.depth());
    }
}

/// What the model's thread holds: the model, the quality monitor and its
/// log, the count of jobs served (for the canaries' schedule).
pub(crate) struct Worker {
    pub(crate) generator: Generator,
    pub(crate) queue: Arc<Queue>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) monitor: QualityMonitor,
    /// The most tokens one batched pass runs.
    pub(crate) pass_rows: usize,
    watch: MonitorConfig,
    swap: SwapSlot,
    log: Option<QualityLog>,
    served: usize,
    /// `served` when the canaries last ran.
    last_canary: usize,
}

impl Worker {
    fn new(
        mut generator: Generator,
        pass_rows: usize,
        queue: Arc<Queue>,
        metrics: Arc<Metrics>,
        watch: MonitorConfig,
        swap: SwapSlot,
    ) -> Self {
        let monitor = QualityMonitor::new(watch.windows, watch.embedding_norms.clone());
        let log = watch
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
        Worker {
            generator,
            queue,
            metrics,
            monitor,
            pass_rows,
            watch,
            swap,
            log,
            served: 0,
            last_canary: 0,
        }
    }

    /// Whether a replacement model waits or the canaries are due: the
    /// batch stops admitting until it drains, then [`Worker::between_jobs`].
    pub(crate) fn due(&self) -> bool {
        let swap = self
            .swap
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        swap || self.canaries_due()
    }

    /// `canary_every` jobs admitted since the canaries last ran.
    fn canaries_due(&self) -> bool {
        let every = self.watch.canary_every;
        every > 0 && self.watch.canaries.is_some() && self.served >= self.last_canary + every
    }

    /// Takes a replacement model if one waits; runs the canaries due after
    /// the last job, before the next one (on the model that will serve it):
    /// a scrape between two requests never races a canary run.
    pub(crate) fn between_jobs(&mut self) {
        let next = self.swap.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(next) = next {
            self.generator = next;
            self.metrics.model_swaps.inc();
        }
        if self.canaries_due() {
            run_canaries(&mut self.generator, &self.watch, &self.metrics);
            self.last_canary = self.served;
        }
    }

    /// The quality record of the next job.
    pub(crate) fn new_record(&mut self) -> RequestRecord {
        self.served += 1;
        RequestRecord {
            request: self.served,
            ..RequestRecord::default()
        }
    }

    pub(crate) fn log(&mut self, record: &RequestRecord) {
        if let Some(log) = &mut self.log {
            log.write(record);
        }
    }
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
    let Some(first) = Outlet::open(&job, metrics, monitor, record) else {
        return;
    };
    // In turn, the samples of `n > 1` run one after another.
    for i in 0..job.n.max(1) {
        let mut out = first.sample(i);
        let result = g.generate(&job.prompt, &job.sample_config(i), |step| {
            out.send(&job, step, metrics, monitor, record)
        });
        // A gone client, a passed deadline or a failure ends the request.
        let stop = out.gone || out.late || result.is_err();
        out.close(&job, result, metrics, monitor);
        if stop {
            break;
        }
    }
}
// ANCHOR_END: serve_job

/// One request's side of generation, whoever drives the model (the serial
/// worker or the batch): what has been released to the client, when the
/// first token came, whether the client is gone or the deadline passed.
/// Each sample of a request has its own.
pub(crate) struct Outlet {
    sample: usize,
    queued_secs: f64,
    /// Bytes of text sent so far.
    released: usize,
    text: String,
    pub(crate) ttft: Option<f64>,
    pub(crate) gone: bool,
    late: bool,
}

impl Outlet {
    /// Starts serving `job`, unless its client has gone or its deadline
    /// passed while it waited (then it is counted and answered here).
    pub(crate) fn open(
        job: &Job,
        metrics: &Metrics,
        monitor: &mut QualityMonitor,
        record: &mut RequestRecord,
    ) -> Option<Outlet> {
        if job.events.is_closed() {
            metrics.cancelled.inc();
            return None;
        }
        if Instant::now() >= job.deadline {
            metrics.timed_out.inc();
            let _ = job.events.send(Event::Failed(timeout()));
            return None;
        }
        monitor.observe_prompt(&job.prompt);
        record.prompt.clone_from(&job.prompt);
        Some(Outlet {
            sample: 0,
            queued_secs: job.arrived.elapsed().as_secs_f64(),
            released: 0,
            text: String::new(),
            ttft: None,
            gone: false,
            late: false,
        })
    }

    /// A fresh outlet for sample `i` of the same request.
    pub(crate) fn sample(&self, i: usize) -> Outlet {
        Outlet {
            sample: i,
            queued_secs: self.queued_secs,
            released: 0,
            text: String::new(),
            ttft: None,
            gone: false,
            late: false,
        }
    }

    /// Sends one token (and the text it releases); false when the client is
    /// gone or the deadline has passed: generation stops.
    pub(crate) fn send(
        &mut self,
        job: &Job,
        step: &Step,
        metrics: &Metrics,
        monitor: &mut QualityMonitor,
        record: &mut RequestRecord,
    ) -> bool {
        self.ttft
            .get_or_insert_with(|| job.arrived.elapsed().as_secs_f64());
        // The Infrastructure Canon: what the model's own distribution says.
        monitor.observe_token(step.token, step.model_prob, step.entropy);
        metrics.record_token(step.model_prob, step.entropy);
        record.tokens.push(step.token);
        record.prob.push(step.model_prob);
        record.entropy.push(step.entropy);
        self.text.push_str(&step.text);
        let safe = (self.text.len() - held_back(&self.text, &job.config.stop)).max(self.released);
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
        let delta = self
            .text
            .get(self.released..safe)
            .unwrap_or_default()
            .to_string();
        self.released = safe;
        self.gone = job
            .events
            .send(Event::Token {
                sample: self.sample,
                text: delta,
                token,
            })
            .is_err();
        self.late = Instant::now() >= job.deadline;
        !self.gone && !self.late
    }

    /// The end: the rest of the text and the accounting, or the error.
    pub(crate) fn close(
        self,
        job: &Job,
        result: crate::error::Result<Generation>,
        metrics: &Metrics,
        monitor: &QualityMonitor,
    ) {
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
            Ok(out) if self.gone => {
                metrics.record_generation(&out, self.ttft);
                metrics.cancelled.inc();
                return;
            }
            Ok(out) if self.late => {
                metrics.record_generation(&out, self.ttft);
                metrics.timed_out.inc();
                Event::Failed(timeout())
            }
            Ok(out) => {
                metrics.record_generation(&out, self.ttft);
                Event::Done(Summary {
                    sample: self.sample,
                    tail: out
                        .text
                        .get(self.released..)
                        .unwrap_or_default()
                        .to_string(),
                    finish_reason: match out.stop_reason {
                        StopReason::MaxTokens => "length",
                        _ => "stop",
                    },
                    prompt_tokens: out.prompt_tokens,
                    completion_tokens: out.tokens.len(),
                    queued_secs: self.queued_secs,
                    ttft_secs: self.ttft,
                    generate_secs: out.generate_secs,
                    text: out.text,
                })
            }
        };
        let _ = job.events.send(event);
    }
}

/// The server's own deadline passed: 503, the status of a server that
/// cannot serve the request now (504 is a gateway's, waiting on an upstream;
/// 408 is for a client too slow to send its request). The error's type
/// tells it from a full queue.
pub(crate) fn timeout() -> ApiError {
    ApiError::new(
        503,
        "timeout_error",
        "request_timeout",
        "the request took longer than the server's time limit",
    )
}
