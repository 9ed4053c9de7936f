//! What an operator installs beside the binary: shell completions, manual pages, the
//! effective configuration (`serve --print-config`) and the systemd unit.

use std::{path::Path, process::Command};

use poh_node::NodeConfig;

use crate::common::{poh, text};

fn poh_with_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_poh"))
        .args(args)
        .env_remove("POH_PEERS_FILE")
        .env_remove("POH_CONFIG")
        .envs(env.iter().copied())
        .output()
        .expect("run poh")
}

#[test]
fn completions_load_in_bash_and_name_every_command() {
    let out = poh(&["completions", "bash"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let script = text(&out.stdout);
    // bash itself loads the script and registers the completion function.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("poh.bash");
    std::fs::write(&file, &script).unwrap();
    let bash = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p poh", file.display()))
        .output()
        .unwrap();
    assert!(bash.status.success(), "{}", text(&bash.stderr));
    assert!(text(&bash.stdout).contains("poh"), "{}", text(&bash.stdout));
    for command in ["serve", "restore", "completions", "man", "add-peer"] {
        assert!(script.contains(command), "bash completions lack {command}");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = poh(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("print-config"), "{shell}");
    }
    let out = poh(&["completions", "tcsh"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("invalid value 'tcsh'"));
}

#[test]
fn man_pages_cover_every_command() {
    let out = poh(&["man"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page = text(&out.stdout);
    assert!(page.starts_with(".ie"), "{}", &page[..page.len().min(200)]);
    assert!(page.contains(".TH poh 1"), "roff title");
    assert!(page.contains("poh\\-serve(1)"), "lists the command pages");

    let dir = tempfile::tempdir().unwrap();
    let out = poh(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for page in [
        "poh.1",
        "poh-serve.1",
        "poh-bench-ingest.1",
        "poh-restore.1",
    ] {
        let roff = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(roff.contains(".TH"), "{page}");
    }
    let serve = std::fs::read_to_string(dir.path().join("poh-serve.1")).unwrap();
    assert!(
        serve.contains("print\\-config"),
        "serve's page has its flags"
    );
}

/// `poh serve --print-config`: flags over `POH_*` over the file over the defaults, secrets
/// masked, and the printed TOML reads back to the same configuration.
#[test]
fn print_config_shows_what_wins_masks_secrets_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    std::fs::write(
        &file,
        r#"
chain_id = "municipality/kobe"
db_cache_mb = 64

[poh]
hashes_per_tick = 1000

[fragments]
locations = ["s3://poh-fragments/kobe"]

[fragments.s3]
access_key_id = "AKIAEXAMPLEKEY1234"
secret_access_key_file = "/etc/poh/s3-secret"
"#,
    )
    .unwrap();
    let data = dir.path().join("never-made");
    let args = [
        "serve",
        "--config",
        file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--hashes-per-tick",
        "3000",
        "--no-udp",
        "--print-config",
    ];
    let env = [
        ("POH_HASHES_PER_TICK", "2000"),
        ("POH_TICKS_PER_SECOND", "80"),
    ];
    let out = poh_with_env(&args, &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let config = NodeConfig::from_toml(&printed).unwrap();
    assert_eq!(config.chain_id, "municipality/kobe", "the file");
    assert_eq!(config.db_cache_mb, 64, "the file");
    assert_eq!(
        config.poh.hashes_per_tick, 3000,
        "the flag beats the variable"
    );
    assert_eq!(
        config.poh.ticks_per_second, 80,
        "the variable beats the default"
    );
    assert_eq!(config.udp, None, "--no-udp");
    assert!(config.quic.is_some(), "the default");
    assert_eq!(config.data_dir, data);
    assert_eq!(
        config.fragments.s3.access_key_id.as_deref(),
        Some("****1234")
    );
    assert!(!printed.contains("AKIAEXAMPLE"), "{printed}");
    assert!(
        printed.contains("/etc/poh/s3-secret"),
        "a secret's file is named"
    );
    assert!(!data.exists(), "nothing started");

    // The printed file, read back, prints the same (but for the masked key id).
    let unmasked: String = printed
        .lines()
        .filter(|l| !l.starts_with("access_key_id"))
        .map(|l| format!("{l}\n"))
        .collect();
    let again = dir.path().join("printed.toml");
    std::fs::write(&again, &unmasked).unwrap();
    let out = poh_with_env(
        &[
            "serve",
            "--config",
            again.to_str().unwrap(),
            "--print-config",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), unmasked);

    // A configuration that cannot start is printed, then refused in one line.
    let out = poh_with_env(&["serve", "--hashes-per-tick", "1", "--print-config"], &[]);
    assert!(!out.status.success());
    assert!(text(&out.stdout).contains("hashes_per_tick = 1"));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: this configuration cannot start a node"),
        "{err}"
    );
}

/// systemd accepts the unit (`systemd-analyze verify`, with this build as its binary and the
/// generated manual pages installed), its sandboxing is on, and its `ExecStart` is a command
/// line `poh serve` accepts.
#[test]
fn the_systemd_unit_verifies_and_runs_a_command_poh_accepts() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/systemd/poh.service"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man");
    let out = poh(&["man", "--dir", man.join("man1").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let copy = dir.path().join("poh.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/poh", env!("CARGO_BIN_EXE_poh")),
    )
    .unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .env("MANPATH", &man)
        .output()
        .expect("systemd-analyze (Debian's systemd package) checks the unit");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "{}",
        text(&verify.stderr)
    );

    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/poh"));
    let mut args: Vec<&str> = words.collect();
    for setting in [
        "ProtectSystem=strict",
        "NoNewPrivileges=true",
        "StateDirectory=poh",
        "DynamicUser=true",
    ] {
        assert!(unit.lines().any(|l| l == setting), "{setting}");
    }
    // The unit's data directory comes from StateDirectory: point it at a temporary one.
    let state = dir.path().to_str().unwrap().to_string();
    let config = dir.path().join("poh.toml");
    std::fs::write(&config, "chain_id = \"municipality/kobe\"\n").unwrap();
    let config = config.to_str().unwrap().to_string();
    for arg in &mut args {
        if *arg == "/var/lib/poh" {
            *arg = &state;
        } else if *arg == "/etc/poh/poh.toml" {
            *arg = &config;
        }
    }
    args.push("--print-config");
    let out = poh_with_env(&args, &[]);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    let printed = NodeConfig::from_toml(&text(&out.stdout)).unwrap();
    assert_eq!(printed.data_dir, dir.path());
    assert_eq!(printed.chain_id, "municipality/kobe");
}
