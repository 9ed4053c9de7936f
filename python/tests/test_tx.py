"""Transactions and keys: the bytes Python computes are the bytes `poh` computes, and keys
move between the CLI and Python both ways."""

import json
import os
import struct

import pytest

import poh
from conftest import run


def reference_signing_bytes(tx):
    """SPEC §2's signing bytes, written out independently of the package."""

    def chunk(data):
        return struct.pack(">I", len(data)) + data

    out = b"poh.tx.v1" + chunk(tx.tx_id.encode()) + chunk(tx.holder_id.encode())
    out += struct.pack(">d", tx.timestamp)
    out += struct.pack(">I", len(tx.parent_ids))
    out += b"".join(chunk(p.encode()) for p in tx.parent_ids)
    return out + chunk(tx.payload)


SAMPLES = [
    poh.Tx(tx_id="a", timestamp=0.0),
    poh.Tx(tx_id="order-1", holder_id="alice", timestamp=1.5, payload=b"hello"),
    poh.Tx(
        tx_id="x:y.z_1-2",
        holder_id="東京 ✓",
        timestamp=1764547200.123456789,
        payload=bytes(range(256)) * 40,
        parent_ids=["p1", "p.2", "p:3"],
    ),
    poh.Tx(tx_id="t" * 128, holder_id="h" * 128, timestamp=0.1, payload=b"\x00"),
    poh.Tx(tx_id="tiny", timestamp=5e-324, parent_ids=[f"q{i}" for i in range(64)]),
]


@pytest.mark.parametrize("tx", SAMPLES, ids=lambda t: t.tx_id[:12])
def test_signing_bytes_and_digest_are_the_bytes_poh_computes(poh_bin, tmp_path, tx):
    tx.validate()
    path = tmp_path / "tx.json"
    path.write_text(tx.to_json())
    cli = json.loads(run(poh_bin, "tx", "--tx-file", path).stdout)
    assert tx.signing_bytes().hex() == cli["signing_bytes"]
    assert tx.digest().hex() == cli["digest"]
    assert tx.signing_bytes() == reference_signing_bytes(tx)
    assert cli["signature"] == "none"
    # The JSON round-trips bit for bit, the timestamp included.
    again = poh.Tx.from_json(json.dumps(cli["tx"]))
    assert again == tx
    assert struct.pack(">d", again.timestamp) == struct.pack(">d", tx.timestamp)


def test_a_poh_keygen_key_signs_in_python_and_poh_verifies_it(poh_bin, tmp_path):
    key_path = tmp_path / "alice.key"
    run(poh_bin, "keygen", "--out", key_path)
    key = poh.SigningKey.from_file(key_path)
    public_hex = (tmp_path / "alice.key.pub").read_text().strip()
    assert key.public_key == bytes.fromhex(public_hex)
    assert len(key.public_key) == 2592

    tx = poh.Tx(tx_id="signed-1", holder_id="alice", timestamp=2.25, payload=b"\xffdata")
    tx.sign(key)
    assert len(tx.signature) == 4627 and tx.public_key == key.public_key
    tx.validate(require_signatures=True)
    path = tmp_path / "signed.json"
    path.write_text(tx.to_json())
    assert json.loads(run(poh_bin, "tx", "--tx-file", path).stdout)["signature"] == "valid"

    # One byte of payload changed after signing: poh and Python both refuse it.
    tx.payload = b"\xfedata"
    path.write_text(tx.to_json())
    assert json.loads(run(poh_bin, "tx", "--tx-file", path).stdout)["signature"] == "invalid"
    with pytest.raises(poh.SignatureError):
        tx.validate()


def test_a_python_key_file_is_one_poh_signs_with(poh_bin, tmp_path):
    key_path = tmp_path / "py.key"
    key = poh.keygen(key_path)
    assert os.stat(key_path).st_mode & 0o777 == 0o600
    assert (tmp_path / "py.key.pub").read_text().strip() == key.public_key.hex()
    with pytest.raises(OSError, match="exists"):
        poh.keygen(key_path)
    assert poh.SigningKey.from_file(key_path).public_key == key.public_key

    out = run(
        poh_bin, "tx", "--tx-id", "cli-signed", "--holder-id", "bob", "--payload", "hi",
        "--timestamp", "3.5", "--sign-key", key_path,
    )
    cli = json.loads(out.stdout)
    tx = poh.Tx.from_json(json.dumps(cli["tx"]))
    assert tx.public_key == key.public_key
    assert poh.verify(key.public_key, tx.signing_bytes(), tx.signature)
    assert not poh.verify(key.public_key, tx.signing_bytes() + b"!", tx.signature)
    assert not poh.verify(key.public_key[:-1], tx.signing_bytes(), tx.signature)
    other = poh.SigningKey.generate()
    assert not poh.verify(other.public_key, tx.signing_bytes(), tx.signature)
    assert poh.verify(other.public_key, b"any bytes", other.sign(b"any bytes"))
    assert other.fingerprint in repr(other) and key.fingerprint != other.fingerprint


@pytest.mark.parametrize(
    "fields, needle",
    [
        (dict(tx_id=""), "tx_id"),
        (dict(tx_id="no spaces"), "tx_id"),
        (dict(tx_id="t" * 129), "tx_id"),
        (dict(tx_id="t", holder_id="bell\x07"), "holder_id"),
        (dict(tx_id="t", timestamp=-1.0), "timestamp"),
        (dict(tx_id="t", timestamp=float("nan")), "timestamp"),
        (dict(tx_id="t", parent_ids=["p", "p"]), "parent_ids"),
        (dict(tx_id="t", parent_ids=[f"p{i}" for i in range(65)]), "parent_ids"),
        (dict(tx_id="t", public_key=b"k" * 10, signature=b"s" * 10), "public_key"),
    ],
)
def test_an_invalid_transaction_is_named(fields, needle):
    with pytest.raises(poh.InvalidTxError, match=needle) as raised:
        poh.Tx(**fields).validate()
    assert isinstance(raised.value, poh.PohError)


def test_limits_and_json_errors():
    big = poh.Tx(tx_id="big", payload=b"x" * 2048)
    big.validate()
    with pytest.raises(poh.InvalidTxError, match="payload"):
        big.validate(max_payload_bytes=1024)
    with pytest.raises(poh.InvalidTxError, match="signature"):
        poh.Tx(tx_id="unsigned").validate(require_signatures=True)
    with pytest.raises(poh.InvalidTxError, match="payload_b64"):
        poh.Tx.from_json('{"tx_id":"a","holder_id":"","timestamp":1,"payload_b64":"%%%"}')
    with pytest.raises(poh.InvalidTxError):
        poh.Tx.from_json(b"not json")
    with pytest.raises(poh.SignatureError, match="64 hex"):
        key_file = os.path.join(os.path.dirname(__file__), "conftest.py")
        poh.SigningKey.from_file(key_file)
    with pytest.raises(FileNotFoundError):
        poh.SigningKey.from_file("/nonexistent/key")
