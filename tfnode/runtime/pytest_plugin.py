"""pytest plugin for contract authors: fixtures ``chain`` and ``members``.

Installed with tfnode, it loads by itself (an entry point under ``pytest11`` named
``tfnode.runtime.pytest_plugin``): run plain ``pytest``. ``pytest -p tfnode.runtime.pytest_plugin``
works too, e.g. with ``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``::

    def test_transfer(chain, members):
        chain.deploy("token", "contracts/token.py", 100, by=members["bank_a"])
        assert chain.call(members["bank_a"], "token", "transfer", members["bank_b"].address, 5).ok
"""

from __future__ import annotations

import pytest

from tfnode.runtime.harness import Chain


@pytest.fixture
def chain() -> Chain:
    """A fresh in-memory chain with the default consortium (3 banks, customs, logistics,
    warehouse, regulator); the approval policy is a majority of the banks."""
    return Chain()


@pytest.fixture
def members(chain: Chain) -> dict:
    """The chain's members by name: bank_a, bank_b, bank_c, customs, logistics, warehouse,
    regulator; each has ``address``, ``organisation``, ``roles`` and an SM2 ``key``."""
    return chain.members
