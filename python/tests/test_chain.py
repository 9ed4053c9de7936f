"""Verification of what a node serves: its PoH entries, its sealed headers (as a parent node
checks them) and inclusion proofs, each passing as served and failing, by name, when
changed."""

import copy
import json
import threading
import time

import pytest

import poh
from conftest import HASHES_PER_TICK, SEALING, run, wait_for


def entries_until(node, end):
    """Entries 0..end of the node's chain, and the hash before the first."""
    start, entries = None, []
    while len(entries) < end:
        answer = node.get(f"/v1/poh/entries?from={len(entries)}&limit=10000")
        first, page = poh.entries_from_json(answer)
        start = start if start is not None else first
        entries.extend(page)
    return start, entries[:end]


def submit(node, n, prefix):
    client = poh.Client(node.grpc)
    txs = [poh.Tx(tx_id=f"{prefix}-{i}", holder_id="h", payload=b"p%d" % i) for i in range(n)]
    assert all(ack.success for ack in client.submit_batch(txs))
    return client, txs


def test_entries_a_node_serves_verify_and_the_first_bad_one_is_named(serve):
    node = serve("--no-udp", "--no-quic")
    client, txs = submit(node, 20, "e")
    wait_for("the PoH to pass the last transaction", lambda: node.get("/v1/poh")["entries"] > 50)
    end = node.get("/v1/poh")["entries"]
    start, entries = entries_until(node, end)
    assert start == poh.genesis("local")
    poh.verify_entries(start, entries, HASHES_PER_TICK)

    # Each transaction's digest is a mixin of the entry whose hash is its poh_hash.
    by_hash = {e.hash: e for e in entries}
    for tx in txs:
        status = client.status(tx.tx_id)
        assert tx.digest() in by_hash[status.poh_hash].mixins

    def fails_at(changed, start=start):
        with pytest.raises(poh.VerifyError) as raised:
            poh.verify_entries(start, changed, HASHES_PER_TICK)
        return raised.value.index

    k = next(i for i, e in enumerate(entries) if e.mixins)
    e = entries[k]
    forged = entries[:k] + [poh.Entry(e.num_hashes, e.hash, e.mixins[1:] + [b"\x01" * 32])] + entries[k + 1:]
    assert fails_at(forged) == k
    late = len(entries) - 3
    e = entries[late]
    wrong_hash = bytes([e.hash[0] ^ 1]) + e.hash[1:]
    assert fails_at(entries[:late] + [poh.Entry(e.num_hashes, wrong_hash, e.mixins)] + entries[late + 1:]) == late
    assert fails_at(entries, start=b"\x00" * 32) == 0
    with pytest.raises(poh.VerifyError, match="above the chain's hashes_per_tick"):
        poh.verify_entries(start, entries, HASHES_PER_TICK // 2)
    with pytest.raises(ValueError, match="32 bytes"):
        poh.verify_entries(b"short", entries, HASHES_PER_TICK)


def test_verify_entries_runs_with_the_gil_released(poh_bin, tmp_path):
    log = tmp_path / "chain.log"
    run(poh_bin, "generate-log", "--out", log, "--entries", "800", "--hashes-per-tick", "20000")
    lines = log.read_text().splitlines()
    head = json.loads(lines[0])
    start = bytes.fromhex(head["start_hash"])
    entries = [poh.Entry.from_json(line) for line in lines[1:]]

    calls = []

    def verify():
        for _ in range(4):
            began = time.monotonic()
            poh.verify_entries(start, entries, head["hashes_per_tick"])
            calls.append(time.monotonic() - began)

    worker = threading.Thread(target=verify)
    beats = []
    worker.start()
    while worker.is_alive():
        beats.append(time.monotonic())
    worker.join()
    assert len(calls) == 4
    # Had a call held the GIL, this thread would have stood still for that call's whole
    # length; it kept running instead.
    gaps = [b - a for a, b in zip(beats, beats[1:])]
    assert max(gaps) < min(calls) / 2, (max(gaps), calls)


def test_headers_verify_as_a_parent_node_checks_them(serve, tmp_path):
    key = poh.keygen(tmp_path / "node.key")
    node = serve("--node-key", tmp_path / "node.key", *SEALING)
    submit(node, 30, "h")
    answer = wait_for(
        "four sealed headers",
        lambda: (lambda a: a if len(a["headers"]) >= 4 else None)(node.get("/v1/headers")),
    )
    headers = [poh.Header.from_json(h) for h in answer["headers"]]
    assert sum(h.item_count for h in headers) >= 1
    _, entries = entries_until(node, headers[-1].poh_end)

    verifier = poh.HeaderVerifier(chain_id="local", public_key=key.public_key, hashes_per_tick=HASHES_PER_TICK)
    for h in headers:
        h.verify_signature()
        assert h.header_hash().hex() == h.header_id and h.public_key == key.public_key
        assert poh.Header.from_json(h.to_json()) == h
        verifier.verify(h, entries[h.poh_start:h.poh_end])
    assert verifier.height == len(headers) and verifier.poh_start == headers[-1].poh_end

    def refused(header, covered, verifier_key=key.public_key):
        fresh = poh.HeaderVerifier(chain_id="local", public_key=verifier_key, hashes_per_tick=HASHES_PER_TICK)
        with pytest.raises(poh.HeaderError) as raised:
            fresh.verify(header, covered)
        return str(raised.value)

    first = headers[0]
    covered = entries[first.poh_start:first.poh_end]
    assert "height is 1, expected 0" in refused(headers[1], entries[headers[1].poh_start:headers[1].poh_end])
    assert "public_key" in refused(first, covered, verifier_key=poh.SigningKey.generate().public_key)
    assert "PoH entries came with a header covering" in refused(first, covered[:-1])
    e = covered[-1]
    changed = covered[:-1] + [poh.Entry(e.num_hashes, bytes(32), e.mixins)]
    assert f"PoH entry {first.poh_end - 1}" in refused(first, changed)

    # A changed field no longer matches header_id; a changed signature no longer verifies.
    raw = answer["headers"][0]
    with pytest.raises(poh.HeaderError, match="header_id"):
        poh.Header.from_json({**raw, "item_count": raw["item_count"] + 1})
    signature = bytearray(first.signature)
    signature[100] ^= 1
    import base64

    forged = poh.Header.from_json({**raw, "signature_b64": base64.b64encode(bytes(signature)).decode()})
    with pytest.raises(poh.HeaderError, match="signature"):
        forged.verify_signature()
    assert "signature" in refused(forged, covered)


def test_a_proof_the_node_serves_verifies_and_a_changed_one_does_not(serve, poh_bin, tmp_path):
    key = poh.keygen(tmp_path / "node.key")
    node = serve("--node-key", tmp_path / "node.key", *SEALING)
    client, txs = submit(node, 12, "p")
    tx = txs[5]
    status = wait_for("p-5 sealed", lambda: (lambda s: s if s.status == "SEALED" else None)(client.status(tx.tx_id)))
    proof = node.get(f"/v1/tx/{tx.tx_id}/proof")
    trusted = [key.public_key]
    headers = poh.verify_proof(proof, tx, trusted_keys=trusted)
    assert headers[0].header_id == status.header_id and headers[0].chain_id == "local"

    # `poh prove` writes the same proof; it verifies from the file's text.
    out = tmp_path / "p5.proof"
    run(poh_bin, "prove", tx.tx_id, "--url", node.http, "--out", out, "--trust", tmp_path / "node.key.pub")
    assert [h.header_id for h in poh.verify_proof(out.read_text(), tx, trusted_keys=trusted)] == [
        h.header_id for h in headers
    ]

    with pytest.raises(poh.ProofError, match="not of this transaction"):
        poh.verify_proof(proof, txs[6], trusted_keys=trusted)
    changed = copy.deepcopy(proof)
    changed["links"][0]["index"] += 1
    with pytest.raises(poh.ProofError, match="link 0"):
        poh.verify_proof(changed, trusted_keys=trusted)
    changed = copy.deepcopy(proof)
    changed["tx"]["holder_id"] = "mallory"
    with pytest.raises(poh.ProofError, match="digest"):
        poh.verify_proof(changed, trusted_keys=trusted)
    with pytest.raises(poh.ProofError, match="not a proof"):
        poh.verify_proof("{}", trusted_keys=trusted)


def test_a_proof_is_accepted_only_under_a_key_the_caller_trusts(serve, tmp_path):
    key = poh.keygen(tmp_path / "node.key")
    node = serve("--node-key", tmp_path / "node.key", *SEALING)
    client, txs = submit(node, 3, "t")
    tx = txs[1]
    wait_for("t-1 sealed", lambda: client.status(tx.tx_id).status == "SEALED")
    proof = node.get(f"/v1/tx/{tx.tx_id}/proof")

    # Anyone can sign headers with a key of their own: without a trusted key the proof is
    # self-consistent only, and refused unless the caller says that is enough.
    with pytest.raises(poh.ProofError, match="self-consistent but unanchored") as raised:
        poh.verify_proof(proof, tx)
    assert "local" in str(raised.value) and "trusted_keys" in str(raised.value)
    stranger = poh.SigningKey.generate().public_key
    with pytest.raises(poh.ProofError, match="unanchored"):
        poh.verify_proof(proof, tx, trusted_keys=[stranger])
    headers = poh.verify_proof(proof, tx, trusted_keys=[stranger, key.public_key])
    assert headers[-1].public_key == key.public_key
    assert poh.verify_proof(proof, tx, untrusted=True) == headers

    # A key file's hex text is not the key: said so, rather than silently matching nothing.
    with pytest.raises(ValueError, match="2592 bytes"):
        poh.verify_proof(proof, tx, trusted_keys=[(tmp_path / "node.key.pub").read_bytes()])
    with pytest.raises(ValueError, match="2592 bytes"):
        poh.HeaderVerifier(chain_id="local", public_key=key.public_key.hex().encode(), hashes_per_tick=HASHES_PER_TICK)
    with pytest.raises(ValueError, match="untrusted"):
        poh.verify_proof(proof, tx, trusted_keys=[key.public_key], untrusted=True)
