"""`AsyncClient` against real nodes: a thousand calls in flight from one event loop,
subscriptions that see what is stored while they run and end when closed, proofs that verify,
listing, and the blocking client's errors."""

import asyncio
import os
import signal
import time
import traceback
from pathlib import Path

import pytest

import poh
from conftest import SEALING, check_pages, submit_holders


async def until(what, check, seconds=30):
    """`await check()` once it is truthy; fails naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_a_thousand_concurrent_submits_from_one_event_loop_are_stored_and_readable(serve):
    node = serve("--no-udp", "--no-quic")
    client = poh.AsyncClient(node.grpc)
    txs = [poh.Tx(tx_id=f"c-{i}", holder_id="h", payload=b"%d" % i) for i in range(1000)]

    acks = await asyncio.gather(*(client.submit(tx) for tx in txs))
    assert [a.code for a in acks] == ["STORED"] * 1000
    assert sorted(a.poh_seq for a in acks) == list(range(1000))
    assert node.get("/v1/poh")["seq"] == 1000

    records = await asyncio.gather(*(client.get_tx(tx.tx_id) for tx in txs))
    assert [r.tx for r in records] == txs
    assert [r.poh_seq for r in records] == [a.poh_seq for a in acks]
    assert [r.poh_hash for r in records] == [a.poh_hash for a in acks]
    statuses = await asyncio.gather(*(client.status(tx.tx_id) for tx in txs[::50]))
    assert {s.status for s in statuses} <= {"ORDERED", "SEALED"}

    again = await client.submit(txs[7])
    assert (again.code, again.poh_seq) == ("DUPLICATE", acks[7].poh_seq)
    batch = await client.submit_batch([poh.Tx(tx_id=f"d-{i}", payload=b"x") for i in range(20)])
    assert [a.poh_seq for a in batch] == list(range(1000, 1020))
    assert await client.submit_batch([]) == []


@pytest.mark.asyncio
async def test_an_async_subscription_sees_transactions_submitted_while_it_runs(serve):
    node = serve("--no-udp", "--no-quic")
    client = poh.AsyncClient(node.grpc)
    await client.submit_batch([poh.Tx(tx_id=f"s-{i}", payload=b"%d" % i) for i in range(10)])
    caught_up = asyncio.Event()

    async def submit_later():
        # Only once the subscriber has read what was stored before: these arrive live.
        await caught_up.wait()
        for i in range(10, 30):
            assert (await client.submit(poh.Tx(tx_id=f"s-{i}", payload=b"%d" % i))).success

    records = []
    sender = asyncio.ensure_future(submit_later())
    async with client.subscribe(from_seq=5) as stream:
        async for record in stream:
            records.append(record)
            if record.poh_seq == 9:
                caught_up.set()
            if len(records) == 25:
                break
    await sender
    assert [r.poh_seq for r in records] == list(range(5, 30))
    assert [r.tx.tx_id for r in records] == [f"s-{i}" for i in range(5, 30)]
    assert records[0].tx.payload == b"5" and all(len(r.poh_hash) == 32 for r in records)
    # Leaving the block closed it: the iteration is over.
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()

    # A step cancelled while it waits leaves the subscription as it was.
    live = client.subscribe(from_seq=30)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(live.__anext__(), 0.3)
    await client.submit(poh.Tx(tx_id="s-30", payload=b"30"))
    assert (await live.__anext__()).tx.tx_id == "s-30"
    # close() ends a step that is waiting, and every step after it.
    waiting = asyncio.ensure_future(live.__anext__())
    await asyncio.sleep(0.2)
    live.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 5)
    assert [r async for r in live] == []

    # The iteration ends cleanly when the node stops.
    last = client.subscribe(from_seq=30)
    assert (await last.__anext__()).poh_seq == 30
    node.stop()
    assert [r async for r in last] == []


@pytest.mark.asyncio
async def test_async_prove_verifies_with_the_existing_verifier(serve, tmp_path):
    key = poh.keygen(tmp_path / "node.key")
    node = serve("--node-key", tmp_path / "node.key", *SEALING)
    client = poh.AsyncClient(node.grpc, http=node.http)
    txs = [poh.Tx(tx_id=f"p-{i}", holder_id="h", payload=b"%d" % i) for i in range(5)]
    await client.submit_batch(txs)

    async def sealed():
        status = await client.status("p-2")
        return status if status.status == "SEALED" else None

    status = await until("p-2 sealed", sealed)
    proof = await client.prove("p-2")
    headers = poh.verify_proof(proof, txs[2], trusted_keys=[key.public_key])
    assert headers[0].header_id == status.header_id
    assert proof == poh.Client(node.grpc, http=node.http).prove("p-2")
    with pytest.raises(poh.ClientError) as raised:
        await client.prove("never-seen")
    assert raised.value.code == "NOT_FOUND"
    with pytest.raises(ValueError, match="http="):
        await poh.AsyncClient(node.grpc).prove("p-2")


@pytest.mark.asyncio
async def test_async_list_pages_through_one_holders_transactions(serve):
    node = serve("--no-udp", "--no-quic")
    alice = submit_holders(poh.Client(node.grpc))
    client = poh.AsyncClient(node.grpc)

    check_pages([page async for page in client.list("alice", limit=10)], alice)
    (empty,) = [page async for page in client.list("nobody")]
    assert (len(empty), empty.more) == (0, False)


@pytest.mark.asyncio
async def test_async_errors_are_the_blocking_clients(serve):
    node = serve(
        "--no-udp", "--no-quic", "--ttl", "2s", "--ttl-sweep-interval", "50ms",
        "--min-batch-interval", "0.05", "--max-batch-interval", "0.2",
    )
    client = poh.AsyncClient(node.grpc)
    assert await client.get_tx("never-seen") is None
    assert (await client.status("never-seen")).status == "UNKNOWN"
    with pytest.raises(poh.ClientError) as raised:
        await client.get_tx("not an id!")
    assert raised.value.code == "INVALID_ARGUMENT"
    with pytest.raises(poh.ClientError) as raised:
        await poh.AsyncClient(["127.0.0.1:1"], timeout=1).status("x")
    assert raised.value.code == "UNAVAILABLE" and "127.0.0.1:1" in str(raised.value)
    with pytest.raises(ValueError, match="at most one"):
        poh.AsyncClient(node.grpc, tls_pin="00" * 32, insecure=True)
    with pytest.raises(ValueError, match="limit"):
        client.list("alice", limit=0)

    await client.submit_batch([poh.Tx(tx_id=f"old-{i}", payload=b"x") for i in range(5)])

    async def expired():
        return await client.get_tx("old-4") is None

    await until("old-4 expired", expired)
    await client.submit(poh.Tx(tx_id="new-0", payload=b"y"))
    header_id = (await client.status("old-0")).header_id
    with pytest.raises(poh.ExpiredError) as raised:
        async with client.subscribe(from_seq=0) as stream:
            async for _ in stream:
                pass
    error = raised.value
    assert isinstance(error, poh.ClientError) and error.code == "OUT_OF_RANGE"
    assert (error.from_seq, error.to_seq, error.header_ids) == (0, 4, [header_id])
    with pytest.raises(poh.ExpiredError):
        await client.subscribe(from_seq=0).__anext__()
    assert (await client.subscribe(from_seq=error.to_seq + 1).__anext__()).tx.tx_id == "new-0"


def test_a_call_needs_a_running_event_loop():
    client = poh.AsyncClient("127.0.0.1:1", timeout=1)
    with pytest.raises(RuntimeError):
        client.status("x")


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc")
def test_every_client_shares_one_runtime(serve):
    node = serve("--no-udp", "--no-quic")

    def runtime_threads():
        names = (Path(t, "comm").read_text().strip() for t in Path("/proc/self/task").iterdir())
        return sum(name == "poh-client" for name in names)

    async def calls():
        clients = [poh.AsyncClient(node.grpc) for _ in range(20)]
        return await asyncio.gather(*(c.status("x") for c in clients))

    blocking = [poh.Client(node.grpc) for _ in range(20)]
    assert {c.status("x").status for c in blocking} == {"UNKNOWN"}
    assert {s.status for s in asyncio.run(calls())} == {"UNKNOWN"}
    # At most its 4 workers and 16 blocking threads, however many clients there are.
    assert 1 <= runtime_threads() <= 20


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks")
@pytest.mark.filterwarnings("ignore:.*fork:DeprecationWarning")
def test_a_forked_child_makes_a_runtime_of_its_own(serve):
    node = serve("--no-udp", "--no-quic")
    parents = poh.Client(node.grpc)
    assert parents.submit(poh.Tx(tx_id="fork-0", payload=b"x")).code == "STORED"
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            # A child that waits forever is ended, and fails the test.
            signal.alarm(30)
            with pytest.raises(poh.ClientError, match="forked") as raised:
                parents.status("fork-0")
            assert raised.value.code == "FAILED_PRECONDITION"
            assert poh.Client(node.grpc).status("fork-0").status in ("ORDERED", "SEALED")

            async def submit():
                return await poh.AsyncClient(node.grpc).submit(poh.Tx(tx_id="fork-1", payload=b"y"))

            assert asyncio.run(submit()).code == "STORED"
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert parents.get_tx("fork-1") is not None


def test_the_documented_async_example_runs_as_written(serve):
    node = serve("--no-udp", "--no-quic")
    section = (Path(__file__).resolve().parents[2] / "docs" / "python.md").read_text()
    (example,) = [b.split("```", 1)[0] for b in section.split("```python\n")[1:] if "asyncio" in b.split("```", 1)[0]]
    printed = []
    exec(example.replace("127.0.0.1:50051", node.grpc), {"print": lambda *a: printed.append(a)})
    assert printed[0] == (100,)
    assert [seq for seq, _ in printed[1:]] == list(range(100))
