//! The ledger's per-reading rules beyond signatures (docs/iot.md "On the node"): the
//! device is registered and active, the reading's kind is the registered one, its
//! timestamp lies in the window around the block time, and its seq is above the device's
//! last accepted one (counting the readings accepted earlier in the same batch).
//!
//! Every node runs these at execution and the admitting node at admission, for every
//! reading, so they live here rather than in a Python loop. The reasons are the texts the
//! ledger has always returned to gateways.
use std::borrow::Borrow;
use std::collections::HashMap;

use crate::reading::{DeviceId, Reading, KIND_GPS, KIND_RFID_DOOR, KIND_TEMP_HUMIDITY, KIND_WEIGHT};

/// The name of a reading kind (`None` for a code the decoder would refuse).
pub fn kind_name(kind: u8) -> Option<&'static str> {
    match kind {
        KIND_TEMP_HUMIDITY => Some("temp_humidity"),
        KIND_GPS => Some("gps"),
        KIND_WEIGHT => Some("weight"),
        KIND_RFID_DOOR => Some("rfid_door"),
        _ => None,
    }
}

/// What the rules need of a registered device's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    pub status: String,
    pub kind: String,
}

/// The block time and the window around it (all in ms; `now_ms` may be anything a clock
/// gives, so the arithmetic is done in i128 and never overflows).
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub now_ms: i64,
    pub back_ms: i64,
    pub ahead_ms: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RulesCheck {
    /// Indexes of the accepted readings, in order.
    pub good: Vec<usize>,
    /// `(index, reason)` of the others, in order.
    pub bad: Vec<(usize, String)>,
    /// Each device whose seq was looked at, with its last accepted seq after the batch (its
    /// stored one when none of its readings was accepted), in the order first looked at.
    pub last: Vec<(DeviceId, u64)>,
}

/// Each reading's device as a position in the batch's distinct devices (in order of first
/// use; `None` for a reading that did not decode). Built once per batch, with one id lookup
/// per reading, so the rules and the registry lookups index vectors instead of hashing the
/// 16-byte id again at every step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceIndex {
    pub devices: Vec<DeviceId>,
    pub of: Vec<Option<u32>>,
}

impl DeviceIndex {
    /// From each reading's device id (`None`: the reading did not decode), in batch order.
    pub fn new<'a>(ids: impl IntoIterator<Item = Option<&'a DeviceId>>) -> DeviceIndex {
        let mut at: HashMap<DeviceId, u32> = HashMap::new();
        let mut devices = Vec::new();
        let of = ids
            .into_iter()
            .map(|id| {
                id.map(|id| {
                    *at.entry(*id).or_insert_with(|| {
                        devices.push(*id);
                        (devices.len() - 1) as u32
                    })
                })
            })
            .collect();
        DeviceIndex { devices, of }
    }

    /// The index of decoded readings (owned or borrowed).
    pub fn of_readings<R: Borrow<Reading>>(readings: &[Option<R>]) -> DeviceIndex {
        DeviceIndex::new(readings.iter().map(|r| r.as_ref().map(|r| &r.borrow().device_id)))
    }
}

/// Apply the rules to a batch's decoded readings (`None`: did not decode; owned or
/// borrowed) given each reading's signature verdict (`sig[i]`: `None` = valid, else the
/// reason), the device records (`None`: not registered) and each device's stored last seq.
pub fn apply_rules<R: Borrow<Reading>>(
    readings: &[Option<R>],
    sig: &[Option<String>],
    record: impl Fn(&DeviceId) -> Option<DeviceRecord>,
    stored_seq: impl Fn(&DeviceId) -> u64,
    w: Window,
) -> RulesCheck {
    let index = DeviceIndex::of_readings(readings);
    apply_rules_indexed(readings, &index, sig, |d| record(&index.devices[d]), |d| stored_seq(&index.devices[d]), w)
}

