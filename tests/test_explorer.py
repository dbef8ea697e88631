"""The web explorer in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by selenium) opens the ``/explorer`` pages of a running
four-process consortium and checks what they show against the chain's own answers:

    transfers + a governance deploy + a call  ->  home page: the live block table reaches the
    call's height; block page: its height and transaction count; tx page: the hash, the call
    with its arguments decoded, receipt status, the event; "verify": the receipt's proof
    checked against a QC; contracts, members, governance pages list what was done.

Skipped, saying why, where Chromium, chromedriver or selenium is missing (scripts/bootstrap.sh
installs them). The screenshots docs/explorer.png (home page) and docs/explorer-tx.png (a
transaction, verified) come from here: written when absent, refreshed with ``TFNODE_SCREENSHOT=1``. Every wait has a deadline; the fixture kills what is left.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tfnode import _core
from tfnode.client import Account, Client, build_tx
from tfnode.gateway.sdk import Device, Gateway
from tfnode.node.keys import load_private_key
from tfnode.node.local import LocalConsortium

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[dev])")
if CHROMIUM is None or DRIVER is None:
    pytest.skip(
        "Chromium or chromedriver is not installed (apt-get install chromium chromium-driver; scripts/bootstrap.sh)",
        allow_module_level=True,
    )

from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

CHAIN = "tf-explorer"
WAIT = 60.0
DOCS = Path(__file__).resolve().parent.parent / "docs"
SCREENSHOT, SCREENSHOT_TX = DOCS / "explorer.png", DOCS / "explorer-tx.png"

LEDGER = """
from tfnode.runtime.api import Contract, Map, call, emit, require, view


class Ledger(Contract):
    entries = Map(str, int)

    @call
    def record(self, ref: str, amount: int, note: str = ""):
        require(amount > 0, "amount must be positive")
        self.entries[ref] = amount
        emit("Recorded", ref=ref, amount=amount, note=note)
        return amount

    @view
    def amount(self, ref: str):
        return self.entries.get(ref)
"""


def wait_for(cond, timeout: float, what: str):
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        try:
            v = cond()
        except WebDriverException as err:  # an element replaced while the page re-renders
            v, last = None, err
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last error: {last})")


def _voters(c: LocalConsortium) -> list[Account]:
    """Every member the genesis policy lets approve (the default consortium has two banks, and
    its policy never lets one decide alone), each signing with its node folder's key."""
    from tfnode.node.genesis import Genesis

    g = Genesis.load(c.home / "genesis.json")
    roles = (g.policy or {}).get("roles", ["bank"])
    return [Account(load_private_key(c.home / m["node"] / "node_key")) for m in g.members if m["role"] in roles]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    with LocalConsortium(tmp_path_factory.mktemp("explorer"), chain_id=CHAIN, block_interval_ms=200) as c:
        c.start_all()
        url = c.rpc_url(0)

        def up() -> bool:
            try:
                return Client(url, timeout=2).status()["executed_height"] >= 1
            except Exception:  # noqa: BLE001 - not up yet
                return False

        c.wait(up, WAIT, "node-0 to answer status")
        bank = Account(load_private_key(c.node(0) / "node_key"))
        other = Account(load_private_key(c.node(1) / "node_key"))
        with Client(url) as cl:
            transfers = [cl.send(bank, "asset", "transfer", other.address, 10 + i, timeout=WAIT) for i in range(3)]
            assert all(r["status"] == "ok" for r in transfers), transfers
            # A crowd of transfers in one go: blocks with more transactions than one batch of calls.
            h0 = cl.status()["height"]
            crowd = [
                build_tx(bank, CHAIN, "asset", "transfer", [other.address, 1], {}, expiry=h0 + 100) for _ in range(150)
            ]
            hashes = [r["hash"] for r in cl.submit_batch(crowd)]
            crowd_heights = {cl.wait_receipt(x, WAIT)["height"] for x in hashes}
            pid = cl.send(bank, "governance", "propose", "deploy", "ledger", LEDGER, [], timeout=WAIT)["return_value"]
            for voter in _voters(c):
                assert cl.send(voter, "governance", "approve", pid, timeout=WAIT)["status"] == "ok"
            assert cl.send(bank, "governance", "commit", pid, timeout=WAIT)["status"] == "ok"
            call = cl.send(
                bank, "ledger", "record", "INV-2026-001", 125000, kwargs={"note": "cotton, CIF Shanghai"}, timeout=WAIT
            )
            assert call["status"] == "ok", call
            # Version 2 through governance: the contract page lists both versions' sources.
            v2 = LEDGER + "\n    @view\n    def total(self, ref: str):\n        return self.entries.get(ref, 0)\n"
            pid2 = cl.send(bank, "governance", "propose", "upgrade", "ledger", v2, [], timeout=WAIT)["return_value"]
            for voter in _voters(c):
                assert cl.send(voter, "governance", "approve", pid2, timeout=WAIT)["status"] == "ok"
            assert cl.send(bank, "governance", "commit", pid2, timeout=WAIT)["status"] == "ok"
            # IoT: a gateway and a device registered by the bank, one attested reading.
            gw, dev = Account.generate(), Account.generate()
            assert cl.send(bank, "iot", "register_gateway", gw.public_key_bytes, timeout=WAIT)["status"] == "ok"
            r = cl.send(
                bank, "iot", "register_device", dev.public_key_bytes, "temp_humidity", None, "MSKU-1", timeout=WAIT
            )
            assert r["status"] == "ok", r
        with Gateway(gw.secret_bytes, CHAIN, url, c.root / "spool") as g:
            g.add(Device(dev.secret_bytes, "temp_humidity").temp_humidity(4.5, 61.0))
            assert g.flush(WAIT) == 0 and g.stats["attested"] == 1, g.stats
        c.device = bytes(_core.iot_device_id(dev.public_key_bytes)).hex()
        c.bank, c.pid, c.transfers, c.call = bank, pid, transfers, call
        c.top = Client(url).status()["executed_height"]
        c.big = max(crowd_heights, key=lambda x: Client(url).get_block(x)["tx_count"])
        yield c


