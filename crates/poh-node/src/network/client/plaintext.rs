//! Where a credential may go without TLS (SPEC §8): a bearer token or JWT crosses a plaintext
//! connection only to a loopback address, or when the operator allowed unverified peers
//! (`insecure`). Every client that sends a token asks [`ClientTls::check_plaintext`] (gRPC,
//! when it makes a channel) or [`ClientTls::check_url`] (HTTP, per request) first.
//!
//! [`NodeConfig::validate`] is defined here, above the configuration, because one of its checks
//! is this rule applied to the federation link before anything starts.

use std::net::IpAddr;

use super::{ClientTls, grpc::plaintext_host};
use crate::{NodeConfig, NodeError, tls::ServerTrust};

/// A bearer token would go in plain text to a host outside the loopback range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refusing to send the bearer token in plain text to {host}, which is not a loopback \
     address: write the address https://… to dial it over TLS, or allow it with --insecure \
     ([tls] insecure on a node)"
)]
pub struct PlaintextCredential {
    /// The host, as it was written.
    pub host: String,
}

/// Whether `host` is certainly this machine: a literal loopback address (127.0.0.0/8, `::1`,
/// or `::ffff:127.x.y.z`, with or without brackets) or `localhost`. Any other name may resolve
/// anywhere, so it is not.
pub fn is_loopback(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

impl ClientTls {
    /// Whether this client may talk to `host` without TLS: it sends no token, or `host` is a
    /// loopback address, or the operator accepts unverified peers (`insecure`).
    pub fn check_plaintext(&self, host: &str) -> Result<(), PlaintextCredential> {
        if self.token.is_none() || self.trust == ServerTrust::Insecure || is_loopback(host) {
            return Ok(());
        }
        Err(PlaintextCredential {
            host: host.to_string(),
        })
    }

    /// Whether this client may send a request to the HTTP URL `url`: over `https://` always
    /// (reqwest dials it with TLS, verified per [`ClientTls::trust`]), otherwise per
    /// [`check_plaintext`](Self::check_plaintext). A URL that does not parse counts as plain
    /// text to an unknown host.
    pub fn check_url(&self, url: &str) -> Result<(), PlaintextCredential> {
        let parsed = reqwest::Url::parse(url).ok();
        if parsed.as_ref().is_some_and(|u| u.scheme() == "https") {
            return Ok(());
        }
        self.check_plaintext(parsed.as_ref().and_then(|u| u.host_str()).unwrap_or(url))
    }
}

impl NodeConfig {
    /// Refuses settings that cannot work, before anything starts.
    pub fn validate(&self) -> Result<(), NodeError> {
        self.check(parent_credentials)
    }
}

/// The peers' token goes with the federation link, so it must not go in plain text to a
/// parent off this machine (SPEC §8). The link would refuse it anyway; refusing here says
/// which settings, before anything starts.
fn parent_credentials(config: &NodeConfig) -> Result<(), NodeError> {
    let (Some(parent), Some(_)) = (&config.federation.parent, &config.peers.token_file) else {
        return Ok(());
    };
    // What `ClientTls::is_on` will say of the clients `[tls]` makes: TLS with a
    // certificate (a CA needs one too) or insecure.
    let tls_on = config
        .tls
        .as_ref()
        .is_some_and(|t| t.insecure || t.cert.is_some() || t.pkcs12.is_some());
    let plaintext = plaintext_host(parent, tls_on)
        .map_err(|e| NodeError::Config(format!("--parent {parent}: {e}")))?;
    match plaintext {
        Some(host) if !is_loopback(&host) => Err(NodeError::Config(format!(
            "--parent {parent} is dialled in plain text, and the peers' token \
             (peers.token_file) would go to {host}, which is not a loopback address: \
             write the parent https://{host}:PORT, or give the node TLS ([tls] cert and \
             key, or insecure)"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::client::Bearer;

    fn with_token(trust: ServerTrust) -> ClientTls {
        ClientTls {
            trust,
            identity: None,
            token: Some(Bearer::new("secret".into()).unwrap()),
        }
    }

    #[test]
    fn only_literal_loopback_addresses_and_localhost_are_loopback() {
        for host in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "::ffff:127.0.0.1",
            "[::ffff:127.0.0.1]",
            "localhost",
            "LocalHost",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "10.1.2.3",
            "0.0.0.0",
            "[::]",
            "[2001:db8::1]",
            "::ffff:10.0.0.1",
            "128.0.0.1",
            "127.1",
            "2130706433",
            "localhost.example.com",
            "foo.localhost",
            "127.0.0.1.nip.io",
            "",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn a_token_goes_in_plain_text_only_to_loopback_or_when_insecure() {
        let tls = with_token(ServerTrust::System);
        assert!(tls.check_plaintext("127.0.0.1").is_ok());
        assert!(tls.check_plaintext("localhost").is_ok());
        let refused = tls.check_plaintext("10.1.2.3").unwrap_err();
        assert_eq!(refused.host, "10.1.2.3");
        assert!(refused.to_string().contains("https://"), "{refused}");
        for trust in [
            ServerTrust::Pinned("00".repeat(32)),
            ServerTrust::Ca("ca.crt".into()),
        ] {
            assert!(with_token(trust).check_plaintext("node.example").is_err());
        }
        assert!(
            with_token(ServerTrust::Insecure)
                .check_plaintext("10.1.2.3")
                .is_ok()
        );
        assert!(ClientTls::default().check_plaintext("10.1.2.3").is_ok());
    }

    #[test]
    fn an_http_url_is_checked_by_its_scheme_and_host() {
        let tls = with_token(ServerTrust::System);
        for ok in [
            "https://10.1.2.3:8443",
            "HTTPS://node.example/base",
            "http://127.0.0.1:8080/v1/tx",
            "http://[::1]:8080",
            "http://localhost:8080",
        ] {
            assert!(tls.check_url(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://10.1.2.3:8080/v1/tx",
            "HTTP://node.example",
            "http://[2001:db8::1]:8080",
            "not a url",
        ] {
            assert!(tls.check_url(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn a_node_does_not_start_with_a_plaintext_parent_off_loopback_and_a_token() {
        let node = |parent: &str, tls: Option<crate::config::TlsConfig>| {
            let mut config = crate::NodeConfig {
                tls,
                ..crate::NodeConfig::default()
            };
            config.federation.parent = Some(parent.to_string());
            config.peers.token_file = Some("peers.token".into());
            config.validate()
        };
        let refused = node("http://10.1.2.3:50051", None).unwrap_err().to_string();
        assert!(
            refused.contains("--parent http://10.1.2.3:50051")
                && refused.contains("peers.token_file"),
            "{refused}"
        );
        assert!(node("10.1.2.3:50051", None).is_err());
        for allowed in [
            "127.0.0.1:50051",
            "localhost:50051",
            "https://10.1.2.3:50051",
        ] {
            assert!(node(allowed, None).is_ok(), "{allowed}");
        }
        let insecure = crate::config::TlsConfig {
            insecure: true,
            ..crate::config::TlsConfig::default()
        };
        assert!(node("10.1.2.3:50051", Some(insecure)).is_ok());
        let mut without_token = crate::NodeConfig::default();
        without_token.federation.parent = Some("10.1.2.3:50051".into());
        assert!(without_token.validate().is_ok());
    }
}
