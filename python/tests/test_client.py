"""`Client` against real nodes: signed transactions stored by a node that requires
signatures, batches, reads, TLS and tokens as the CLI gives them, and fail-over."""

import concurrent.futures
import json
import re
import threading
import time
from pathlib import Path

import pytest

import poh
from conftest import SEALING, check_pages, https_context, run, submit_holders, wait_for


def test_a_transaction_signed_in_python_verifies_in_a_node(serve):
    node = serve("--require-signatures", "--no-udp", "--no-quic")
    client = poh.Client(node.grpc)
    key = poh.SigningKey.generate()
    tx = poh.Tx(tx_id="py-signed", holder_id="alice", payload=b"\x00\xffbinary")
    tx.sign(key)

    ack = client.submit(tx)
    assert (ack.success, ack.code) == (True, "STORED") and len(ack.poh_hash) == 32
    again = client.submit(tx)
    assert (again.code, again.poh_seq, again.poh_hash) == ("DUPLICATE", ack.poh_seq, ack.poh_hash)

    unsigned = poh.Tx(tx_id="py-unsigned", payload=b"x")
    refused = client.submit(unsigned)
    assert (refused.success, refused.code) == (False, "INVALID") and "signature" in refused.message
    tampered = poh.Tx(tx_id="py-tampered", payload=b"x")
    tampered.sign(key)
    tampered.payload = b"y"
    assert client.submit(tampered).code == "BAD_SIGNATURE"
    conflict = poh.Tx(tx_id="py-signed", holder_id="alice", payload=b"other")
    conflict.sign(key)
    assert client.submit(conflict).code == "CONFLICT"

    status = client.status("py-signed")
    assert status.status in ("ORDERED", "SEALED") and status.poh_hash == ack.poh_hash
    record = client.get_tx("py-signed")
    assert record.tx == tx and record.poh_seq == ack.poh_seq and record.received_at > 0
    assert record.tx.digest() == tx.digest()
    assert client.get_tx("never-seen") is None
    assert client.status("never-seen").status == "UNKNOWN"
    with pytest.raises(poh.ClientError) as raised:
        client.get_tx("not an id!")
    assert raised.value.code == "INVALID_ARGUMENT"
    # The node's own view agrees: the HTTP read returns the same signed bytes.
    assert poh.Tx.from_json(_tx_json(node.get("/v1/tx/py-signed"))) == tx


def _tx_json(answer):
    import json

    fields = ["tx_id", "holder_id", "timestamp", "payload_b64", "parent_ids", "public_key_b64", "signature_b64"]
    return json.dumps({k: answer[k] for k in fields})


def test_a_batch_is_answered_in_order_and_threads_share_a_client(serve):
    node = serve("--no-udp", "--no-quic")
    client = poh.Client(node.grpc)
    txs = [poh.Tx(tx_id=f"b-{i}", payload=b"%d" % i) for i in range(500)]
    txs[250] = poh.Tx(tx_id="b-0", payload=b"not the first one")
    acks = client.submit_batch(txs)
    assert len(acks) == 500 and acks[250].code == "CONFLICT"
    stored = [a for i, a in enumerate(acks) if i != 250]
    assert all(a.code == "STORED" for a in stored)
    seqs = [a.poh_seq for a in stored]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert client.submit_batch([]) == []

    def one(i):
        return client.submit(poh.Tx(tx_id=f"t-{i}", payload=b"x")).code

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert set(pool.map(one, range(200))) == {"STORED"}
    assert node.get("/v1/poh")["seq"] == 499 + 200


def test_tls_and_a_token_as_the_cli_gives_them(serve, poh_bin, tmp_path):
    certs = tmp_path / "certs"
    run(poh_bin, "certs", "--out", certs, "--node", "localhost", "--node", "client")
    tokens = tmp_path / "tokens"
    tokens.write_text("s3cret\n")
    node = serve(
        "--tls-cert", certs / "localhost.crt", "--tls-key", certs / "localhost.key",
        "--auth-token-file", tokens, "--no-udp", "--no-quic", scheme="https",
    )
    address = node.grpc.replace("127.0.0.1", "localhost")
    tx = poh.Tx(tx_id="tls-1", payload=b"x")

    client = poh.Client(address, tls_ca=certs / "ca.crt", token_file=tokens)
    assert client.submit(tx).code == "STORED"
    fingerprint = run(poh_bin, "fingerprint", certs / "localhost.crt").stdout.split()[0]
    assert re.fullmatch("[0-9a-f]{64}", fingerprint)
    pinned = poh.Client(address, tls_pin=fingerprint, token_file=tokens)
    assert pinned.status("tls-1").status in ("ORDERED", "SEALED")
    # The pin as other tools print it: upper case, with colons.
    colons = ":".join(fingerprint[i:i + 2] for i in range(0, 64, 2)).upper()
    assert poh.Client(address, tls_pin=colons, token_file=tokens).get_tx("tls-1").tx == tx
    with pytest.raises(ValueError, match="64 hex digits"):
        poh.Client(address, tls_pin="abc")

    def code(**options):
        with pytest.raises(poh.ClientError) as raised:
            poh.Client(address, timeout=3, **options).status("tls-1")
        return raised.value.code

    assert code(tls_ca=certs / "ca.crt") == "UNAUTHENTICATED"
    assert code(tls_pin="00" * 32, token_file=tokens) == "UNAVAILABLE"
    code(token_file=tokens)  # plaintext to a TLS server fails
    with pytest.warns(UserWarning, match="not verified"):
        insecure = poh.Client(address, insecure=True, token_file=tokens)
    assert insecure.get_tx("tls-1").tx == tx

    # The HTTPS side agrees, through Python's own TLS stack.
    node.ssl = https_context(certs / "ca.crt")
    node.token = "s3cret"
    assert node.get("/v1/tx/tls-1")["status"] in ("ORDERED", "SEALED")


