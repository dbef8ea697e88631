"""The console: ``tfnode contract|gov|tx|events|member|validator`` against a running node.

Every command talks JSON-RPC to ``--rpc`` (docs/rpc.md), signs with ``--key`` (a key file of
``tfnode keygen``) when it writes, checks ``--chain`` against the node's chain id when given,
and prints rich tables, or the node's JSON results with ``--json``. Errors are one line on
stderr: exit 1 for a node that cannot be reached, refuses, or a transaction that fails; 2
for bad command-line input.

Argument values are JSON (``5``, ``"text"``, ``{"hex": "ab"}``, ``{"decimal": "1.5"}``,
lists, objects: docs/rpc.md "Conventions"); what is not JSON is taken as a string, so
``0x12...`` addresses and plain words need no quotes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from tfnode.errors import TfnodeError

DEFAULT_RPC = "http://127.0.0.1:26601"
WAIT_S = 60.0  # how long a write waits for its receipt
GOV = "governance"

RPC = typer.Option(DEFAULT_RPC, "--rpc", help="the node's JSON-RPC URL")
KEY = typer.Option(None, "--key", help="key file that signs (made by `tfnode keygen`)")
JSON = typer.Option(False, "--json", help="print the node's JSON result")
CHAIN = typer.Option(None, "--chain", help="the chain id the node must serve (checked)")


class Usage(TfnodeError):
    """Bad command-line input: exit 2."""


class Failed(TfnodeError):
    """The call went through but did not succeed (a failed receipt): exit 1."""


def _die(msg: str, code: int) -> typer.Exit:
    typer.echo(f"error: {msg}", err=True)
    return typer.Exit(code)


class Session:
    """One command's connection: the client, the node's status, the signing account."""

    def __init__(self, rpc: str, chain: str | None, key: Path | None, json_out: bool):
        from tfnode.client import Client

        self.json = json_out
        self.key = key
        self.client = Client(rpc, timeout=40)
        self.status = self.client.status()
        if chain is not None and self.status.get("chain_id") != chain:
            raise Usage(f"--chain {chain!r}, but the node at {rpc} serves chain {self.status.get('chain_id')!r}")
        self._account: Any = None

    def account(self):
        if self._account is None:
            from tfnode.client import Account

            if self.key is None:
                raise Usage("this command signs a transaction: give --key FILE")
            self._account = Account.from_file(self.key)
        return self._account

    def call(self, method: str, params: dict | None = None):
        return self.client.call(method, params)

    def send(self, contract: str, method: str, args=(), kwargs=None, gas_limit: int | None = None) -> dict:
        """Sign, submit and wait for the receipt (the node's JSON)."""
        from tfnode.client import Timeout, build_tx

        st = self.client.status()
        extra = {} if gas_limit is None else {"gas_limit": gas_limit}
        raw = build_tx(
            self.account(), st["chain_id"], contract, method, tuple(args), kwargs, expiry=st["height"] + 100, **extra
        )
        h = self.client.submit(raw)
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                return self.client.call("wait_receipt", {"hash": h, "timeout_ms": 10_000}, timeout=40)
            except Timeout:
                if time.monotonic() > deadline:
                    raise Failed(f"transaction {h} submitted but not committed within {WAIT_S:g} s") from None

    def close(self) -> None:
        self.client.close()


def run(rpc: str, chain: str | None, key: Path | None, json_out: bool, fn) -> None:
    """Open a session, run ``fn(session)``, and turn every failure into a message and exit code."""
    from tfnode.client import ClientError, RpcError
    from tfnode.rpc.values import ValueConversionError

    s = None
    try:
        s = Session(rpc, chain, key, json_out)
        fn(s)
    except (Usage, ValueConversionError) as e:
        raise _die(str(e), 2) from None
    except (Failed, ClientError, RpcError) as e:
        raise _die(str(e), 1) from None
    except TfnodeError as e:  # a key file refused, an encoding limit
        raise _die(str(e), 2) from None
    finally:
        if s is not None:
            s.close()


# ---- values and output -------------------------------------------------------------------


def parse_value(text: str, where: str):
    """A command-line value: JSON as docs/rpc.md converts it, else the text itself."""
    import orjson

    from tfnode.rpc.values import json_to_value

    try:
        j = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return json_to_value(j, where)


def parse_kwargs(items: list[str]) -> dict:
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k.isidentifier():
            raise Usage(f"--kw {item!r}: expected NAME=VALUE")
        out[k] = parse_value(v, f"kwargs.{k}")
    return out


def show(v: Any) -> str:
    """A JSON-form contract value, compact, for a table cell: bytes as their hex digits and
    decimals as numbers (``--json`` keeps the tagged forms)."""
    import orjson

    if isinstance(v, str):
        return v
    return orjson.dumps(_plain(v)).decode()


def _plain(v: Any) -> Any:
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        if len(v) == 1:
            tag, body = next(iter(v.items()))
            if tag in ("hex", "decimal") and isinstance(body, str):
                return body
            if tag == "dict" and isinstance(body, list):
                return {show(k): _plain(x) for k, x in body}
        return {k: _plain(x) for k, x in v.items()}
    return v


def call_text(call: dict) -> str:
    """``contract.method(arg, name=value)`` of a transaction or a receipt's ``call``."""
    args = [show(a) for a in call.get("args") or []]
    args += [f"{k}={show(v)}" for k, v in (call.get("kwargs") or {}).items()]
    return f"{call.get('contract')}.{call.get('method')}({', '.join(args)})"


def print_json(obj) -> None:
    import orjson

    typer.echo(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode())


def console():
    import shutil

    from rich.console import Console

    # Hashes are 64 characters: never narrower than that lets them stand on one line.
    return Console(width=max(shutil.get_terminal_size((160, 40)).columns, 120), highlight=False)


def fields_table(title: str, rows: list[tuple[str, Any]]):
    from rich.table import Table

    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    for k, v in rows:
        t.add_row(k, "" if v is None else str(v))
    return t


def table(title: str, columns: list[str], rows: list[list[Any]]):
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    return t


def receipt_tables(r: dict) -> list:
    out = [
        fields_table(
            "receipt",
            [
                ("status", r.get("status")),
                ("height", r.get("height")),
                ("gas used", r.get("gas_used")),
                ("return value", show(r.get("return_value"))),
            ]
            + ([("revert reason", r["revert_reason"])] if r.get("revert_reason") else []),
        )
    ]
    if r.get("events"):
        rows = [[e.get("contract"), e.get("name"), show(e.get("fields"))] for e in r["events"]]
        out.append(table("events", ["contract", "name", "fields"], rows))
    return out


def finish_receipt(s: Session, r: dict, extra: Sequence[tuple[str, Any]] = ()) -> None:
    """Print a receipt; a failed one exits 1 after it is shown."""
    if s.json:
        print_json(r)
    else:
        c = console()
        if extra:
            c.print(fields_table("transaction", [("hash", r.get("hash")), *extra]))
        for t in receipt_tables(r):
            c.print(t)
    if r.get("status") != "ok":
        raise Failed(f"transaction {r.get('hash', '')} failed: {r.get('status')}: {r.get('revert_reason')}")


# ---- contract ----------------------------------------------------------------------------


def read_source(path: Path) -> str:
    from tfnode.runtime.errors import ValidationError
    from tfnode.runtime.executor import validate_source

    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise Usage(f"cannot read {path}: {e}") from None
    try:
        validate_source(source)  # the node would refuse it in the proposal: say so before signing
    except ValidationError as e:
        raise Usage(f"{path} would be refused: {'; '.join(str(v) for v in e.violations)[:600]}") from None
    return source


def sm3_hex(source: str) -> str:
    from tfnode import crypto

    return crypto.sm3(source.encode("utf-8")).hex()


def propose(s: Session, kind: str, name: str | None, source: str | None, args: list, payload) -> None:
    r = s.send(GOV, "propose", [kind, name, source, args, payload])
    code_hash = sm3_hex(source) if source is not None else None
    if s.json:
        print_json({"proposal": r.get("return_value"), "code_hash": code_hash, "receipt": r})
    else:
        rows: list[tuple[str, Any]] = [("proposal", r.get("return_value")), ("kind", kind), ("tx", r.get("hash"))]
        if name:
            rows.append(("contract", name))
        if code_hash:
            rows.append(("source SM3", code_hash))
        if r.get("status") == "ok":
            rows.append(
                ("next", f"tfnode gov approve {r.get('return_value')} (by members the policy names), then commit")
            )
        console().print(fields_table("proposal submitted", rows))
    if r.get("status") != "ok":
        raise Failed(f"proposal refused: {r.get('status')}: {r.get('revert_reason')}")


def register(app: typer.Typer, contract_app: typer.Typer) -> None:
    """Add the console's commands to the ``tfnode`` app (``contract_app``: ``tfnode contract``)."""

    @contract_app.command("deploy")
    def contract_deploy(
        name: str = typer.Argument(..., help="the new contract's name"),
        source: Path = typer.Argument(..., help="the contract's source file"),
        args: list[str] = typer.Option([], "--arg", help="an argument of init (JSON or text; repeat)"),
        rpc: str = RPC,
        key: Path = KEY,
        json_out: bool = JSON,
        chain: str = CHAIN,
    ) -> None:
        """Propose deploying a contract through governance (its source's SM3 hash is what
        members approve); commit it with `tfnode gov approve ID --commit` once approved."""
        run(
            rpc,
            chain,
            key,
            json_out,
            lambda s: propose(
                s, "deploy", name, read_source(source), [parse_value(a, f"args[{i}]") for i, a in enumerate(args)], None
            ),
        )

    @contract_app.command("upgrade")
    def contract_upgrade(
        name: str = typer.Argument(..., help="the deployed contract's name"),
        source: Path = typer.Argument(..., help="the new source file"),
        args: list[str] = typer.Option([], "--arg", help="an argument of migrate (JSON or text; repeat)"),
        rpc: str = RPC,
        key: Path = KEY,
        json_out: bool = JSON,
        chain: str = CHAIN,
    ) -> None:
        """Propose upgrading a contract through governance; `tfnode gov show ID` shows the diff."""
        run(
            rpc,
            chain,
            key,
            json_out,
            lambda s: propose(
                s,
                "upgrade",
                name,
                read_source(source),
                [parse_value(a, f"args[{i}]") for i, a in enumerate(args)],
                None,
            ),
        )

    @contract_app.command("call")
    def contract_call(
        contract: str = typer.Argument(...),
        method: str = typer.Argument(...),
        args: list[str] = typer.Argument(None, help="arguments (JSON or text)"),
        kw: list[str] = typer.Option([], "--kw", help="a keyword argument NAME=VALUE (repeat)"),
        dry_run: bool = typer.Option(False, "--dry-run", help="execute on the latest state, submit nothing"),
        gas_limit: int = typer.Option(None, "--gas-limit", min=1),
        rpc: str = RPC,
        key: Path = KEY,
        json_out: bool = JSON,
        chain: str = CHAIN,
    ) -> None:
        """Call a contract method in a signed transaction and show its receipt; with
        --dry-run, the receipt it would get (status, revert reason, gas, events)."""

        def go(s: Session) -> None:
            vargs = [parse_value(a, f"args[{i}]") for i, a in enumerate(args or [])]
            kwargs = parse_kwargs(kw)
            if dry_run:
                r = s.call("call_dry_run", dry_run_params(s, contract, method, vargs, kwargs, gas_limit))
                if s.json:
                    print_json(r)
                else:
                    c = console()
                    c.print(f"dry run of {contract}.{method} on height {r.get('height')}: nothing submitted")
                    for t in receipt_tables(r):
                        c.print(t)
                if r.get("status") != "ok":
                    raise Failed(f"the call would fail: {r.get('status')}: {r.get('revert_reason')}")
                return
            r = s.send(contract, method, vargs, kwargs, gas_limit)
            finish_receipt(s, r, [("call", call_text(r.get("call") or {"contract": contract, "method": method}))])

        run(rpc, chain, key, json_out, go)

    @contract_app.command("view")
    def contract_view(
        contract: str = typer.Argument(...),
        method: str = typer.Argument(...),
        args: list[str] = typer.Argument(None, help="arguments (JSON or text)"),
        kw: list[str] = typer.Option([], "--kw", help="a keyword argument NAME=VALUE (repeat)"),
        rpc: str = RPC,
        key: Path = KEY,
        json_out: bool = JSON,
        chain: str = CHAIN,
    ) -> None:
        """Run a @view on the latest state (signed by --key when given: views that answer
        only some members see who asks)."""

        def go(s: Session) -> None:
            vargs = [parse_value(a, f"args[{i}]") for i, a in enumerate(args or [])]
            params = query_params(s, contract, method, vargs, parse_kwargs(kw))
            r = s.call("query", params)
            if s.json:
                print_json(r)
            else:
                rows = [("status", r.get("status")), ("value", show(r.get("value"))), ("gas used", r.get("gas_used"))]
                if r.get("revert_reason"):
                    rows.append(("revert reason", r["revert_reason"]))
                console().print(fields_table(f"{contract}.{method}", rows))
            if r.get("status") != "ok":
                raise Failed(f"{contract}.{method}: {r.get('status')}: {r.get('revert_reason')}")

        run(rpc, chain, key, json_out, go)

    @contract_app.command("show")
    def contract_show(
        name: str = typer.Argument(None, help="a contract (none: list them all)"),
        source: bool = typer.Option(False, "--source", help="print the deployed source too"),
        rpc: str = RPC,
        json_out: bool = JSON,
        chain: str = CHAIN,
    ) -> None:
        """Show a contract: code hash (SM3 of its source), version, and every version's
        height and transaction; without a name, list the contracts."""

        def go(s: Session) -> None:
            if name is None:
                rows = s.call("get_contracts")
                if s.json:
                    return print_json(rows)
                console().print(
                    table(
                        "contracts",
                        ["name", "version", "code hash (SM3)", "height"],
                        [[r["name"], r["version"], r["code_hash"], r["height"]] for r in rows],
                    )
                )
                return None
            r = s.call("get_contract", {"name": name})
            if s.json:
                return print_json(r)
            c = console()
            c.print(
                fields_table(
                    f"contract {name}",
                    [("version", r["version"]), ("code hash (SM3)", r["code_hash"]), ("since height", r["height"])],
                )
            )
            c.print(
                table(
                    "versions",
                    ["version", "code hash (SM3)", "height", "tx"],
                    [[v["version"], v["code_hash"], v["height"], v.get("tx_hash")] for v in r.get("versions") or []],
                )
            )
            if source:
                typer.echo(r.get("source") or "")
            return None

        run(rpc, chain, None, json_out, go)

    # ---- governance ----------------------------------------------------------------------

    gov_app = typer.Typer(help="Governance: propose, approve, commit and inspect proposals.", no_args_is_help=True)
    app.add_typer(gov_app, name="gov")

    @gov_app.command("propose")
    def gov_propose(
        kind: str = typer.Argument(..., help="deploy, upgrade, member, remove_member or policy"),
        name: str = typer.Option(None, "--name", help="contract name (deploy, upgrade)"),
        source: Path = typer.Option(None, "--source", help="contract source file (deploy, upgrade)"),
        args: list[str] = typer.Option([], "--arg", help="an argument of init/migrate (JSON or text; repeat)"),
        payload: str = typer.Option(
            None,
            "--payload",
            help='JSON: member {"address", "organisation", "roles"}; remove_member {"address"}; '
            'policy {"roles", "more_than": [num, den], "min_approvals"}',
        ),
        address: str = typer.Option(None, "--address", help="member: the new member's address"),
        public_key: str = typer.Option(None, "--public-key", help="member: its public key (hex, `tfnode keygen`)"),
        organisation: str = typer.Option(None, "--organisation", help="member: its organisation"),
        roles: list[str] = typer.Option([], "--role", help="member: a role (repeat): bank, customs, ..."),
        rpc: str = RPC,
        key: Path = KEY,
        json_out: bool = JSON,
        chain: str = CHAIN,
    ) -> None:
        """Submit a governance proposal. A new member is given by --payload or by --address
        (or --public-key), --organisation and --role."""

        def go(s: Session) -> None:
            if kind in ("deploy", "upgrade"):
                if name is None or source is None:
                    raise Usage(f"a {kind} proposal needs --name and --source")
                vargs = [parse_value(a, f"args[{i}]") for i, a in enumerate(args)]
                return propose(s, kind, name, read_source(source), vargs, None)
            if kind not in ("member", "remove_member", "policy"):
                raise Usage(f"kind {kind!r}: expected deploy, upgrade, member, remove_member or policy")
            if payload is None and kind == "member" and organisation is not None:
                return propose(s, kind, None, None, [], member_payload(address, public_key, organisation, roles))
            if payload is None:
                raise Usage(f"a {kind} proposal needs --payload JSON")
            p = parse_value(payload, "payload")
            if not isinstance(p, dict):
                raise Usage("--payload must be a JSON object")
            return propose(s, kind, None, None, [], p)

        run(rpc, chain, key, json_out, go)

    @gov_app.command("approve")
    def gov_approve(
        pid: int = typer.Argument(..., help="proposal id"),
        commit: bool = typer.Option(False, "--commit", help="commit it too, if the approvals now suffice"),
        source: Path = typer.Option(
            None, "--source", help="approve only if the proposed code is this file (its SM3 must match)"
        ),
        rpc: str = RPC,
        key: Path = KEY,
        json_out: bool = JSON,
        chain: str = CHAIN,
    ) -> None:
        """Approve a proposal (members the policy names, once each). With --source, only the
        code reviewed: the proposal's SM3 must be that of the file."""

        def go(s: Session) -> None:
            if source is not None:
                want = sm3_hex(read_source(source))
                got = s.call("get_proposal", {"id": pid}).get("code_hash")
                if got != want:
                    raise Usage(f"proposal {pid} proposes code {got or '(none)'}, but {source} hashes to {want}")
            r = s.send(GOV, "approve", [pid])
            out: dict[str, Any] = {"approve": r}
            if r.get("status") == "ok" and commit:
                p = s.call("get_proposal", {"id": pid})
                if p.get("ready"):
                    out["commit"] = s.send(GOV, "commit", [pid])
            if s.json:
                print_json(out)
            else:
                rows: list[tuple[str, Any]] = [("proposal", pid), ("approve", _status(r))]
                if r.get("status") == "ok":
                    rows.append(("approvals", r.get("return_value")))
                if "commit" in out:
                    rows.append(("commit", _status(out["commit"])))
                    for e in out["commit"].get("events") or ():
                        if e.get("contract") == GOV and e.get("name") in ("Deployed", "Upgraded"):
                            rows.append((e["name"].lower(), show(e.get("fields"))))
                elif commit and r.get("status") == "ok":
                    rows.append(("commit", "not yet: more approvals needed"))
                console().print(fields_table("governance", rows))
            for step in ("approve", "commit"):
                if step in out and out[step].get("status") != "ok":
                    raise Failed(f"{step} {pid}: {out[step].get('status')}: {out[step].get('revert_reason')}")

        run(rpc, chain, key, json_out, go)

    @gov_app.command("commit")
    def gov_commit(
        pid: int = typer.Argument(..., help="proposal id"),
        rpc: str = RPC,
        key: Path = KEY,
        json_out: bool = JSON,
        chain: str = CHAIN,
    ) -> None:
        """Carry out an approved proposal (any member): deploy, upgrade, member or policy change."""
        run(rpc, chain, key, json_out, lambda s: finish_receipt(s, s.send(GOV, "commit", [pid]), [("commit", pid)]))

    @gov_app.command("list")
    def gov_list(
        status: str = typer.Option(None, "--status", help="open or committed"),
        limit: int = typer.Option(50, "--limit", min=1, max=200),
        rpc: str = RPC,
        json_out: bool = JSON,
        chain: str = CHAIN,
    ) -> None:
        """List governance proposals, newest first."""

        def go(s: Session) -> None:
            params: dict[str, Any] = {"limit": limit}
            if status is not None:
                params["status"] = status
            r = s.call("get_proposals", params)
            if s.json:
                return print_json(r)
            rows = [
                [
                    p["id"],
                    p["kind"],
                    p.get("name") or show(p.get("payload")) if p.get("payload") or p.get("name") else "",
                    p["status"],
                    f"{len(p['approvals'])}/{p['approvals_needed']}",
                    (p.get("code_hash") or "")[:16],
                    p["proposer"],
                    p["height"],
                ]
                for p in r["proposals"]
            ]
            cols = ["id", "kind", "subject", "status", "approvals", "SM3", "proposer", "height"]
            console().print(table(f"proposals ({r['count']} in all)", cols, rows))
            return None

        run(rpc, chain, None, json_out, go)

    @gov_app.command("show")
    def gov_show(
        pid: int = typer.Argument(..., help="proposal id"),
        rpc: str = RPC,
        json_out: bool = JSON,
        chain: str = CHAIN,
    ) -> None:
        """Show a proposal: approvals, policy, and for a deploy or upgrade the proposed
        source's SM3 hash and a unified diff against the deployed version."""

        def go(s: Session) -> None:
            p = s.call("get_proposal", {"id": pid})
            if s.json:
                return print_json(p)
            rows: list[tuple[str, Any]] = [
                ("kind", p["kind"]),
                ("status", p["status"]),
                ("proposer", p["proposer"]),
                ("height", p["height"]),
                ("approvals", f"{len(p['approvals'])} of {p['approvals_needed']} needed ({p['eligible']} eligible)"),
                ("approved by", ", ".join(p["approvals"]) or None),
                ("ready to commit", "yes" if p.get("ready") else "no"),
            ]
            if "name" in p:
                rows.append(("contract", p["name"]))
            if "code_hash" in p:
                rows.append(("source SM3", p["code_hash"]))
                dep = p.get("deployed")
                rows.append(("deployed", f"v{dep['version']} {dep['code_hash']}" if dep else "(none: a new contract)"))
            if "payload" in p:
                rows.append(("payload", show(p["payload"])))
            c = console()
            c.print(fields_table(f"proposal {pid}", rows))
            if "diff" in p:
                from rich.syntax import Syntax

                c.print(Syntax(p["diff"] or "(no change)\n", "diff", theme="ansi_dark", word_wrap=True))
            return None

        run(rpc, chain, None, json_out, go)

    # ---- transactions, events, members, validators ---------------------------------------

    @app.command("tx")
    def tx(
        hash: str = typer.Argument(..., help="transaction hash (64 hex digits)"),
        genesis: Path = typer.Option(
            None, "--genesis", help="genesis.json whose validators the proof is checked against (trusted)"
        ),
        rpc: str = RPC,
        json_out: bool = JSON,
        chain: str = CHAIN,
    ) -> None:
        """Show a transaction: its call with decoded arguments, the receipt, the events, and
        the receipt's proof checked against a QC."""

        def go(s: Session) -> None:
            h = hash.removeprefix("0x").lower()
            if len(h) != 64 or any(ch not in "0123456789abcdef" for ch in h):
                raise Usage(f"{hash!r} is not a transaction hash (64 hex digits)")
            t = s.call("get_transaction", {"hash": h})
            r = s.call("get_receipt", {"hash": h})
            verified, against = check_proof(s, h, genesis)
            if s.json:
                return print_json({"transaction": t, "receipt": r, "proof_verified": verified, "validators": against})
            c = console()
            c.print(
                fields_table(
                    "transaction",
                    [
                        ("hash", t["hash"]),
                        ("height", f"{t['height']} (index {t['index']})"),
                        ("from", t.get("address")),
                        ("call", call_text(t)),
                        ("nonce", t.get("nonce")),
                        ("expiry", t.get("expiry")),
                        ("gas limit", t.get("gas_limit")),
                        ("proof", ("verified" if verified else "NOT VERIFIED") + f" against {against}"),
                    ],
                )
            )
            for tb in receipt_tables(r):
                c.print(tb)
            return None

        run(rpc, chain, None, json_out, go)

    @app.command("events")
    def events(
        contract: str = typer.Option(..., "--contract", help="the contract that emitted them"),
        name: str = typer.Option(..., "--name", help="the event name"),
        from_height: int = typer.Option(0, "--from", min=0, help="first height"),
        since: str = typer.Option(None, "--since", help="instead of --from: events of the last 30m, 12h, 7d..."),
        to_height: int = typer.Option(None, "--to", min=0, help="last height (default: the latest)"),
        limit: int = typer.Option(100, "--limit", min=1, help="most events to show"),
        cursor: str = typer.Option(None, "--cursor", help="continue from a cursor an earlier listing printed"),
        proofs: bool = typer.Option(False, "--proofs", help="fetch and check each event's receipt proof"),
        rpc: str = RPC,
        json_out: bool = JSON,
        chain: str = CHAIN,
    ) -> None:
        """Find events from the node's index (oldest first), paging as needed."""

        def go(s: Session) -> None:
            first = from_height if since is None else height_since(s, parse_duration(since))
            if to_height is not None and to_height < first:
                raise Usage("--to must be at least --from")
            found: list[dict] = []
            nxt = cursor
            deadline = time.monotonic() + 15
            while len(found) < limit:
                params: dict[str, Any] = {
                    "contract": contract,
                    "name": name,
                    "from_height": first,
                    "limit": min(limit - len(found), 100 if proofs else 1000),
                }
                if to_height is not None:
                    params["to_height"] = to_height
                if nxt is not None:
                    params["cursor"] = nxt
                if proofs:
                    params["proofs"] = True
                page = s.call("get_events", params)
                found.extend(page["events"])
                nxt = page["next_cursor"]
                if proofs and not page["more"] and wait_certified(page, to_height, deadline):
                    continue  # the newest events get their proofs once a QC certifies them
                if not page["more"]:
                    break
            if proofs:
                vals = validator_set(s, None)[0]
                from tfnode.client import verify_receipt_proof

                for e in found:
                    e["proof_verified"] = verify_receipt_proof(e.pop("proof"), vals)
            if s.json:
                return print_json({"events": found, "next_cursor": nxt})
            cols = ["height", "tx", "fields"] + (["proof"] if proofs else [])
            rows = [
                [e["height"], e["tx_hash"][:16], show(e["fields"])]
                + (["verified" if e["proof_verified"] else "NOT VERIFIED"] if proofs else [])
                for e in found
            ]
            c = console()
            c.print(table(f"{contract}.{name}: {len(found)} event(s)", cols, rows))
            if nxt is not None:
                c.print(f"continue with --cursor {nxt}")
            return None

        run(rpc, chain, None, json_out, go)

    member_app = typer.Typer(help="Consortium members (governance).", no_args_is_help=True)
    app.add_typer(member_app, name="member")

    @member_app.command("list")
    def member_list(rpc: str = RPC, json_out: bool = JSON, chain: str = CHAIN) -> None:
        """List the consortium's members with their organisation and roles."""

        def go(s: Session) -> None:
            rows = s.call("get_members")
            if s.json:
                return print_json(rows)
            console().print(
                table(
                    "members",
                    ["address", "organisation", "roles"],
                    [[m["address"], m["organisation"], ", ".join(m["roles"])] for m in rows],
                )
            )
            return None

        run(rpc, chain, None, json_out, go)

    validator_app = typer.Typer(help="The validator set.", no_args_is_help=True)
    app.add_typer(validator_app, name="validator")

    @validator_app.command("list")
    def validator_list(rpc: str = RPC, json_out: bool = JSON, chain: str = CHAIN) -> None:
        """List the validators with their voting power and public key, and who is connected."""

        def go(s: Session) -> None:
            vals = s.call("get_validators")
            peers = {p["public_key"]: p.get("connected") for p in s.call("get_peers")}
            if s.json:
                return print_json([dict(v, connected=peers.get(v["public_key"])) for v in vals])
            rows = [
                [
                    v["id"],
                    v["name"],
                    v["power"],
                    v["public_key"],
                    "this node" if v["public_key"] not in peers else ("yes" if peers[v["public_key"]] else "no"),
                ]
                for v in vals
            ]
            console().print(table("validators", ["id", "name", "power", "public key", "connected"], rows))
            return None

        run(rpc, chain, None, json_out, go)


def member_payload(address: str | None, public_key: str | None, organisation: str, roles: list[str]) -> dict:
    if (address is None) == (public_key is None):
        raise Usage("a member proposal needs exactly one of --address and --public-key")
    if public_key is not None:
        from tfnode import crypto

        try:
            address = crypto.address(crypto.PublicKey.from_bytes(bytes.fromhex(public_key.removeprefix("0x"))))
        except ValueError as e:
            raise Usage(f"--public-key: {e}") from None
    return {"address": address, "organisation": organisation, "roles": list(roles)}


def wait_certified(page: dict, to_height: int | None, deadline: float) -> bool:
    """With proofs, a page ends at the certified height; True (after a pause) while events
    executed but not yet certified may still come, until ``deadline``."""
    want = page["executed_height"] if to_height is None else min(to_height, page["executed_height"])
    if page.get("certified_height", want) >= want or time.monotonic() > deadline:
        return False
    time.sleep(0.2)
    return True


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``12h``, ``7d``, ``2w`` as seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    n, unit = text[:-1], text[-1:]
    if unit not in units or not n.isdigit() or int(n) == 0:
        raise Usage(f"--since {text!r}: expected a number and a unit, like 30m, 12h or 7d")
    return int(n) * units[unit]


def height_since(s: Session, seconds: float) -> int:
    """The first height whose block was made at most ``seconds`` ago."""
    return first_height_at(s, int((time.time() - seconds) * 1000))


def first_height_at(s: Session, cutoff_ms: int) -> int:
    """The first height whose block's timestamp is at or after ``cutoff_ms`` (the head + 1 if
    none is): a binary search over block timestamps, which never decrease along the chain,
    about log2(height) calls. Blocks a pruned node no longer holds count as older."""
    from tfnode.client import NotFound

    top = s.client.status()["height"]
    lo, hi = 1, top + 1
    while lo < hi:
        mid = (lo + hi) // 2
        try:
            newer = s.call("get_block", {"height": mid})["timestamp_ms"] >= cutoff_ms
        except NotFound:
            newer = False
        if newer:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _status(r: dict) -> str:
    return r.get("status", "?") + (f" ({r['revert_reason']})" if r.get("revert_reason") else "")


def query_params(s: Session, contract: str, method: str, args: list, kwargs: dict) -> dict:
    from tfnode.client import _rpc

    if s.key is None:
        return _rpc.query_params(contract, method, args, kwargs)
    st = s.client.status()
    return _rpc.signed_query_params(
        s.account(), st["chain_id"], st["executed_height"] + 100, contract, method, args, kwargs
    )


def dry_run_params(s: Session, contract: str, method: str, args: list, kwargs: dict, gas_limit: int | None) -> dict:
    p = query_params(s, contract, method, args, kwargs)
    if gas_limit is not None:
        p["gas_limit"] = gas_limit
    return p


def validator_set(s: Session, genesis: Path | None) -> tuple[list[tuple[int, int, bytes]], str]:
    """The validators a proof is checked against: a genesis file's (trusted) or the node's."""
    if genesis is not None:
        from tfnode.node.genesis import Genesis

        g = Genesis.load(genesis)
        return g.consensus_validators(), f"the validators of {genesis}"
    vals = s.call("get_validators")
    return [(v["id"], v["power"], bytes.fromhex(v["public_key"])) for v in vals], "the node's own validator set"


def check_proof(s: Session, tx_hash: str, genesis: Path | None) -> tuple[bool, str]:
    """Fetch the receipt proof and check it; a height not certified yet is waited for briefly."""
    from tfnode.client import NotReady, verify_receipt_proof

    vals, against = validator_set(s, genesis)
    deadline = time.monotonic() + 15
    while True:
        try:
            proof = s.call("get_receipt_proof", {"hash": tx_hash})
            break
        except NotReady:
            if time.monotonic() > deadline:
                return False, against + " (no QC certifies its height yet)"
            time.sleep(0.2)
    return verify_receipt_proof(proof, vals), against
