//! Which settings a reload applies, and which wait for a restart.
//!
//! Live: the certificate files while the node has a certificate (`tls.cert`, `tls.key`,
//! `tls.pkcs12`, `tls.pkcs12_password_file`; `quic.cert`, `quic.key`), the CA and allow-list
//! while it has a CA (`tls.ca`, `tls.allowed_clients`), all of `[auth]` while authentication
//! is on, `peers.token_file` while it names one, and all of `[limits]`. Everything else (ports, the data directory, the chain id, turning TLS, mutual
//! TLS or authentication on or off, …) is bound into what the node started, so a difference
//! there is named and the running value kept.

use crate::{
    NodeConfig,
    config::{ClientLimits, TlsConfig},
};

/// `running`, with the settings of `next` that can change live.
pub(super) fn merge(running: &NodeConfig, next: &NodeConfig) -> NodeConfig {
    let mut merged = running.clone();
    merged.limits = next.limits.clone();
    if let (Some(now), Some(new)) = (merged.tls.as_mut(), next.tls.as_ref()) {
        let names_cert = |t: &TlsConfig| t.cert.is_some() || t.pkcs12.is_some();
        if names_cert(now) && names_cert(new) {
            now.cert = new.cert.clone();
            now.key = new.key.clone();
            now.pkcs12 = new.pkcs12.clone();
            now.pkcs12_password_file = new.pkcs12_password_file.clone();
        }
        if now.ca.is_some() && new.ca.is_some() {
            now.ca = new.ca.clone();
            now.allowed_clients = new.allowed_clients.clone();
        }
    }
    if let (Some(now), Some(new)) = (merged.quic.as_mut(), next.quic.as_ref())
        && now.cert.is_some()
        && new.cert.is_some()
    {
        now.cert = new.cert.clone();
        now.key = new.key.clone();
    }
    if merged.peers.token_file.is_some() && next.peers.token_file.is_some() {
        merged.peers.token_file = next.peers.token_file.clone();
    }
    if let (Some(now), Some(new)) = (merged.auth.as_mut(), next.auth.as_ref()) {
        *now = new.clone();
    }
    merged
}

/// A setting whose configured value differs from the one the node runs with.
pub(super) struct Fixed {
    /// Its dotted TOML key, e.g. `grpc.port`.
    pub key: String,
    pub running: String,
    pub configured: String,
}

