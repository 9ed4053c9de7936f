//! The node certificate's expiry: `poh_tls_cert_expiry_seconds` (its `notAfter`, Unix
//! seconds) for an alert to compare with `time()`, and a warning in the log, at start and then
//! daily, from `tls.expiry_warning_days` before it lapses.

use std::{future::Future, sync::Arc, time::Duration};

use metrics::Gauge;
use rustls::pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;

use super::NodeCert;

const DAY: Duration = Duration::from_secs(86_400);

/// A certificate's `notAfter`, in Unix seconds (`None`: not a certificate x509 can read).
pub fn not_after(cert: &CertificateDer<'_>) -> Option<i64> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(parsed.validity().not_after.timestamp())
}

/// Days left before `not_after` at `now` (both Unix seconds) when that is under
/// `warning_days`; negative once it has lapsed.
fn expiring(not_after: i64, now: i64, warning_days: u64) -> Option<f64> {
    let left = (not_after - now) as f64 / DAY.as_secs_f64();
    (left < warning_days as f64).then_some(left)
}

/// Sets `gauge` to the expiry of the certificate `cert` holds now; the returned task then
/// checks the certificate it holds at start and every day until `shutdown`, logging a warning
/// while that one is within `warning_days` of lapsing (a reload moves the gauge itself).
pub(crate) fn watch(
    cert: Arc<NodeCert>,
    warning_days: u64,
    gauge: Gauge,
    shutdown: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    if let Some(end) = cert.not_after() {
        gauge.set(end as f64);
    }
    async move {
        let mut daily = tokio::time::interval(DAY);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                _ = daily.tick() => {}
            }
            let fingerprint = cert.fingerprint();
            let Some(end) = cert.not_after() else {
                tracing::warn!(%fingerprint, "cannot read the node certificate's expiry date");
                continue;
            };
            match expiring(end, crate::shared::unix_now() as i64, warning_days) {
                Some(days_left) if days_left < 0.0 => tracing::error!(
                    %fingerprint,
                    "the node's TLS certificate has expired: clients and peers refuse it; \
                     replace its files (the node reloads them)"
                ),
                Some(days_left) => tracing::warn!(
                    %fingerprint,
                    days_left = format!("{days_left:.1}"),
                    "the node's TLS certificate expires soon: replace its files (the node \
                     reloads them)"
                ),
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::pem::PemObject as _;

    use super::*;

    #[test]
    fn a_certificate_warns_from_the_warning_days_before_it_lapses() {
        let ca = crate::tls::certs::DevCa::generate().unwrap();
        let (pem, _) = ca.issue("node-a", 10).unwrap();
        let cert = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let end = not_after(&cert).unwrap();
        let now = crate::shared::unix_now() as i64;
        // Valid until 10 days from now (within a minute).
        assert!((end - now - 10 * 86_400).abs() < 60, "{}", end - now);
        assert_eq!(expiring(end, now, 7), None, "10 days left, warned from 7");
        let left = expiring(end, now, 14).unwrap();
        assert!((left - 10.0).abs() < 0.01, "{left}");
        assert!(expiring(end, end + 86_400, 0).unwrap() < 0.0, "lapsed");
        assert_eq!(not_after(&CertificateDer::from(vec![1, 2, 3])), None);
    }
}
