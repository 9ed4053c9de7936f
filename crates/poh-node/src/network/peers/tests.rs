//! `validate` rule by rule, and `PeerBook` edits on real files.

use super::{address::MAX_URL_LEN, *};

fn ok(protocol: Transport, address: &str) {
    if let Err(e) = validate(protocol, address) {
        panic!("{protocol} {address:?} refused: {e}");
    }
}

/// Refused, with a message that names the protocol, the address and `needle`.
fn bad(protocol: Transport, address: &str, needle: &str) {
    match validate(protocol, address) {
        Ok(()) => panic!("{protocol} {address:?} accepted"),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("invalid {protocol} address {address:?}: "))
                    && msg.contains(needle)
                    && !msg.contains('\n'),
                "{protocol} {address:?}: {msg}"
            );
        }
    }
}

const HOST_PORT_PROTOCOLS: [Transport; 3] = [Transport::Grpc, Transport::Udp, Transport::Quic];

#[test]
fn host_port_accepts_ipv4_bracketed_ipv6_and_dns_names() {
    let long_label = "a".repeat(63);
    let long_name = [
        &*"a".repeat(63),
        &"b".repeat(63),
        &"c".repeat(63),
        &"d".repeat(61),
    ]
    .join(".");
    assert_eq!(long_name.len(), 253);
    for p in HOST_PORT_PROTOCOLS {
        for good in [
            "127.0.0.1:50051",
            "0.0.0.0:1",
            "255.255.255.255:65535",
            "[::1]:9000",
            "[2001:db8::8a2e:370:7334]:4433",
            "[::ffff:192.0.2.1]:80",
            "localhost:9000",
            "node-1.example.com:443",
            "Example.COM:8080",
            "a:1",
            "1node.example:2",
            "example.com1:3",
            &format!("{long_label}.example:9000"),
            &format!("{long_name}:9000"),
        ] {
            ok(p, good);
        }
    }
}

#[test]
fn host_port_refuses_bad_ports() {
    for p in HOST_PORT_PROTOCOLS {
        bad(p, "127.0.0.1:0", "port 0 is out of range");
        bad(p, "127.0.0.1:65536", "port 65536 is out of range");
        bad(p, "127.0.0.1:99999", "out of range");
        bad(p, "127.0.0.1:123456", "not a number from 1 to 65535");
        bad(p, "127.0.0.1:+80", "digits only");
        bad(p, "127.0.0.1:-1", "digits only");
        bad(p, "127.0.0.1:8o", "digits only");
        bad(p, "127.0.0.1:080", "leading zero");
        bad(p, "127.0.0.1:", "missing port");
        bad(p, "127.0.0.1", "missing :port");
        bad(p, "example.com", "missing :port");
        bad(p, "[::1]", "missing :port");
        bad(p, "x", "expected host:port with a port from 1 to 65535");
    }
}

#[test]
fn host_port_refuses_bad_hosts() {
    let p = Transport::Udp;
    bad(p, "", "empty");
    bad(p, ":9000", "the host is empty");
    bad(p, " 127.0.0.1:9000", "spaces");
    bad(p, "127.0.0.1:9000 ", "spaces");
    bad(p, "127.0.0.1 :9000", "spaces");
    bad(p, "exa mple.com:9000", "spaces");
    bad(p, "host\n:9000", "control");
    bad(p, "256.0.0.1:9000", "not a valid IPv4");
    bad(p, "1.2.3:9000", "not a valid IPv4");
    bad(p, "1.2.3.4.5:9000", "not a valid IPv4");
    bad(p, "01.2.3.4:9000", "not a valid IPv4");
    bad(p, "1.2.3.:9000", "not a valid IPv4");
    bad(p, "::1:9000", "must be in brackets");
    bad(p, "2001:db8::1:9000", "must be in brackets");
    bad(p, "[::1:9000", "no closing ']'");
    bad(p, "[::g]:9000", "not a valid IPv6");
    bad(p, "[127.0.0.1]:9000", "not a valid IPv6");
    bad(p, "[fe80::1%eth0]:9000", "not a valid IPv6");
    bad(p, "[::1]9000", "after the IPv6 address");
    bad(p, "-node.example:9000", "hyphen");
    bad(p, "node-.example:9000", "hyphen");
    bad(p, "my_host:9000", "other than letters, digits and hyphens");
    bad(
        p,
        "héte.example:9000",
        "other than letters, digits and hyphens",
    );
    bad(p, "example..com:9000", "empty label");
    bad(p, ".example.com:9000", "empty label");
    bad(p, "example.com.:9000", "empty label");
    bad(p, "node.123:9000", "last label is all digits");
    bad(
        p,
        &format!("{}.example:9000", "a".repeat(64)),
        "longer than 63 characters",
    );
    let name = ["a"; 127].join(".");
    assert_eq!(name.len(), 253);
    ok(p, &format!("{name}:9000"));
    bad(p, &format!("{name}a:9000"), "longer than 253 characters");
    bad(p, &format!("{}:9000", "a".repeat(300)), "longer than");
    bad(p, "http://127.0.0.1:9000", "without a scheme");
}

