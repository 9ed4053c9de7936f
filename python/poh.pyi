"""Transactions, ML-DSA-87 keys, Proof of History, header and inclusion-proof verification,
and a gRPC client for poh nodes, built from the node's own Rust code."""

import asyncio
import os
from types import TracebackType
from typing import Any, Iterator, Optional, Sequence, Tuple, Union

from typing_extensions import Self, final

__version__: str
__all__ = [
    "Ack",
    "AsyncClient",
    "AsyncPages",
    "AsyncSubscription",
    "Client",
    "ClientError",
    "Entry",
    "ExpiredError",
    "Header",
    "HeaderError",
    "HeaderVerifier",
    "InvalidTxError",
    "Page",
    "Pages",
    "PohError",
    "ProofError",
    "Record",
    "SignatureError",
    "SigningKey",
    "Status",
    "Subscription",
    "Tx",
    "VerifyError",
    "__version__",
    "entries_from_json",
    "genesis",
    "keygen",
    "verify",
    "verify_entries",
    "verify_proof",
]

_Path = Union[str, "os.PathLike[str]"]
_Json = Union[str, bytes, Any]

class PohError(Exception):
    """Base class of every error the poh package raises."""

class InvalidTxError(PohError):
    """A transaction that breaks a rule of the specification, or JSON that is not one."""

class SignatureError(PohError):
    """A signature that does not verify, or a key or key file that is not ML-DSA-87."""

class VerifyError(PohError):
    """PoH entries that do not verify."""

    index: int
    """The first bad entry, counted from the first entry given."""

class HeaderError(PohError):
    """A header that does not verify: its JSON, its signature, its link or its entries."""

class ProofError(PohError):
    """An inclusion proof that does not verify."""

class ClientError(PohError):
    """A call a node refused, or no node answered."""

    code: str
    """The gRPC status name: UNAVAILABLE, UNAUTHENTICATED, RESOURCE_EXHAUSTED, ..."""

class ExpiredError(ClientError):
    """A subscription reached transactions the node no longer holds (expired by its TTL);
    `code` is OUT_OF_RANGE. Restore them on the node, or subscribe again from `to_seq + 1`."""

    from_seq: int
    """The first expired poh_seq."""
    to_seq: int
    """The last expired poh_seq (inclusive)."""
    header_ids: list[str]
    """The headers that sealed them."""

@final
class Tx:
    """A transaction (SPEC §2), as a node stores it.

    Attributes can be read and assigned; list and bytes attributes are copies, so assign a
    new value rather than changing one in place."""

    tx_id: str
    holder_id: str
    timestamp: float
    payload: bytes
    parent_ids: list[str]
    public_key: bytes
    signature: bytes
    def __new__(
        cls,
        *,
        tx_id: str,
        holder_id: str = ...,
        timestamp: Optional[float] = None,
        payload: bytes = ...,
        parent_ids: Sequence[str] = ...,
        public_key: bytes = ...,
        signature: bytes = ...,
    ) -> Self:
        """`timestamp` defaults to now (Unix seconds)."""
    def signing_bytes(self) -> bytes:
        """The canonical signing bytes: what is signed, and hashed into the digest."""
    def digest(self) -> bytes:
        """SHA-256 of the signing bytes (32 bytes): what PoH records."""
    def sign(self, key: SigningKey) -> None:
        """Signs with `key`: sets `public_key` and `signature`."""
    def validate(
        self, *, max_payload_bytes: int = ..., require_signatures: bool = False
    ) -> None:
        """Checks the transaction as a node admits it (`max_payload_bytes` defaults to the
        node's 1 MiB): raises `InvalidTxError` for a broken rule, then `SignatureError` for a
        present signature that does not verify."""
    def to_json(self) -> str:
        """The JSON a node takes on `POST /v1/tx` and UDP."""
    @staticmethod
    def from_json(json: _Json) -> Tx:
        """A transaction from its `POST /v1/tx` JSON; raises `InvalidTxError`."""
    def __eq__(self, other: object, /) -> bool: ...

