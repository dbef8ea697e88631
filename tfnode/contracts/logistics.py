"""Logistics tracking (物流跟踪): a carrier's shipment followed by its own GPS tracker and
temperature probe, the carrier's declarations cross-checked against what the devices saw.

After the IoT + blockchain logistics case of the seeds: "cross-validation of IOT system and
logistics system data ensures that information can be self-evident in business chain".

A carrier (role ``logistics``) creates a shipment for a shipper and a consignee with:

- a declared route: ordered checkpoints, each a bounding box in degrees x 10^7 and an
  optional deadline; the first is the origin, the last the destination;
- a corridor tolerance: the route's corridor is the union of the checkpoint boxes, each
  widened by the tolerance on every side (declare waypoint boxes to cover long legs);
- a temperature range, in hundredths of a degree C;
- two device binding refs: ``gps_ref`` (kind ``gps``) and ``temp_ref`` (kind
  ``temp_humidity``); one tracker may carry both under one ref.

Readings (delivered by the node's ``iot`` module, sender ``"iot"``):

- a GPS fix inside a checkpoint box marks it reached (``CheckpointReached``, late if after its
  deadline) and extends that checkpoint's visits, the evidence for declarations;
- a fix outside the corridor: ``GeofenceBreach`` once per excursion, ``GeofenceReturned`` back;
- a temperature outside the range: ``TemperatureBreach`` once per excursion,
  ``TemperatureRecovered`` back in range with the minutes out of range.

Declarations (``declare_departure``, ``declare_arrival(checkpoint)``, ``declare_delivery``)
are checked against the visits of their checkpoint (origin, that checkpoint, destination): a
visit overlapping the declaration time +- ``window_s`` supports it. Evidence may arrive late
(gateways batch), so a declaration waits until the chain's clock passes declaration +
2 x ``window_s``; unsupported by then, it fires ``DeclarationUnsupported`` and is recorded as
disputed. The consignee confirms delivery. The parties and the regulator read everything.

Device timestamps (``timestamp_ms``) are the device clock in Unix ms; deadlines and the
declaration clock are block time in Unix seconds.
"""

from tfnode.runtime.api import Contract, Map, Value, call, ctx, emit, require, revert, view

IOT = "iot"  # the sender the node's iot module calls with; no key has it
MAX_TEXT = 128
MAX_CHECKPOINTS = 32
MAX_VISITS = 8  # per checkpoint, the most recent kept as evidence
MAX_DECLARATIONS = 40
MAX_DEVICES = 8
MAX_BATCH = 4096  # MAX_BATCH_READINGS of the batch format
MAX_TOLERANCE_E7 = 50_000_000  # 5 degrees
DEFAULT_WINDOW_S = 3600
HEX = "0123456789abcdef"
I32 = 2_147_483_648
I64 = 9_223_372_036_854_775_808
U32 = 4_294_967_296
MAX_LAT = 900_000_000
MAX_LON = 1_800_000_000
SHIPMENT_FIELDS = (
    "ref",
    "shipper",
    "consignee",
    "checkpoints",
    "gps_ref",
    "temp_ref",
    "temp_min_centi_c",
    "temp_max_centi_c",
)
SHIPMENT_OPTIONS = ("tolerance_e7", "window_s", "devices")


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_hex(s, lo, hi):
    return isinstance(s, str) and lo <= len(s) <= hi and s.strip(HEX) == ""


def is_address(a):
    return isinstance(a, str) and len(a) == 42 and a[:2] == "0x" and a[2:].strip(HEX) == ""


def text(v, name, limit):
    require(isinstance(v, str) and 0 < len(v) <= limit, name + ": text of 1.." + str(limit) + " characters")


def int_in(v, lo, hi):
    return is_int(v) and lo <= v < hi


