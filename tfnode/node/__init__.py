"""The tfnode node process: identity and genesis, config, the consensus driver, lifecycle.

    tfnode init --validators 4 --home /tmp/tf --base-port 26600
    tfnode start --home /tmp/tf/node-0

Layers, one module each: :mod:`keys` (SM2 key files), :mod:`genesis` (the consortium's
founding document), :mod:`config` (one node's TOML), :mod:`driver` (the only place that turns
consensus-core actions into I/O), :mod:`node` (process lifecycle and logs),
:mod:`cli_node` (the commands the ``tfnode`` CLI wires). See docs/operations.md.
"""

from tfnode.node.errors import ConfigError, KeyFileError, NodeError

__all__ = ["ConfigError", "KeyFileError", "NodeError"]
