//! `poh add-peer`, `remove-peer` and `list-peers` on a real peers file: edits keep all four
//! keys, and every refused edit is one line on stderr with the file byte-for-byte unchanged.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::{Value, json};

use crate::common::text;

/// `poh ARGS --peers-file FILE`, with no peers file in the environment.
fn poh_on(file: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_poh"))
        .args(args)
        .arg("--peers-file")
        .arg(file)
        .env_remove("POH_PEERS_FILE")
        .output()
        .expect("run poh")
}

fn succeeds(file: &Path, args: &[&str]) -> String {
    let out = poh_on(file, args);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// Runs a command that must fail: non-zero, exactly one `error: ` line naming `needle`, and
/// the file (or its absence) exactly as before.
fn refused(file: &Path, args: &[&str], needle: &str) {
    let before = std::fs::read(file).ok();
    let out = poh_on(file, args);
    let err = text(&out.stderr);
    assert!(
        !out.status.success(),
        "{args:?} succeeded: {}",
        text(&out.stdout)
    );
    assert!(
        err.starts_with("error: ") && err.lines().count() == 1 && err.contains(needle),
        "{args:?}: {err:?} should name {needle:?}"
    );
    assert_eq!(
        std::fs::read(file).ok(),
        before,
        "{args:?} changed the file"
    );
}

fn file_json(file: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap()
}

fn temp_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("peers.json");
    (dir, file)
}

#[test]
fn add_creates_the_file_with_all_four_keys_and_keeps_one_copy() {
    let (_dir, file) = temp_file();
    let out = succeeds(&file, &["add-peer", "grpc", "127.0.0.1:50051"]);
    assert!(out.starts_with("added grpc 127.0.0.1:50051 to "), "{out}");
    assert_eq!(
        file_json(&file),
        json!({"grpc": ["127.0.0.1:50051"], "http": [], "udp": [], "quic": []})
    );

    let bytes = std::fs::read(&file).unwrap();
    let out = succeeds(&file, &["add-peer", "grpc", "127.0.0.1:50051"]);
    assert!(out.contains("is already in"), "{out}");
    assert_eq!(std::fs::read(&file).unwrap(), bytes);

    succeeds(&file, &["add-peer", "http", "http://127.0.0.1:8080"]);
    succeeds(&file, &["add-peer", "udp", "127.0.0.1:9000"]);
    succeeds(&file, &["add-peer", "quic", "[::1]:4433"]);
    succeeds(&file, &["add-peer", "udp", "node-2.example.com:9000"]);
    assert_eq!(
        file_json(&file),
        json!({
            "grpc": ["127.0.0.1:50051"],
            "http": ["http://127.0.0.1:8080"],
            "udp": ["127.0.0.1:9000", "node-2.example.com:9000"],
            "quic": ["[::1]:4433"],
        })
    );
}

#[test]
fn list_peers_prints_lines_or_json_and_remove_takes_one_out() {
    let (_dir, file) = temp_file();
    assert_eq!(succeeds(&file, &["list-peers"]), "no peers\n");
    let empty: Value = serde_json::from_str(&succeeds(&file, &["list-peers", "--json"])).unwrap();
    assert_eq!(
        empty,
        json!({"grpc": [], "http": [], "udp": [], "quic": []})
    );
    assert!(!file.exists(), "listing creates nothing");

    succeeds(&file, &["add-peer", "udp", "127.0.0.1:9000"]);
    succeeds(&file, &["add-peer", "http", "https://node.example.com/poh"]);
    succeeds(&file, &["add-peer", "udp", "[::1]:9000"]);
    assert_eq!(
        succeeds(&file, &["list-peers"]),
        "http https://node.example.com/poh\nudp 127.0.0.1:9000\nudp [::1]:9000\n"
    );
    let listed: Value = serde_json::from_str(&succeeds(&file, &["list-peers", "--json"])).unwrap();
    assert_eq!(listed, file_json(&file));

    let out = succeeds(&file, &["remove-peer", "udp", "127.0.0.1:9000"]);
    assert!(out.starts_with("removed udp 127.0.0.1:9000 from "), "{out}");
    assert_eq!(
        file_json(&file),
        json!({"grpc": [], "http": ["https://node.example.com/poh"], "udp": ["[::1]:9000"], "quic": []})
    );
    // Removing what is not listed (here: listed under another protocol) is an error.
    refused(
        &file,
        &["remove-peer", "grpc", "[::1]:9000"],
        "grpc peer \"[::1]:9000\" is not in",
    );
    refused(
        &file,
        &["remove-peer", "udp", "127.0.0.1:9000"],
        "nothing removed",
    );
    succeeds(&file, &["remove-peer", "udp", "[::1]:9000"]);
    succeeds(
        &file,
        &["remove-peer", "http", "https://node.example.com/poh"],
    );
    assert_eq!(succeeds(&file, &["list-peers"]), "no peers\n");
    assert_eq!(
        file_json(&file),
        json!({"grpc": [], "http": [], "udp": [], "quic": []})
    );
}

