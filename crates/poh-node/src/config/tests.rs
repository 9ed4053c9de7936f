use super::*;

#[test]
fn toml_fills_defaults_and_refuses_unknown_keys() {
    let config =
        NodeConfig::from_toml("chain_id = \"municipality/tokyo\"\n[grpc]\nport = 1\n").unwrap();
    assert_eq!(config.chain_id, "municipality/tokyo");
    assert_eq!(config.grpc.as_ref().unwrap().port, 1);
    assert_eq!(config.grpc.unwrap().max_connections, 1024);
    assert_eq!(config.http, Some(HttpConfig::default()));
    config_err("chian_id = \"x\"");
    let e = NodeConfig::from_toml("\n[grpc]\nprot = 1\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 3, column 1: unknown field `prot`"), "{e}");
    assert_eq!(e.lines().count(), 1);
    config_err("[grpc]\nport = 70000");
}

#[test]
fn a_listener_table_turns_it_on_and_false_turns_it_off() {
    let c = NodeConfig::from_toml("udp = false\nquic = true\n[grpc]\nport = 7\n").unwrap();
    assert_eq!(c.udp, None);
    assert_eq!(c.quic, Some(QuicConfig::default()));
    assert_eq!(c.grpc.map(|g| g.port), Some(7));
    let e = NodeConfig::from_toml("http = 3\n").unwrap_err().to_string();
    assert!(e.contains("false to turn the listener off"), "{e}");
    let e = NodeConfig::from_toml("[udp]\nprot = 1\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `prot`"), "{e}");
}

/// The example in the repository parses, and says exactly the defaults.
#[test]
fn the_example_config_is_the_defaults() {
    let text = include_str!("../../../../poh.example.toml");
    assert_eq!(NodeConfig::from_toml(text).unwrap(), NodeConfig::default());
}

fn config_err(text: &str) {
    assert!(
        matches!(NodeConfig::from_toml(text), Err(NodeError::Config(_))),
        "{text}"
    );
}

#[test]
fn validate_refuses_what_cannot_work() {
    assert!(NodeConfig::default().validate().is_ok());
    let c = NodeConfig {
        chain_id: String::new(),
        ..NodeConfig::default()
    };
    assert!(c.validate().is_err());
    let mut c = NodeConfig::default();
    c.poh.hashes_per_tick = 0;
    assert!(c.validate().is_err());
    let c = NodeConfig {
        grpc: None,
        http: None,
        udp: None,
        quic: None,
        ..NodeConfig::default()
    };
    assert!(c.validate().is_err());
    let mut c = NodeConfig::default();
    if let Some(q) = c.quic.as_mut() {
        q.cert = Some("node.crt".into());
    }
    assert!(c.validate().is_err(), "a certificate without its key");
}

#[test]
fn the_ipv6_prefix_length_must_be_one_to_128() {
    let with = |len: u32| {
        let mut c = NodeConfig::default();
        c.limits.ipv6_prefix_len = len;
        c.validate()
    };
    for len in [1, 48, 56, 64, 128] {
        assert!(with(len).is_ok(), "{len}");
    }
    for len in [0, 129, 4096] {
        let e = with(len).unwrap_err().to_string();
        assert!(
            e.contains("limits.ipv6_prefix_len") && e.contains("1–128"),
            "{len}: {e}"
        );
    }
    let c = NodeConfig::from_toml("[limits]\nipv6_prefix_len = 56\n").unwrap();
    assert_eq!(c.limits.ipv6_prefix_len, 56);
    assert_eq!(NodeConfig::default().limits.ipv6_prefix_len, 64);
}
