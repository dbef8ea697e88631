"""SM2 key files: a node's private key (owner-only, 0600) and shareable public keys.

Formats (text, so an operator can inspect a ``.pub`` file and compare it by eye):

* private key: comment lines starting with ``#``, then 64 hex digits (32 bytes);
* public key (``.pub``): comment lines, then 66 hex digits (33-byte compressed SM2 point,
  which is also the node's PeerId on the network).

A private key file that group or others may read is refused: a key that leaked through
permissions must be treated as leaked, and refusing to start is the only way to make the
operator notice.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tfnode import crypto
from tfnode.node.errors import KeyFileError

PLACEHOLDER_MARK = "TFNODE-KEY-PLACEHOLDER"


def _payload(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return "".join(lines)


def write_private_key(path: Path, key: crypto.PrivateKey, *, label: str = "") -> None:
    """Create ``path`` with mode 0600 (fails if it exists: never overwrite a key)."""
    path = Path(path)
    body = (
        f"# tfnode SM2 private key{(' for ' + label) if label else ''}. Keep it secret: owner-only (0600).\n"
        f"# public key (PeerId): {key.public_key().to_bytes(compressed=True).hex()}\n"
        f"{key.to_bytes().hex()}\n"
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask may not have removed enough bits
        os.write(fd, body.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def write_public_key(path: Path, public_key: bytes, *, label: str = "") -> None:
    Path(path).write_text(
        f"# tfnode SM2 public key{(' of ' + label) if label else ''} (compressed; the PeerId)\n{public_key.hex()}\n"
    )


def write_placeholder(path: Path, member: str, public_key: bytes) -> None:
    """Where a member must put its own private key (made on its own machine with keygen)."""
    Path(path).write_text(
        f"# {PLACEHOLDER_MARK}\n"
        f"# Replace this file with the private key of {member}, the one whose public key is\n"
        f"#   {public_key.hex()}\n"
        f"# (made with `tfnode keygen` on the member's machine), then `chmod 600` it.\n"
    )


def load_private_key(path: Path) -> crypto.PrivateKey:
    """Read a private key file; refuse it if group or others have any permission on it."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist; create it with `tfnode keygen --out {path}`") from None
    text = path.read_text()
    if PLACEHOLDER_MARK in text:
        raise KeyFileError(f"key file {path} is a placeholder: put this member's private key there (see the file)")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"key file {path} is readable by others (mode {mode:04o}); refusing to use it. "
            f"Treat the key as exposed, or if you are sure it is not, run `chmod 600 {path}`"
        )
    raw = _payload(text)
    try:
        data = bytes.fromhex(raw)
        if len(data) != 32:
            raise ValueError(f"{len(data)} bytes")
        return crypto.PrivateKey.from_bytes(data)
    except (ValueError, crypto.CryptoError) as err:
        raise KeyFileError(f"key file {path} does not hold a 32-byte SM2 private key in hex: {err}") from None


def load_public_key(path: Path) -> bytes:
    """Read a ``.pub`` file; returns the 33-byte compressed key."""
    raw = _payload(Path(path).read_text())
    try:
        data = bytes.fromhex(raw)
        return crypto.PublicKey.from_bytes(data).to_bytes(compressed=True)
    except (ValueError, crypto.CryptoError) as err:
        raise KeyFileError(f"public key file {path} does not hold an SM2 public key in hex: {err}") from None


def keygen(out: Path) -> bytes:
    """Make a new key at ``out`` (0600) and its public key at ``out.pub``; returns the
    public key. A member runs this on its own machine and sends only the ``.pub`` file."""
    out = Path(out)
    if out.exists():
        raise KeyFileError(f"{out} exists; refusing to overwrite a key")
    out.parent.mkdir(parents=True, exist_ok=True)
    key = crypto.PrivateKey.generate()
    pub = key.public_key().to_bytes(compressed=True)
    write_private_key(out, key)
    write_public_key(out.with_name(out.name + ".pub"), pub)
    return pub
