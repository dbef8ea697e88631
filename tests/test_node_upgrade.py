"""Versions in one cluster, on real processes: a node of another minor protocol version
interoperates, one of another major is refused at the handshake with a logged reason, and a
ledger in another stored format is refused at start with a clear message.

The version a node announces is overridden with TFNODE_PROTOCOL_VERSION (the stand-in for an
older or newer binary). Every wait is bounded; the fixture kills what is left.
"""

from __future__ import annotations

from tfnode.node.local import LocalConsortium, disagreements

CHAIN = "tf-upgrade"


def test_compatible_versions_interoperate_and_an_incompatible_one_is_refused(tmp_path, monkeypatch):
    with LocalConsortium(tmp_path, chain_id=CHAIN) as c:
        for i in range(3):
            c.start(i)
        monkeypatch.setenv("TFNODE_PROTOCOL_VERSION", "1.1")  # a newer minor: the rolling upgrade's new binary
        c.start(3)
        monkeypatch.delenv("TFNODE_PROTOCOL_VERSION")
        c.wait(lambda: all(c.status(i)["height"] >= 10 for i in range(4)), 90, "10 blocks on all four")
        assert c.status(3)["peers"] == 3
        assert c.stop(3) == 0
        assert "protocol version overridden by TFNODE_PROTOCOL_VERSION: 1.1" in c.log(3)
        stopped_at = c.status(3)["height"]

        monkeypatch.setenv("TFNODE_PROTOCOL_VERSION", "2.0")  # another major: incompatible
        # The last run's status.json (3 peers) stays until the new run writes its own: remove
        # it, so what is read below is this run's.
        (c.node(3) / "data" / "status.json").unlink()
        c.start(3)
        monkeypatch.delenv("TFNODE_PROTOCOL_VERSION")
        reason = "peer speaks protocol 2.0, we speak 1.0"
        c.wait(lambda: all(reason in c.log(i) for i in range(3)), 60, "the others log the refusal")
        c.wait(lambda: "peer refused us: wrong_version" in c.log(3), 60, "node-3 logs it was refused")
        top = max(c.status(i)["height"] for i in range(3))
        c.wait(lambda: min(c.status(i)["height"] for i in range(3)) >= top + 5, 60, "the others go on")
        c.wait(lambda: "peers" in c.status(3), 60, "node-3 writes its status")
        assert c.status(3)["peers"] == 0 and c.status(3)["height"] <= stopped_at + 1
        assert c.stop(3) == 0

        c.start(3)  # upgraded back to the cluster's major: it catches up
        target = max(c.status(i)["height"] for i in range(3)) + 5
        c.wait(lambda: c.status(3)["height"] >= target, 90, "node-3 catches up")
        for i in range(4):
            assert c.stop(i) == 0, c.log(i)[-2000:]
        assert not disagreements(c.ledgers())
        for i in range(4):
            assert not (c.node(i) / "data" / "evidence.log").exists()


def test_a_ledger_of_another_stored_format_is_refused_with_a_clear_message(tmp_path):
    from tfnode.storage import WriteBatch, open_rocks
    from tfnode.storage import keys as K

    with LocalConsortium(tmp_path, chain_id=CHAIN) as c:
        c.start(0)
        c.wait(lambda: c.status(0).get("pid") is not None, 60, "node-0 up")
        assert c.stop(0) == 0
        kv = open_rocks(c.node(0) / "data" / "db")
        b = WriteBatch()
        b.put(K.SCHEMA_KEY, K.schema_value(K.SCHEMA_VERSION + 1))
        kv.write(b, sync=True)
        kv.close()
        c.start(0)
        assert c.procs[0].wait(60) == 2  # still in procs if it hangs: the fixture kills it
        c.procs.pop(0)
        log0 = c.log(0)
        assert f"store has schema version {K.SCHEMA_VERSION + 1}" in log0 and "stored format" in log0, log0[-2000:]
        assert "damaged" not in log0.split("cannot open the ledger")[-1] and "Traceback" not in log0