#[test]
fn the_file_comes_from_poh_peers_file_or_home() {
    let dir = tempfile::tempdir().unwrap();
    let from_env = dir.path().join("env.json");
    let run = |args: &[&str], env: Option<&Path>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_poh"));
        command.args(args).env("HOME", dir.path());
        match env {
            Some(file) => command.env("POH_PEERS_FILE", file),
            None => command.env_remove("POH_PEERS_FILE"),
        };
        let out = command.output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    run(&["add-peer", "udp", "127.0.0.1:9000"], Some(&from_env));
    assert_eq!(file_json(&from_env)["udp"], json!(["127.0.0.1:9000"]));
    assert_eq!(
        run(&["list-peers"], Some(&from_env)),
        "udp 127.0.0.1:9000\n"
    );

    // Neither flag nor variable: $HOME/.poh_peers.json.
    run(&["add-peer", "quic", "127.0.0.1:4433"], None);
    assert_eq!(
        file_json(&dir.path().join(".poh_peers.json")),
        json!({"grpc": [], "http": [], "udp": [], "quic": ["127.0.0.1:4433"]})
    );

    // The flag wins over the variable.
    let from_flag = dir.path().join("flag.json");
    let out = Command::new(env!("CARGO_BIN_EXE_poh"))
        .args(["add-peer", "grpc", "127.0.0.1:50051", "--peers-file"])
        .arg(&from_flag)
        .env("POH_PEERS_FILE", &from_env)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(file_json(&from_flag)["grpc"], json!(["127.0.0.1:50051"]));
    assert_eq!(file_json(&from_env)["grpc"], json!([]));
}

/// Every refused edit, against a missing file and against an existing one.
#[test]
fn refused_edits_are_one_line_and_leave_the_file_untouched() {
    let (_dir, file) = temp_file();
    let cases: &[(&[&str], &str)] = &[
        (
            &["add-peer", "tcp", "127.0.0.1:9000"],
            "unknown protocol \"tcp\": expected one of grpc, http, udp, quic",
        ),
        (
            &["remove-peer", "smtp", "127.0.0.1:9000"],
            "unknown protocol",
        ),
        (
            &["add-peer", "grpc", "127.0.0.1"],
            "invalid grpc address \"127.0.0.1\"",
        ),
        (&["add-peer", "grpc", "localhost:port"], "digits only"),
        (
            &["add-peer", "udp", "127.0.0.1:0"],
            "port 0 is out of range",
        ),
        (
            &["add-peer", "udp", "127.0.0.1:65536"],
            "port 65536 is out of range",
        ),
        (&["add-peer", "udp", "999.0.0.1:9000"], "not a valid IPv4"),
        (&["add-peer", "quic", "::1:4433"], "must be in brackets"),
        (&["add-peer", "quic", "[::1]:0"], "port 0 is out of range"),
        (
            &["add-peer", "quic", "bad_host:4433"],
            "invalid quic address",
        ),
        (&["add-peer", "grpc", ""], "the address is empty"),
        (&["add-peer", "grpc", "127.0.0.1 :50051"], "spaces"),
        (
            &["add-peer", "http", "127.0.0.1:8080"],
            "expected an http:// or https:// URL",
        ),
        (
            &["add-peer", "http", "ftp://example.com"],
            "\"ftp\" is not supported",
        ),
        (
            &["add-peer", "http", "http://example.com:0"],
            "port 0 is out of range",
        ),
        (&["add-peer", "http", "http://"], "no host"),
        (
            &["remove-peer", "udp", "127.0.0.1:0"],
            "port 0 is out of range",
        ),
    ];
    for existing in [
        None,
        Some("{\"grpc\":[],\"http\":[],\"udp\":[\"127.0.0.1:9000\"],\"quic\":[]}"),
    ] {
        if let Some(content) = existing {
            std::fs::write(&file, content).unwrap();
        }
        for (args, needle) in cases {
            refused(&file, args, needle);
        }
        assert_eq!(file.exists(), existing.is_some());
    }
}

