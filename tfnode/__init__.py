"""tfnode: a consortium blockchain node for trade finance.

Subpackages: :mod:`tfnode.crypto` (SM2/SM3/SM4, Merkle trees). The native core is the
private module ``tfnode._core``; import the public modules instead.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