#[test]
fn http_accepts_http_and_https_urls_with_a_host() {
    for good in [
        "http://127.0.0.1:8080",
        "https://127.0.0.1",
        "http://localhost:8080/",
        "https://node.example.com/poh/v1",
        "http://[::1]:8080",
        "https://[2001:db8::1]/base",
        "HTTP://EXAMPLE.com",
        "http://example.com/a%20b",
    ] {
        ok(Transport::Http, good);
    }
}

#[test]
fn http_refuses_other_schemes_and_bad_urls() {
    let p = Transport::Http;
    bad(p, "", "empty");
    bad(p, "127.0.0.1:8080", "expected an http:// or https:// URL");
    bad(p, "example.com", "expected an http:// or https:// URL");
    bad(
        p,
        "ftp://example.com",
        "the scheme \"ftp\" is not supported",
    );
    bad(p, "grpc://127.0.0.1:50051", "not supported");
    bad(
        p,
        "http:/example.com",
        "expected an http:// or https:// URL",
    );
    bad(
        p,
        "http//example.com",
        "expected an http:// or https:// URL",
    );
    bad(p, "http://", "no host");
    bad(p, "http:///path", "no host");
    bad(p, "http://:8080", "the host is empty");
    bad(p, "http://example.com:0", "port 0 is out of range");
    bad(p, "http://example.com:65536", "out of range");
    bad(p, "http://example.com:", "missing port");
    bad(p, "http://example.com:http", "digits only");
    bad(p, "http://user:pw@example.com", "credentials");
    bad(p, "http://example.com/?q=1", "no query or fragment");
    bad(p, "http://example.com#top", "no query or fragment");
    bad(p, "http://exa mple.com", "spaces");
    bad(p, "http://example.com/a b", "spaces");
    bad(p, "http://example.com/é", "printable ASCII");
    bad(p, "http://example.com/a\\b", "printable ASCII");
    bad(p, "http://example.com\\b", "other than letters");
    bad(p, "http://::1:8080", "must be in brackets");
    bad(p, "http://[::1", "no closing ']'");
    bad(p, "http://bad_host", "other than letters");
    bad(p, "http://300.1.1.1", "not a valid IPv4");
    bad(
        p,
        &format!("http://e.com/{}", "a".repeat(MAX_URL_LEN)),
        "longer than",
    );
}

fn book() -> (tempfile::TempDir, PeerBook) {
    let dir = tempfile::tempdir().unwrap();
    let book = PeerBook::new(dir.path().join("peers.json"));
    (dir, book)
}

#[test]
fn a_missing_file_is_an_empty_book_and_add_creates_it_with_four_keys() {
    let (_dir, book) = book();
    assert!(book.load().unwrap().is_empty());
    assert!(!book.remove(Transport::Udp, "127.0.0.1:9000").unwrap());
    assert!(
        !book.path().exists(),
        "removing from nothing creates nothing"
    );

    assert!(book.add(Transport::Grpc, "127.0.0.1:50051", None).unwrap());
    let text = fs::read_to_string(book.path()).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"grpc": ["127.0.0.1:50051"], "http": [], "udp": [], "quic": []})
    );
    assert!(text.ends_with("}\n"));
    assert!(!book.add(Transport::Grpc, "127.0.0.1:50051", None).unwrap());
    assert_eq!(fs::read_to_string(book.path()).unwrap(), text);
}

