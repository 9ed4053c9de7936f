//! Whether anything the soak sampled grows without bound.
//!
//! The samples are cut in thirds. The first is warm-up and left out: caches fill, the id
//! index's first memtable fills, the runtime's thread pools reach their working size, and
//! the clients' connections open. The mean of the last third is then compared with the mean
//! of the middle third: a bounded quantity has settled by then and moves only within its
//! noise, while one that grows with time (a leak per request, per stream, per transaction)
//! shows as a difference proportional to the run's length. Means, not single samples, so one
//! sample caught in a burst does not decide.
//!
//! The slack each quantity is allowed, and why a healthy node stays within it (the figures
//! are from 3- and 10-minute runs at the defaults: 2,000 tx/s, TTL 2 min, 4 subscribers):
//!
//! - **open file descriptors: [`FD_SLACK`] (8)**. The clients connect once for the whole run
//!   (see `load`), so what moves is the store's files: the id index's run files (one more
//!   per 262,144 ids, merged back into one past 4) and the log's 64 MiB segments (one open
//!   file each; the TTL gives the oldest back as new ones open, 2 or 3 at a time at the
//!   default rate). The node held 27 to 33. A descriptor leaked per request, stream or
//!   subscription would add hundreds per interval. With `--ttl off` the segments add one per
//!   64 MiB stored (about one per 2 minutes at the default rate), which a 30-minute run still
//!   absorbs; a much higher rate without a TTL would not.
//! - **threads: [`THREAD_SLACK`] (8)**. Two runtime workers and four named threads (writer,
//!   committer, recorder, id index) are fixed; the runtime's blocking pool, which serves store
//!   reads and the TTL sweep, grows to the most such tasks at once and keeps a thread while
//!   work keeps coming to it (it lets one go after 10 s idle), so it ratchets up to the
//!   load's peak concurrency in the first minutes and then stays (the node went from 16 to 22
//!   in 5 minutes, then held 22). A thread leaked per request would pass 8 within an
//!   interval, one per TTL sweep (every 15 s) within 2 minutes.
//! - **resident memory: [`RSS_SLACK`] (20 %) of the middle third's mean, and at least
//!   [`RSS_FLOOR_MIB`] (16 MiB)**. Caches fill for minutes (the index database's, 32 MiB; the
//!   id index's memtable of 262,144 ids, written out when full, so it saws by a few MiB): the
//!   node went from 46 MiB to 105 MiB in its first 4 1/2 minutes, then held 105 to 115 MiB.
//!   What grows with the store for good is the id index's bloom filters, 1.25 bytes per
//!   transaction: 1.5 MiB per 10 minutes at the default rate. The floor is for short runs,
//!   where the caches still filling are more than 20 % of a small mean. A leak of even 100
//!   bytes per transaction at the default rate is 115 MiB per 10 minutes.

use serde::Serialize;

use super::Sample;

/// The most the mean count of open file descriptors may grow (see the module's notes).
pub(super) const FD_SLACK: f64 = 8.0;
/// The most the mean count of threads may grow.
pub(super) const THREAD_SLACK: f64 = 8.0;
/// The most the mean resident memory may grow, as a share of the middle third's mean...
pub(super) const RSS_SLACK: f64 = 0.20;
/// ...or in MiB, whichever is larger.
pub(super) const RSS_FLOOR_MIB: f64 = 16.0;

/// One quantity's mean over the middle and the last third of the samples.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub(super) struct Thirds {
    pub middle: f64,
    pub last: f64,
}

impl Thirds {
    fn of(samples: &[Sample], value: impl Fn(&Sample) -> f64) -> Self {
        let (middle, last) = split(samples);
        Self {
            middle: mean(middle, &value),
            last: mean(last, &value),
        }
    }

    fn grew(&self) -> f64 {
        self.last - self.middle
    }
}

/// The three quantities' thirds.
#[derive(Clone, Copy, Debug, Serialize)]
pub(super) struct Growth {
    pub rss_mib: Thirds,
    pub fds: Thirds,
    pub threads: Thirds,
}

/// The middle and the last third of `samples` (the first third left out as warm-up).
fn split(samples: &[Sample]) -> (&[Sample], &[Sample]) {
    let third = samples.len() / 3;
    let (_, rest) = samples.split_at(third);
    rest.split_at(third.max(1).min(rest.len()))
}

fn mean(samples: &[Sample], value: impl Fn(&Sample) -> f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(value).sum();
    (sum / samples.len() as f64 * 10.0).round() / 10.0
}

