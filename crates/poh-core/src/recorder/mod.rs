//! [`PohRecorder`]: the PoH generator on its own thread. It ticks continuously (idle or not),
//! records each batch of mixins handed to it as one entry, and sends every entry, ticks
//! included and in order, to the consumer that stores them.
//!
//! Modes: `paced` spreads `hashes_per_tick × ticks_per_second` hashes evenly over each second
//! (the SPEC's clock); `unpaced` hashes as fast as the core allows; `low_power` sleeps until
//! each tick is due and then does its hashes in one burst (for small machines, with a small
//! `hashes_per_tick`). A record is served between hash batches, so it waits at most one batch.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::{self, RecvTimeoutError, TryRecvError, TrySendError},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use crate::{
    Error, Hash,
    chain::Backend,
    poh::{Entry, Poh, PohState},
};

/// Smallest `hashes_per_tick` a generator runs with: a record takes one hash of a tick period
/// and the tick its last one, so with fewer a record could never fit and the generator would
/// only tick.
pub const MIN_HASHES_PER_TICK: u64 = 2;
/// Largest `hashes_per_tick` a chain may use; it also bounds what a verifier will hash for one
/// entry (about a quarter of a second here).
pub const MAX_HASHES_PER_TICK: u64 = 1 << 24;
/// Hash steps between looks at the command queue: ~100 µs of hashing.
const BATCH: u64 = 2048;
/// Longest a paced generator sleeps between steps.
const PACE: Duration = Duration::from_millis(1);

/// How the generator spends its time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PohMode {
    /// `hashes_per_tick × ticks_per_second` hashes a second, spread evenly.
    #[default]
    Paced,
    /// As fast as one core goes.
    Unpaced,
    /// A timer tick `ticks_per_second` times a second, its hashes in one burst.
    LowPower,
}

/// PoH settings (SPEC §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PohConfig {
    /// Hash operations per tick (default 12,500).
    pub hashes_per_tick: u64,
    /// Ticks per second when paced or low-power (default 160).
    pub ticks_per_second: u64,
    /// How the generator runs.
    pub mode: PohMode,
}

impl Default for PohConfig {
    fn default() -> Self {
        Self {
            hashes_per_tick: 12_500,
            ticks_per_second: 160,
            mode: PohMode::Paced,
        }
    }
}

impl PohConfig {
    /// Refuses settings that cannot run.
    pub fn validate(&self) -> Result<(), Error> {
        if !(MIN_HASHES_PER_TICK..=MAX_HASHES_PER_TICK).contains(&self.hashes_per_tick) {
            return Err(Error::Config(
                "hashes_per_tick must be between 2 and 16777216",
            ));
        }
        if !(1..=100_000).contains(&self.ticks_per_second) {
            return Err(Error::Config(
                "ticks_per_second must be between 1 and 100000",
            ));
        }
        Ok(())
    }

    /// The target rate when paced.
    pub fn target_hashes_per_second(&self) -> f64 {
        (self.hashes_per_tick * self.ticks_per_second) as f64
    }
}

/// An entry as emitted, with its place in the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEntry {
    /// Index of the entry in the chain, from 0.
    pub index: u64,
    /// `poh_seq` of its first mixin (for a tick: of the next mixin to come).
    pub first_seq: u64,
    /// The entry.
    pub entry: Entry,
}

/// Where a batch of mixins landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// Index of the entry that recorded them.
    pub entry_index: u64,
    /// `poh_seq` of the first mixin; the others follow in order.
    pub first_seq: u64,
    /// The entry's hash: every mixin's `poh_hash`.
    pub hash: Hash,
}

struct Command {
    mixins: Vec<Hash>,
    reply: mpsc::SyncSender<Recorded>,
}

struct Shared {
    /// State after the last emitted entry.
    state: Mutex<PohState>,
    /// Hash operations since genesis, as of the last batch (ahead of `state` within a tick).
    hashed: AtomicU64,
    /// The rate, measured from these samples when asked.
    rate: Mutex<RateMeter>,
    stop: AtomicBool,
}

/// Handle to the generator thread. Dropping it stops the thread.
pub struct PohRecorder {
    commands: Option<mpsc::Sender<Command>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Result<Vec<RecordedEntry>, Error>>>,
}