@final
class SigningKey:
    """An ML-DSA-87 signing key, kept as its 32-byte seed like `poh keygen`'s key files."""

    @staticmethod
    def generate() -> SigningKey:
        """A new key from the operating system's random source."""
    @staticmethod
    def from_file(path: _Path) -> SigningKey:
        """Reads a key file as `poh keygen` writes it."""
    @property
    def public_key(self) -> bytes:
        """The raw public key (2592 bytes)."""
    @property
    def fingerprint(self) -> str:
        """SHA-256 of the public key, in hex."""
    def sign(self, message: bytes) -> bytes:
        """An ML-DSA-87 signature (pure, empty context; 4627 bytes) over `message`."""
    def write(self, path: _Path, *, force: bool = False) -> str:
        """Writes the seed to `path` (mode 0600) and the public key in hex to `path.pub`;
        returns the public key's path."""

def keygen(out: Optional[_Path] = None, *, force: bool = False) -> SigningKey:
    """A new ML-DSA-87 key; with `out`, also written as `poh keygen --out OUT` writes it."""

def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether `signature` is a valid ML-DSA-87 signature by `public_key` over `message`."""

@final
class Entry:
    """One PoH entry: `num_hashes` hash operations ending at `hash`, the last one recording
    the Merkle root of `mixins` when there are any (a tick has none)."""

    def __new__(cls, num_hashes: int, hash: bytes, mixins: Sequence[bytes] = ...) -> Self: ...
    @staticmethod
    def from_json(json: _Json) -> Entry:
        """An entry in the `GET /v1/poh/entries` shape (hashes in hex)."""
    @property
    def num_hashes(self) -> int: ...
    @property
    def hash(self) -> bytes: ...
    @property
    def mixins(self) -> list[bytes]: ...
    def __eq__(self, other: object, /) -> bool: ...

def entries_from_json(answer: _Json) -> Tuple[bytes, list[Entry]]:
    """The start hash and entries of a `GET /v1/poh/entries` answer."""

def verify_entries(start_hash: bytes, entries: Sequence[Entry], hashes_per_tick: int) -> None:
    """Verifies `entries`, which follow `start_hash`, on every core with the GIL released.
    Raises `VerifyError` naming the first bad entry."""

def genesis(chain_id: str) -> bytes:
    """The genesis hash of a chain: what its first entry follows."""

@final
class Header:
    """A sealed header (SPEC §6)."""

    @staticmethod
    def from_json(json: _Json) -> Header:
        """A header from a node's JSON; raises `HeaderError` when a field is malformed or
        `header_id` is not the hash of the fields."""
    def to_json(self) -> str: ...
    def header_bytes(self) -> bytes:
        """The canonical header bytes: what is signed and hashed."""
    def header_hash(self) -> bytes:
        """SHA-256 of the header bytes."""
    @property
    def header_id(self) -> str:
        """`header_hash` in hex."""
    def verify_signature(self) -> None:
        """Raises `HeaderError` unless the signature verifies by the header's own key."""
    @property
    def chain_id(self) -> str: ...
    @property
    def level(self) -> str:
        """`municipality`, `continental` or `global`."""
    @property
    def height(self) -> int: ...
    @property
    def prev_header_hash(self) -> bytes: ...
    @property
    def poh_start(self) -> int: ...
    @property
    def poh_end(self) -> int: ...
    @property
    def poh_end_hash(self) -> bytes: ...
    @property
    def poh_hashes(self) -> int: ...
    @property
    def items_root(self) -> bytes: ...
    @property
    def item_count(self) -> int: ...
    @property
    def timestamp(self) -> float: ...
    @property
    def public_key(self) -> bytes: ...
    @property
    def signature(self) -> bytes: ...
    @property
    def recorded_at_seq(self) -> Optional[int]:
        """For a child header served by its parent: the parent's `poh_seq` that recorded it."""
    def __eq__(self, other: object, /) -> bool: ...