@pytest.fixture(scope="module")
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,900"):
        opts.add_argument(a)
    service = webdriver.ChromeService(executable_path=DRIVER)
    try:
        drv = webdriver.Chrome(options=opts, service=service)
    except WebDriverException as err:
        pytest.skip(f"Chromium would not start headless here: {err.msg}")
    try:
        yield drv
    finally:
        drv.quit()


def page(chain, i: int) -> str:
    """The explorer served by node ``i``."""
    return chain.rpc_url(i).rstrip("/") + "/explorer/"


def live_heights(drv) -> list[int]:
    """The heights in the live block table, read in one go: the table changes under the test."""
    return drv.execute_script("return [...document.querySelectorAll('#blocks tr')].map(r => +r.dataset.height)")


def text(drv, css: str) -> str:
    return drv.find_element(By.CSS_SELECTOR, css).text


def test_get_root_redirects_to_the_explorer(chain):
    with urllib.request.urlopen(chain.rpc_url(0)) as r:
        assert r.geturl().endswith("/explorer/") and b"tfnode explorer" in r.read()
        assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")  # no CDN, no inline script


def test_home_page_shows_the_latest_blocks_live(chain, browser):
    browser.get(page(chain, 0))

    def rows() -> list[int]:
        return live_heights(browser)

    def newest() -> int:
        return (rows() or [0])[0]

    wait_for(lambda: newest() >= chain.top, WAIT, "the newest block")
    # Live: blocks published after the page loaded arrive through the WebSocket subscription.
    first = newest()
    wait_for(lambda: newest() > first + 2, WAIT, "new blocks pushed to the page")
    heights = rows()
    assert heights == list(range(heights[0], heights[0] - len(heights), -1))  # newest first, no gap
    wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, f'#txs tr[data-tx="{chain.call["hash"]}"]'), WAIT, "the call"
    )
    assert "ledger.record" in text(browser, f'#txs tr[data-tx="{chain.call["hash"]}"]')
    if os.environ.get("TFNODE_SCREENSHOT") or not SCREENSHOT.exists():
        browser.save_screenshot(str(SCREENSHOT))


def test_block_page_shows_height_and_transactions(chain, browser):
    h = chain.transfers[0]["height"]
    block = Client(chain.rpc_url(1)).get_block(h, txs=True)
    browser.get(page(chain, 0) + f"#/block/{h}")
    wait_for(lambda: text(browser, "#block-height") == str(h), WAIT, "the block page")
    assert text(browser, "#block-txcount") == str(block["tx_count"])
    assert block["hash"] in text(browser, "main")
    assert browser.find_elements(By.CSS_SELECTOR, f'#block-txs tr[data-tx="{chain.transfers[0]["hash"]}"]')