#[test]
fn add_remove_and_iterate_keep_file_order() {
    let (dir, book) = book();
    book.add(Transport::Udp, "b.example:9000", None).unwrap();
    book.add(Transport::Http, "http://a.example", None).unwrap();
    book.add(Transport::Udp, "a.example:9000", None).unwrap();
    book.add(Transport::Quic, "[::1]:4433", None).unwrap();
    let peers = book.load().unwrap();
    assert_eq!(
        peers.get(Transport::Udp),
        ["b.example:9000", "a.example:9000"]
    );
    assert_eq!(
        peers.iter().collect::<Vec<_>>(),
        [
            (Transport::Http, "http://a.example"),
            (Transport::Udp, "b.example:9000"),
            (Transport::Udp, "a.example:9000"),
            (Transport::Quic, "[::1]:4433"),
        ]
    );
    // The same address under another protocol is another peer.
    assert!(!book.remove(Transport::Grpc, "b.example:9000").unwrap());
    assert!(book.remove(Transport::Udp, "b.example:9000").unwrap());
    assert_eq!(book.load().unwrap().udp, ["a.example:9000"]);
    // Deterministic: the same book is the same bytes, and no temporary file is left.
    let again = PeerBook::new(dir.path().join("again.json"));
    again
        .add(Transport::Http, "http://a.example", None)
        .unwrap();
    again.add(Transport::Udp, "a.example:9000", None).unwrap();
    again.add(Transport::Quic, "[::1]:4433", None).unwrap();
    assert_eq!(
        fs::read(book.path()).unwrap(),
        fs::read(again.path()).unwrap()
    );
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn load_refuses_invalid_files_naming_the_file_and_the_problem() {
    let (_dir, book) = book();
    for (content, needle) in [
        ("not json", "not a JSON object"),
        ("", "EOF"),
        ("[]", "not a JSON object"),
        ("[[], [], [], []]", "not a JSON object"),
        ("null", "not a JSON object"),
        (
            r#"{"grpc": [], "http": [], "udp": []}"#,
            "missing field `quic`",
        ),
        (
            r#"{"grpc": [], "http": [], "udp": [], "quic": [], "tcp": []}"#,
            "unknown field `tcp`",
        ),
        (
            r#"{"grpc": [1], "http": [], "udp": [], "quic": []}"#,
            "invalid type",
        ),
        (
            r#"{"grpc": null, "http": [], "udp": [], "quic": []}"#,
            "invalid type",
        ),
        (
            r#"{"grpc": ["127.0.0.1:0"], "http": [], "udp": [], "quic": []}"#,
            "holds an invalid grpc address \"127.0.0.1:0\": port 0",
        ),
        (
            r#"{"grpc": [], "http": ["example.com"], "udp": [], "quic": []}"#,
            "holds an invalid http address",
        ),
    ] {
        fs::write(book.path(), content).unwrap();
        let msg = book.load().unwrap_err().to_string();
        assert!(
            msg.contains(&book.path().display().to_string()) && msg.contains(needle),
            "{content:?}: {msg}"
        );
        // A refused edit changes nothing.
        assert!(book.add(Transport::Udp, "127.0.0.1:9000", None).is_err());
        assert!(book.remove(Transport::Udp, "127.0.0.1:9000").is_err());
        assert_eq!(fs::read_to_string(book.path()).unwrap(), content);
    }
    fs::write(book.path(), vec![b' '; MAX_FILE_BYTES as usize + 1]).unwrap();
    assert!(matches!(book.load(), Err(PeersError::TooLarge { .. })));
}

#[test]
fn refused_addresses_leave_the_file_untouched() {
    let (_dir, book) = book();
    let original = "{\"grpc\":[],\"http\":[],\"udp\":[\"127.0.0.1:9000\"],\"quic\":[]}";
    fs::write(book.path(), original).unwrap();
    for (p, addr) in [
        (Transport::Udp, "127.0.0.1:0"),
        (Transport::Grpc, "127.0.0.1:65536"),
        (Transport::Http, "127.0.0.1:8080"),
        (Transport::Quic, ""),
    ] {
        assert!(matches!(
            book.add(p, addr, None),
            Err(PeersError::InvalidAddress { .. })
        ));
        assert!(book.remove(p, addr).is_err());
    }
    assert_eq!(fs::read_to_string(book.path()).unwrap(), original);
    // An already-listed address is not rewritten (the compact original stays compact).
    assert!(!book.add(Transport::Udp, "127.0.0.1:9000", None).unwrap());
    assert_eq!(fs::read_to_string(book.path()).unwrap(), original);
}

#[test]
fn writes_fail_cleanly_without_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let book = PeerBook::new(dir.path().join("missing").join("peers.json"));
    let e = book
        .add(Transport::Udp, "127.0.0.1:9000", None)
        .unwrap_err();
    assert!(matches!(e, PeersError::Write { .. }), "{e}");
    assert!(e.to_string().contains("check that its directory exists"));
}