/// [`apply_rules`] with the batch's [`DeviceIndex`] (of these readings) already built;
/// `record` and `stored_seq` take a position in `index.devices`, each asked at most once
/// per device and only when a reading needs it. An index of another length than the
/// readings is not trusted: it is rebuilt.
pub fn apply_rules_indexed<R: Borrow<Reading>>(
    readings: &[Option<R>],
    index: &DeviceIndex,
    sig: &[Option<String>],
    record: impl Fn(usize) -> Option<DeviceRecord>,
    stored_seq: impl Fn(usize) -> u64,
    w: Window,
) -> RulesCheck {
    if index.of.len() != readings.len() {
        // Rebuilt, and each rebuilt position mapped back to the caller's by id (a device
        // the caller's index lacks has no record and no stored seq).
        let own = DeviceIndex::of_readings(readings);
        let pos: Vec<Option<usize>> = own.devices.iter().map(|id| index.devices.iter().position(|x| x == id)).collect();
        return rules(readings, &own, sig, &|d| pos[d].and_then(&record), &|d| pos[d].map_or(0, &stored_seq), w);
    }
    rules(readings, index, sig, &record, &stored_seq, w)
}

fn rules<R: Borrow<Reading>>(
    readings: &[Option<R>],
    index: &DeviceIndex,
    sig: &[Option<String>],
    record: &dyn Fn(usize) -> Option<DeviceRecord>,
    stored_seq: &dyn Fn(usize) -> u64,
    w: Window,
) -> RulesCheck {
    let mut out = RulesCheck::default();
    let mut records: Vec<Option<Option<DeviceRecord>>> = vec![None; index.devices.len()]; // None: not asked yet
    let mut last: Vec<Option<usize>> = vec![None; index.devices.len()]; // position in out.last
    let lo = w.now_ms as i128 - w.back_ms as i128;
    let hi = w.now_ms as i128 + w.ahead_ms as i128;
    for (i, r) in readings.iter().enumerate() {
        let verdict = sig.get(i).cloned().flatten();
        let (Some(r), Some(d)) = (r.as_ref().map(Borrow::borrow), index.of[i]) else {
            out.bad.push((i, verdict.unwrap_or_else(|| "malformed reading".into())));
            continue;
        };
        let d = d as usize;
        let mut why = verdict;
        if why.is_none() {
            let rec = records[d].get_or_insert_with(|| record(d));
            why = problem(rec.as_ref(), r, lo, hi, &w);
        }
        if why.is_none() {
            let at = *last[d].get_or_insert_with(|| {
                out.last.push((r.device_id, stored_seq(d)));
                out.last.len() - 1
            });
            let prev = out.last[at].1;
            if r.seq <= prev {
                why = Some(format!("seq {} not above the device's last {prev} (replay or reordering)", r.seq));
            } else {
                out.last[at].1 = r.seq;
            }
        }
        match why {
            None => out.good.push(i),
            Some(reason) => out.bad.push((i, reason)),
        }
    }
    out
}