def test_mutual_tls_presents_the_client_certificate(serve, poh_bin, tmp_path):
    certs = tmp_path / "certs"
    run(poh_bin, "certs", "--out", certs, "--node", "localhost", "--node", "client")
    node = serve(
        "--tls-cert", certs / "localhost.crt", "--tls-key", certs / "localhost.key",
        "--tls-ca", certs / "ca.crt", "--no-udp", "--no-quic", scheme="https",
    )
    address = node.grpc.replace("127.0.0.1", "localhost")
    with_cert = poh.Client(
        address, tls_ca=certs / "ca.crt", tls_cert=certs / "client.crt", tls_key=certs / "client.key"
    )
    assert with_cert.submit(poh.Tx(tx_id="mtls-1", payload=b"x")).success
    with pytest.raises(poh.ClientError):
        poh.Client(address, tls_ca=certs / "ca.crt", timeout=3).status("mtls-1")


def test_fail_over_and_settings_errors(serve):
    node = serve("--no-udp", "--no-quic")
    client = poh.Client(["127.0.0.1:1", node.grpc], timeout=3)
    for i in range(4):
        assert client.submit(poh.Tx(tx_id=f"f-{i}", payload=b"x")).code == "STORED"
    with pytest.raises(poh.ClientError) as raised:
        poh.Client(["127.0.0.1:1"], timeout=1).status("f-0")
    assert raised.value.code == "UNAVAILABLE" and "127.0.0.1:1" in str(raised.value)

    with pytest.raises(ValueError, match="at most one"):
        poh.Client(node.grpc, tls_pin="00" * 32, insecure=True)
    with pytest.raises(ValueError, match="go together"):
        poh.Client(node.grpc, tls_cert="c.pem")
    with pytest.raises(ValueError, match="timeout"):
        poh.Client(node.grpc, timeout=0)
    with pytest.raises(ValueError, match="at least one"):
        poh.Client([])
    with pytest.raises(ValueError, match="token"):
        poh.Client(node.grpc, token_file="/nonexistent/tokens")


def test_the_documented_example_runs_as_written(serve, tmp_path, monkeypatch):
    node = serve("--no-udp", "--no-quic")
    section = (Path(__file__).resolve().parents[2] / "docs" / "python.md").read_text()
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(example.strip().splitlines()) == 5
    monkeypatch.chdir(tmp_path)
    printed = []
    exec(example.replace("127.0.0.1:50051", node.grpc), {"print": printed.append})
    (ack,) = printed
    assert ack.code == "STORED" and (tmp_path / "alice.key.pub").exists()
    assert repr(ack).startswith('Ack(success=True, code="STORED", poh_seq=0')


def test_a_subscription_gets_every_stored_transaction_then_ends_with_the_node(serve):
    node = serve("--no-udp", "--no-quic")
    client = poh.Client(node.grpc)
    client.submit_batch([poh.Tx(tx_id=f"s-{i}", payload=b"%d" % i) for i in range(30)])
    records = []
    with client.subscribe(from_seq=10) as stream:
        # 20 stored before it started, then 25 more submitted from another thread.
        later = [poh.Tx(tx_id=f"s-{i}", payload=b"%d" % i) for i in range(30, 55)]
        sender = threading.Thread(target=client.submit_batch, args=(later,))
        sender.start()
        for record in stream:
            records.append(record)
            if len(records) == 45:
                break
        sender.join()
    assert [r.poh_seq for r in records] == list(range(10, 55))
    assert [r.tx.tx_id for r in records] == [f"s-{i}" for i in range(10, 55)]
    assert all(r.status == "ORDERED" and len(r.poh_hash) == 32 for r in records)
    assert records[0].tx.payload == b"10"

    # The iteration ends cleanly when the node stops; resuming needs the last seq seen.
    stream = client.subscribe(from_seq=54)
    assert next(stream).poh_seq == 54
    node.stop()
    assert list(stream) == []


