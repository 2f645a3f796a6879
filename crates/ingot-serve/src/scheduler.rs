//! The engine thread: one step engine over the model, fed by a bounded queue (continuous
//! batching). Requests join the running batch at the next step while fewer than `parallel` rows
//! run; the rest wait in the queue; a full queue is refused at once (503 with Retry-After). Each
//! request's text and results go back on its own channel; a request whose channel is closed (the
//! client went away) has its rows cancelled at the next step, so no row is left busy.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingot_generate::{Engine, Event, GenerateParams, Generation, Pipeline, RowId, SamplingParams};
use tokio::sync::mpsc::UnboundedSender;

/// What a request hears back, per choice.
#[derive(Debug)]
pub enum JobEvent {
    Text {
        choice: usize,
        text: String,
    },
    Done {
        choice: usize,
        generation: Generation,
    },
    /// The engine failed; the message says why.
    Failed(String),
}

/// One request's work: a prompt and one sampling per choice.
pub struct Job {
    pub prompt: Vec<u32>,
    pub params: GenerateParams,
    pub samplings: Vec<SamplingParams>,
    pub events: UnboundedSender<JobEvent>,
}

enum Command {
    Submit(u64, Job),
    Cancel(u64),
}

/// Counters for `/metrics` (Prometheus text).
#[derive(Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub rejected: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub cached_prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
    pub queued: AtomicUsize,
    pub busy_rows: AtomicUsize,
    /// Sums and counts, microseconds: request latency and time to first token.
    pub latency_us: AtomicU64,
    pub latency_n: AtomicU64,
    pub ttft_us: AtomicU64,
    pub ttft_n: AtomicU64,
}

impl Stats {
    pub fn prometheus(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            s.push_str(&format!("# HELP ingot_{name} {help}\n# TYPE ingot_{name} {kind}\ningot_{name} {value}\n"));
        };
        metric("requests_total", "counter", "Completion requests accepted.", g(&self.requests).to_string());
        metric(
            "requests_rejected_total",
            "counter",
            "Requests refused because the queue was full.",
            g(&self.rejected).to_string(),
        );
        metric("prompt_tokens_total", "counter", "Prompt tokens processed.", g(&self.prompt_tokens).to_string());
        metric(
            "prompt_tokens_cached_total",
            "counter",
            "Prompt tokens taken from the prompt cache instead of computed.",
            g(&self.cached_prompt_tokens).to_string(),
        );
        metric("completion_tokens_total", "counter", "Tokens generated.", g(&self.completion_tokens).to_string());
        metric("queue_length", "gauge", "Requests waiting for a row.", self.queued.load(Ordering::Relaxed).to_string());
        metric("busy_rows", "gauge", "Rows generating now.", self.busy_rows.load(Ordering::Relaxed).to_string());
        let secs = |sum: &AtomicU64| format!("{:.6}", g(sum) as f64 / 1e6);
        metric("request_seconds_sum", "counter", "Total time from request to last token.", secs(&self.latency_us));
        metric("request_seconds_count", "counter", "Requests finished.", g(&self.latency_n).to_string());
        metric("time_to_first_token_seconds_sum", "counter", "Total time to the first token.", secs(&self.ttft_us));
        metric("time_to_first_token_seconds_count", "counter", "First tokens sent.", g(&self.ttft_n).to_string());
        s
    }
}

/// Why a job was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue is full.
    Busy,
    /// The server is shutting down, or the engine thread has stopped.
    Closed,
}

/// The handle the HTTP side holds.
#[derive(Clone)]
pub struct Scheduler {
    tx: Sender<Command>,
    next: Arc<AtomicU64>,
    pub stats: Arc<Stats>,
    queue_capacity: usize,
    closing: Arc<AtomicBool>,
}

/// Cancels its job when dropped (a client that disconnects drops its handler's future).
pub struct JobGuard {
    id: u64,
    tx: Sender<Command>,
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        let _ = self.tx.send(Command::Cancel(self.id));
    }
}

impl Scheduler {
    /// Start the engine thread over `pipeline`: at most `parallel` rows at once, `queue_capacity`
    /// requests waiting, `prompt_cache` positions of recent prompts kept for reuse.
    pub fn start(
        pipeline: Arc<Pipeline>,
        parallel: usize,
        queue_capacity: usize,
        prompt_cache: usize,
    ) -> (Self, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(Stats::default());
        let closing = Arc::new(AtomicBool::new(false));
        let thread_stats = stats.clone();
        let handle = std::thread::Builder::new()
            .name("ingot-engine".into())
            .spawn(move || run(&pipeline, rx, parallel.max(1), prompt_cache, &thread_stats))
            .expect("the engine thread starts");
        (Self { tx, next: Arc::new(AtomicU64::new(1)), stats, queue_capacity, closing }, handle)
    }