/// Every setting of `next` that differs from `running` (after [`merge`], the ones that cannot
/// change live); a section present on one side only is one setting.
pub(super) fn fixed(running: &NodeConfig, next: &NodeConfig) -> Vec<Fixed> {
    let (Ok(a), Ok(b)) = (toml::Value::try_from(running), toml::Value::try_from(next)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    diff(String::new(), Some(&a), Some(&b), &mut out);
    out
}

fn diff(key: String, a: Option<&toml::Value>, b: Option<&toml::Value>, out: &mut Vec<Fixed>) {
    match (a, b) {
        (Some(toml::Value::Table(a)), Some(toml::Value::Table(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let sub = match key.is_empty() {
                    true => k.clone(),
                    false => format!("{key}.{k}"),
                };
                diff(sub, a.get(k), b.get(k), out);
            }
        }
        (a, b) if a != b => out.push(Fixed {
            running: show(&key, a),
            configured: show(&key, b),
            key,
        }),
        _ => {}
    }
}

/// A value as the log shows it; secrets (an access key id) are not shown.
fn show(key: &str, value: Option<&toml::Value>) -> String {
    match value {
        None => "unset".into(),
        Some(toml::Value::Table(_)) => "set".into(),
        Some(_) if key.ends_with("access_key_id") => "****".into(),
        Some(v) => v.to_string(),
    }
}

/// How an allow-list changed, for the log (`None`: it did not).
pub(super) fn list_change(what: &str, old: &[String], new: &[String]) -> Option<String> {
    let removed: Vec<&str> = old
        .iter()
        .filter(|n| !new.contains(n))
        .map(String::as_str)
        .collect();
    let added: Vec<&str> = new
        .iter()
        .filter(|n| !old.contains(n))
        .map(String::as_str)
        .collect();
    (!removed.is_empty() || !added.is_empty()).then(|| {
        format!(
            "{what}: removed [{}], added [{}]",
            removed.join(", "),
            added.join(", ")
        )
    })
}

/// Each `[limits]` value that changed, as `limits.key old → new`.
pub(super) fn limit_changes(old: &ClientLimits, new: &ClientLimits) -> Vec<String> {
    let mut out = Vec::new();
    let (Ok(toml::Value::Table(a)), Ok(toml::Value::Table(b))) =
        (toml::Value::try_from(old), toml::Value::try_from(new))
    else {
        return out;
    };
    for (k, v) in &b {
        if let Some(was) = a.get(k)
            && was != v
        {
            out.push(format!("limits.{k} {was} → {v}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthConfig, GrpcConfig};

    fn node() -> NodeConfig {
        NodeConfig {
            tls: Some(TlsConfig {
                cert: Some("a.crt".into()),
                key: Some("a.key".into()),
                ca: Some("ca.crt".into()),
                allowed_clients: vec!["alice".into(), "bob".into()],
                ..TlsConfig::default()
            }),
            auth: Some(AuthConfig {
                token_file: Some("tokens".into()),
                ..AuthConfig::default()
            }),
            ..NodeConfig::default()
        }
    }

    #[test]
    fn live_settings_apply_and_the_others_are_named_once_each() {
        let running = node();
        let mut next = node();
        let tls = next.tls.as_mut().unwrap();
        tls.cert = Some("b.crt".into());
        tls.allowed_clients = vec!["alice".into()];
        tls.insecure = true;
        next.auth.as_mut().unwrap().protect_health = true;
        next.limits.requests_per_second = 10;
        next.chain_id = "municipality/elsewhere".into();
        next.grpc = Some(GrpcConfig {
            port: 1,
            ..GrpcConfig::default()
        });
        next.http = None;

        let merged = merge(&running, &next);
        let tls = merged.tls.as_ref().unwrap();
        assert_eq!(tls.cert.as_deref(), Some("b.crt".as_ref()));
        assert_eq!(tls.allowed_clients, ["alice"]);
        assert!(!tls.insecure, "client trust is not live");
        assert!(merged.auth.as_ref().unwrap().protect_health);
        assert_eq!(merged.limits.requests_per_second, 10);
        assert_eq!(merged.chain_id, running.chain_id);

        let fixed = fixed(&merged, &next);
        let keys: Vec<&str> = fixed.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["chain_id", "grpc.port", "http", "tls.insecure"]);
        assert_eq!(fixed[1].running, "50051");
        assert_eq!(fixed[1].configured, "1");
        assert_eq!(
            (fixed[2].running.as_str(), fixed[2].configured.as_str()),
            ("set", "false"),
            "a listener turned off"
        );
        assert!(super::fixed(&running, &running).is_empty());
    }

    #[test]
    fn turning_tls_mutual_tls_or_auth_on_or_off_waits_for_a_restart() {
        let running = node();
        let mut next = node();
        let tls = next.tls.as_mut().unwrap();
        tls.cert = None;
        tls.key = None;
        tls.ca = None;
        next.auth = None;
        let merged = merge(&running, &next);
        assert_eq!(merged.tls, running.tls);
        assert_eq!(merged.auth, running.auth);
        let keys: Vec<String> = fixed(&merged, &next).into_iter().map(|f| f.key).collect();
        assert_eq!(keys, ["auth", "tls.ca", "tls.cert", "tls.key"]);
    }

    #[test]
    fn changes_are_described_by_name() {
        let names = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            list_change("allowed clients", &names(&["a", "b"]), &names(&["b", "c"])).unwrap(),
            "allowed clients: removed [a], added [c]"
        );
        assert_eq!(list_change("x", &names(&["a"]), &names(&["a"])), None);
        let old = ClientLimits::default();
        let new = ClientLimits {
            burst: 7,
            ..ClientLimits::default()
        };
        assert_eq!(limit_changes(&old, &new), ["limits.burst 200000 → 7"]);
    }
}
