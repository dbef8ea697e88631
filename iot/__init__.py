"""The gateway side of tfnode's IoT attestation (docs/iot.md): ``Device`` signs readings,
``Gateway`` batches, signs, spools and submits them; ``iot.simulator`` drives a fleet.
(``iot.ffi`` is the cffi binding of the C ABI for gateway firmware.)"""

from iot.gateway import Device, Gateway, Refused

__all__ = ["Device", "Gateway", "Refused"]