impl PohRecorder {
    /// Starts generating from `start` (a genesis or a resumed state); every entry goes to `sink`.
    /// The sink is bounded: when its consumer falls that far behind, the clock waits for it
    /// rather than hold more entries, while records are still served.
    pub fn spawn(
        config: PohConfig,
        start: PohState,
        sink: mpsc::SyncSender<RecordedEntry>,
    ) -> Result<Self, Error> {
        config.validate()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(start),
            hashed: AtomicU64::new(start.total_hashes),
            rate: Mutex::new(RateMeter::starting(Instant::now(), start.total_hashes)),
            stop: AtomicBool::new(false),
        });
        let (commands, queue) = mpsc::channel();
        let poh = Poh::new(start, config.hashes_per_tick, Backend::fastest());
        let mut generator = Generator {
            poh,
            config,
            queue,
            sink,
            shared: shared.clone(),
            backlog: VecDeque::new(),
        };
        let thread = std::thread::Builder::new()
            .name("poh-recorder".into())
            .spawn(move || generator.run())
            .map_err(|_| Error::RecorderStopped)?;
        Ok(Self {
            commands: Some(commands),
            shared,
            thread: Some(thread),
        })
    }

    /// Records `mixins` (at least one) as one entry and waits until it is made. The entry
    /// reaches the sink in order, as soon as the sink has room: a consumer that calls this
    /// and only then drains the sink cannot deadlock with the generator.
    pub fn record(&self, mixins: Vec<Hash>) -> Result<Recorded, Error> {
        if mixins.is_empty() {
            return Err(Error::EmptyRecord);
        }
        let (reply, answer) = mpsc::sync_channel(1);
        self.commands
            .as_ref()
            .ok_or(Error::RecorderStopped)?
            .send(Command { mixins, reply })
            .map_err(|_| Error::RecorderStopped)?;
        answer.recv().map_err(|_| Error::RecorderStopped)
    }

    /// The chain as of the last emitted entry.
    pub fn state(&self) -> PohState {
        *self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hashes per second measured over the last few seconds (since the start, in the first
    /// ones).
    pub fn hashes_per_second(&self) -> f64 {
        self.probe().hashes_per_second()
    }

    /// A handle that reads the measured rate, for whoever reports it.
    pub fn probe(&self) -> RateProbe {
        RateProbe(self.shared.clone())
    }

    /// Whether the thread has ended (on shutdown, or because the sink went away).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops the thread after the entry in progress and waits for it. The entries the full
    /// sink had no room for are returned, oldest first: they follow whatever the sink holds.
    pub fn shutdown(&mut self) -> Result<Vec<RecordedEntry>, Error> {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.commands = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(Error::RecorderStopped),
            None => Ok(Vec::new()),
        }
    }
}

impl Drop for PohRecorder {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Reads the rate a [`PohRecorder`] measures; cheap to clone.
#[derive(Clone)]
pub struct RateProbe(Arc<Shared>);

impl RateProbe {
    /// A probe with no generator behind it (a replica copies its chain and hashes none of
    /// its own): `total` hashes, at no rate.
    pub fn stopped(total: u64) -> Self {
        Self(Arc::new(Shared {
            state: Mutex::new(PohState::default()),
            hashed: AtomicU64::new(total),
            rate: Mutex::new(RateMeter::starting(Instant::now(), total)),
            stop: AtomicBool::new(true),
        }))
    }

    /// Hashes in the chain so far: the stored chain's total at start, then every hash since.
    pub fn hashes_total(&self) -> u64 {
        self.0.hashed.load(Ordering::Relaxed)
    }

    /// Hashes per second over the last four seconds, or since the start when younger.
    pub fn hashes_per_second(&self) -> f64 {
        let total = self.0.hashed.load(Ordering::Relaxed);
        self.0
            .rate
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .rate(Instant::now(), total)
    }
}

/// Samples of the hash count, a quarter of a second apart, over the last four seconds; the
/// first is the start, so a young generator reports what it did so far.
struct RateMeter {
    samples: VecDeque<(Instant, u64)>,
}

impl RateMeter {
    fn starting(now: Instant, total: u64) -> Self {
        Self {
            samples: VecDeque::from([(now, total)]),
        }
    }

    fn rate(&mut self, now: Instant, total: u64) -> f64 {
        if self
            .samples
            .back()
            .is_none_or(|(t, _)| now.duration_since(*t) >= Duration::from_millis(250))
        {
            self.samples.push_back((now, total));
            while self.samples.len() > 17 {
                self.samples.pop_front();
            }
        }
        let Some(&(t0, h0)) = self.samples.front() else {
            return 0.0;
        };
        let secs = now.duration_since(t0).as_secs_f64();
        if secs > 0.0 {
            total.saturating_sub(h0) as f64 / secs
        } else {
            0.0
        }
    }
}

struct Generator {
    poh: Poh,
    config: PohConfig,
    queue: mpsc::Receiver<Command>,
    sink: mpsc::SyncSender<RecordedEntry>,
    shared: Arc<Shared>,
    /// Entries made while the sink was full, oldest first, sent as it makes room. While any
    /// wait the clock does not advance, so only records (each of which has a caller waiting
    /// for it) add to them: a stalled consumer pauses the clock but never stops a record.
    backlog: VecDeque<RecordedEntry>,
}

/// Why the loop ends.
enum Stop {
    Requested,
    SinkGone,
}

impl Generator {
    fn run(&mut self) -> Result<Vec<RecordedEntry>, Error> {
        match self.run_loop() {
            Stop::Requested => Ok(std::mem::take(&mut self.backlog).into()),
            Stop::SinkGone => Err(Error::RecorderStopped),
        }
    }

