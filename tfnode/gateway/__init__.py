"""The gateway side of tfnode's IoT attestation (docs/iot.md): ``Device`` signs readings,
``Gateway`` batches, signs, spools and submits them; ``tfnode.gateway.simulator`` drives a fleet.
(``tfnode.gateway.ffi`` is the cffi binding of the C ABI for gateway firmware.)"""

from tfnode.gateway.sdk import Device, Gateway, Refused

__all__ = ["Device", "Gateway", "Refused"]
