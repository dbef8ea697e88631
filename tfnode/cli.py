"""The ``tfnode`` command line."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    name="tfnode",
    help="tfnode: consortium blockchain node for trade finance (SM2/SM3/SM4, HotStuff BFT).",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def demo() -> None:
    """Show the node's national-cryptography core at work on a trade-finance example."""
    from tfnode.demo import run

    run()


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
    from_keys: str = typer.Option("", "--from-keys", help="comma-separated .pub files made by `tfnode keygen`"),
    hosts: str = typer.Option("", "--hosts", help="comma-separated host of each node (default 127.0.0.1)"),
    base_timeout_ms: int = typer.Option(1000, "--base-timeout-ms", help="consensus round timeout before back-off"),
    block_interval_ms: int = typer.Option(200, "--block-interval-ms", help="pause between empty blocks"),
    log_format: str = typer.Option("plain", "--log-format", help="plain or json"),
    json_out: bool = typer.Option(False, "--json", help="print each node's home, P2P address and RPC URL"),
) -> None:
    """Create a consortium: one folder per node with config, key (0600) and genesis."""
    from tfnode.node import cli_node

    if log_format not in ("plain", "json"):
        typer.echo(f"error: --log-format {log_format!r}: expected plain or json", err=True)
        raise typer.Exit(2)
    out = _node_errors(lambda: cli_node.init(
        validators=validators, home=home, base_port=base_port, chain_id=chain_id, json_out=json_out,
        from_keys=[k for k in from_keys.split(",") if k] or None,
        hosts=[h for h in hosts.split(",") if h] or None,
        base_timeout_ms=base_timeout_ms, block_interval_ms=block_interval_ms, log_format=log_format,
    ))
    if not json_out:
        for n in out:
            typer.echo(f"{n['name']:>8} {n['role']:<10} {n['home']}  p2p {n['p2p']}  rpc {n['rpc']}")


@app.command()
def keygen(out: Path = typer.Option(..., "--out", help="private key file to write (0600); OUT.pub beside it")) -> None:
    """Make a member's SM2 key on its own machine; share only the .pub file."""
    from tfnode.node import cli_node

    typer.echo(_node_errors(lambda: cli_node.keygen(out)))


@app.command()
def start(home: Path = typer.Option(..., "--home", help="a node folder made by `tfnode init`")) -> None:
    """Run a node until SIGTERM or SIGINT."""
    from tfnode.node import cli_node

    raise typer.Exit(_node_errors(lambda: cli_node.start(home)))


contract_app = typer.Typer(help="Work with contract sources.", no_args_is_help=True)
app.add_typer(contract_app, name="contract")


@contract_app.command("check")
def contract_check(
    files: list[Path] = typer.Argument(..., help="contract source files", exists=False),
) -> None:
    """Run the deploy-time validation on contract sources: exit 0 if every file would be
    accepted, 1 with FILE:LINE:COL: [rule] reasons if not."""
    from tfnode.runtime.check import run_check

    raise typer.Exit(run_check([str(f) for f in files]))


@app.command()
def version() -> None:
    """Print the tfnode version."""
    from tfnode import __version__

    typer.echo(__version__)


def main() -> None:
    app()
