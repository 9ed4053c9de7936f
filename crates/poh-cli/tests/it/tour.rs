//! The README's five-minute tour, run line by line as a newcomer would, and every relative
//! link of the README and `docs/` resolved: the front door keeps working.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::{
    common::{is_root, text},
    hosts::{ip, ip_quietly},
};

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shell lines between the README's `<!-- tour -->` markers.
fn tour() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let (_, rest) = readme
        .split_once("<!-- tour -->")
        .expect("a tour in the README");
    let (block, _) = rest.split_once("<!-- /tour -->").unwrap();
    let (_, script) = block.split_once("```sh\n").unwrap();
    script.split_once("```").unwrap().0.to_string()
}

/// A network namespace for the tour's fixed ports, removed (its processes killed) on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "pids", &self.0])
            .output()
            .map(|o| {
                for pid in text(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            });
        ip_quietly(&["netns", "del", &self.0]);
    }
}

#[test]
fn the_readme_tour_runs_as_written() {
    // The tour uses the default ports; a namespace of its own keeps them free of every other
    // test's. That needs root (CI runs as root) and iproute2.
    if !is_root() || Command::new("ip").arg("-V").output().is_err() {
        eprintln!("skipped: the tour runs in a network namespace, which needs root and `ip`");
        return;
    }
    let ns = Netns(format!("poh-tour-{}", std::process::id()));
    ip(&["netns", "add", &ns.0]);
    ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_poh")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("timeout")
        .args([
            "120", "ip", "netns", "exec", &ns.0, "bash", "-euo", "pipefail", "-c",
        ])
        // A failing line must not leave the node holding the output open.
        .arg(format!(
            "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{}",
            tour()
        ))
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("POH_PEERS_FILE")
        .output()
        .unwrap();
    let said = text(&out.stdout);
    assert!(
        out.status.success(),
        "the tour failed ({}):\n{said}\n{}",
        out.status,
        text(&out.stderr)
    );
    assert!(said.contains("\"status\":\"stored\""), "{said}");
    assert!(said.contains("ok: tx-1 is ordered up to"), "{said}");
}

/// Heading anchors as GitHub makes them.
fn anchors(markdown: &str) -> Vec<String> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        }
        if !fenced && line.starts_with('#') {
            let title = line.trim_start_matches('#').trim().to_lowercase();
            let slug: String = title
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect();
            out.push(slug);
        }
    }
    out
}

#[test]
fn every_link_of_the_readme_and_docs_resolves() {
    let mut files = vec![root().join("README.md")];
    for item in std::fs::read_dir(root().join("docs")).unwrap() {
        files.push(item.unwrap().path());
    }
    let mut broken = Vec::new();
    for file in &files {
        let markdown = std::fs::read_to_string(file).unwrap();
        for (_, rest) in markdown
            .match_indices("](")
            .map(|(i, _)| markdown.split_at(i + 2))
        {
            let Some(target) = rest
                .split(')')
                .next()
                .filter(|t| !t.contains(char::is_whitespace))
            else {
                continue;
            };
            if target.starts_with("http") || target.is_empty() {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
            let resolved = match path {
                "" => file.clone(),
                p => file.parent().unwrap().join(p),
            };
            let ok = resolved.exists()
                && (anchor.is_empty()
                    || resolved.extension().is_none_or(|e| e != "md")
                    || anchors(&std::fs::read_to_string(&resolved).unwrap())
                        .iter()
                        .any(|a| a == anchor));
            if !ok {
                broken.push(format!("{}: {target}", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
