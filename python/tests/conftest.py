"""Helpers of the package's tests: the `poh` binary, and real `poh serve` processes on ports
the system picks."""

import json
import os
import re
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import poh

REPO = Path(__file__).resolve().parents[2]
# Low enough that a debug build keeps up, high enough that ticks are real work.
HASHES_PER_TICK = 1000
# Headers sealed often, so a transaction is sealed (and provable) soon after it is stored.
SEALING = ["--min-batch-interval", "0.05", "--max-batch-interval", "0.3", "--no-udp", "--no-quic"]


@pytest.fixture(scope="session")
def poh_bin():
    """The `poh` binary: `POH_BIN`, else `target/debug/poh`, built when missing."""
    path = Path(os.environ.get("POH_BIN", REPO / "target" / "debug" / "poh"))
    if not path.exists():
        subprocess.run(
            ["cargo", "build", "--quiet", "-p", "poh-cli"], cwd=REPO, check=True
        )
    return str(path)


def run(poh_bin, *args, check=True):
    """`poh ARGS`; its standard output, or the error when `check` and it fails."""
    done = subprocess.run(
        [poh_bin, *map(str, args)], capture_output=True, text=True, timeout=120
    )
    if check and done.returncode != 0:
        raise AssertionError(f"poh {' '.join(map(str, args))}: {done.stderr}")
    return done


class Node:
    """A running `poh serve`: its gRPC address and HTTP base URL."""

    def __init__(self, process, grpc, http, log):
        self.process = process
        self.grpc = grpc
        self.http = http
        self.log = log
        self.ssl = None
        self.token = None

    def get(self, path):
        """`GET path` as parsed JSON; raises `urllib.error.HTTPError` on an error status."""
        request = urllib.request.Request(self.http + path)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=10, context=self.ssl) as answer:
            return json.load(answer)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def serve(poh_bin, tmp_path):
    """Starts `poh serve FLAGS...` in a data directory of its own; stopped after the test."""
    nodes = []

    def start(*flags, scheme="http"):
        data = tmp_path / f"node{len(nodes)}"
        process = subprocess.Popen(
            [
                poh_bin, "serve", "--data-dir", data,
                "--grpc-port", "0", "--http-port", "0", "--udp-port", "0", "--quic-port", "0",
                "--hashes-per-tick", str(HASHES_PER_TICK), "--ticks-per-second", "50",
                *map(str, flags),
            ],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("POH_")},
                "RUST_LOG": "info",
            },
        )
        found = threading.Event()
        log = []
        addresses = {}

        def drain():
            # Read the log for the node's whole life, so it never blocks on a full pipe.
            for line in process.stderr:
                log.append(line)
                match = re.search(r" grpc=(\S+) http=(\S+)", line)
                if match and not found.is_set():
                    addresses["grpc"], addresses["http"] = match.groups()
                    found.set()

        threading.Thread(target=drain, daemon=True).start()
        deadline = time.monotonic() + 60
        while not found.wait(0.05):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise AssertionError("poh serve did not start:\n" + "".join(log))
        node = Node(process, addresses["grpc"], f"{scheme}://{addresses['http']}", log)
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()


def wait_for(what, check, seconds=30):
    """`check()` once it is truthy; fails naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def https_context(ca):
    """An SSL context trusting exactly `ca`."""
    return ssl.create_default_context(cafile=str(ca))


def submit_holders(client):
    """25 transactions of alice's among 15 of bob's; alice's, in order."""
    txs = []
    for i in range(40):
        holder = "alice" if i % 8 < 5 else "bob"
        txs.append(poh.Tx(tx_id=f"{holder}-{i}", holder_id=holder, payload=b"%d" % i))
    assert {a.code for a in client.submit_batch(txs)} == {"STORED"}
    return [t for t in txs if t.holder_id == "alice"]


def check_pages(pages, alice):
    """Pages of 10 of alice's 25 transactions, in seq order, the last one saying so."""
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [p.more for p in pages] == [True, True, False]
    records = [r for p in pages for r in p]
    assert [r.tx for r in records] == alice
    seqs = [r.poh_seq for r in records]
    assert seqs == sorted(seqs) and len(set(seqs)) == 25
    for page, after in zip(pages, pages[1:]):
        assert page.records[-1].poh_seq < page.next_seq <= after.records[0].poh_seq
    assert repr(pages[0]).startswith("Page(records=<10>")

