"""``python -m tfnode.runtime check FILE...``: the deploy-time validation, without the CLI."""

import sys

from tfnode.runtime.check import run_check


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "check":
        print("usage: python -m tfnode.runtime check FILE...", file=sys.stderr)
        return 2
    return run_check(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
