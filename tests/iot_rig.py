"""Devices and a gateway on a harness chain, driving contracts through the node's real ``iot``
module: registered devices bound to a contract and a ref, readings signed by each device's
key, batches signed by the gateway and sent as its transaction (the transaction's public key
must be the batch's gateway). Shared by the warehouse and logistics conformance suites."""

from tfnode import crypto
from tfnode import iot as fmt
from tfnode.runtime.harness import Chain


class Rig:
    def __init__(self, chain: Chain, gateway: str, owner: str):
        self.chain = chain
        self.gw = chain[gateway]
        self.owner = chain[owner]  # registers the devices (a member)
        self.keys: dict[str, crypto.PrivateKey] = {}
        self.seq: dict[str, int] = {}
        self.batch_seq = 0
        r = chain.call(self.gw, "iot", "register_gateway", self.gw.key.public_key().to_bytes(compressed=True))
        assert r.ok, r.revert_reason

    def device(self, name: str, kind: str, contract: str, ref: str) -> str:
        """Registers a device bound to (contract, ref); returns its id as contracts see it (hex)."""
        key = crypto.PrivateKey.from_bytes(crypto.sm3(b"iot rig device " + name.encode()))
        pub = key.public_key().to_bytes(compressed=True)
        r = self.chain.call(self.owner, "iot", "register_device", pub, kind, contract, ref)
        assert r.ok, r.revert_reason
        self.keys[name] = key
        self.seq[name] = 0
        return fmt.device_id(pub).hex()

    def submit(self, *readings):
        """``readings``: (device name, kind, value) in batch order; one batch, one transaction in
        the next block. Returns the receipt (the bound contracts' events are in it)."""
        now_ms = (self.chain.timestamp + 1) * 1000  # the block time of the next call
        signed = []
        for i, (name, kind, value) in enumerate(readings):
            self.seq[name] += 1
            ts = now_ms - 1000 * (len(readings) - i)  # in batch order, within the node's window
            signed.append(
                fmt.sign_reading(
                    self.keys[name], self.seq[name], ts, fmt.kind_code(kind), fmt.encode_payload(kind, value)
                )
            )
        self.batch_seq += 1
        batch = fmt.build_batch(self.gw.key.to_bytes(), self.batch_seq, now_ms, 0, signed)
        r = self.chain.call(self.gw, "iot", "submit", batch)
        assert r.ok, (r.status, r.revert_reason, r.return_value)
        failed = [e.fields for e in r.events if e.name == "ContractCallFailed"]
        assert not failed, failed
        return r


def names(receipt) -> list:
    """The contracts' event names of a receipt (the iot module's own BatchAccepted left out)."""
    return [e.name for e in receipt.events if e.contract != fmt.NAME]