def test_tx_page_decodes_arguments_and_verify_checks_the_proof(chain, browser):
    h = chain.call["hash"]
    browser.get(page(chain, 2) + f"#/tx/{h}")  # any node serves the explorer
    wait_for(lambda: text(browser, "#tx-hash") == h, WAIT, "the tx page")
    assert text(browser, "#tx-args") == 'ledger.record("INV-2026-001", 125000, note="cotton, CIF Shanghai")'
    assert text(browser, "#receipt-status") == "ok"
    # A u64 nonce shown digit for digit (a browser's JSON numbers would round it).
    assert text(browser, "#tx-nonce") == str(Client(chain.rpc_url(0)).get_transaction(h)["nonce"])
    events = text(browser, "#events")
    assert "ledger.Recorded" in events and "INV-2026-001" in events and "125000" in events
    browser.find_element(By.ID, "verify").click()
    verdict = wait_for(
        lambda: (
            (e := browser.find_elements(By.ID, "verify-verdict")) and e[0].text.startswith("verified") and e[0].text
        ),
        WAIT,
        "the proof to verify (the receipt's height certified)",
    )
    assert f"height {chain.call['height']}" in verdict and "4 validators" in verdict
    steps = text(browser, "#verify-result")
    assert steps.count("✓") == 5 and "✗" not in steps, steps
    if os.environ.get("TFNODE_SCREENSHOT") or not SCREENSHOT_TX.exists():
        browser.save_screenshot(str(SCREENSHOT_TX))


def test_verify_says_so_when_a_proof_does_not_check_out(chain):
    # The API the button calls, for a hash that has no receipt: an error, never a "verified".
    missing = "ab" * 32
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(page(chain, 0) + f"api/verify/{missing}")
    assert err.value.code == 404 and "no receipt" in json.loads(err.value.read())["error"]


def test_contracts_members_and_governance_pages(chain, browser):
    base = page(chain, 0)
    browser.get(base + "#/contracts")
    wait_for(lambda: "ledger" in text(browser, "#contracts"), WAIT, "the contract list")
    browser.get(base + "#/contract/ledger")
    wait_for(lambda: "Version 2" in text(browser, "main"), WAIT, "the contract page")
    sources = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "pre")]
    assert len(sources) == 2 and "Version 1" in text(browser, "main")
    assert "def record(self, ref: str, amount: int" in sources[0] and "def total" not in sources[0]
    assert "def total(self, ref: str)" in sources[1]
    browser.get(base + "#/proposals")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#proposals tr"), WAIT, "the proposals")
    rows = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#proposals tr")]
    assert rows[0].startswith(str(chain.pid + 1)) and "upgrade" in rows[0] and "committed" in rows[0]
    assert rows[1].startswith(str(chain.pid)) and "deploy" in rows[1] and "ledger" in rows[1] and "committed" in rows[1]
    browser.get(base + "#/members")
    wait_for(lambda: chain.bank.address in text(browser, "#members"), WAIT, "the members")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#validators tr")) == 4
    assert "bank-0" in text(browser, "#members")


