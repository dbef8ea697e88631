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
