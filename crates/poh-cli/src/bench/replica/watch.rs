//! Watching a replica from outside, as an operator does: `GET /v1/replica` for where it
//! stands against its primary, `/metrics` for `poh_replica_lag_entries` and the refusal
//! counter, and a sampler that reads both every [`SAMPLE_EVERY`] while load runs elsewhere.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::super::node::NodeProcess;

/// How often the lag is sampled under load.
pub(super) const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// How often a catch-up is polled: fine enough that the copy's time is not rounded up by
/// much, coarse enough that the polling is no load on the replica.
const POLL_EVERY: Duration = Duration::from_millis(10);
/// How long a replica may hold still, short of its target, before the wait gives up.
const STALL: Duration = Duration::from_secs(60);

/// `GET /v1/replica` (SPEC §10).
#[derive(Clone, Copy, Debug, Deserialize)]
pub(super) struct Stand {
    pub seq: u64,
    pub entries: u64,
    pub lag_seconds: f64,
}

/// One node's HTTP side.
pub(super) struct Watch {
    client: reqwest::Client,
    base: String,
}

impl Watch {
    pub(super) fn new(node: &NodeProcess) -> anyhow::Result<Self> {
        Ok(Self {
            client: super::super::ingest::http_client(Duration::from_secs(10))?,
            base: format!("http://{}", node.http),
        })
    }

    pub(super) async fn stand(&self) -> anyhow::Result<Stand> {
        let url = format!("{}/v1/replica", self.base);
        let response = self.client.get(&url).send().await?.error_for_status()?;
        response
            .json()
            .await
            .with_context(|| format!("{url} is not where a node stands"))
    }

    /// The value of the unlabelled series `name` in `/metrics`.
    pub(super) async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let url = format!("{}/metrics", self.base);
        let text = self
            .client
            .get(&url)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        sample(&text, name).with_context(|| format!("{url} has no {name}"))
    }

    /// Waits until the node holds at least `entries` entries and `seq` items; an error when
    /// it stops moving for [`STALL`] first (with its refusals, the likely reason), or its
    /// process ends.
    pub(super) async fn caught_up(
        &self,
        node: &mut NodeProcess,
        entries: u64,
        seq: u64,
    ) -> anyhow::Result<Stand> {
        let mut last = (0, 0);
        let mut moved = Instant::now();
        loop {
            if let Some(status) = node.exited()? {
                bail!("the replica stopped ({status}) while copying");
            }
            let stand = self.stand().await?;
            if stand.entries >= entries && stand.seq >= seq {
                return Ok(stand);
            }
            if (stand.entries, stand.seq) != last {
                last = (stand.entries, stand.seq);
                moved = Instant::now();
            } else if moved.elapsed() > STALL {
                let refused = self.metric("poh_replica_refused_total").await.ok();
                bail!(
                    "the replica held {} of {entries} entries and {} of {seq} items, unchanged \
                     for {} s (poh_replica_refused_total {}: see its log)",
                    stand.entries,
                    stand.seq,
                    STALL.as_secs(),
                    refused.map_or_else(|| "unknown".into(), |r| r.to_string()),
                );
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

/// The value of the unlabelled series `name` in a Prometheus text exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            (series.trim() == name).then(|| value.parse().ok())?
        })
}

/// One reading of the replica's lag.
#[derive(Clone, Copy, Debug)]
pub(super) struct LagSample {
    /// `poh_replica_lag_entries`, as the replica reports it.
    pub gauge_entries: f64,
    /// `lag_seconds` of its `GET /v1/replica`.
    pub seconds: f64,
    /// The primary's durable entries less the replica's, both read now: the lag the gauge
    /// stands for, without its wait for the primary's next word.
    pub observed_entries: u64,
}

/// Samples the replica's lag every [`SAMPLE_EVERY`] until `done`.
pub(super) async fn sample_lag(
    primary: &Watch,
    replica: &Watch,
    done: &CancellationToken,
) -> anyhow::Result<Vec<LagSample>> {
    let mut samples = Vec::new();
    let mut every = tokio::time::interval(SAMPLE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = done.cancelled() => return Ok(samples),
            _ = every.tick() => {}
        }
        let gauge_entries = replica.metric("poh_replica_lag_entries").await?;
        let stand = replica.stand().await?;
        let ahead = primary.stand().await?;
        samples.push(LagSample {
            gauge_entries,
            seconds: stand.lag_seconds,
            observed_entries: ahead.entries.saturating_sub(stand.entries),
        });
    }
}

/// The `q` quantile (0 to 1) of `values`, by rank: the smallest value at least that share
/// of them are at or below; 0 for none.
pub(super) fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unlabelled_series_is_read_and_a_longer_name_is_not_it() {
        let text = "# HELP poh_replica_lag_entries x\n# TYPE poh_replica_lag_entries gauge\n\
                    poh_replica_lag_entries_max 9\npoh_replica_lag_entries 42\n";
        assert_eq!(sample(text, "poh_replica_lag_entries"), Some(42.0));
        assert_eq!(sample(text, "poh_replica_refused_total"), None);
    }

    #[test]
    fn quantiles_are_ranks_of_the_samples() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(quantile(&mut v, 0.99), 99.0);
        assert_eq!(quantile(&mut v, 1.0), 100.0);
        assert_eq!(quantile(&mut v, 0.5), 50.0);
        assert_eq!(quantile(&mut [7.0], 0.99), 7.0);
        assert_eq!(quantile(&mut [], 0.99), 0.0);
    }
}
