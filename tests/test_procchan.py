"""The front's side of a chain process without a process (docs/multichain.md, "One process per
chain"): the channel's frames and bounds, calls forwarded and answered, wait_receipt and
subscriptions fed by published blocks, and what published blocks must carry turned on
before the call that relies on it and off once nobody waits. The real processes are in
tests/test_chain_process.py."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from tfnode import crypto
from tfnode.node import procchan
from tfnode.node.chainproc import ChainProcess, ProcessEndpoint
from tfnode.node.config import NodeConfig
from tfnode.node.genesis import make_genesis
from tfnode.rpc import NodeMetrics, RpcServer
from tfnode.rpc.methods import Context
from tfnode.rpc_errors import ErrorCode, NotReady

PEER = b"\x02" + b"\x11" * 32
H = "ab" * 32


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def channel_pair() -> tuple[procchan.Channel, procchan.Channel]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ra, wa = await asyncio.open_unix_connection(sock=a)
    rb, wb = await asyncio.open_unix_connection(sock=b)
    return procchan.Channel(ra, wa, "a"), procchan.Channel(rb, wb, "b")


def test_frames_round_trip_in_order():
    async def main():
        a, b = await channel_pair()
        got: list[tuple[bytes, bytes]] = []
        reading = asyncio.get_running_loop().create_task(b.read_frames(lambda k, body: got.append((k, body))))
        assert a.send_message(PEER, 0x01, b"consensus")
        assert a.send_to_peer(PEER, 0x82, b"gossip")
        assert a.send_broadcast(0x01, b"to all", [PEER])
        assert a.send_json({"op": "call", "id": 1, "params": {"x": [1, "y"]}})
        a.close()
        await reading  # ends at the other side's close
        assert [k for k, _ in got] == [b"M", b"S", b"B", b"J"]
        assert procchan.split_message(got[0][1]) == (PEER, 0x01, b"consensus")
        assert procchan.split_message(got[1][1]) == (PEER, 0x82, b"gossip")
        assert procchan.split_broadcast(got[2][1]) == ([PEER], 0x01, b"to all")
        assert procchan.loads(got[3][1]) == {"op": "call", "id": 1, "params": {"x": [1, "y"]}}
        assert not a.send_json({"op": "late"})  # closed: refused, never raised

    run(main())


def test_malformed_frames_are_errors_not_crashes():
    for bad in (b"", b"\x01" * 10):
        with pytest.raises(ValueError):
            procchan.split_message(bad)
    for bad in (b"", b"\x02" + PEER + b"\x01"):
        with pytest.raises(ValueError):
            procchan.split_broadcast(bad)
    with pytest.raises(ValueError):
        procchan.loads(b"[1, 2]")


def test_a_stuck_reader_bounds_the_channel(monkeypatch):
    async def main():
        monkeypatch.setattr(procchan, "P2P_BUFFER", 1 << 20)
        a, _b = await channel_pair()  # nobody reads b
        big = b"x" * (256 << 10)
        sent = 0
        while a.send_message(PEER, 0x01, big):
            sent += 1
            assert sent < 1000, "the buffer never filled"
        assert a.stats["dropped_p2p"] == 1
        assert a.send_json({"op": "still"})  # control frames have a larger allowance
        a.close()

    run(main())


def test_an_oversized_frame_closes_the_channel():
    async def main():
        a, b = await channel_pair()
        a.writer.write((procchan.MAX_FRAME + 1).to_bytes(4, "big") + b"J")
        await a.writer.drain()
        got: list = []
        await b.read_frames(lambda k, body: got.append(k))
        assert got == [] and b.closed

    run(main())


class FakeChan:
    """Stands for the channel to the child: keeps what the front sends."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.closed = False

    def send_json(self, obj: dict) -> bool:
        self.sent.append(obj)
        return True

    def ops(self, op: str) -> list[dict]:
        return [m for m in self.sent if m["op"] == op]


def front(tmp_path: Path) -> tuple[ChainProcess, ProcessEndpoint, FakeChan]:
    pub = crypto.PrivateKey.generate().public_key().to_bytes(compressed=True)
    g = make_genesis("sub", [pub], names=["node-0"])
    cfg = NodeConfig(home=tmp_path, chain_id="main", name="node-0", listen=("127.0.0.1", 0), rpc=("127.0.0.1", 0))
    cp = ChainProcess(cfg, g, tmp_path, tmp_path / "data")
    server = RpcServer(object(), NodeMetrics("main", "n0"), chain_id="main")  # type: ignore[arg-type]
    cp.serve_rpc(server)
    chan = FakeChan()
    cp.chan, cp.ready = chan, True  # type: ignore[assignment]
    assert cp.endpoint is not None
    return cp, cp.endpoint, chan


async def feed(cp: ChainProcess, msg: dict) -> None:
    """One JSON frame from the child, as the front's reader handles it."""
    step = cp._on_json(msg)
    if step is not None:
        await step


def test_wait_receipt_turns_receipts_on_first_and_is_fed_by_a_published_block(tmp_path):
    async def main():
        cp, ep, chan = front(tmp_path)
        waiting = asyncio.get_running_loop().create_task(ep.wait_receipt({"hash": H, "timeout_ms": 20_000}, Context()))
        await asyncio.sleep(0.05)
        # Receipts were turned on before the question went out (channel order).
        assert [m["op"] for m in chan.sent] == ["interest", "call"] and chan.sent[0]["receipts"] is True
        call = chan.sent[1]
        assert call["method"] == "get_receipt" and call["params"] == {"hash": H}
        await feed(
            cp, {"op": "reply", "id": call["id"], "error": {"code": ErrorCode.NOT_FOUND, "message": "not found"}}
        )
        await asyncio.sleep(0.05)
        assert not waiting.done()
        receipt = {"hash": H, "height": 7, "status": "ok"}
        await feed(cp, {"op": "publish", "block": {"height": 7}, "events": [], "receipts": {H: receipt}})
        assert await waiting == receipt
        # Nobody waits any more: the next tick turns receipts off again.
        cp.refresh_status()
        assert chan.ops("interest")[-1] == {"op": "interest", "events": False, "receipts": False}

    run(main())


def test_calls_are_forwarded_and_a_dead_child_fails_them(tmp_path):
    async def main():
        cp, ep, chan = front(tmp_path)
        status = asyncio.get_running_loop().create_task(ep.methods.table["status"]({}, Context()))
        await asyncio.sleep(0.05)
        call = chan.ops("call")[-1]
        assert call["method"] == "status"
        await feed(cp, {"op": "reply", "id": call["id"], "result": {"chain_id": "sub", "height": 3}})
        assert (await status)["height"] == 3
        # A call pending when the child dies is answered -32005; so is one made while it is down.
        pending = asyncio.get_running_loop().create_task(ep.methods.table["get_block"]({"height": 1}, Context()))
        await asyncio.sleep(0.05)
        cp.last_exit = "killed by signal 9"
        cp._child_gone()
        with pytest.raises(NotReady):
            await pending
        with pytest.raises(NotReady, match="not running"):
            await ep.methods.table["status"]({}, Context())
        assert "killed by signal 9" in cp.halted and cp.health()["ok"] is False and cp.status()["pid"] is None

    run(main())
