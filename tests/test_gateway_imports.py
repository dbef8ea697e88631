"""The gateway SDK (tfnode/gateway/) runs beside the devices, not in a node: it may import only
public tfnode modules (the client, the crypto facade, the IoT formats, the exceptions), never
the native module ``tfnode._core``, the node, the runtime or execution (docs/iot.md "Layout")."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import tfnode

GATEWAY = Path(tfnode.__file__).resolve().parent / "gateway"
# What the SDK may import from tfnode, besides its own modules.
ALLOWED = {"tfnode.client", "tfnode.crypto", "tfnode.iot", "tfnode.errors"}


def tfnode_imports(source: str) -> list[tuple[int, str]]:
    """Every tfnode module a source imports, anywhere in it (functions included), as
    (line, dotted name); ``from tfnode import x`` counts as ``tfnode.x``."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "tfnode"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "tfnode":
                out += [(node.lineno, f"tfnode.{a.name}") for a in node.names]
            elif node.module.split(".")[0] == "tfnode":
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            out.append((node.lineno, "." * node.level + (node.module or "")))  # relative: judged below
    return out


def forbidden(source: str) -> list[str]:
    bad = []
    for line, name in tfnode_imports(source):
        own = name == "tfnode.gateway" or name.startswith("tfnode.gateway.")
        if name.startswith("."):
            bad.append(f"line {line}: relative import {name} (name the module)")
        elif not own and not any(name == a or name.startswith(a + ".") for a in ALLOWED):
            bad.append(f"line {line}: {name}")
    return bad


def test_the_checker_sees_every_kind_of_forbidden_import():
    src = """
from tfnode import _core, crypto
import tfnode.node.local
from tfnode.runtime.encoding import encode
from tfnode.client import Account
def later():
    from tfnode.execution import iot
"""
    assert sorted(forbidden(src)) == [
        "line 2: tfnode._core",
        "line 3: tfnode.node.local",
        "line 4: tfnode.runtime.encoding",
        "line 7: tfnode.execution",
    ]
    assert forbidden("from tfnode import iot\nfrom tfnode.gateway.sdk import Device\nimport tfnode.client\n") == []


def test_the_gateway_sdk_imports_only_public_tfnode_modules():
    files = sorted(GATEWAY.rglob("*.py"))
    assert {p.name for p in files} >= {"__init__.py", "sdk.py", "simulator.py", "ffi.py"}
    bad = {str(p.relative_to(GATEWAY)): forbidden(p.read_text()) for p in files}
    assert {k: v for k, v in bad.items() if v} == {}


def test_importing_the_sdk_loads_no_node_module(tmp_path):
    # Transitively too: a fresh interpreter, outside the checkout, imports every SDK module.
    # (tfnode.client itself still loads the contract runtime's encoding through tfnode.runtime;
    # what must never come along is the node, its storage, network, mempool or executor.)
    code = (
        "import sys\n"
        "import tfnode.gateway, tfnode.gateway.sdk, tfnode.gateway.simulator, tfnode.gateway.ffi\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('tfnode'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    loaded = out.stdout.split()
    assert "tfnode.gateway.simulator" in loaded and "tfnode.iot" in loaded
    node_side = ("tfnode.node", "tfnode.net", "tfnode.mempool", "tfnode.storage", "tfnode.rpc")
    never = [m for m in loaded if m.split(".")[:2] in [n.split(".") for n in node_side]]
    never += [m for m in loaded if m in ("tfnode.execution.executor", "tfnode.execution.iot")]
    assert never == []
