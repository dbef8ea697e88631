"""Exceptions of the contract runtime.

Two families, on purpose:

* ``ContractError`` (a ``TfnodeError``, so an ``Exception``) is what contract code may raise
  and catch:
  ``require`` failures (``Revert``) and failed cross-contract calls (``CallFailed``).
* ``Abort`` (a ``BaseException``, not an ``Exception``) ends the whole transaction: out of gas,
  recursion or memory limit. Contracts cannot catch it — the validator only admits ``except``
  clauses naming ordinary exception classes — so a resource limit can never be swallowed.
"""

from __future__ import annotations

from tfnode.errors import TfnodeError


class RuntimeFault(TfnodeError):
    """A misuse of the runtime by the node (bad transaction shape, unknown contract...)."""


class ValidationError(TfnodeError, ValueError):
    """Contract source rejected at deploy; ``violations`` lists every reason."""

    def __init__(self, violations):
        self.violations = list(violations)
        super().__init__("; ".join(str(v) for v in self.violations) or "invalid contract")


class EncodingError(TfnodeError, ValueError):
    """A value that has no canonical encoding, or bytes that are not a canonical encoding."""


class ContractError(TfnodeError):
    """Base of errors a contract may raise and catch. ``reason`` reaches the receipt."""

    def __init__(self, reason: str = ""):
        super().__init__(reason)
        self.reason = reason


class Revert(ContractError):
    """Raised by ``require(False, reason)`` or ``revert(reason)``."""


class CallFailed(ContractError):
    """A cross-contract call failed; the callee's writes and events are already discarded."""


class Abort(BaseException):
    """Ends the transaction; contracts cannot catch it. ``status`` names the receipt status.

    The one exception of tfnode outside the ``TfnodeError`` tree, on purpose: ``TfnodeError``
    is an ``Exception``, and an ``except Exception`` in contract code must not catch this.
    The executor catches it by name (``except Abort``)."""

    status = "aborted"

    def __init__(self, reason: str = ""):
        super().__init__(reason)
        self.reason = reason


class OutOfGas(Abort):
    status = "out_of_gas"


class DepthExceeded(Abort):
    status = "depth_exceeded"


class MemoryExceeded(Abort):
    status = "memory_exceeded"
