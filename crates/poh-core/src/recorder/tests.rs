use std::{sync::mpsc, time::Duration};

use super::*;
use crate::{poh::genesis, sha256, verify::verify_serial};

fn config(mode: PohMode, hashes_per_tick: u64, ticks_per_second: u64) -> PohConfig {
    PohConfig {
        hashes_per_tick,
        ticks_per_second,
        mode,
    }
}

/// Every record lands in the entry it was told, in sequence, and the chain verifies.
#[test]
fn records_land_where_they_are_told_and_the_chain_verifies() {
    let cfg = config(PohMode::Unpaced, 500, 160);
    let (sink, entries) = mpsc::sync_channel(1 << 16);
    let mut recorder = PohRecorder::spawn(cfg, PohState::genesis("rec"), sink).unwrap();
    let answers: Vec<(Vec<Hash>, Recorded)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let recorder = &recorder;
                s.spawn(move || {
                    (0..50)
                        .map(|i| {
                            let mixins: Vec<Hash> =
                                (0..1 + i % 3).map(|j| sha256(&[w, i, j])).collect();
                            (mixins.clone(), recorder.record(mixins).unwrap())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    recorder.shutdown().unwrap();
    let all: Vec<RecordedEntry> = entries.try_iter().collect();

    let chain: Vec<Entry> = all.iter().map(|r| r.entry.clone()).collect();
    verify_serial(&genesis("rec"), &chain, cfg.hashes_per_tick).unwrap();
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.index, i as u64);
    }
    // poh_seq numbers are contiguous over the stream of mixins.
    let mut seq = 0;
    for r in &all {
        assert_eq!(r.first_seq, seq);
        seq += r.entry.mixins.len() as u64;
    }
    for (mixins, at) in &answers {
        let entry = &all[at.entry_index as usize];
        assert_eq!(entry.entry.hash, at.hash);
        assert_eq!(entry.first_seq, at.first_seq);
        assert_eq!(&entry.entry.mixins, mixins);
    }
    // Every complete tick period is exactly hashes_per_tick hash operations.
    let mut period = 0;
    for r in &all {
        period += r.entry.num_hashes;
        if r.entry.is_tick() {
            assert_eq!(period, cfg.hashes_per_tick);
            period = 0;
        }
    }
    assert!(all.iter().filter(|r| r.entry.is_tick()).count() > 0);
    assert_eq!(recorder.state().entries, all.len() as u64);
}

#[test]
fn a_resumed_chain_continues_the_same_chain() {
    let cfg = config(PohMode::Unpaced, 300, 160);
    let (sink, entries) = mpsc::sync_channel(1 << 16);
    let mut first = PohRecorder::spawn(cfg, PohState::genesis("r"), sink.clone()).unwrap();
    first.record(vec![sha256(b"a")]).unwrap();
    first.shutdown().unwrap();
    let mut chain: Vec<Entry> = entries.try_iter().map(|r| r.entry).collect();
    // The state a store would rebuild from the entries it kept.
    let mut state = PohState::genesis("r");
    for e in &chain {
        state.advance(e, cfg.hashes_per_tick);
    }
    assert_eq!(state, first.state());

    let mut second = PohRecorder::spawn(cfg, state, sink).unwrap();
    let at = second.record(vec![sha256(b"b")]).unwrap();
    second.shutdown().unwrap();
    assert_eq!(at.first_seq, 1);
    chain.extend(entries.try_iter().map(|r| r.entry));
    verify_serial(&genesis("r"), &chain, cfg.hashes_per_tick).unwrap();
    let mut period = 0;
    for e in &chain {
        period += e.num_hashes;
        if e.is_tick() {
            assert_eq!(
                period, cfg.hashes_per_tick,
                "tick periods survive a restart"
            );
            period = 0;
        }
    }
}

/// Paced and low-power generators keep the clock: about `ticks_per_second` ticks a second,
/// not the thousands an unpaced one would make.
#[test]
fn paced_and_low_power_keep_the_tick_rate() {
    for mode in [PohMode::Paced, PohMode::LowPower] {
        let (sink, entries) = mpsc::sync_channel(1 << 16);
        let started = std::time::Instant::now();
        let mut recorder =
            PohRecorder::spawn(config(mode, 200, 50), PohState::genesis("p"), sink).unwrap();
        std::thread::sleep(Duration::from_millis(600));
        // Records are served while it waits for the clock.
        recorder.record(vec![sha256(b"x")]).unwrap();
        recorder.shutdown().unwrap();
        let expected = started.elapsed().as_secs_f64() * 50.0;
        let ticks = entries.try_iter().filter(|r| r.entry.is_tick()).count() as f64;
        assert!(
            (0.5 * expected..=1.2 * expected + 2.0).contains(&ticks),
            "{mode:?}: {ticks} ticks where the clock says {expected:.0}"
        );
    }
}

#[test]
fn unpaced_outruns_the_clock_and_reports_its_rate() {
    let (sink, entries) = mpsc::sync_channel(1 << 16);
    let mut recorder = PohRecorder::spawn(
        config(PohMode::Unpaced, 1000, 1),
        PohState::genesis("u"),
        sink,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    recorder.shutdown().unwrap();
    assert!(
        entries.try_iter().count() > 100,
        "an unpaced generator ignores ticks_per_second"
    );
    assert!(recorder.hashes_per_second() > 100_000.0);
}

#[test]
fn the_recorder_stops_when_its_consumer_is_gone_and_says_so() {
    let (sink, entries) = mpsc::sync_channel(1 << 16);
    let mut recorder = PohRecorder::spawn(
        config(PohMode::Unpaced, 100, 1),
        PohState::genesis("g"),
        sink,
    )
    .unwrap();
    drop(entries);
    while !recorder.is_finished() {
        std::thread::yield_now();
    }
    assert!(matches!(
        recorder.record(vec![sha256(b"late")]),
        Err(Error::RecorderStopped)
    ));
    assert!(matches!(recorder.shutdown(), Err(Error::RecorderStopped)));
    assert!(matches!(recorder.record(vec![]), Err(Error::EmptyRecord)));
}

#[test]
fn bad_settings_are_refused() {
    let (sink, _entries) = mpsc::sync_channel(1 << 16);
    for cfg in [
        config(PohMode::Paced, 0, 160),
        // A record could never fit in a one-hash tick period: the generator would only tick.
        config(PohMode::Paced, MIN_HASHES_PER_TICK - 1, 160),
        config(PohMode::Paced, MAX_HASHES_PER_TICK + 1, 160),
        config(PohMode::Paced, 100, 0),
    ] {
        assert!(matches!(
            PohRecorder::spawn(cfg, PohState::genesis("b"), sink.clone()),
            Err(Error::Config(_))
        ));
    }
}

/// The sink is bounded: a consumer that stops reading pauses the clock instead of growing
/// memory, and on shutdown the entries that found no room come back, so none is lost.
#[test]
fn a_slow_consumer_pauses_the_clock_and_loses_nothing() {
    let (sink, entries) = mpsc::sync_channel(4);
    let mut recorder = PohRecorder::spawn(
        config(PohMode::Unpaced, 100, 1),
        PohState::genesis("s"),
        sink,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let made = recorder.state().entries;
    assert!(
        made <= 5,
        "{made} entries made for a sink of 4 nobody reads"
    );
    // A record is still served while nobody reads: the one who asked may be the consumer.
    // (Should it not be, a watchdog reads after 10 s, so the test fails instead of hanging.)
    let (answered, done) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let fired = done.recv_timeout(Duration::from_secs(10)).is_err();
        let until = std::time::Instant::now() + Duration::from_secs(2);
        while fired && std::time::Instant::now() < until {
            let _ = entries.recv_timeout(Duration::from_millis(10));
        }
        (fired, entries)
    });
    let recorded = recorder.record(vec![sha256(b"stalled")]).unwrap();
    let _ = answered.send(());
    let (fired, entries) = watchdog.join().unwrap();
    assert!(
        !fired,
        "the record was answered only once the consumer read"
    );
    assert_eq!(recorded.first_seq, 0);
    let leftover = recorder.shutdown().unwrap();
    let mut all: Vec<RecordedEntry> = entries.try_iter().collect();
    all.extend(leftover);
    assert_eq!(all.len() as u64, recorder.state().entries);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.index, i as u64);
    }
    let chain: Vec<Entry> = all.into_iter().map(|r| r.entry).collect();
    verify_serial(&genesis("s"), &chain, 100).unwrap();
}

/// The rate is what was measured so far from the first moments, not 0 until a window fills.
#[test]
fn the_rate_is_reported_from_the_start() {
    let (sink, _entries) = mpsc::sync_channel(1 << 16);
    let mut recorder = PohRecorder::spawn(
        config(PohMode::Paced, 200, 50),
        PohState::genesis("r"),
        sink,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(30));
    let rate = recorder.hashes_per_second();
    // 10,000 hashes a second, paced; a busy machine may lag, but not to nothing.
    assert!((1_000.0..=20_000.0).contains(&rate), "{rate}");
    recorder.shutdown().unwrap();
}