#[cfg(unix)]
#[test]
fn writes_keep_the_mode_and_follow_a_symlink() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, book) = book();
    let real = dir.path().join("real.json");
    fs::write(&real, r#"{"grpc":[],"http":[],"udp":[],"quic":[]}"#).unwrap();
    fs::set_permissions(&real, fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&real, book.path()).unwrap();
    assert!(book.add(Transport::Udp, "127.0.0.1:9000", None).unwrap());
    assert!(
        fs::symlink_metadata(book.path())
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        fs::metadata(&real).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(book.load().unwrap().udp, ["127.0.0.1:9000"]);
}

#[test]
fn serializes_with_all_four_keys_in_order() {
    let text = serde_json::to_string(&Peers::default()).unwrap();
    assert_eq!(text, r#"{"grpc":[],"http":[],"udp":[],"quic":[]}"#);
}

const PIN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn pins_are_written_normalised_only_when_set_and_replaced_by_a_new_one() {
    let (_dir, book) = book();
    let colons = PIN
        .to_ascii_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    assert!(
        book.add(Transport::Quic, "10.0.0.1:4433", Some(&colons))
            .unwrap()
    );
    assert!(book.add(Transport::Udp, "10.0.0.1:9000", None).unwrap());
    let value: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(book.path()).unwrap()).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"grpc": [], "http": [], "udp": ["10.0.0.1:9000"],
                           "quic": ["10.0.0.1:4433"], "pins": {"10.0.0.1:4433": PIN}})
    );
    let peers = book.load().unwrap();
    assert_eq!(peers.pin("10.0.0.1:4433"), Some(PIN));
    assert_eq!(peers.pin("10.0.0.1:9000"), None);
    // The same pin again changes nothing; another replaces it.
    assert!(
        !book
            .add(Transport::Quic, "10.0.0.1:4433", Some(PIN))
            .unwrap()
    );
    let other = "f".repeat(64);
    assert!(
        book.add(Transport::Quic, "10.0.0.1:4433", Some(&other))
            .unwrap()
    );
    assert_eq!(
        book.load().unwrap().pin("10.0.0.1:4433"),
        Some(other.as_str())
    );
}

#[test]
fn a_pin_must_be_a_fingerprint_for_an_address_with_tls() {
    let (_dir, book) = book();
    let original =
        "{\"grpc\":[],\"http\":[\"http://a.example\"],\"udp\":[\"10.0.0.1:9000\"],\"quic\":[]}";
    fs::write(book.path(), original).unwrap();
    for (protocol, address, pin, needle) in [
        (Transport::Quic, "10.0.0.1:4433", "abc", "64 hex digits"),
        (
            Transport::Quic,
            "10.0.0.1:4433",
            &"g".repeat(64),
            "64 hex digits",
        ),
        (Transport::Udp, "10.0.0.1:9000", PIN, "no TLS to pin"),
        (Transport::Http, "http://a.example", PIN, "no TLS to pin"),
    ] {
        let e = book.add(protocol, address, Some(pin)).unwrap_err();
        assert!(matches!(e, PeersError::InvalidPin { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains(address) && msg.contains(needle), "{msg}");
        assert_eq!(fs::read_to_string(book.path()).unwrap(), original);
    }
    assert!(
        book.add(Transport::Http, "https://a.example", Some(PIN))
            .unwrap()
    );
}

#[test]
fn removing_the_last_listing_of_an_address_drops_its_pin() {
    let (_dir, book) = book();
    // One node whose gRPC and QUIC share a port number: one address, one pin.
    book.add(Transport::Grpc, "10.0.0.1:7000", Some(PIN))
        .unwrap();
    book.add(Transport::Quic, "10.0.0.1:7000", None).unwrap();
    book.add(Transport::Udp, "10.0.0.1:7000", None).unwrap();
    assert!(book.remove(Transport::Grpc, "10.0.0.1:7000").unwrap());
    assert_eq!(
        book.load().unwrap().pin("10.0.0.1:7000"),
        Some(PIN),
        "still listed under quic"
    );
    assert!(book.remove(Transport::Quic, "10.0.0.1:7000").unwrap());
    let text = fs::read_to_string(book.path()).unwrap();
    assert!(
        !text.contains("pins"),
        "only UDP is left, which a pin cannot apply to: {text}"
    );
}

#[test]
fn a_file_with_a_bad_pins_entry_is_refused_with_its_path() {
    let (_dir, book) = book();
    for (content, needle) in [
        (
            r#"{"grpc": [], "http": [], "udp": [], "quic": [], "pins": {"10.0.0.1:4433": "x"}}"#
                .to_string(),
            "holds an invalid pin for \"10.0.0.1:4433\"",
        ),
        (
            format!(
                r#"{{"grpc": [], "http": [], "udp": [], "quic": ["10.0.0.1:1"], "pins": {{"10.0.0.2:1": "{PIN}"}}}}"#
            ),
            "not listed under any protocol",
        ),
        (
            r#"{"grpc": [], "http": [], "udp": [], "quic": [], "pins": []}"#.to_string(),
            "optionally pins",
        ),
    ] {
        fs::write(book.path(), &content).unwrap();
        let msg = book.load().unwrap_err().to_string();
        assert!(
            msg.contains(&book.path().display().to_string()) && msg.contains(needle),
            "{content}: {msg}"
        );
        assert!(parse(content.as_bytes()).is_err());
    }
}
