"""SM3 Merkle trees against an independent RFC 6962 reference written here in Python."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfnode import crypto


def ref_leaf(d: bytes) -> bytes:
    return crypto.sm3(b"\x00" + d)


def ref_node(left: bytes, right: bytes) -> bytes:
    return crypto.sm3(b"\x01" + left + right)


def split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_root(leaves):
    if not leaves:
        return crypto.sm3(b"")
    if len(leaves) == 1:
        return ref_leaf(leaves[0])
    k = split(len(leaves))
    return ref_node(ref_root(leaves[:k]), ref_root(leaves[k:]))


def ref_path(m, leaves):
    """RFC 6962 section 2.1.1 PATH(m, D[n]), bottom-up."""
    n = len(leaves)
    if n <= 1:
        return []
    k = split(n)
    if m < k:
        return ref_path(m, leaves[:k]) + [ref_root(leaves[k:])]
    return ref_path(m - k, leaves[k:]) + [ref_root(leaves[:k])]


def leaves_of(n: int):
    return [b"doc-%d" % i for i in range(n)]


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 8, 9, 31, 33, 100])
def test_root_and_proofs_match_reference(n):
    leaves = leaves_of(n)
    root = crypto.merkle_root(leaves)
    assert root == ref_root(leaves)
    for i in range(n):
        proof = crypto.merkle_proof(leaves, i)
        assert proof == ref_path(i, leaves)
        assert crypto.verify_merkle_proof(root, leaves[i], i, n, proof)


def test_leaf_and_node_are_domain_separated():
    a, b = b"a", b"b"
    root = crypto.merkle_root([a, b])
    # The concatenation of the two leaf hashes, presented as one leaf, does not give the root.
    forged = ref_leaf(a) + ref_leaf(b)
    assert crypto.merkle_root([forged]) != root
    assert crypto.merkle_leaf_hash(a) == ref_leaf(a)


@given(st.integers(1, 300), st.data())
def test_proof_verifies_only_for_its_leaf_index_and_size(n, data):
    leaves = leaves_of(n)
    root = crypto.merkle_root(leaves)
    i = data.draw(st.integers(0, n - 1))
    proof = crypto.merkle_proof(leaves, i)
    assert crypto.verify_merkle_proof(root, leaves[i], i, n, proof)
    assert not crypto.verify_merkle_proof(root, b"forged", i, n, proof)
    j = data.draw(st.integers(0, n))
    if j != i:
        assert not crypto.verify_merkle_proof(root, leaves[i], j, n, proof)
    m = data.draw(st.integers(1, 400))
    if m != n and (i >= m or len(ref_path(i, leaves_of(m))) != len(proof)):
        # As in RFC 6962, a root does not commit to its size by itself (a header carries the
        # size beside the root); a size whose path has another shape must fail.
        assert not crypto.verify_merkle_proof(root, leaves[i], i, m, proof)
    if proof:
        k = data.draw(st.integers(0, len(proof) * 256 - 1))
        bad = [bytearray(p) for p in proof]
        bad[k // 256][(k % 256) // 8] ^= 1 << (k % 8)
        assert not crypto.verify_merkle_proof(root, leaves[i], i, n, [bytes(p) for p in bad])


def test_large_tree_parallel_build_matches_reference_levels():
    leaves = [i.to_bytes(8, "big") for i in range(5000)]
    assert crypto.merkle_root(leaves) == ref_root(leaves)


def test_bad_requests():
    leaves = leaves_of(4)
    with pytest.raises(crypto.MerkleError, match="out of range"):
        crypto.merkle_proof(leaves, 4)
    with pytest.raises(crypto.MerkleError):
        crypto.merkle_proof([], 0)
    root = crypto.merkle_root(leaves)
    proof = crypto.merkle_proof(leaves, 1)
    assert not crypto.verify_merkle_proof(root, leaves[1], 1, 0, proof)
    assert not crypto.verify_merkle_proof(root, leaves[1], 1, 2**64 - 1, proof)
    assert not crypto.verify_merkle_proof(root, leaves[1], 1, 4, proof + proof)
    with pytest.raises(crypto.CryptoError, match="root has 31 bytes"):
        crypto.verify_merkle_proof(root[:31], leaves[1], 1, 4, proof)
    with pytest.raises(crypto.MerkleError, match=r"proof\[0\] has 3 bytes"):
        crypto.verify_merkle_proof(root, leaves[1], 1, 4, [b"abc"])
