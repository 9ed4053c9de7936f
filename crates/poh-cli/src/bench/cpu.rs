//! CPU time of a process, from `/proc/<pid>/stat` (user + system), so a bench can report
//! microseconds of CPU per transaction: a figure that holds on noisy machines where
//! transactions per second do not.

use anyhow::Context as _;

/// CPU seconds (user + system) that process `pid` ("self" for this one) has used so far.
pub(crate) fn seconds(pid: &str) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let ticks = parse_ticks(&stat).with_context(|| format!("{path} has no CPU times"))?;
    Ok(ticks as f64 / ticks_per_second())
}

/// `utime + stime` from a stat line. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted after its last `)`.
fn parse_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(target_os = "linux")]
fn ticks_per_second() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

#[cfg(not(target_os = "linux"))]
fn ticks_per_second() -> f64 {
    100.0
}

/// CPU microseconds per transaction between two readings, to 0.1 µs (the reading's
/// precision is far coarser than the float's, so more digits would only be noise).
pub(crate) fn us_per_tx(before: f64, after: f64, transactions: f64) -> f64 {
    if transactions > 0.0 {
        ((after - before).max(0.0) * 1e7 / transactions).round() / 10.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times_are_read_after_the_command_name() {
        let line = "4242 (poh serve (x) 1) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 50 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_ticks(line), Some(300));
        assert_eq!(parse_ticks("4242 (cut"), None);
        assert_eq!(parse_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn this_process_cpu_time_grows_while_it_works() {
        // The kernel counts in clock ticks (10 ms), so a fresh test process may read 0: spin
        // until the reading moves, within a bound that a working reader never reaches.
        let start = seconds("self").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut spin = 0u64;
        while seconds("self").unwrap() <= start {
            assert!(std::time::Instant::now() < deadline, "CPU time never grew");
            for i in 0..100_000u64 {
                spin = std::hint::black_box(spin.wrapping_mul(31).wrapping_add(i));
            }
        }
        let spent = seconds("self").unwrap();
        assert!(spent > start && spent < 1e6, "{start} -> {spent}");
        assert!(seconds("0").is_err());
        assert_eq!(us_per_tx(1.0, 1.5, 1000.0), 500.0);
        assert_eq!(us_per_tx(0.0, 0.174, 10_000.0), 17.4);
        assert_eq!(us_per_tx(2.0, 1.0, 10.0), 0.0);
    }
}
