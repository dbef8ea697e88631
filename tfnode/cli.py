"""The ``tfnode`` command line."""

from __future__ import annotations

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


@app.command()
def version() -> None:
    """Print the tfnode version."""
    from tfnode import __version__

    typer.echo(__version__)


def main() -> None:
    app()