    /// Queue `job`; its events arrive on `job.events`. Keep the guard for as long as the result
    /// is wanted: dropping it cancels the job.
    pub fn submit(&self, job: Job) -> Result<JobGuard, SubmitError> {
        if self.closing.load(Ordering::Relaxed) {
            return Err(SubmitError::Closed);
        }
        let queued = self.stats.queued.fetch_add(1, Ordering::SeqCst);
        if queued >= self.queue_capacity {
            self.stats.queued.fetch_sub(1, Ordering::SeqCst);
            self.stats.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(SubmitError::Busy);
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        self.stats.prompt_tokens.fetch_add(job.prompt.len() as u64, Ordering::Relaxed);
        if self.tx.send(Command::Submit(id, job)).is_err() {
            self.stats.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(SubmitError::Closed);
        }
        Ok(JobGuard { id, tx: self.tx.clone() })
    }

    /// Stop taking new jobs (running and queued ones finish).
    pub fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }
}

/// A row's owner: its job and the choice it is.
struct Owner {
    job: u64,
    choice: usize,
}

struct Running {
    events: UnboundedSender<JobEvent>,
    rows: Vec<RowId>,
    started: Instant,
    first_token: bool,
}

fn run(p: &Pipeline, rx: Receiver<Command>, parallel: usize, prompt_cache: usize, stats: &Stats) {
    let new_engine = || Engine::new(&p.model, &p.tokenizer, &p.device).keep_prompts(prompt_cache);
    let mut engine = new_engine();
    let mut waiting: VecDeque<(u64, Job)> = VecDeque::new();
    let mut owners: HashMap<RowId, Owner> = HashMap::new();
    let mut running: HashMap<u64, Running> = HashMap::new();
    loop {
        // Take commands: wait for one when there is nothing to do, else just drain.
        let idle = engine.is_empty() && waiting.is_empty();
        let first = if idle {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(c) => Some(c),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        } else {
            None
        };
        let mut commands: Vec<Command> = first.into_iter().collect();
        commands.extend(rx.try_iter());
        for command in commands {
            match command {
                Command::Submit(id, job) => waiting.push_back((id, job)),
                Command::Cancel(id) => {
                    if let Some(at) = waiting.iter().position(|(j, _)| *j == id) {
                        waiting.remove(at);
                        stats.queued.fetch_sub(1, Ordering::SeqCst);
                    }
                    if let Some(r) = running.get(&id) {
                        for &row in &r.rows {
                            engine.cancel(row);
                        }
                    }
                }
            }
        }
        // Admit waiting jobs while their rows fit.
        while let Some((_, job)) = waiting.front() {
            if engine.len() + job.samplings.len() > parallel && !engine.is_empty() {
                break;
            }
            let Some((id, job)) = waiting.pop_front() else { break };
            stats.queued.fetch_sub(1, Ordering::SeqCst);
            match engine.join_group(&job.prompt, &job.params, &job.samplings, None, None) {
                Ok(rows) => {
                    for (choice, &row) in rows.iter().enumerate() {
                        owners.insert(row, Owner { job: id, choice });
                    }
                    running
                        .insert(id, Running { events: job.events, rows, started: Instant::now(), first_token: false });
                }
                Err(e) => {
                    let _ = job.events.send(JobEvent::Failed(e.to_string()));
                }
            }
        }
        if engine.is_empty() {
            continue;
        }
        stats.busy_rows.store(engine.len(), Ordering::Relaxed);
        let mut gone: Vec<u64> = Vec::new();
        let result = engine.step(&mut |event| match event {
            Event::Text { row, text } => {
                if let Some(o) = owners.get(&row) {
                    if let Some(r) = running.get_mut(&o.job) {
                        if !r.first_token {
                            r.first_token = true;
                            stats.ttft_us.fetch_add(r.started.elapsed().as_micros() as u64, Ordering::Relaxed);
                            stats.ttft_n.fetch_add(1, Ordering::Relaxed);
                        }
                        if r.events.send(JobEvent::Text { choice: o.choice, text: text.to_string() }).is_err() {
                            gone.push(o.job);
                        }
                    }
                }
            }
            Event::Done { row, generation } => {
                if let Some(o) = owners.remove(&row) {
                    // Before the client hears: the row is free once its result is out.
                    stats.busy_rows.fetch_sub(1, Ordering::SeqCst);
                    stats.completion_tokens.fetch_add(generation.tokens.len() as u64, Ordering::Relaxed);
                    if o.choice == 0 {
                        stats.cached_prompt_tokens.fetch_add(generation.cached_tokens as u64, Ordering::Relaxed);
                    }
                    if let Some(r) = running.get_mut(&o.job) {
                        let _ = r.events.send(JobEvent::Done { choice: o.choice, generation });
                        r.rows.retain(|&x| x != row);
                        if r.rows.is_empty() {
                            stats.latency_us.fetch_add(r.started.elapsed().as_micros() as u64, Ordering::Relaxed);
                            stats.latency_n.fetch_add(1, Ordering::Relaxed);
                            running.remove(&o.job);
                        }
                    }
                }
            }
        });
        if let Err(e) = result {
            // A failed step: every running job hears why, and the engine starts afresh.
            for (_, r) in running.drain() {
                let _ = r.events.send(JobEvent::Failed(e.to_string()));
            }
            owners.clear();
            engine = new_engine();
        }
        for id in gone {
            if let Some(r) = running.get(&id) {
                for &row in &r.rows {
                    engine.cancel(row);
                }
            }
        }
        stats.busy_rows.store(engine.len(), Ordering::Relaxed);
    }
}