fn problem(rec: Option<&DeviceRecord>, r: &Reading, lo: i128, hi: i128, w: &Window) -> Option<String> {
    let Some(rec) = rec else { return Some("device not registered".into()) };
    if rec.status != "active" {
        return Some(format!("device is {}", rec.status));
    }
    // Compared without allocating: this runs for every reading; only a refusal formats.
    if kind_name(r.kind) != Some(rec.kind.as_str()) {
        let kind = kind_name(r.kind).map(str::to_owned).unwrap_or_else(|| r.kind.to_string());
        return Some(format!("kind {kind} but the device is registered as {}", rec.kind));
    }
    let ts = r.timestamp_ms as i128;
    if ts < lo {
        return Some(format!("timestamp {} more than {} s before the block time", r.timestamp_ms, w.back_ms / 1000));
    }
    if ts > hi {
        return Some(format!("timestamp {} more than {} s after the block time", r.timestamp_ms, w.ahead_ms / 1000));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(dev: u8, seq: u64, ts: u64, kind: u8) -> Option<Reading> {
        let payload: &[u8] = if kind == KIND_RFID_DOOR { &[1, 1, 7] } else { &[0; 8] };
        Some(Reading::new([dev; 16], seq, ts, kind, payload).unwrap())
    }

    fn rec(status: &str, kind: &str) -> Option<DeviceRecord> {
        Some(DeviceRecord { status: status.into(), kind: kind.into() })
    }

    const W: Window = Window { now_ms: 1_000_000, back_ms: 600_000, ahead_ms: 60_000 };

    #[test]
    fn each_rule_names_its_reason_and_seqs_rise_within_a_batch() {
        let rs = vec![
            reading(1, 5, 1_000_000, KIND_TEMP_HUMIDITY), // ok (stored last 4)
            reading(1, 5, 1_000_000, KIND_TEMP_HUMIDITY), // replay of the one just accepted
            reading(1, 7, 1_000_000, KIND_TEMP_HUMIDITY), // ok: above 5
            reading(2, 1, 1_000_000, KIND_TEMP_HUMIDITY), // not registered
            reading(3, 1, 1_000_000, KIND_TEMP_HUMIDITY), // suspended
            reading(4, 1, 1_000_000, KIND_GPS),           // registered as weight
            reading(1, 9, 399_999, KIND_TEMP_HUMIDITY),   // too old
            reading(1, 9, 1_060_001, KIND_TEMP_HUMIDITY), // too far ahead
            None,                                         // did not decode
            reading(1, 9, 1_060_000, KIND_TEMP_HUMIDITY), // ok: the window is inclusive
            reading(5, 1, 1_000_000, KIND_TEMP_HUMIDITY), // bad signature: no rule looked at
        ];
        let mut sig = vec![None; rs.len()];
        sig[8] = Some("malformed: x".to_string());
        sig[10] = Some("bad signature".to_string());
        let records = |d: &DeviceId| match d[0] {
            1 | 5 => rec("active", "temp_humidity"),
            3 => rec("suspended", "temp_humidity"),
            4 => rec("active", "weight"),
            _ => None,
        };
        let c = apply_rules(&rs, &sig, records, |d| if d[0] == 1 { 4 } else { 0 }, W);
        assert_eq!(c.good, vec![0, 2, 9]);
        let reasons: Vec<(usize, &str)> = c.bad.iter().map(|(i, r)| (*i, r.as_str())).collect();
        assert_eq!(
            reasons,
            vec![
                (1, "seq 5 not above the device's last 5 (replay or reordering)"),
                (3, "device not registered"),
                (4, "device is suspended"),
                (5, "kind gps but the device is registered as weight"),
                (6, "timestamp 399999 more than 600 s before the block time"),
                (7, "timestamp 1060001 more than 60 s after the block time"),
                (8, "malformed: x"),
                (10, "bad signature"),
            ]
        );
        assert_eq!(c.last, vec![([1; 16], 9)]);
    }

    #[test]
    fn a_device_with_no_accepted_reading_keeps_its_stored_seq() {
        let rs = vec![reading(1, 3, 1_000_000, KIND_TEMP_HUMIDITY)];
        let c = apply_rules(&rs, &[None], |_| rec("active", "temp_humidity"), |_| 3, W);
        assert!(c.good.is_empty());
        assert_eq!(c.last, vec![([1; 16], 3)]);
        // A missing verdict list is "no signature problem", and a window at the edges of
        // i64 does not overflow.
        let w = Window { now_ms: i64::MAX, back_ms: i64::MAX, ahead_ms: i64::MAX };
        let c = apply_rules(&rs, &[], |_| rec("active", "temp_humidity"), |_| 0, w);
        assert_eq!(c.good, vec![0]);
        assert_eq!(kind_name(9), None);
    }

    #[test]
    fn the_indexed_rules_decide_as_the_plain_ones() {
        let rs = vec![
            reading(1, 5, 1_000_000, KIND_TEMP_HUMIDITY),
            reading(2, 1, 1_000_000, KIND_TEMP_HUMIDITY),
            None,
            reading(1, 5, 1_000_000, KIND_TEMP_HUMIDITY),
            reading(3, 4, 1_000_000, KIND_TEMP_HUMIDITY),
            reading(1, 6, 1_000_000, KIND_TEMP_HUMIDITY),
        ];
        let sig = vec![None; rs.len()];
        let records = |d: &DeviceId| if d[0] == 2 { None } else { rec("active", "temp_humidity") };
        let seq = |d: &DeviceId| u64::from(d[0]);
        let plain = apply_rules(&rs, &sig, records, seq, W);
        let index = DeviceIndex::of_readings(&rs);
        assert_eq!(index.devices, vec![[1; 16], [2; 16], [3; 16]]);
        assert_eq!(index.of, vec![Some(0), Some(1), None, Some(0), Some(2), Some(0)]);
        let indexed = apply_rules_indexed(&rs, &index, &sig, |d| records(&index.devices[d]), |d| seq(&index.devices[d]), W);
        assert_eq!(plain, indexed);
        assert_eq!(plain.good, vec![0, 4, 5]);
        // An index that does not match the readings is rebuilt, not trusted.
        let short = DeviceIndex { devices: index.devices.clone(), of: vec![Some(2)] };
        let rebuilt = apply_rules_indexed(&rs, &short, &sig, |d| records(&short.devices[d]), |d| seq(&short.devices[d]), W);
        assert_eq!(rebuilt, plain);
    }
}
