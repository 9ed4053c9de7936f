"""Produces crates/poh-core/tests/data/mldsa87_vector.json with dilithium-py, an independent
pure-Python FIPS 204 implementation, so poh-core's ML-DSA-87 (aws-lc-rs) is checked against
another implementation: the public key derived from a fixed 32-byte seed, and a deterministic
(rnd = 0) pure-mode signature with an empty context that aws-lc-rs must verify.

    pip install dilithium-py==1.5.1 && python3 tools/gen_mldsa87_vector.py
"""
import hashlib
import json
import pathlib

from dilithium_py.ml_dsa import ML_DSA_87

seed = bytes(range(32))
message = b"poh ml-dsa-87 known-answer vector"
pk, sk = ML_DSA_87.key_derive(seed)
sig = ML_DSA_87.sign(sk, message, ctx=b"", deterministic=True)
assert ML_DSA_87.verify(pk, message, sig, ctx=b"")
assert len(pk) == 2592 and len(sig) == 4627
out = {
    "source": "dilithium-py 1.5.1 (ML_DSA_87.key_derive, sign(deterministic=True, ctx=b''))",
    "seed": seed.hex(),
    "public_key_sha256": hashlib.sha256(pk).hexdigest(),
    "public_key": pk.hex(),
    "message": message.hex(),
    "signature": sig.hex(),
}
path = pathlib.Path(__file__).resolve().parent.parent / "crates/poh-core/tests/data/mldsa87_vector.json"
path.write_text(json.dumps(out, indent=1) + "\n")
print(path, out["public_key_sha256"])
