"""The web explorer (docs/explorer.md): static pages under ``/explorer`` and a small JSON API
for what plain JSON-RPC does not answer (decoded arguments, proof checks, lists). The node
serves it; ``tfnode explorer --rpc URL`` serves it apart from any node."""