    fn run_loop(&mut self) -> Stop {
        let tick_interval = Duration::from_secs_f64(1.0 / self.config.ticks_per_second as f64);
        let rate = self.config.target_hashes_per_second();
        let mut started = Instant::now();
        let mut base = self.poh.state().total_hashes;
        let mut next_tick = started + tick_interval;
        loop {
            if self.shared.stop.load(Ordering::Relaxed) {
                return Stop::Requested;
            }
            // The consumer is behind: the clock waits for it, and records are still served.
            let behind = self.send_backlog().and_then(|()| {
                if self.backlog.is_empty() {
                    Ok(false)
                } else {
                    self.wait(PACE).map(|()| true)
                }
            });
            match behind {
                Ok(false) => {}
                Ok(true) => continue,
                Err(stop) => return stop,
            }
            match self.config.mode {
                PohMode::Unpaced => {
                    if let Err(stop) = self.serve_waiting() {
                        return stop;
                    }
                    if let Err(stop) = self.hash(BATCH) {
                        return stop;
                    }
                }
                PohMode::Paced => {
                    let mut done = self.poh.state().total_hashes - base;
                    let due = (started.elapsed().as_secs_f64() * rate) as u64;
                    if due.saturating_sub(done) as f64 > rate {
                        // More than a second behind (a suspended machine, a slow core): keep
                        // the rate from now on instead of bursting to catch up.
                        started = Instant::now();
                        base += done;
                        done = 0;
                    }
                    let due = (started.elapsed().as_secs_f64() * rate) as u64;
                    let step = due.saturating_sub(done).min(BATCH);
                    let result = if step == 0 {
                        // Ahead of the clock: wait for the next batch to fall due (at most a
                        // millisecond, so a slow clock still advances smoothly), or a record.
                        self.wait(Duration::from_secs_f64(BATCH as f64 / rate).min(PACE))
                    } else {
                        self.serve_waiting().and_then(|()| self.hash(step))
                    };
                    if let Err(stop) = result {
                        return stop;
                    }
                }
                PohMode::LowPower => {
                    let now = Instant::now();
                    if now < next_tick {
                        if let Err(stop) = self.wait(next_tick - now) {
                            return stop;
                        }
                        continue;
                    }
                    // Far behind (a suspended machine): resume the schedule from now.
                    next_tick = (next_tick + tick_interval).max(now);
                    if let Err(stop) = self.hash(u64::MAX) {
                        return stop;
                    }
                }
            }
        }
    }

    /// Up to `max` hash steps, and the tick when it falls due.
    fn hash(&mut self, max: u64) -> Result<(), Stop> {
        let due = self.poh.hash_steps(max);
        self.shared
            .hashed
            .store(self.poh.state().total_hashes, Ordering::Relaxed);
        if due {
            self.tick()?;
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<(), Stop> {
        match self.poh.tick() {
            Some(entry) => self.emit(entry),
            None => Ok(()),
        }
    }

    /// Waits up to `timeout` for a record and serves it.
    fn wait(&mut self, timeout: Duration) -> Result<(), Stop> {
        match self.queue.recv_timeout(timeout) {
            Ok(command) => self.serve(command),
            Err(RecvTimeoutError::Timeout) => Ok(()),
            Err(RecvTimeoutError::Disconnected) => Err(Stop::Requested),
        }
    }

    fn serve_waiting(&mut self) -> Result<(), Stop> {
        loop {
            match self.queue.try_recv() {
                Ok(command) => self.serve(command)?,
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) => return Err(Stop::Requested),
            }
        }
    }

    fn serve(&mut self, command: Command) -> Result<(), Stop> {
        let mut mixins = command.mixins;
        loop {
            let first_seq = self.poh.state().mixins;
            match self.poh.record(mixins) {
                Ok(entry) => {
                    let recorded = Recorded {
                        entry_index: self.poh.state().entries - 1,
                        first_seq,
                        hash: entry.hash,
                    };
                    self.emit(entry)?;
                    // The caller may have given up waiting; the entry stands regardless.
                    let _ = command.reply.send(recorded);
                    return Ok(());
                }
                // The tick is due: it goes first, then the record in the next period.
                Err(back) if !back.is_empty() => {
                    mixins = back;
                    self.hash(u64::MAX)?;
                }
                Err(_) => return Ok(()),
            }
        }
    }

    fn emit(&mut self, entry: Entry) -> Result<(), Stop> {
        let state = self.poh.state();
        let recorded = RecordedEntry {
            index: state.entries - 1,
            first_seq: state.mixins - entry.mixins.len() as u64,
            entry,
        };
        // Emitted right as the entry ends, so this is exactly the state after it.
        *self.shared.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
        self.shared
            .hashed
            .store(state.total_hashes, Ordering::Relaxed);
        self.backlog.push_back(recorded);
        self.send_backlog()
    }

    /// Sends what the backlog holds, oldest first, while the sink has room.
    fn send_backlog(&mut self) -> Result<(), Stop> {
        while let Some(next) = self.backlog.pop_front() {
            match self.sink.try_send(next) {
                Ok(()) => {}
                Err(TrySendError::Full(back)) => {
                    self.backlog.push_front(back);
                    return Ok(());
                }
                Err(TrySendError::Disconnected(_)) => return Err(Stop::SinkGone),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