def value_problem(kind, v):
    """Why ``v`` is not a well-formed value of ``kind`` (docs/iot.md), or "" if it is."""
    if not isinstance(v, dict):
        return "value must be a dict"
    if kind == "weight":
        if len(v) != 1 or not int_in(v.get("grams"), -I64, I64):
            return "weight value is {grams: i64}"
    elif kind == "rfid_door":
        if len(v) != 2 or v.get("direction") not in ("in", "out"):
            return "rfid_door value is {direction: in|out, tag}"
        t = v.get("tag")
        if not (is_hex(t, 2, 128) and len(t) % 2 == 0):
            return "rfid tag must be 1..64 bytes of lower-case hex"
    elif kind == "temp_humidity":
        if (
            len(v) != 2
            or not int_in(v.get("temp_centi_c"), -I32, I32)
            or not int_in(v.get("humidity_centi_pct"), 0, U32)
        ):
            return "temp_humidity value is {temp_centi_c: i32, humidity_centi_pct: u32}"
    elif kind == "gps":
        if (
            len(v) != 2
            or not int_in(v.get("lat_e7"), -MAX_LAT, MAX_LAT + 1)
            or not int_in(v.get("lon_e7"), -MAX_LON, MAX_LON + 1)
        ):
            return "gps value is {lat_e7, lon_e7} within +-90 / +-180 degrees"
    else:
        return "unknown kind"
    return ""


def check_reading(i, r):
    """Refuse a malformed reading, naming its index and the field at fault. The iot module
    builds readings from decoded, verified batches, so a bad one is a bug upstream: the whole
    call fails rather than silently skipping evidence."""
    where = "reading " + str(i) + ": "
    if not isinstance(r, dict) or len(r) != 6:
        revert(where + "must be a dict of device, ref, seq, timestamp_ms, kind, value")
    if not (is_hex(r.get("device"), 32, 32)):
        revert(where + "device must be 32 lower-case hex characters")
    ref = r.get("ref")
    # "" is a device bound to this contract without a ref: it feeds nothing, but is no error.
    if not (isinstance(ref, str) and len(ref) <= MAX_TEXT):
        revert(where + "ref must be text of at most 128 characters")
    if not int_in(r.get("seq"), 1, I64 * 2):
        revert(where + "seq must be a positive u64")
    if not int_in(r.get("timestamp_ms"), 0, I64 * 2):
        revert(where + "timestamp_ms must be a u64")
    why = value_problem(r.get("kind"), r.get("value"))
    if why != "":
        revert(where + why)


def checkpoint(i, c):
    """Validate one declared checkpoint: ``{name, box: [min_lat, min_lon, max_lat, max_lon],
    deadline}`` (``deadline`` optional, unix seconds, 0 for none)."""
    where = "checkpoint " + str(i) + ": "
    require(isinstance(c, dict), where + "must be a dict")
    for k in c:
        require(k in ("name", "box", "deadline"), where + "unknown field " + str(k))
    name = c.get("name")
    require(isinstance(name, str) and 0 < len(name) <= MAX_TEXT, where + "name: text of 1..128 characters")
    b = c.get("box")
    require(
        isinstance(b, list) and len(b) == 4 and all([is_int(x) for x in b]),
        where + "box is [min_lat_e7, min_lon_e7, max_lat_e7, max_lon_e7]",
    )
    require(
        -MAX_LAT <= b[0] <= b[2] <= MAX_LAT and -MAX_LON <= b[1] <= b[3] <= MAX_LON,
        where + "box corners out of order or out of range",
    )
    d = c.get("deadline", 0)
    require(is_int(d) and d >= 0, where + "deadline must be a non-negative int")
    return {"name": name, "box": b, "deadline": d, "reached_ms": -1, "late": False, "visits": [], "inside": False}