/// The thirds of `samples`, which are at least 3.
pub(super) fn growth(samples: &[Sample]) -> Growth {
    Growth {
        rss_mib: Thirds::of(samples, |s| s.rss_mib),
        fds: Thirds::of(samples, |s| s.fds as f64),
        threads: Thirds::of(samples, |s| s.threads as f64),
    }
}

/// The most resident memory may grow from `middle` MiB.
pub(super) fn rss_allowed(middle: f64) -> f64 {
    (middle * RSS_SLACK).max(RSS_FLOOR_MIB)
}

/// What grows past its slack, one phrase each.
pub(super) fn unbounded(growth: &Growth) -> Vec<String> {
    let mut found = Vec::new();
    let Growth {
        rss_mib,
        fds,
        threads,
    } = growth;
    if fds.grew() > FD_SLACK {
        found.push(format!(
            "open fds grew from {:.1} to {:.1} (more than {FD_SLACK})",
            fds.middle, fds.last
        ));
    }
    if threads.grew() > THREAD_SLACK {
        found.push(format!(
            "threads grew from {:.1} to {:.1} (more than {THREAD_SLACK})",
            threads.middle, threads.last
        ));
    }
    if rss_mib.grew() > rss_allowed(rss_mib.middle) {
        found.push(format!(
            "resident memory grew from {:.1} to {:.1} MiB (more than {:.1} MiB)",
            rss_mib.middle,
            rss_mib.last,
            rss_allowed(rss_mib.middle)
        ));
    }
    found
}

/// Whether the node stopped acknowledging: nothing acknowledged over the last third.
pub(super) fn stalled(samples: &[Sample]) -> bool {
    let (middle, last) = split(samples);
    match (middle.last(), last.last()) {
        (Some(before), Some(end)) => end.acked <= before.acked,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(rss: &[f64], fds: &[u64], threads: &[u64]) -> Vec<Sample> {
        (0..rss.len())
            .map(|i| Sample {
                t_s: i as f64,
                acked: i as u64 * 100,
                tx_per_s: 100.0,
                rss_mib: rss[i],
                fds: fds[i],
                threads: threads[i],
                errors: 0,
            })
            .collect()
    }

    #[test]
    fn the_first_third_is_warm_up_and_the_last_two_are_compared() {
        let s = samples(
            &[10.0, 50.0, 100.0, 100.0, 101.0, 103.0],
            &[5, 40, 40, 41, 41, 42],
            &[3, 20, 20, 20, 21, 21],
        );
        let g = growth(&s);
        assert_eq!(
            g.rss_mib,
            Thirds {
                middle: 100.0,
                last: 102.0
            }
        );
        assert_eq!(
            g.fds,
            Thirds {
                middle: 40.5,
                last: 41.5
            }
        );
        assert_eq!(
            g.threads,
            Thirds {
                middle: 20.0,
                last: 21.0
            }
        );
        assert!(unbounded(&g).is_empty());
        assert!(!stalled(&s));
    }

    #[test]
    fn a_leak_of_each_kind_is_named() {
        let n = 9;
        let rss: Vec<f64> = (0..n).map(|i| 100.0 + 20.0 * i as f64).collect();
        let fds: Vec<u64> = (0..n).map(|i| 40 + 10 * i).collect();
        let threads: Vec<u64> = (0..n).map(|i| 20 + 5 * i).collect();
        let found = unbounded(&growth(&samples(&rss, &fds, &threads)));
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].starts_with("open fds grew from 80.0 to 110.0"));
        assert!(found[1].starts_with("threads grew"));
        assert!(found[2].starts_with("resident memory grew from 180.0 to 240.0 MiB"));
    }

    #[test]
    fn memory_is_allowed_a_share_or_the_floor() {
        assert_eq!(rss_allowed(400.0), 80.0);
        assert_eq!(rss_allowed(30.0), RSS_FLOOR_MIB);
        let small = samples(&[5.0, 20.0, 30.0, 40.0], &[9; 4], &[9; 4]);
        assert!(unbounded(&growth(&small)).is_empty());
    }

    #[test]
    fn a_node_that_acknowledges_nothing_in_the_last_third_stalled() {
        let mut s = samples(&[1.0; 6], &[1; 6], &[1; 6]);
        for sample in &mut s[3..] {
            sample.acked = 300;
        }
        assert!(stalled(&s));
    }
}