def test_tfnode_explorer_serves_the_same_pages_apart_from_the_node(chain, browser, tmp_path):
    from tfnode.node.local import free_base_port

    port = free_base_port(1)
    log = tmp_path / "explorer.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tfnode", "explorer", "--rpc", chain.rpc_url(3), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}/explorer/"

        def up() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(base, timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(up, WAIT, "tfnode explorer to serve")
        # Live blocks through the forwarded WebSocket, the tx page through the forwarded POST /.
        browser.get(base)
        first = wait_for(lambda: live_heights(browser), WAIT, "the block table")[0]
        wait_for(lambda: live_heights(browser)[0] > first + 1, WAIT, "blocks pushed through the forwarded /ws")
        browser.get(base + f"#/tx/{chain.transfers[1]['hash']}")
        wait_for(lambda: text(browser, "#tx-hash") == chain.transfers[1]["hash"], WAIT, "the tx page")
        other = Account(load_private_key(chain.node(1) / "node_key")).address
        assert text(browser, "#tx-args") == f'asset.transfer("{other}", 11)'
        browser.find_element(By.ID, "verify").click()
        wait_for(lambda: text(browser, "#verify-verdict").startswith("verified"), WAIT, "the proof to verify")
    finally:
        proc.kill()
        proc.wait(10)


def test_iot_page_lists_devices_and_batches(chain, browser):
    browser.get(page(chain, 1) + "#/iot")
    wait_for(lambda: chain.device in text(browser, "#devices"), WAIT, "the device")
    row = text(browser, "#devices tr")
    assert "temp_humidity" in row and "MSKU-1" in row and "active" in row
    batch = text(browser, "#batches tr")
    assert batch.split()[1:4] == ["1", "1", "1"], batch  # batch_seq 1: one reading, accepted
    assert len(browser.find_elements(By.CSS_SELECTOR, "#gateways tr")) == 1


def test_explorer_api_answers_bad_requests_with_errors(chain):
    def get(path: str) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(page(chain, 0) + "api/" + path) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    assert get("tx/zz") == (404, {"error": "'zz' is not hex"})
    assert get("tx/abcd")[0] == 404 and "32 bytes" in get("tx/abcd")[1]["error"]
    assert get("contract/no_such_contract") == (404, {"error": "no contract named 'no_such_contract'"})
    assert get("nothing") == (404, {"error": "no explorer page 'nothing'"})
    assert get("tx/" + "a" * 200)[0] == 400
    status, body = get("tx/" + chain.call["hash"])
    assert status == 200 and body["tx"]["kwargs"] == {"note": "cotton, CIF Shanghai"}


def test_block_page_lists_every_transaction_of_a_big_block(chain, browser):
    block = Client(chain.rpc_url(0)).get_block(chain.big, txs=True)
    # Two calls per transaction: more than one JSON-RPC batch of 100 calls (the node's limit).
    assert block["tx_count"] > 50
    browser.get(page(chain, 0) + f"#/block/{chain.big}")
    wait_for(lambda: text(browser, "#block-height") == str(chain.big), WAIT, "the block page")
    rows = browser.find_elements(By.CSS_SELECTOR, "#block-txs tr")
    assert [r.get_attribute("data-tx") for r in rows] == block["txs"]


def test_tfnode_explorer_says_when_the_node_is_unreachable(tmp_path):
    # No consortium needed: the node it forwards to does not exist.
    from tfnode.node.local import free_base_port

    port, dead = free_base_port(1), free_base_port(1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tfnode", "explorer", "--rpc", f"http://127.0.0.1:{dead}", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def answer(path: str, data: bytes | None = None):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", data=data, timeout=5) as r:
                    return r.status, r.read()
            except urllib.error.HTTPError as err:
                return err.code, err.read()
            except OSError:
                return None

        wait_for(lambda: answer("/explorer/") is not None, WAIT, "tfnode explorer to serve")
        status, body = answer("/explorer/api/members")
        assert status == 502 and "cannot reach node" in json.loads(body)["error"]
        status, body = answer("/", b'{"jsonrpc":"2.0","id":1,"method":"status"}')
        assert status == 502 and json.loads(body)["error"]["code"] == -32005
    finally:
        proc.kill()
        proc.wait(10)


def test_verify_names_the_check_that_fails(chain):
    from tfnode.explorer.backend import verify_receipt

    with Client(chain.rpc_url(0)) as cl:
        proof, vals = cl.get_receipt_proof(chain.call["hash"]), cl.validators()
    good = verify_receipt(proof, vals)
    assert good["ok"] and [s["ok"] for s in good["steps"]] == [True] * 4 and good["receipt"]["status"] == "ok"

    def failed(p, v=vals) -> str:
        out = verify_receipt(p, v)
        assert not out["ok"]
        return next(s["check"] for s in out["steps"] if not s["ok"])

    strangers = [dict(v, public_key=Account.generate().public_key_bytes.hex()) for v in vals]
    assert failed(proof, strangers) == "QC signatures"
    assert failed(dict(proof, state_root="00" * 32)) == "execution history"
    receipt = bytearray.fromhex(proof["receipt"])
    receipt[-1] ^= 1
    assert failed(dict(proof, receipt=receipt.hex())) == "receipt in receipts_root"
