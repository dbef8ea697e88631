"""A node's heap on transparent huge pages: glibc's ``glibc.malloc.hugetlb=1``, set at start.

A busy node reads its state tree's node maps (hundreds of MB at a random spot per lookup)
and RocksDB's memtable skiplists all the time; with 4 KiB pages nearly every such read also
misses the TLB. Linux gives a process 2 MiB pages where it asks for them (``madvise``, the
default of most distributions: ``/sys/kernel/mm/transparent_hugepage/enabled``), and glibc's
malloc asks for every heap it maps when the tunable ``glibc.malloc.hugetlb=1`` is set (glibc
2.35 and later). Tunables are read once, when the process starts; so ``tfnode start``
re-executes itself, same pid and arguments, with the tunable added to ``GLIBC_TUNABLES``
before it opens anything. Four validators on one 2-core machine: 0.91x CPU per transfer,
1.09x committed transfers a second (docs/benchmarks.md, "Huge pages").

It does nothing where it cannot apply (not Linux, not glibc 2.35+, THP ``never``), where
the operator already set the tunable either way, or with ``huge_pages = false`` in the
node's ``[node]`` config: huge pages can cost memory (a heap grows in 2 MiB steps) and, with
THP ``defrag`` set to ``always``, a page fault may stall while the kernel compacts memory.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["TUNABLE", "huge_pages_env", "huge_pages_state", "reexec_with_huge_pages", "thp_mode"]

TUNABLE = "glibc.malloc.hugetlb"
THP_ENABLED = Path("/sys/kernel/mm/transparent_hugepage/enabled")
#: glibc added ``glibc.malloc.hugetlb`` in 2.35.
MIN_GLIBC = (2, 35)


def thp_mode(path: Path = THP_ENABLED) -> str | None:
    """The kernel's THP mode (``always``, ``madvise`` or ``never``: the bracketed word of
    ``path``), or None where the file is missing or unreadable."""
    try:
        words = path.read_text().split()
    except OSError:
        return None
    return next((w[1:-1] for w in words if w.startswith("[") and w.endswith("]")), None)


def _glibc() -> tuple[int, ...] | None:
    lib, version = platform.libc_ver()
    if lib != "glibc":
        return None
    try:
        return tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        return None


def huge_pages_env(
    environ: Mapping[str, str], *, enabled: bool, thp: str | None, glibc: tuple[int, ...] | None
) -> dict[str, str] | None:
    """The environment to re-execute with, or None when the process should go on as it is:
    turned off, already set (to anything: an operator's ``=0`` stands), no glibc 2.35+ or
    no THP to ask for."""
    tunables = environ.get("GLIBC_TUNABLES", "")
    if not enabled or TUNABLE in tunables:
        return None
    if glibc is None or glibc < MIN_GLIBC or thp not in ("always", "madvise"):
        return None
    env = dict(environ)
    env["GLIBC_TUNABLES"] = f"{tunables}:{TUNABLE}=1" if tunables else f"{TUNABLE}=1"
    return env


def reexec_with_huge_pages(enabled: bool) -> None:
    """Re-execute this process (``sys.orig_argv``, same pid) with the tunable set, if
    :func:`huge_pages_env` says so; returns only when nothing is to change. Call it before
    the process opens files, sockets or threads it would leak across the exec."""
    if not sys.platform.startswith("linux"):
        return
    env = huge_pages_env(os.environ, enabled=enabled, thp=thp_mode(), glibc=_glibc())
    if env is None:
        return
    if not sys.executable:  # an embedded interpreter: nothing to re-execute
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, sys.orig_argv, env)
    except OSError as err:  # the node still starts, on 4 KiB pages; the start-up log says off
        print(f"warning: could not re-execute with {TUNABLE}=1 ({err}); going on without it", file=sys.stderr)


def huge_pages_state(enabled: bool, environ: Mapping[str, str] = os.environ) -> str:
    """One line for the start-up log: whether this process runs with the tunable, and why not."""
    tunables = environ.get("GLIBC_TUNABLES", "")
    if f"{TUNABLE}=1" in tunables.split(":"):
        return f"on ({TUNABLE}=1; kernel THP mode {thp_mode()})"
    if TUNABLE in tunables:
        return f"off (GLIBC_TUNABLES={tunables} as started)"
    if not enabled:
        return "off (huge_pages = false in config.toml)"
    return f"off (needs Linux, glibc {MIN_GLIBC[0]}.{MIN_GLIBC[1]}+ and THP madvise or always; THP mode {thp_mode()})"