class Logistics(Contract):
    shipments = Map(int, dict)  # shipment id -> shipment
    by_ref = Map(str, int)  # "<carrier>|<ref>" -> shipment id
    refs = Map(str, int)  # device binding ref -> shipment id (until the shipment is settled)
    last_seq = Map(str, int)  # device id -> last sequence number applied
    next_id = Value(int, default=1)

    # -- helpers ----------------------------------------------------------------------------------

    def sh(self, sid):
        s = self.shipments.get(sid)
        require(s is not None, "no such shipment")
        return s

    def carrier_of(self, sid):
        s = self.sh(sid)
        require(ctx.sender.address == s["carrier"], "only the carrier declares")
        return s

    def may_read(self, s):
        return ctx.sender.has_role("regulator") or ctx.sender.address in s["parties"]

    def supported(self, s, d):
        w = s["window_s"] * 1000
        t = d["at"] * 1000
        for v in s["checkpoints"][d["checkpoint"]]["visits"]:
            if v[0] <= t + w and v[1] >= t - w:
                return v
        return None

    def settle(self, s):
        """Decide pending declarations: supported as soon as a visit overlaps the window;
        disputed once the chain's clock is past the time evidence could still arrive. A
        delivered shipment with nothing pending lets its refs go."""
        now = ctx.block.timestamp
        for i, d in enumerate(s["declarations"]):
            if d["state"] == "pending":
                v = self.supported(s, d)
                if v is not None:
                    d["state"] = "supported"
                    emit(
                        "DeclarationSupported",
                        shipment=s["id"],
                        declaration=i,
                        kind=d["kind"],
                        checkpoint=d["checkpoint"],
                        visit_from_ms=v[0],
                        visit_to_ms=v[1],
                    )
                elif now > d["at"] + 2 * s["window_s"]:
                    d["state"] = "disputed"
                    s["disputed"] += 1
                    emit(
                        "DeclarationUnsupported",
                        shipment=s["id"],
                        declaration=i,
                        kind=d["kind"],
                        checkpoint=d["checkpoint"],
                        declared_at=d["at"],
                        window_s=s["window_s"],
                    )
        s["pending"] = len([d for d in s["declarations"] if d["state"] == "pending"]) > 0
        if s["state"] == "delivered" and not s["pending"] and s["bound"]:
            s["bound"] = False
            for ref in (s["gps_ref"], s["temp_ref"]):
                if ref != "" and self.refs.get(ref, 0) == s["id"]:
                    del self.refs[ref]

    def declare(self, s, kind, cp):
        require(len(s["declarations"]) < MAX_DECLARATIONS, "too many declarations")
        s["declarations"].append({"kind": kind, "checkpoint": cp, "at": ctx.block.timestamp, "state": "pending"})
        emit(
            "Declared",
            shipment=s["id"],
            declaration=len(s["declarations"]) - 1,
            kind=kind,
            checkpoint=cp,
            checkpoint_name=s["checkpoints"][cp]["name"],
            at=ctx.block.timestamp,
        )
        self.settle(s)
        self.shipments[s["id"]] = s

    def gps(self, s, rd):
        lat, lon, ts = rd["value"]["lat_e7"], rd["value"]["lon_e7"], rd["timestamp_ms"]
        live = s["state"] != "delivered"
        in_corridor = False
        tol = s["tolerance_e7"]
        # Box tests are inlined and the common path kept short: this loop runs checkpoints x
        # fixes times per batch and dominates the gas of a batch.
        for k, cp in enumerate(s["checkpoints"]):
            b = cp["box"]
            if b[0] <= lat <= b[2] and b[1] <= lon <= b[3]:
                in_corridor = True
                vs = cp["visits"]
                if cp["inside"]:
                    vs[-1][1] = max(vs[-1][1], ts)
                else:
                    cp["inside"] = True
                    vs.append([ts, ts])
                    if len(vs) > MAX_VISITS:
                        vs.pop(0)
                if live and cp["reached_ms"] < 0:
                    cp["reached_ms"] = ts
                    cp["late"] = cp["deadline"] > 0 and ts > cp["deadline"] * 1000
                    emit(
                        "CheckpointReached",
                        shipment=s["id"],
                        checkpoint=k,
                        checkpoint_name=cp["name"],
                        at_ms=ts,
                        deadline=cp["deadline"],
                        late=cp["late"],
                    )
            elif cp["inside"]:
                cp["inside"] = False
        if not in_corridor:
            for cp in s["checkpoints"]:
                b = cp["box"]
                if b[0] - tol <= lat <= b[2] + tol and b[1] - tol <= lon <= b[3] + tol:
                    in_corridor = True
                    break
        s["position"] = [lat, lon, ts]
        if not live:
            return
        if not in_corridor and s["off_route_since_ms"] < 0:
            s["off_route_since_ms"] = ts
            s["geofence_breaches"] += 1
            emit("GeofenceBreach", shipment=s["id"], lat_e7=lat, lon_e7=lon, at_ms=ts, device=rd["device"])
        elif in_corridor and s["off_route_since_ms"] >= 0:
            gone = max(0, ts - s["off_route_since_ms"])
            s["off_route_since_ms"] = -1
            emit(
                "GeofenceReturned", shipment=s["id"], lat_e7=lat, lon_e7=lon, at_ms=ts, minutes_off_route=gone // 60000
            )

    def temperature(self, s, rd):
        t, ts = rd["value"]["temp_centi_c"], rd["timestamp_ms"]
        s["last_temp"] = [t, rd["value"]["humidity_centi_pct"], ts]
        if s["state"] == "delivered":
            return
        lo, hi = s["temp_min_centi_c"], s["temp_max_centi_c"]
        ex = s["excursion"]
        if t < lo or t > hi:
            if ex is None:
                s["excursion"] = {"start_ms": ts, "peak_centi_c": t}
                s["temp_breaches"] += 1
                emit(
                    "TemperatureBreach",
                    shipment=s["id"],
                    temp_centi_c=t,
                    min_centi_c=lo,
                    max_centi_c=hi,
                    at_ms=ts,
                    device=rd["device"],
                )
            elif max(lo - t, t - hi) > max(lo - ex["peak_centi_c"], ex["peak_centi_c"] - hi):
                ex["peak_centi_c"] = t
        elif ex is not None:
            dur = max(0, ts - ex["start_ms"])
            s["ms_out_of_range"] += dur
            s["excursion"] = None
            emit(
                "TemperatureRecovered",
                shipment=s["id"],
                temp_centi_c=t,
                at_ms=ts,
                since_ms=ex["start_ms"],
                minutes_out=dur // 60000,
                peak_centi_c=ex["peak_centi_c"],
            )

    # -- shipments --------------------------------------------------------------------------------

    @call
    def create_shipment(self, spec: dict) -> int:
        """The carrier registers a shipment: ``{ref, shipper, consignee, checkpoints, gps_ref,
        temp_ref, temp_min_centi_c, temp_max_centi_c}`` and optionally ``tolerance_e7``
        (default 0), ``window_s`` (evidence window, default 3600) and ``devices`` (device ids
        allowed under the refs; empty: any device bound to them)."""
        require(ctx.sender.has_role("logistics"), "only a carrier (role logistics) creates shipments")
        require(isinstance(spec, dict), "shipment must be a dict")
        for k in spec:
            require(k in SHIPMENT_FIELDS or k in SHIPMENT_OPTIONS, "unknown shipment field " + str(k))
        for k in SHIPMENT_FIELDS:
            require(k in spec, "missing shipment field " + k)
        text(spec["ref"], "ref", MAX_TEXT)
        me = ctx.sender.address
        key = me + "|" + spec["ref"]
        require(key not in self.by_ref, "shipment ref already used by this carrier")
        require(
            is_address(spec["shipper"]) and is_address(spec["consignee"]), "shipper and consignee must be 0x addresses"
        )
        cps = spec["checkpoints"]
        require(
            isinstance(cps, list) and 2 <= len(cps) <= MAX_CHECKPOINTS,
            "checkpoints: a list of 2..32 (origin ... destination)",
        )
        route = []
        last = 0
        for c in cps:
            cp = checkpoint(len(route), c)
            if cp["deadline"] > 0:
                require(
                    cp["deadline"] >= last,
                    "checkpoint " + str(len(route)) + ": deadlines must not decrease along the route",
                )
                last = cp["deadline"]
            route.append(cp)
        lo, hi = spec["temp_min_centi_c"], spec["temp_max_centi_c"]
        require(int_in(lo, -I32, I32) and int_in(hi, -I32, I32) and lo <= hi, "temperature range: two i32, min <= max")
        tol = spec.get("tolerance_e7", 0)
        require(is_int(tol) and 0 <= tol <= MAX_TOLERANCE_E7, "tolerance_e7 must be 0..50000000 (5 degrees)")
        window = spec.get("window_s", DEFAULT_WINDOW_S)
        require(is_int(window) and 60 <= window <= 7 * 86400, "window_s must be 60..604800")
        devices = spec.get("devices", [])
        require(isinstance(devices, list) and len(devices) <= MAX_DEVICES, "devices: a list of at most 8 ids")
        for d in devices:
            require(is_hex(d, 32, 32), "device ids are 32 lower-case hex characters")
        gref, tref = spec["gps_ref"], spec["temp_ref"]
        require(
            isinstance(gref, str) and isinstance(tref, str) and 0 < len(gref) <= MAX_TEXT and len(tref) <= MAX_TEXT,
            "gps_ref: text of 1..128 characters; temp_ref: at most 128 (empty: no probe)",
        )
        sid = self.next_id
        self.next_id = sid + 1
        # One tracker may report both kinds under one ref: gps_ref == temp_ref is allowed.
        for ref in [gref] if tref in ("", gref) else [gref, tref]:
            held = self.refs.get(ref, 0)
            require(held == 0, "ref " + ref + " is bound to shipment " + str(held))
            self.refs[ref] = sid
        self.by_ref[key] = sid
        self.shipments[sid] = {
            "id": sid,
            "ref": spec["ref"],
            "state": "created",
            "carrier": me,
            "carrier_org": ctx.sender.organisation,
            "shipper": spec["shipper"],
            "consignee": spec["consignee"],
            "parties": [me, spec["shipper"], spec["consignee"]],
            "checkpoints": route,
            "tolerance_e7": tol,
            "window_s": window,
            "temp_min_centi_c": lo,
            "temp_max_centi_c": hi,
            "gps_ref": gref,
            "temp_ref": tref,
            "devices": devices,
            "bound": True,
            "position": None,
            "off_route_since_ms": -1,
            "geofence_breaches": 0,
            "last_temp": None,
            "excursion": None,
            "temp_breaches": 0,
            "ms_out_of_range": 0,
            "declarations": [],
            "pending": False,
            "disputed": 0,
            "readings": 0,
            "foreign": 0,
            "created_at": ctx.block.timestamp,
            "departed_at": 0,
            "delivered_at": 0,
        }
        emit(
            "ShipmentCreated",
            shipment=sid,
            ref=spec["ref"],
            carrier=me,
            shipper=spec["shipper"],
            consignee=spec["consignee"],
            checkpoints=len(route),
            gps_ref=gref,
            temp_ref=tref,
        )
        return sid

    @call
    def declare_departure(self, sid: int):
        """The carrier says the goods left the origin (checkpoint 0)."""
        s = self.carrier_of(sid)
        require(s["state"] == "created", "shipment already departed")
        s["state"] = "in_transit"
        s["departed_at"] = ctx.block.timestamp
        self.declare(s, "departure", 0)

    @call
    def declare_arrival(self, sid: int, checkpoint: int):
        """The carrier says the goods reached an intermediate checkpoint (1 .. n-2) or the
        destination (n-1) ahead of delivery."""
        s = self.carrier_of(sid)
        require(s["state"] == "in_transit", "shipment is not in transit")
        require(is_int(checkpoint) and 0 < checkpoint < len(s["checkpoints"]), "checkpoint must be 1..n-1")
        for d in s["declarations"]:
            require(not (d["kind"] == "arrival" and d["checkpoint"] == checkpoint), "arrival already declared")
            # Checkpoints are in route order: having said the goods reached a later one, the
            # carrier cannot then say they reached an earlier one (a checkpoint may be skipped).
            require(
                not (d["kind"] == "arrival" and d["checkpoint"] > checkpoint),
                "arrival at checkpoint " + str(d["checkpoint"]) + " already declared: arrivals follow the route",
            )
        self.declare(s, "arrival", checkpoint)

    @call
    def declare_delivery(self, sid: int):
        """The carrier says the goods were handed over at the destination."""
        s = self.carrier_of(sid)
        require(s["state"] == "in_transit", "shipment is not in transit")
        s["state"] = "delivery_declared"
        self.declare(s, "delivery", len(s["checkpoints"]) - 1)

    @call
    def confirm_delivery(self, sid: int):
        """The consignee confirms it received the goods."""
        s = self.sh(sid)
        require(ctx.sender.address == s["consignee"], "only the consignee confirms delivery")
        require(s["state"] == "delivery_declared", "delivery has not been declared")
        s["state"] = "delivered"
        s["delivered_at"] = ctx.block.timestamp
        emit(
            "DeliveryConfirmed",
            shipment=sid,
            consignee=s["consignee"],
            disputed=s["disputed"],
            geofence_breaches=s["geofence_breaches"],
            temp_breaches=s["temp_breaches"],
            minutes_out_of_range=s["ms_out_of_range"] // 60000,
            excursion_open=s["excursion"] is not None,
        )
        self.settle(s)
        self.shipments[sid] = s

    @call
    def review(self, sid: int):
        """Decide the pending declarations now (any party or the regulator): those whose
        evidence window has closed without a supporting visit become disputed."""
        s = self.sh(sid)
        require(self.may_read(s), "not a party to this shipment")
        self.settle(s)
        self.shipments[sid] = s

    # -- device readings --------------------------------------------------------------------------

    @call
    def on_readings(self, readings: list) -> dict:
        """One gateway batch's readings of devices bound to this contract, in batch order. Each
        shipment and device counter is read once and written once per batch."""
        require(ctx.sender.address == IOT, "readings come only from the node's iot module")
        require(isinstance(readings, list) and len(readings) <= MAX_BATCH, "readings must be a list of at most 4096")
        bound = {}  # ref -> shipment id or 0
        ships = {}  # shipment id -> shipment, written back at the end
        seqs = {}  # device -> last seq
        counts = {"applied": 0, "unbound": 0, "mismatched": 0, "foreign": 0, "stale": 0}
        i = 0
        for rd in readings:
            check_reading(i, rd)
            i += 1
            ref = rd["ref"]
            if ref not in bound:
                bound[ref] = self.refs.get(ref, 0)
            sid = bound[ref]
            if sid == 0:
                counts["unbound"] += 1
                continue
            if sid not in ships:
                ships[sid] = self.shipments[sid]
            s = ships[sid]
            kind = rd["kind"]
            if not ((kind == "gps" and ref == s["gps_ref"]) or (kind == "temp_humidity" and ref == s["temp_ref"])):
                counts["mismatched"] += 1
                continue
            dev = rd["device"]
            if len(s["devices"]) > 0 and dev not in s["devices"]:
                s["foreign"] += 1
                counts["foreign"] += 1
                continue
            if dev not in seqs:
                seqs[dev] = self.last_seq.get(dev, 0)
            if rd["seq"] <= seqs[dev]:
                counts["stale"] += 1
                continue
            seqs[dev] = rd["seq"]
            if kind == "gps":
                self.gps(s, rd)
            else:
                self.temperature(s, rd)
            s["readings"] += 1
            counts["applied"] += 1
        for sid, s in ships.items():
            if s["pending"]:
                self.settle(s)
            self.shipments[sid] = s
        for dev, q in seqs.items():
            self.last_seq[dev] = q
        return counts

    # -- views ------------------------------------------------------------------------------------

    @view
    def shipment(self, sid: int) -> dict:
        """Everything: route with visits, declarations, counters (parties and the regulator)."""
        s = self.sh(sid)
        require(self.may_read(s), "not a party to this shipment")
        return s

    @view
    def status(self, sid: int) -> dict:
        """A summary at the current block time: checkpoints reached, overdue, disputes."""
        s = self.sh(sid)
        require(self.may_read(s), "not a party to this shipment")
        now = ctx.block.timestamp
        reached = []
        overdue = []
        late = []
        for k, cp in enumerate(s["checkpoints"]):
            if cp["reached_ms"] >= 0:
                reached.append(k)
                if cp["late"]:
                    late.append(k)
            elif cp["deadline"] > 0 and cp["deadline"] < now:
                overdue.append(k)
        return {
            "id": sid,
            "state": s["state"],
            "reached": reached,
            "late": late,
            "overdue": overdue,
            "off_route": s["off_route_since_ms"] >= 0,
            "geofence_breaches": s["geofence_breaches"],
            "temperature_excursion": s["excursion"] is not None,
            "temp_breaches": s["temp_breaches"],
            "minutes_out_of_range": s["ms_out_of_range"] // 60000,
            "disputed": s["disputed"],
            "pending_declarations": s["pending"],
            "position": s["position"],
            "last_temp": s["last_temp"],
        }

    @view
    def shipment_by_ref(self, carrier: str, ref: str) -> int:
        return self.by_ref.get(carrier + "|" + ref, 0)

    @view
    def shipments_page(self, start: int = 1, count: int = 100) -> list:
        """Shipment ids start .. start+count-1 that exist (the regulator's listing)."""
        require(ctx.sender.has_role("regulator"), "only the regulator lists every shipment")
        require(is_int(start) and is_int(count) and start >= 1 and 0 < count <= 1000, "bad page")
        return list(range(start, min(self.next_id, start + count)))

    @view
    def binding(self, ref: str) -> int:
        """The shipment a device ref feeds, or 0 if none."""
        return self.refs.get(ref, 0)

    @view
    def device_seq(self, device: str) -> int:
        return self.last_seq.get(device, 0)