@final
class HeaderVerifier:
    """Checks one chain's headers in order from its first, each with the entries it covers,
    exactly as a parent node checks a child. `public_key` (raw, 2592 bytes) is the chain's key
    as you trust it, never one read from the headers: a header signed by any other key is
    refused."""

    def __new__(
        cls,
        *,
        chain_id: str,
        public_key: bytes,
        hashes_per_tick: int,
        level: str = "municipality",
    ) -> Self: ...
    def verify(self, header: Header, entries: Sequence[Entry]) -> None:
        """Verifies the next header with its entries and moves on; raises `HeaderError`."""
    @property
    def height(self) -> int:
        """The height the next header must have."""
    @property
    def poh_start(self) -> int:
        """The first entry the next header must cover."""

def verify_proof(
    proof: _Json,
    tx: Optional[Tx] = None,
    *,
    trusted_keys: Sequence[bytes] = ...,
    untrusted: bool = False,
) -> list[Header]:
    """Verifies an inclusion proof (`poh prove`, `GET /v1/tx/{id}/proof`) offline; with `tx`,
    it must be that transaction's. Returns the headers from the transaction's up; raises
    `ProofError` naming the link that fails.

    Some header must be signed by one of `trusted_keys` (raw 2592-byte public keys; a `.pub`
    file holds one in hex), which vouches for it and every header below: anyone can make a
    key and sign headers. An unanchored proof raises `ProofError` unless `untrusted` is true;
    giving both is a `ValueError`."""

@final
class Ack:
    """A node's answer to one transaction."""

    success: bool
    code: str
    """STORED, DUPLICATE, INVALID, CONFLICT, BAD_SIGNATURE, TOO_LARGE or INTERNAL."""
    message: str
    poh_seq: int
    poh_hash: bytes

@final
class Status:
    """What a node knows of a transaction."""

    tx_id: str
    status: str
    """UNKNOWN, PENDING, ORDERED or SEALED."""
    message: str
    poh_seq: int
    poh_hash: bytes
    parent_ids: list[str]
    header_id: Optional[str]

@final
class Record:
    """A stored transaction and where it stands."""

    tx: Tx
    status: str
    poh_seq: int
    poh_hash: bytes
    header_id: Optional[str]
    received_at: float

@final
class Page:
    """One page of a holder's transactions, in `poh_seq` order; iterating it gives its
    records."""

    @property
    def records(self) -> list[Record]: ...
    @property
    def next_seq(self) -> int:
        """The `from_seq` to ask for the page after this one."""
    @property
    def more(self) -> bool:
        """Whether the node holds more after this page."""
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Record]: ...

@final
class Client:
    """A blocking client of one or more nodes' gRPC API; each call releases the GIL while it
    waits. TLS is on when `tls_ca`, `tls_pin`, `insecure` or a client certificate is given.
    `http` is the node's HTTP address (`http://HOST:PORT` or `https://...`), which `prove`
    reads proofs from."""

    def __new__(
        cls,
        endpoints: Union[str, Sequence[str]] = ...,
        *,
        tls_ca: Optional[_Path] = None,
        tls_pin: Optional[str] = None,
        insecure: bool = False,
        tls_cert: Optional[_Path] = None,
        tls_key: Optional[_Path] = None,
        token_file: Optional[_Path] = None,
        timeout: float = 5.0,
        http: Optional[str] = None,
    ) -> Self:
        """`endpoints` defaults to `127.0.0.1:50051`."""
    def submit(self, tx: Tx) -> Ack:
        """Submits one transaction; a refusal is an `Ack` with `success` false."""
    def submit_batch(self, txs: Sequence[Tx]) -> list[Ack]:
        """Submits transactions in order over one stream; one `Ack` each, in order."""
    def status(self, tx_id: str) -> Status:
        """What the node knows of `tx_id`."""
    def get_tx(self, tx_id: str) -> Optional[Record]:
        """The stored transaction, or None when the node does not hold it."""
    def list(self, holder_id: str, from_seq: int = 0, limit: int = 100) -> Pages:
        """One holder's transactions in `poh_seq` order from `from_seq`: an iterator of
        `Page`s of at most `limit` records, each asked for as the iteration reaches it,
        ending after the last."""
    def prove(self, tx_id: str) -> dict[str, Any]:
        """The inclusion proof of `tx_id` as `poh prove` fetches it, from the node at `http`:
        check it with `verify_proof`. `ClientError` with code NOT_FOUND when the node does
        not hold the transaction or has not sealed it yet."""
    def subscribe(self, from_seq: int = 0) -> Subscription:
        """Every transaction the node stores from `from_seq`: the stored ones, then each as it
        is stored, in `poh_seq` order. Ends when the node stops; resume from the last
        `poh_seq` seen plus one. Transactions the node no longer holds (TTL) raise
        `ExpiredError` naming them."""

