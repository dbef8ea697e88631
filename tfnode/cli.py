"""The ``tfnode`` command line."""

from __future__ import annotations

from pathlib import Path

import typer

from tfnode import cli_console

app = typer.Typer(
    name="tfnode",
    help="tfnode: consortium blockchain node for trade finance (SM2/SM3/SM4, HotStuff BFT).",
    no_args_is_help=True,
    add_completion=False,
)


demo_app = typer.Typer(
    help="Show the node at work on trade-finance examples (without a subcommand: the crypto core and a consortium).",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(demo_app, name="demo")


@demo_app.callback()
def demo(ctx: typer.Context) -> None:
    """Show the node's national-cryptography core at work on a trade-finance example, then a
    four-member consortium (``tfnode demo multichain``: chains on one node, proven links)."""
    if ctx.invoked_subcommand is not None:
        return
    from tfnode.demo import run

    run()


@demo_app.command("multichain")
def demo_multichain(
    json_out: bool = typer.Option(False, "--json", help="narrate on stderr; the last stdout line is one JSON object"),
) -> None:
    """A main chain and two sub-chains (trade, settlement) on the same four node processes,
    and the seed flows between them through an untrusted relayer (docs/multichain.md)."""
    from tfnode.demo_multichain import run as run_multichain

    raise typer.Exit(run_multichain(json_out=json_out))


def _node_errors(fn):
    """Run fn, turning the node's own errors into a clean CLI message and exit status 2."""
    from tfnode.node.errors import NodeError

    try:
        return fn()
    except NodeError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


@app.command()
def init(
    home: Path = typer.Option(..., "--home", help="folder to create the consortium in"),
    validators: int = typer.Option(4, "--validators", help="number of validator nodes (1..64)"),
    base_port: int = typer.Option(26600, "--base-port", help="node i listens on base+2i (P2P), base+2i+1 (RPC)"),
    chain_id: str = typer.Option("tf-main", "--chain-id"),
    member: list[str] = typer.Option(
        [],
        "--member",
        help="one member (repeat): name=NAME,org=ORGANISATION,role=ROLE,power=N,key=FILE.pub[,host=H]; "
        "power 0 makes an observer; no key makes one (docs/operations.md, 'Members and validators')",
    ),
    members_file: Path | None = typer.Option(
        None, "--members", help="a TOML file of [[member]] tables with the keys of --member"
    ),
    from_keys: str = typer.Option(
        "", "--from-keys", help="comma-separated .pub files, roles by position (prefer --member)"
    ),
    hosts: str = typer.Option("", "--hosts", help="comma-separated host of each node (default 127.0.0.1)"),
    base_timeout_ms: int = typer.Option(500, "--base-timeout-ms", help="consensus round timeout before back-off"),
    block_interval_ms: int = typer.Option(200, "--block-interval-ms", help="pause between empty blocks"),
    log_format: str = typer.Option("plain", "--log-format", help="plain or json"),
    replay_window: int = typer.Option(
        1_000_000,
        "--replay-window",
        help="heights a transaction's expiry may lie above its block; each replay record is deleted "
        "after its expiry (genesis replay_window, docs/ledger.md)",
    ),
    json_out: bool = typer.Option(False, "--json", help="print each node's home, P2P address and RPC URL"),
) -> None:
    """Create a consortium: one folder per node with config, key (0600) and genesis."""
    from tfnode.node import cli_node

    if log_format not in ("plain", "json"):
        typer.echo(f"error: --log-format {log_format!r}: expected plain or json", err=True)
        raise typer.Exit(2)
    if sum(map(bool, (member, members_file, from_keys))) > 1:
        typer.echo("error: give the members one way: --member, --members or --from-keys", err=True)
        raise typer.Exit(2)

    def members() -> list[dict] | None:
        if member:
            return [cli_node.parse_member(m) for m in member]
        return cli_node.load_members_file(members_file) if members_file is not None else None

    out = _node_errors(
        lambda: cli_node.init(
            members=members(),
            validators=validators,
            home=home,
            base_port=base_port,
            chain_id=chain_id,
            json_out=json_out,
            from_keys=[k for k in from_keys.split(",") if k] or None,
            hosts=[h for h in hosts.split(",") if h] or None,
            base_timeout_ms=base_timeout_ms,
            block_interval_ms=block_interval_ms,
            log_format=log_format,
            replay_window=replay_window,
        )
    )
    if not json_out:
        for n in out:
            kind = "validator" if n["validator"] else "observer"
            typer.echo(f"{n['name']:>8} {n['role']:<10} {kind:<9} {n['home']}  p2p {n['p2p']}  rpc {n['rpc']}")


@app.command()
def keygen(out: Path = typer.Option(..., "--out", help="private key file to write (0600); OUT.pub beside it")) -> None:
    """Make a member's SM2 key on its own machine; share only the .pub file."""
    from tfnode.node import cli_node

    typer.echo(_node_errors(lambda: cli_node.keygen(out)))


@app.command()
def start(
    home: Path = typer.Option(..., "--home", help="a node folder made by `tfnode init`"),
    safety_floor: int | None = typer.Option(
        None,
        "--safety-floor",
        min=1,
        help="only after the safety record was lost: sign nothing at or below this round "
        "(docs/operations.md, 'Damaged data'); ignored while the record is intact",
    ),
    observer: bool = typer.Option(
        False,
        "--observer",
        help="follow the chain, verify every QC, serve RPC and proofs, never sign "
        "(as `role = \"observer\"` in config.toml; docs/operations.md, 'Observer nodes')",
    ),
    contained: bool = typer.Option(
        False,
        "--contained",
        help="run every block's contract calls in a forked worker with resource limits (slower; "
        "by default only a block that killed the node is re-run so: docs/contracts.md)",
    ),
    snapshot: Path = typer.Option(
        None, "--snapshot", help="build an empty ledger from this verified snapshot first (ignored if one exists)"
    ),
) -> None:
    """Run a node until SIGTERM or SIGINT."""
    from tfnode.node import cli_node

    cli_node.reexec_with_huge_pages(home)
    if snapshot is not None:
        from tfnode.cli_ops import start_from_snapshot

        start_from_snapshot(home, snapshot)
    raise typer.Exit(_node_errors(lambda: cli_node.start(home, safety_floor, observer, contained)))


chain_app = typer.Typer(
    help="Chains a node hosts besides its default one: join, leave, list (docs/multichain.md).",
    no_args_is_help=True,
)
app.add_typer(chain_app, name="chain")
HOME = typer.Option(..., "--home", help="the node's folder")


def _chain_out(out: dict, json_out: bool, what: str) -> None:
    if json_out:
        _print_json(out)
        return
    if not out.get("running", True):
        typer.echo(f"{what} (the node is not running: it takes effect when the node starts)")
        return
    typer.echo(what)
    for c in out.get("chains", []):
        extra = f"  height {c['height']}" if "height" in c else ""
        typer.echo(f"  {c['chain_id']}{' (default)' if c['chain_id'] == out.get('default') else ''}{extra}")


@chain_app.command("join")
def chain_join(
    home: Path = HOME,
    genesis: Path = typer.Option(..., "--genesis", help="the chain's genesis file"),
    follow: bool = typer.Option(
        False, "--follow", help="host it even if its genesis does not name this node's key as a validator (no vote)"
    ),
    snapshot: Path = typer.Option(
        None, "--snapshot", help="build the chain's empty ledger from this verified snapshot first (state sync)"
    ),
    no_directory_check: bool = typer.Option(
        False,
        "--no-directory-check",
        help="join even if this node's main chain records another genesis hash for the chain in its directory",
    ),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Host one more chain, without restarting the others (SIGHUP to the running node). A
    chain whose genesis differs from what this node's default (main) chain records for it in
    its directory of sub-chains is refused."""
    from tfnode.node import cli_node

    out = _node_errors(
        lambda: cli_node.chain_join(
            home, genesis, follow=follow, snapshot=snapshot, directory_check=not no_directory_check
        )
    )
    _chain_out(
        out, json_out, f"joined chain {out['chain_id']} as {out['role']} (genesis {out['genesis_hash'][:16]}...)"
    )


@chain_app.command("leave")
def chain_leave(
    chain_id: str = typer.Argument(..., help="the chain to leave"),
    home: Path = HOME,
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Stop hosting a chain (its ledger stays under data/chains/ID for a later join)."""
    from tfnode.node import cli_node

    out = _node_errors(lambda: cli_node.chain_leave(home, chain_id))
    _chain_out(out, json_out, f"left chain {chain_id}")


@chain_app.command("list")
def chain_list(home: Path = HOME, json_out: bool = typer.Option(False, "--json")) -> None:
    """The chains the node hosts."""
    from tfnode.node import cli_node

    out = _node_errors(lambda: cli_node.chain_list(home))
    _chain_out(out, json_out, "chains:")


contract_app = typer.Typer(
    help="Contracts: check sources, deploy and upgrade through governance, call, view, show.", no_args_is_help=True
)
app.add_typer(contract_app, name="contract")


@contract_app.command("check")
def contract_check(
    files: list[Path] = typer.Argument(..., help="contract source files", exists=False),
) -> None:
    """Run the deploy-time validation on contract sources: exit 0 if every file would be
    accepted, 1 with FILE:LINE:COL: [rule] reasons if not."""
    from tfnode.runtime.check import run_check

    raise typer.Exit(run_check([str(f) for f in files]))


# The console: contract deploy|upgrade|call|view|show, gov, tx, events, member, validator.
cli_console.register(app, contract_app)

DEFAULT_RPC = cli_console.DEFAULT_RPC


def _rpc_call(url: str, fn, chain: str | None = None):
    """Run fn(client) against the node at url (on ``chain``, default the node's default
    chain); a node that cannot be reached, or answers with an error, is one line on stderr
    and exit status 1."""
    from tfnode.client import Client, ClientError, RpcError

    try:
        with Client(url, timeout=10, chain=chain) as c:
            return fn(c)
    except (ClientError, RpcError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None


def _print_json(obj) -> None:
    import orjson

    typer.echo(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode())


def _print_fields(rows: list[tuple[str, object]]) -> None:
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        typer.echo(f"{k:<{width}}  {v}")


@app.command()
def status(
    rpc: str = typer.Option(DEFAULT_RPC, "--rpc", help="the node's JSON-RPC URL"),
    json_out: bool = typer.Option(False, "--json", help="print the status result as JSON"),
    chain: str = typer.Option(None, "--chain", help="a chain the node hosts (default: its default chain)"),
) -> None:
    """Show a node's height, block hash, round, peers and execution state."""
    st = _rpc_call(rpc, lambda c: c.status(), chain)
    if json_out:
        return _print_json(st)
    mem = st.get("mempool") or {}
    replay = st.get("replay_records", "unknown (an older node)")
    _print_fields(
        [
            ("chain", st.get("chain_id")),
            ("node", st.get("node")),
            ("validator", st.get("validator")),
            ("height", st.get("height")),
            ("hash", st.get("hash")),
            ("round", st.get("round")),
            ("epoch", st.get("epoch")),
            ("peers", st.get("peers")),
            ("executed", st.get("executed_height")),
            ("certified", st.get("certified_height")),
            (
                "blocks kept",
                "all (archive)"
                if not st.get("keep_blocks")
                else f"from height {st.get('floor')} (newest {st.get('keep_blocks')})",
            ),
            ("state root", st.get("state_root")),
            ("replay records", "kept for ever (no replay window in the genesis)" if replay is None else replay),
            ("mempool", f"{mem.get('txs')} txs, {mem.get('batches')} batches"),
            ("halted", st.get("halted")),
            ("health", _health_line(st.get("health"))),
        ]
    )


def _health_line(h: object) -> str:
    if not isinstance(h, dict):
        return "unknown (an older node)"
    if h.get("ok"):
        return "ok"
    return "NOT OK: " + "; ".join(str(r) for r in h.get("reasons") or [])


@app.command()
def block(
    height: str = typer.Argument(..., help="block height, or a block hash (64 hex digits)"),
    rpc: str = typer.Option(DEFAULT_RPC, "--rpc", help="the node's JSON-RPC URL"),
    txs: bool = typer.Option(False, "--txs", help="list the transaction hashes too"),
    json_out: bool = typer.Option(False, "--json", help="print the block object as JSON"),
    chain: str = typer.Option(None, "--chain", help="a chain the node hosts (default: its default chain)"),
) -> None:
    """Show one block: its hash, round, proposer, roots and transaction count."""
    if height.isdigit():
        b = _rpc_call(rpc, lambda c: c.get_block(int(height), txs=txs or json_out), chain)
    elif len(height.removeprefix("0x")) == 64:
        b = _rpc_call(rpc, lambda c: c.get_block(hash=height, txs=txs or json_out), chain)
    else:
        typer.echo(f"error: {height!r} is neither a height nor a 64-digit block hash", err=True)
        raise typer.Exit(2)
    if json_out:
        return _print_json(b)
    rows = [
        ("height", b.get("height")),
        ("hash", b.get("hash")),
        ("round", b.get("round")),
        ("epoch", b.get("epoch")),
        ("proposer", b.get("proposer")),
        ("timestamp_ms", b.get("timestamp_ms")),
        ("txs", b.get("tx_count")),
        ("batches", len(b.get("batches") or ())),
        ("state root", b.get("state_root")),
        ("receipts root", b.get("receipts_root")),
        ("exec", f"height {b.get('exec_height')} root {b.get('exec_root')}"),
    ]
    _print_fields(rows)
    for h in b.get("txs") or () if txs else ():
        typer.echo(f"  tx {h}")


@app.command()
def bench(
    validators: int = typer.Option(None, "--validators", help="start a local consortium of this many (default 4)"),
    rpc: str = typer.Option("", "--rpc", help="comma-separated RPC URLs of a running consortium instead"),
    duration: float = typer.Option(10.0, "--duration", help="seconds of measured load"),
    warmup: float = typer.Option(
        0.0, "--warmup", help="seconds of the same load before the measured window (not counted)"
    ),
    accounts: int = typer.Option(256, "--accounts", help="sending accounts"),
    rate: float = typer.Option(0.0, "--rate", help="offered tx/s (0: as fast as the nodes take them)"),
    key: Path = typer.Option(
        None, "--key", help="with --rpc: key file of a funded account that pays the bench accounts"
    ),
    txs: int = typer.Option(None, "--txs", help="transactions to pre-sign (default: rate x duration, capped)"),
    batch: int = typer.Option(512, "--batch", help="transactions per submit_batch"),
    inflight: int = typer.Option(
        None,
        "--inflight",
        help="most transactions submitted and not yet committed (default 1,536 per core of this machine; "
        "the latency at saturation grows with it)",
    ),
    workload: str = typer.Option(
        "transfer", "--workload", help="transfer, or lc: letter-of-credit issues and settlement transfers"
    ),
    attest: bool = typer.Option(
        True,
        "--attest/--no-attest",
        help="local consortium verifying once per quorum ([mempool] attest, the default); "
        "--no-attest: every node verifies every batch (the reference)",
    ),
    json_out: bool = typer.Option(False, "--json", help="print the report as JSON (no progress display)"),
) -> None:
    """Measure committed throughput and latency of SM2-signed transfers or contract calls (pre-signed)."""
    from tfnode import bench as b

    cfg = b.BenchConfig(
        validators=validators,
        rpc=[u for u in rpc.split(",") if u],
        duration=duration,
        warmup=warmup,
        accounts=accounts,
        rate=rate,
        key=key,
        txs=txs,
        batch=batch,
        inflight=inflight,
        workload=workload,
        attest=attest,
    )
    try:
        cfg.validate()
    except b.BenchError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(b.run_with_display(cfg, json_out))


iot_app = typer.Typer(help="IoT attestation: provision devices, simulate a fleet (docs/iot.md).", no_args_is_help=True)
app.add_typer(iot_app, name="iot")


@iot_app.command("provision")
def iot_provision(
    rpc: str = typer.Option(DEFAULT_RPC, "--rpc", help="a node's JSON-RPC URL"),
    key: Path = typer.Option(..., "--key", help="key file of the member that will own the device"),
    kind: str = typer.Option(..., "--kind", help="temp_humidity, gps, weight or rfid_door"),
    out: Path = typer.Option(..., "--out", help="device key file to write (0600; never overwritten)"),
    contract: str = typer.Option(None, "--contract", help="contract whose on_readings gets this device's readings"),
    ref: str = typer.Option(None, "--ref", help="what the device watches, for that contract (a receipt, a shipment)"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Generate a device key and register the device on the ledger."""
    from tfnode.cli_iot import provision
    from tfnode.client import Account, ClientError, RpcError
    from tfnode.iot import PayloadError
    from tfnode.node.errors import NodeError

    try:
        r = provision(rpc, Account.from_file(key), kind, out, contract=contract, ref=ref)
    except (ClientError, RpcError, NodeError, PayloadError, RuntimeError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    if json_out:
        return _print_json(r)
    _print_fields([(k, v) for k, v in r.items() if v is not None])


@iot_app.command("simulate")
def iot_simulate(
    devices: int = typer.Option(100, "--devices", help="devices in the fleet"),
    rate: float = typer.Option(5.0, "--rate", help="readings per second per device"),
    duration: float = typer.Option(10.0, "--duration", help="seconds of readings"),
    rpc: str = typer.Option("", "--rpc", help="comma-separated RPC URLs (default: start a local 4-node consortium)"),
    key: list[Path] = typer.Option([], "--key", help="with --rpc: member key file(s) that provision the fleet"),
    gateways: int = typer.Option(0, "--gateways", help="gateways (default: one per 50 devices, at most 16)"),
    batch_max: int = typer.Option(400, "--batch-max", help="readings per batch"),
    forge_every: int = typer.Option(1000, "--forge-every", help="forge every Nth reading (0: none)"),
    proofs: int = typer.Option(20, "--proofs", help="reading proofs to fetch and check against QCs"),
    json_out: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Drive signed readings through gateways into a cluster; check proofs; report."""
    from tfnode.cli_iot import simulate_local
    from tfnode.client import Account
    from tfnode.gateway.simulator import SimConfig, run
    from tfnode.node.errors import NodeError

    if devices < 1 or rate <= 0 or duration <= 0:
        typer.echo("error: --devices, --rate and --duration must be positive", err=True)
        raise typer.Exit(2)
    try:
        members = [Account.from_file(k).secret_bytes for k in key]
    except NodeError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if rpc and not members:
        typer.echo("error: --rpc needs --key (a member's key provisions the gateways and devices)", err=True)
        raise typer.Exit(2)
    cfg = SimConfig(
        devices=devices,
        rate=rate,
        duration=duration,
        rpc_urls=[u for u in rpc.split(",") if u],
        member_keys=members,
        gateways=gateways,
        batch_max=batch_max,
        forge_every=forge_every,
        proof_samples=proofs,
    )
    log = (lambda m: None) if json_out else (lambda m: typer.echo(m, err=True))
    report = run(cfg, log) if cfg.rpc_urls else simulate_local(cfg, log)
    if json_out:
        return _print_json(report)
    _print_fields([(k, v) for k, v in report.items()])


@iot_app.command("bench")
def iot_bench(
    duration: float = typer.Option(10.0, "--duration", help="seconds of measured load"),
    validators: int = typer.Option(4, "--validators", help="validators of the local consortium"),
    gateways: int = typer.Option(64, "--gateways", help="gateways (each keeps one batch in flight)"),
    devices_per_gateway: int = typer.Option(16, "--devices-per-gateway", help="devices behind each gateway"),
    batch: int = typer.Option(None, "--batch", help="readings per batch (default: 1,000 sealed, 500 signed)"),
    signed: bool = typer.Option(False, "--signed", help="a device signature per reading (batch v1), not sealed"),
    readings: int = typer.Option(
        None,
        "--readings",
        help="readings to pre-sign (default: 150,000/s sealed, 20,000/s signed, x duration; at most 4,000,000)",
    ),
    proofs: int = typer.Option(20, "--proofs", help="reading proofs to fetch and check against QCs"),
    json_out: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Attested readings/s of a local consortium, readings pre-signed before the clock starts."""
    from tfnode import bench_iot as b

    cfg = b.IotBenchConfig(
        duration=duration,
        validators=validators,
        gateways=gateways,
        devices_per_gateway=devices_per_gateway,
        batch=batch or (500 if signed else 1000),
        readings=readings,
        proofs=proofs,
        sealed=not signed,
    )
    try:
        cfg.validate()
    except b.IotBenchError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(b.run_with_display(cfg, json_out))


@app.command()
def explorer(
    rpc: str = typer.Option("http://127.0.0.1:26601", "--rpc", help="the node's RPC URL"),
    port: int = typer.Option(8080, "--port", help="port to serve the explorer on"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to serve on"),
) -> None:
    """Serve the web explorer of a node at http://HOST:PORT/explorer/ (the node serves it too)."""
    import logging

    from tfnode.explorer.app import serve

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    typer.echo(f"explorer of {rpc} on http://{host}:{port}/explorer/")
    serve(rpc, host=host, port=port)


@app.command()
def mirror(
    rpc: str = typer.Option("http://127.0.0.1:26601", "--rpc", help="the node's RPC URL"),
    postgres: str = typer.Option(..., "--postgres", help="PostgreSQL DSN, e.g. postgresql://user@host/db"),
    genesis: Path | None = typer.Option(None, "--genesis", help="pin the validator set of this genesis.json"),
    until: int | None = typer.Option(None, "--until", help="stop once this height is mirrored (default: follow)"),
    poll: float = typer.Option(0.5, "--poll", help="seconds between looks for new blocks"),
    status_only: bool = typer.Option(False, "--status", help="print the mirror's row counts and height, then exit"),
) -> None:
    """Mirror the ledger into PostgreSQL (docs/mirror.md): every QC checked, each height once."""
    import logging

    try:
        from tfnode import mirror as m
    except ImportError as err:  # psycopg is the optional extra [mirror]
        typer.echo(f"error: {err}; install it with pip install 'tfnode[mirror]'", err=True)
        raise typer.Exit(2) from None
    try:
        import psycopg
    except ImportError:
        typer.echo("error: the mirror needs psycopg: pip install 'tfnode[mirror]'", err=True)
        raise typer.Exit(2) from None
    from tfnode.client import ClientError, RpcError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        if status_only:
            _print_json(m.summary(postgres))
            return
        done = m.main(rpc, postgres, genesis=genesis, until=until, poll=poll)
    except m.MirrorError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(3) from None
    except (ClientError, RpcError) as err:
        typer.echo(f"error: node at {rpc}: {err}", err=True)
        raise typer.Exit(2) from None
    except psycopg.Error as err:
        typer.echo(f"error: PostgreSQL: {err}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    typer.echo(f"mirrored up to height {done}")


@app.command()
def relay(
    a: str = typer.Option(..., "--a", help="RPC URL of a node of one chain"),
    b: str = typer.Option(..., "--b", help="RPC URL of a node of the other chain"),
    a_chain: str | None = typer.Option(
        None, "--a-chain", help="the chain at --a, on a node hosting several (default: the node's default chain)"
    ),
    b_chain: str | None = typer.Option(None, "--b-chain", help="the chain at --b (as --a-chain)"),
    key: Path | None = typer.Option(None, "--key", help="key file to sign with (any key; a fresh one if omitted)"),
    interval: float = typer.Option(1.0, "--interval", help="seconds between passes"),
    passes: int = typer.Option(0, "--passes", help="stop after this many passes (0: run until stopped)"),
    stats_file: Path | None = typer.Option(
        None, "--stats", help="rewrite this file with the relayer's counts (JSON) after every pass"
    ),
) -> None:
    """Relay light-client headers and packets between two chains (docs/multichain.md). The
    relayer is trusted with nothing: the chains check every proof it carries."""
    import json
    import logging
    import os

    from tfnode.client import Account, Client, ClientError, RpcError
    from tfnode.relay import Relayer, Stats

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    account = Account.from_file(key) if key is not None else Account.generate()
    try:
        r = Relayer(Client(a, chain=a_chain), Client(b, chain=b_chain), account)
    except (ClientError, RpcError, OSError) as err:
        typer.echo(f"error: cannot relay between {a} and {b}: {err}", err=True)
        raise typer.Exit(2) from None
    if r.ends[0].chain_id == r.ends[1].chain_id:
        typer.echo(f"error: both ends are chain {r.ends[0].chain_id!r}: give two chains", err=True)
        raise typer.Exit(2)

    def write_stats(stats: Stats) -> None:
        # Written whole and renamed: a relayer killed mid-write leaves the previous pass's file.
        assert stats_file is not None
        tmp = stats_file.with_name(stats_file.name + ".tmp")
        tmp.write_text(json.dumps(stats.as_dict()))
        os.replace(tmp, stats_file)

    try:
        stats = r.run(interval, passes or None, on_pass=write_stats if stats_file is not None else None)
    except KeyboardInterrupt:
        stats = r.stats
    typer.echo(
        f"updates {stats.updates}, received {stats.received}, acknowledged {stats.acknowledged}, "
        f"timed out {stats.timed_out}, refused {len(stats.refused)}, largest proof {stats.max_proof_bytes} B"
    )


@app.command()
def version() -> None:
    """Print the tfnode version."""
    from tfnode import __version__

    typer.echo(__version__)


__import__("tfnode.cli_ops", fromlist=["register"]).register(app)  # snapshot, backup, restore


def main() -> None:
    app()