#[test]
fn an_invalid_existing_file_is_named_and_never_rewritten() {
    let (_dir, file) = temp_file();
    for (content, needle) in [
        ("{\"grpc\": [\"127.0.0.1:50051\"", "is not valid: EOF"),
        ("not json at all", "is not valid"),
        (
            "{\"grpc\": [], \"http\": [], \"udp\": []}",
            "missing field `quic`",
        ),
        (
            "{\"grpc\": [], \"http\": [], \"udp\": [], \"quic\": [], \"smtp\": []}",
            "unknown field `smtp`",
        ),
        (
            "{\"grpc\": [], \"http\": [], \"udp\": [\"127.0.0.1:0\"], \"quic\": []}",
            "holds an invalid udp address \"127.0.0.1:0\"",
        ),
    ] {
        std::fs::write(&file, content).unwrap();
        let name = file.display().to_string();
        for args in [
            &["add-peer", "udp", "127.0.0.1:9000"][..],
            &["remove-peer", "udp", "127.0.0.1:9000"],
            &["list-peers"],
            &["list-peers", "--json"],
        ] {
            refused(&file, args, needle);
            refused(&file, args, &name);
        }
    }
}

#[cfg(unix)]
#[test]
fn an_unwritable_directory_is_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("peers.json");
    std::fs::write(&file, "{\"grpc\":[],\"http\":[],\"udp\":[],\"quic\":[]}").unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o500)).unwrap();
    // root ignores directory permissions; there is nothing to check then.
    let probe = dir.path().join("probe");
    if std::fs::write(&probe, "").is_ok() {
        let _ = std::fs::remove_file(&probe);
    } else {
        refused(
            &file,
            &["add-peer", "udp", "127.0.0.1:9000"],
            "cannot write the peers file",
        );
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let missing_dir = dir.path().join("no-such-dir").join("peers.json");
    refused(
        &missing_dir,
        &["add-peer", "udp", "127.0.0.1:9000"],
        "check that its directory exists",
    );
}

#[test]
fn add_peer_pin_stores_a_certificate_pin_that_list_peers_shows() {
    let (_dir, file) = temp_file();
    let pin = "AB:".repeat(31) + "AB";
    let out = succeeds(&file, &["add-peer", "quic", "10.0.0.1:4433", "--pin", &pin]);
    assert!(out.contains("certificate pinned"), "{out}");
    let lower = "ab".repeat(32);
    assert_eq!(
        file_json(&file),
        json!({"grpc": [], "http": [], "udp": [], "quic": ["10.0.0.1:4433"],
               "pins": {"10.0.0.1:4433": lower}})
    );
    let listed = succeeds(&file, &["list-peers"]);
    assert_eq!(listed.trim(), format!("quic 10.0.0.1:4433 pin={lower}"));

    refused(
        &file,
        &["add-peer", "quic", "10.0.0.2:4433", "--pin", "abc"],
        "64 hex digits",
    );
    refused(
        &file,
        &["add-peer", "udp", "10.0.0.1:9000", "--pin", &lower],
        "no TLS to pin",
    );
    // Removing the address takes its pin with it.
    succeeds(&file, &["remove-peer", "quic", "10.0.0.1:4433"]);
    assert_eq!(
        file_json(&file),
        json!({"grpc": [], "http": [], "udp": [], "quic": []})
    );
}