@final
class Subscription:
    """An open subscription: iterate it for `Record`s; each step waits, with the GIL
    released, for the next transaction stored."""

    def __iter__(self) -> Self: ...
    def __next__(self) -> Record: ...
    def close(self) -> None:
        """Ends the subscription."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        kind: Optional[type[BaseException]],
        value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None: ...

@final
class Pages:
    """The pages of `Client.list`: iterate it for `Page`s."""

    def __iter__(self) -> Self: ...
    def __next__(self) -> Page: ...

@final
class AsyncClient:
    """`Client` for asyncio: the same settings and calls, each method starting its call at
    once (inside a running event loop) and returning an asyncio future of the answer. Every
    client shares one tokio runtime per process; errors are `Client`'s."""

    def __new__(
        cls,
        endpoints: Union[str, Sequence[str]] = ...,
        *,
        tls_ca: Optional[_Path] = None,
        tls_pin: Optional[str] = None,
        insecure: bool = False,
        tls_cert: Optional[_Path] = None,
        tls_key: Optional[_Path] = None,
        token_file: Optional[_Path] = None,
        timeout: float = 5.0,
        http: Optional[str] = None,
    ) -> Self:
        """`endpoints` defaults to `127.0.0.1:50051`."""
    def submit(self, tx: Tx) -> asyncio.Future[Ack]:
        """`Client.submit`."""
    def submit_batch(self, txs: Sequence[Tx]) -> asyncio.Future[list[Ack]]:
        """`Client.submit_batch`."""
    def status(self, tx_id: str) -> asyncio.Future[Status]:
        """`Client.status`."""
    def get_tx(self, tx_id: str) -> asyncio.Future[Optional[Record]]:
        """`Client.get_tx`."""
    def prove(self, tx_id: str) -> asyncio.Future[dict[str, Any]]:
        """`Client.prove`."""
    def list(self, holder_id: str, from_seq: int = 0, limit: int = 100) -> AsyncPages:
        """`Client.list`, as an async iterator of `Page`s."""
    def subscribe(self, from_seq: int = 0) -> AsyncSubscription:
        """`Client.subscribe`, as an async iterator of `Record`s; the call is made by
        `async with` or the first step, whichever comes first."""

@final
class AsyncPages:
    """The pages of `AsyncClient.list`: `async for` over it for `Page`s."""

    def __aiter__(self) -> Self: ...
    def __anext__(self) -> asyncio.Future[Page]: ...

@final
class AsyncSubscription:
    """An async subscription: `async for` over it for `Record`s. `close()` (or leaving an
    `async with` block) ends it, and a step waiting for a record then ends the iteration."""

    def __aiter__(self) -> Self: ...
    def __anext__(self) -> asyncio.Future[Record]: ...
    def close(self) -> None:
        """Ends the subscription."""
    def aclose(self) -> asyncio.Future[None]:
        """`close()`, as an awaitable."""
    def __aenter__(self) -> asyncio.Future[Self]: ...
    def __aexit__(
        self,
        kind: Optional[type[BaseException]],
        value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> asyncio.Future[None]: ...