def test_a_subscription_reaching_expired_transactions_raises_expired_error(serve):
    node = serve(
        "--no-udp", "--no-quic", "--ttl", "2s", "--ttl-sweep-interval", "50ms",
        "--min-batch-interval", "0.05", "--max-batch-interval", "0.2",
    )
    client = poh.Client(node.grpc)
    client.submit_batch([poh.Tx(tx_id=f"old-{i}", payload=b"x") for i in range(5)])
    deadline = time.monotonic() + 30
    while client.get_tx("old-4") is not None:
        assert time.monotonic() < deadline, "old-4 never expired"
        time.sleep(0.05)
    client.submit(poh.Tx(tx_id="new-0", payload=b"y"))
    header_id = client.status("old-0").header_id

    with pytest.raises(poh.ExpiredError) as raised:
        next(client.subscribe(from_seq=0))
    error = raised.value
    assert isinstance(error, poh.ClientError) and error.code == "OUT_OF_RANGE"
    assert (error.from_seq, error.to_seq, error.header_ids) == (0, 4, [header_id])
    assert "expired seqs 0..=4" in str(error)
    # Going on after them, knowingly.
    assert next(client.subscribe(from_seq=error.to_seq + 1)).tx.tx_id == "new-0"


def test_list_pages_through_one_holders_transactions(serve):
    node = serve("--no-udp", "--no-quic")
    client = poh.Client(node.grpc)
    alice = submit_holders(client)

    pages = list(client.list("alice", limit=10))
    check_pages(pages, alice)
    # From a page's next_seq, the rest; a holder with none, one empty page.
    rest = [r.tx for p in client.list("alice", from_seq=pages[0].next_seq) for r in p.records]
    assert rest == alice[10:]
    (empty,) = list(client.list("nobody"))
    assert (len(empty), empty.more) == (0, False)
    assert sum(len(p) for p in client.list("bob")) == 15


def test_list_settings_are_checked_before_any_call():
    client = poh.Client("127.0.0.1:1", timeout=1)
    with pytest.raises(ValueError, match="limit"):
        client.list("alice", limit=0)
    with pytest.raises(OverflowError):
        client.list("alice", from_seq=-1)
    pages = client.list("alice")
    with pytest.raises(poh.ClientError) as raised:
        next(pages)
    assert raised.value.code == "UNAVAILABLE"


def test_prove_fetches_the_proof_poh_prove_fetches(serve, poh_bin, tmp_path):
    key = poh.keygen(tmp_path / "node.key")
    node = serve("--node-key", tmp_path / "node.key", *SEALING)
    client = poh.Client(node.grpc, http=node.http)
    txs = [poh.Tx(tx_id=f"p-{i}", holder_id="h", payload=b"%d" % i) for i in range(5)]
    client.submit_batch(txs)
    status = wait_for("p-3 sealed", lambda: (lambda s: s if s.status == "SEALED" else None)(client.status("p-3")))

    proof = client.prove("p-3")
    headers = poh.verify_proof(proof, txs[3], trusted_keys=[key.public_key])
    assert headers[0].header_id == status.header_id
    assert proof == node.get("/v1/tx/p-3/proof")
    out = tmp_path / "p3.proof"
    run(poh_bin, "prove", "p-3", "--url", node.http, "--out", out, "--trust", tmp_path / "node.key.pub")
    assert json.loads(out.read_text()) == proof
    with pytest.raises(poh.ProofError, match="not of this transaction"):
        poh.verify_proof(proof, txs[4], trusted_keys=[key.public_key])

    def code(tx_id):
        with pytest.raises(poh.ClientError) as raised:
            client.prove(tx_id)
        return raised.value.code, str(raised.value)

    assert code("never-seen")[0] == "NOT_FOUND"
    assert code("not an id!")[0] == "INVALID_ARGUMENT"
    assert code("..")[0] == "INVALID_ARGUMENT"
    # A trailing slash in the address is the same address.
    assert poh.Client(node.grpc, http=node.http + "/").prove("p-3") == proof
    # Nothing answers there.
    unreachable = poh.Client(node.grpc, http="http://127.0.0.1:1", timeout=2)
    with pytest.raises(poh.ClientError) as raised:
        unreachable.prove("p-3")
    assert raised.value.code == "UNAVAILABLE" and "127.0.0.1:1" in str(raised.value)


def test_prove_settings_are_checked(serve, tmp_path):
    with pytest.raises(ValueError, match="http="):
        poh.Client("127.0.0.1:1").prove("p-0")
    with pytest.raises(ValueError, match="http"):
        poh.Client("127.0.0.1:1", http="ftp://127.0.0.1:21")
    with pytest.raises(ValueError, match="http"):
        poh.Client("127.0.0.1:1", http="not a url")
    tokens = tmp_path / "tokens"
    tokens.write_text("s3cret\n")
    # The token never goes in plain text off this machine, over HTTP as over gRPC.
    with pytest.raises(ValueError, match="plain text"):
        poh.Client("127.0.0.1:1", http="http://10.1.2.3:8080", token_file=tokens)
