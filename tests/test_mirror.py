"""``tfnode mirror`` against a real PostgreSQL server (Debian's ``postgresql``: a throwaway
cluster made with initdb in a temporary folder, run as the ``postgres`` system user when the
tests run as root) and a running four-process consortium:

    load (transfers + contract calls) ──────────────────────────────────────────▶
    mirror ──▶ kill -9 ──▶ mirror ──▶ kill -9 ──▶ ... ──▶ mirror --until H (exits 0)

then the database must hold every height 1..H exactly once: row counts equal the chain's,
block hashes equal at every height, sampled transactions, receipts and events equal the
node's answers. Nothing is written that does not check out: a validator set the QCs were
not signed by stops the mirror before any row of the height is written.

Skipped, saying why, where PostgreSQL or psycopg is missing (scripts/bootstrap.sh and
``pip install -e .[dev]`` install them); the rest of the suite runs.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tfnode.client import Account, Client, build_tx
from tfnode.execution.asset import balance_key
from tfnode.node.keys import load_private_key
from tfnode.node.local import LocalConsortium, free_base_port

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e .[dev] or tfnode[mirror])")

from tfnode import mirror  # noqa: E402

CHAIN = "tf-mirror"
WAIT = 90.0
PG_BINS = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))


def wait_for(cond, timeout: float, what: str):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = cond()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server of its own on 127.0.0.1; yields a DSN of its ``postgres`` database."""
    initdb = PG_BINS[-1] if PG_BINS else shutil.which("initdb")
    if initdb is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; scripts/bootstrap.sh)")
    bindir = Path(initdb).parent
    as_user: list[str] = []
    root = tempfile.mkdtemp(prefix="tfnode-pg-")
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the package's system user
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' system user to run PostgreSQL as")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log = Path(root) / "data", Path(root) / "server.log"
    port = free_base_port(1)
    try:
        subprocess.run(
            [*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(log), "-w", "start"],
            check=True,
            capture_output=True,
            timeout=120,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        shutil.rmtree(root, ignore_errors=True)
        out = getattr(err, "stderr", b"") or b""
        pytest.skip(f"could not start a PostgreSQL server: {err}: {out.decode(errors='replace')[-500:]}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


def new_database(dsn: str, name: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name}")
        c.execute(f"CREATE DATABASE {name}")
    return dsn.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    with LocalConsortium(tmp_path_factory.mktemp("mirror"), chain_id=CHAIN, block_interval_ms=100) as c:
        c.start_all()

        def up() -> bool:
            try:
                return all(Client(u, timeout=2).status()["executed_height"] >= 1 for u in c.rpc_urls())
            except Exception:  # noqa: BLE001 - not up yet
                return False

        c.wait(up, WAIT, "every node to answer status")
        c.accounts = [Account(load_private_key(c.node(i) / "node_key")) for i in range(c.n)]
        yield c


class Load:
    """Transfers from every member, in batches, from a thread, until stopped."""

    def __init__(self, chain):
        self.chain, self.sent, self.stop = chain, [], threading.Event()
        self.calls: dict[str, tuple[list, dict]] = {}  # tx hash -> the (args, kwargs) sent
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        try:
            accts = self.chain.accounts
            with Client(self.chain.rpc_url(1)) as cl:
                j = 0
                while not self.stop.is_set():
                    h = cl.status()["height"]
                    calls = []
                    for k in range(12):
                        a, b = accts[(j + k) % 4], accts[(j + k + 1) % 4]
                        calls.append((a, [b.address, 1 + (j + k) % 50], {}))
                    # Keyword arguments, and a revert (more than any balance) with a 127-bit int.
                    calls.append((accts[0], [], {"to": accts[2].address, "amount": 7}))
                    calls.append((accts[3], [accts[1].address, (1 << 127) - 1], {}))
                    raws = [build_tx(a, CHAIN, "asset", "transfer", args, kw, expiry=h + 200) for a, args, kw in calls]
                    res = cl.submit_batch(raws)
                    for r, (_, args, kw) in zip(res, calls, strict=True):
                        if r["accepted"]:
                            self.calls[r["hash"]] = (args, kw)
                            self.sent.append(r["hash"])
                    j += 12
                    time.sleep(0.15)
        except BaseException as err:  # noqa: BLE001 - reported by the test
            self.error = err


def progress(dsn: str) -> int:
    try:
        with psycopg.connect(dsn) as c:
            row = c.execute("SELECT height FROM mirror_progress").fetchone()
            return row[0] if row else 0
    except psycopg.Error:
        return 0


def start_mirror(url: str, dsn: str, log: Path, *extra: str) -> subprocess.Popen:
    with open(log, "a") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tfnode", "mirror", "--rpc", url, "--postgres", dsn, "--poll", "0.1", *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def doc_queries() -> list[str]:
    """The SQL blocks of docs/mirror.md, with psql's :'account' as a psycopg parameter."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "mirror.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```sql\n")[1:]]
    return [b.replace(":'account'", "%(account)s") for b in blocks]


def test_mirror_survives_kill9_and_matches_the_chain(chain, postgres, tmp_path):
    dsn = new_database(postgres, "mirror_kill")
    url = chain.rpc_url(0)
    log = tmp_path / "mirror.log"
    load = Load(chain)
    load.thread.start()
    rng = random.Random(15)
    kills = 0
    try:
        wait_for(lambda: len(load.sent) >= 100 or load.error, WAIT, "load to start")
        for _ in range(4):
            before = progress(dsn)
            proc = start_mirror(url, dsn, log)
            # Let it write some heights, then kill -9 at a random moment (within a height's
            # SQL transaction or between two: either way the height lands whole or not at all).
            wait_for(
                lambda b=before, p=proc: progress(dsn) > b + 2 or p.poll() is not None, WAIT, "the mirror to advance"
            )
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(rng.uniform(0.0, 0.6))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            kills += 1
    finally:
        load.stop.set()
        load.thread.join(30)
    assert load.error is None, load.error
    assert kills == 4 and len(load.sent) >= 100
    with Client(url) as cl:
        # Every transaction sent committed (a maker's uncertified batch may commit after later
        # ones, so waiting for the last few is not enough): the chain holds them all below top.
        for h in load.sent:
            cl.wait_receipt(h, 60)
        top = cl.status()["executed_height"]
    proc = start_mirror(url, dsn, log, "--until", str(top))
    assert proc.wait(WAIT * 2) == 0, log.read_text()[-3000:]
    assert progress(dsn) == top

    # Counts and rows against the chain.
    with Client(url) as cl, psycopg.connect(dsn) as db:
        blocks = [cl.get_block(h, txs=True) for h in range(1, top + 1)]
        hashes = [t for b in blocks for t in b["txs"]]
        assert set(load.sent) <= set(hashes)
        q = lambda sql, *a: db.execute(sql, a).fetchall()  # noqa: E731
        assert q("SELECT count(*), min(height), max(height) FROM blocks")[0] == (top, 1, top)
        assert q("SELECT count(*) FROM transactions")[0][0] == len(hashes) == sum(b["tx_count"] for b in blocks)
        assert q("SELECT count(*) FROM receipts")[0][0] == len(hashes)
        # Every height with transactions had its roots checked against a QC (a receipt proof).
        assert q("SELECT count(*) FROM blocks WHERE tx_count > 0 AND NOT roots_certified")[0][0] == 0
        assert q("SELECT count(*) FROM blocks WHERE roots_certified")[0][0] == sum(b["tx_count"] > 0 for b in blocks)
        got = dict(q("SELECT height, hash FROM blocks"))
        assert all(bytes(got[b["height"]]).hex() == b["hash"] for b in blocks)
        receipts = {h: cl.get_receipt(h) for h in hashes}
        assert q("SELECT count(*) FROM events")[0][0] == sum(len(r["events"]) for r in receipts.values())
        statuses = {s: n for s, n in q("SELECT status, count(*) FROM receipts GROUP BY status")}
        assert statuses.get("revert", 0) >= 1 and statuses["ok"] >= 100, statuses
        for h in random.Random(1).sample(hashes, 25) + load.sent[-4:]:
            tx, r = cl.get_transaction(h), receipts[h]
            row = q(
                "SELECT t.height, t.idx, t.address, t.nonce, t.contract, t.method, t.args, t.kwargs,"
                " r.status, r.gas_used, r.revert_reason FROM transactions t JOIN receipts r ON r.tx_hash = t.hash"
                " WHERE t.hash = %s",
                bytes.fromhex(h),
            )[0]
            assert row[:6] == (tx["height"], tx["index"], tx["address"], tx["nonce"], "asset", "transfer")
            assert [row[6], row[7]] == list(load.calls[h]) if h in load.calls else row[6] is not None
            assert row[8:] == (r["status"], r["gas_used"], r["revert_reason"])
            evs = q("SELECT contract, name, fields FROM events WHERE tx_hash = %s ORDER BY seq", bytes.fromhex(h))
            assert [list(e) for e in evs] == [[e["contract"], e["name"], e["fields"]] for e in r["events"]]

        # State changes: every height's write set, and the newest value of each balance key
        # is the state the node holds now (the chain stopped moving those balances).
        changes = {h: cl.call("get_state_changes", {"height": h})["changes"] for h in range(1, top + 1)}
        assert q("SELECT count(*) FROM state_changes")[0][0] == sum(map(len, changes.values()))
        assert q("SELECT sum(state_changes) FROM blocks")[0][0] == sum(map(len, changes.values()))
        for h in random.Random(2).sample(range(1, top + 1), 10):
            rows = q("SELECT key, value FROM state_changes WHERE height = %s ORDER BY key", h)
            assert [(bytes(k).hex(), v and bytes(v).hex()) for k, v in rows] == [
                (c["key"], c["value"]) for c in changes[h]
            ]
        for a in chain.accounts:
            key = balance_key(a.address)
            newest = q("SELECT value FROM state_changes WHERE key = %s ORDER BY height DESC LIMIT 1", key)[0][0]
            assert bytes(newest).hex() == cl.get_state(key)["value"]

    # Every query of docs/mirror.md runs, and the account ones answer what the chain says.
    account = chain.accounts[0].address
    with Client(url) as cl, psycopg.connect(dsn) as db:
        answers = [db.execute(sql, {"account": account}).fetchall() for sql in doc_queries()]
        assert len(answers) >= 8
        transfers = next(a for sql, a in zip(doc_queries(), answers, strict=True) if "'Transfer'" in sql)
        assert transfers and all(account in (r[3], r[4]) for r in transfers)
        balances = next(a for sql, a in zip(doc_queries(), answers, strict=True) if "tfnode_uint" in sql)
        assert balances[-1][2] == cl.query("asset", "balance", account)["value"]

    # Exactly once: a second run over the same heights writes nothing more.
    proc = start_mirror(url, dsn, log, "--until", str(top))
    assert proc.wait(WAIT) == 0
    with psycopg.connect(dsn) as db:
        assert db.execute("SELECT count(*) FROM blocks").fetchone()[0] == top


def test_mirror_refuses_blocks_its_validators_did_not_certify(chain, postgres, tmp_path):
    dsn = new_database(postgres, "mirror_forged")
    with Client(chain.rpc_url(0)) as cl, psycopg.connect(dsn) as db:
        real = cl.validators()
        # The same ids and powers with other keys: what a node lying about its validators sends.
        other = [dict(v, public_key=Account.generate().public_key_bytes.hex()) for v in real]
        m = mirror.Mirror(cl, db, other)
        assert m.open() == 0
        block, txs = m.fetch(1)
        with pytest.raises(mirror.MirrorError, match="QC does not verify"):
            m.write(1, block, txs)
        assert db.execute("SELECT count(*) FROM blocks").fetchone()[0] == 0
        assert db.execute("SELECT height FROM mirror_progress").fetchone()[0] == 0
        # A database pinned to one validator set refuses another.
        with pytest.raises(mirror.MirrorError, match="differ"):
            mirror.Mirror(cl, db, real).open()
        # A block altered after its QCs were made: the QC certifies another id, or the parent
        # QC inside it no longer verifies.
        fresh = mirror.Mirror(cl, psycopg.connect(new_database(postgres, "mirror_forged2")), real)
        fresh.open()
        assert fresh.write(1, *fresh.fetch(1)) is True
        block, txs = fresh.fetch(2)
        n = len(block["raw"]) // 2
        # A byte the id covers; one of the parent QC (an empty block: its middle); the proposer's signature.
        for at in (n // 4, n // 2, n - 1):
            raw = bytearray.fromhex(block["raw"])
            raw[at] ^= 1
            with pytest.raises(mirror.MirrorError):
                fresh.write(2, dict(block, raw=raw.hex()), txs)
        # Roots the node misreports for a height with transactions: the receipt proof says otherwise.
        busy = cl.send(chain.accounts[0], "asset", "transfer", chain.accounts[1].address, 1, timeout=WAIT)["height"]
        wait_for(lambda: cl.status()["certified_height"] >= busy, WAIT, "the transfer's height certified")
        busy_block, _ = fresh.fetch(busy)
        roots = bytes.fromhex(busy_block["state_root"]), bytes.fromhex(busy_block["receipts_root"])
        assert fresh._check_roots(busy, busy_block, *roots) is True
        with pytest.raises(mirror.MirrorError, match="a QC certifies"):
            fresh._check_roots(busy, busy_block, bytes(32), roots[1])
        # Nothing of a refused height is written; the same height, unaltered, is written once.
        assert fresh.conn.execute("SELECT max(height) FROM blocks").fetchone()[0] == 1
        assert fresh.write(2, block, txs) is True and fresh.write(2, block, txs) is False
        fresh.conn.close()


def test_get_state_changes_answers_errors_for_heights_it_has_not(chain):
    from tfnode.client import InvalidParams, NotFound

    with Client(chain.rpc_url(2)) as cl:
        top = cl.status()["executed_height"]
        assert cl.call("get_state_changes", {"height": 1})["height"] == 1
        with pytest.raises(NotFound):
            cl.call("get_state_changes", {"height": top + 1000})
        for bad in ({"height": 0}, {"height": "1"}, {}, {"height": 1, "extra": 2}):
            with pytest.raises(InvalidParams):
                cl.call("get_state_changes", bad)


def test_tfnode_mirror_with_a_pinned_genesis_and_its_status(chain, postgres, tmp_path):
    dsn = new_database(postgres, "mirror_cli")
    genesis = chain.node(0) / "genesis.json"
    assert mirror.load_validators(genesis) == Client(chain.rpc_url(0)).validators()
    base = [sys.executable, "-m", "tfnode", "mirror", "--rpc", chain.rpc_url(1), "--postgres", dsn]
    done = subprocess.run(
        [*base, "--genesis", str(genesis), "--until", "3"], capture_output=True, text=True, timeout=WAIT
    )
    assert done.returncode == 0 and "mirrored up to height 3" in done.stdout, done.stderr[-2000:]
    st = subprocess.run([*base, "--status"], capture_output=True, text=True, timeout=WAIT)
    assert st.returncode == 0 and '"height": 3' in st.stdout and '"chain_id": "tf-mirror"' in st.stdout, st.stderr
    # A database holds one chain: another chain's node is refused with the reason (exit 3).
    other = tmp_path / "other.json"
    g = json.loads(genesis.read_text())
    g["validators"][0]["public_key"] = Account.generate().public_key_bytes.hex()
    other.write_text(json.dumps(g))
    bad = subprocess.run([*base, "--genesis", str(other), "--until", "4"], capture_output=True, text=True, timeout=WAIT)
    assert bad.returncode == 3 and "differ" in bad.stderr, bad.stderr[-2000:]
    # No PostgreSQL there: a clear error, exit 2.
    gone = subprocess.run(
        [*base[:-1], "postgresql://postgres@127.0.0.1:1/none", "--until", "1"],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert gone.returncode == 2 and "PostgreSQL" in gone.stderr, gone.stderr[-2000:]


def test_a_schema_1_database_is_upgraded_in_place(chain, postgres):
    """A database of the mirror before validator_sets (schema 1, all of epoch 0) opens as
    schema 2 with the pinned set as epoch 0's row, and goes on mirroring."""
    dsn = new_database(postgres, "mirror_v1")
    with Client(chain.rpc_url(0)) as cl, psycopg.connect(dsn) as db:
        m = mirror.Mirror(cl, db)
        m.open()
        assert m.write(1, *m.fetch(1)) is True
        db.execute("DROP TABLE validator_sets")
        db.execute("UPDATE mirror_meta SET schema_version = 1")
        again = mirror.Mirror(cl, db)
        assert again.open() == 1
        assert db.execute("SELECT schema_version FROM mirror_meta").fetchone()[0] == 2
        rows = db.execute("SELECT epoch, from_height, validators, decided_height FROM validator_sets").fetchall()
        assert rows == [(0, 1, [{k: v[k] for k in ("id", "power", "public_key")} for v in cl.validators()], None)]
        assert again.write(2, *again.fetch(2)) is True


def test_mirror_follows_a_validator_set_change_and_refuses_a_forged_one(chain, postgres, tmp_path):
    """Last in this module: it changes the chain's validator set (epoch 0 -> 1). Governance
    adds a validator (a key no node runs: the four nodes are the 4 of 5 a quorum needs) under
    light load while a mirror follows; it is killed once after the switch, then finishes with
    --until. validator_sets and every block's epoch must match the chain; a reconfiguration
    block with a tampered set, or a block of epoch 1 with no verified reconfiguration before
    it, is refused with nothing written."""
    from tfnode.node.genesis import Genesis

    dsn = new_database(postgres, "mirror_epochs")
    url = chain.rpc_url(0)
    log = tmp_path / "mirror.log"
    genesis = chain.node(0) / "genesis.json"
    g = Genesis.load(genesis)
    bank = next(
        Account(load_private_key(chain.home / m["node"] / "node_key")) for m in g.members if m["role"] == "bank"
    )
    new_key = Account.generate().public_key_bytes.hex()
    proc = start_mirror(url, dsn, log, "--genesis", str(genesis))
    load = Load(chain)
    load.thread.start()
    try:
        wait_for(lambda: progress(dsn) > 2 or proc.poll() is not None, WAIT, "the mirror to start")
        receipt = chain.decide(
            "validator", {"action": "add", "key": new_key, "power": 1, "member": bank.address}, timeout=WAIT
        )
        assert receipt["status"] == "ok"
        with Client(url) as cl:
            wait_for(lambda: cl.status().get("epoch", 0) >= 1, WAIT, "epoch 1 on the chain")
            switch = wait_for(
                lambda: next(
                    (
                        h
                        for h in range(max(1, cl.status()["executed_height"] - 200), cl.status()["executed_height"])
                        if cl.get_block(h)["reconfig"] is not None
                    ),
                    None,
                ),
                WAIT,
                "the reconfiguration block",
            )
            # The mirror crosses the switch; then kill -9 and resume in epoch 1.
            wait_for(lambda: progress(dsn) > switch + 3 or proc.poll() is not None, WAIT * 2, "the mirror in epoch 1")
            assert proc.poll() is None, log.read_text()[-3000:]
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    finally:
        load.stop.set()
        load.thread.join(30)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert load.error is None, load.error
    with Client(url) as cl:
        for h in load.sent[-10:]:
            cl.wait_receipt(h, 60)
        top = cl.status()["executed_height"]
        done = start_mirror(url, dsn, log, "--until", str(top))
        assert done.wait(WAIT * 2) == 0, log.read_text()[-3000:]
        blocks = [cl.get_block(h) for h in range(1, top + 1)]
        ends = [b for b in blocks if b["reconfig"] is not None]
        assert (
            f"block {switch} ends epoch 0: epoch 1 begins at height {switch + 1} with 5 validators" in log.read_text()
        )
        assert [b["height"] for b in ends] == [switch] and blocks[switch]["epoch"] == 1  # blocks[switch]: switch + 1
        assert ends[0]["reconfig"]["epoch"] == 1
        assert new_key in [v["public_key"] for v in ends[0]["reconfig"]["validators"]]
        with psycopg.connect(dsn) as db:
            rows = db.execute(
                "SELECT epoch, from_height, validators, decided_height, decided_hash FROM validator_sets ORDER BY epoch"
            ).fetchall()
            genesis_set = [{k: v[k] for k in ("id", "power", "public_key")} for v in mirror.load_validators(genesis)]
            assert rows == [
                (0, 1, genesis_set, None, None),
                (1, switch + 1, ends[0]["reconfig"]["validators"], switch, bytes.fromhex(ends[0]["hash"])),
            ]
            got = db.execute("SELECT height, hash, epoch FROM blocks ORDER BY height").fetchall()
            assert [(h, bytes(x).hex(), e) for h, x, e in got] == [(b["height"], b["hash"], b["epoch"]) for b in blocks]
            assert db.execute("SELECT count(*) FROM transactions").fetchone()[0] == sum(b["tx_count"] for b in blocks)
            assert (
                db.execute("SELECT count(*) FROM blocks WHERE tx_count > 0 AND NOT roots_certified").fetchone()[0] == 0
            )

        # Forgeries, on a database whose progress stands just before the switch (as if the
        # mirror had written 1..switch-1; the checks of those heights are the test above).
        forged_dsn = new_database(postgres, "mirror_epochs_forged")
        with psycopg.connect(forged_dsn) as db:
            m = mirror.Mirror(cl, db, mirror.load_validators(genesis))
            m.open()

            def stand_at(h: int) -> None:
                db.execute(
                    "UPDATE mirror_progress SET height = %s, block_hash = %s",
                    (h, bytes.fromhex(blocks[h - 1]["hash"])),
                )

            def state() -> tuple:
                return (
                    db.execute("SELECT count(*) FROM blocks").fetchone()[0],
                    db.execute("SELECT count(*) FROM validator_sets").fetchone()[0],
                    db.execute("SELECT height FROM mirror_progress").fetchone()[0],
                )

            def forge(b: dict) -> dict:
                raw = bytearray.fromhex(b["raw"])
                at = bytes(raw).rfind(bytes.fromhex(new_key))
                assert at > 0
                raw[at + 32] ^= 1  # the new validator's key, as the reconfiguration names it
                return dict(b, raw=raw.hex())

            # The height before the switch: its receipt proof is certified in epoch 1 by now, so
            # the mirror reads ahead to the switch block and verifies it under epoch 0's set first.
            stand_at(switch - 2)
            before, before_txs = m.fetch(switch - 1)
            if before["tx_count"]:
                assert [b["height"] for b in before["ahead"]] == [switch]
                with pytest.raises(mirror.MirrorError):
                    m.write(switch - 1, dict(before, ahead=[forge(before["ahead"][0])]), before_txs)
                assert state() == (0, 1, switch - 2)
            assert m.write(switch - 1, before, before_txs) is True
            # The switch block with a tampered set: its QC certifies another block.
            block, txs = m.fetch(switch)
            with pytest.raises(mirror.MirrorError, match="QC certifies"):
                m.write(switch, forge(block), txs)
            assert state() == (1, 1, switch - 1)
            # The next epoch's first block, its reconfiguration block skipped: no set for epoch 1.
            stand_at(switch)
            with pytest.raises(mirror.MirrorError, match="says epoch 1"):
                m.write(switch + 1, *m.fetch(switch + 1))
            assert state() == (1, 1, switch)
            # Unaltered, in order: the switch block records epoch 1's set, the next block verifies with it.
            stand_at(switch - 1)
            assert m.write(switch, block, txs) is True
            assert m.write(switch + 1, *m.fetch(switch + 1)) is True
            assert state() == (3, 2, switch + 1)
            assert db.execute("SELECT from_height FROM validator_sets WHERE epoch = 1").fetchone()[0] == switch + 1
        # A node past epoch 0 names only its current set: a new database needs --genesis.
        tofu = psycopg.connect(new_database(postgres, "mirror_epochs_tofu"))
        with tofu, pytest.raises(mirror.MirrorError, match="pass --genesis"):
            mirror.Mirror(cl, tofu).open()

        # The explorer's verify checks a proof with the set of its certificate's epoch: a
        # transaction of epoch 0, proven now under epoch 1, verifies; a node that names the
        # validators of another epoch than the proof's is reported as such, not as a bad QC.
        import asyncio

        from tfnode.explorer.backend import Explorer

        def explorer(status_epoch: int | None = None) -> Explorer:
            async def call(method: str, params: dict | None):
                out = cl.call(method, params) if params is not None else cl.call(method)
                return dict(out, epoch=status_epoch) if method == "status" and status_epoch is not None else out

            return Explorer(call)

        old_tx = load.sent[0]
        assert cl.get_transaction(old_tx)["height"] <= switch
        good = asyncio.run(explorer().verify(old_tx))
        assert good["ok"] and good["epoch"] == 1 and good["validators"] == 5, good
        stale = asyncio.run(explorer(status_epoch=0).verify(old_tx))
        assert not stale["ok"] and stale["steps"][0]["check"] == "validator set", stale
