"""`tfnode demo`: the national-cryptography core at work on a letter-of-credit presentation.

The consortium demo (four validator processes) replaces this once the node lands; until
then the demo shows what every later part stands on: SM2 identities, SM3 digests and
Merkle proofs, documents sealed with SM4-GCM for the parties, and batch verification.
"""

from __future__ import annotations

import os
import time

from rich.console import Console
from rich.table import Table

from tfnode import crypto

MEMBERS = [
    ("Bank of Ningbo (issuing bank)", "bank"),
    ("ICBC Shanghai (advising bank)", "bank"),
    ("Shanghai Customs", "customs"),
    ("COSCO Logistics", "logistics"),
    ("Yangshan Bonded Warehouse", "warehouse"),
]


def run(readings: int = 20_000) -> None:
    con = Console()
    con.rule("[bold]tfnode demo: SM2 / SM3 / SM4 core")

    keys = {name: crypto.PrivateKey.generate() for name, _ in MEMBERS}
    t = Table("member", "role", "address", "public key (compressed)")
    for name, role in MEMBERS:
        pk = keys[name].public_key()
        t.add_row(name, role, crypto.address(pk), pk.to_bytes(compressed=True).hex()[:24] + "…")
    con.print(t)

    # Documents presented under a letter of credit: hashed, committed to by a Merkle root,
    # signed by the presenting bank, and sealed so that only the two banks can read them.
    docs = {
        "commercial invoice": b"INV-2026-0042 | 12,000 MT iron ore | CNY 9,840,000.00",
        "bill of lading": b"COSU6342118800 | Port Hedland -> Ningbo | shipped on board 2026-11-02",
        "certificate of origin": b"CO-AU-2026-77812 | origin: Australia",
        "insurance certificate": b"PICC-MAR-2026-55120 | 110% CIF value",
    }
    leaves = [crypto.sm3(d) for d in docs.values()]
    root = crypto.merkle_root(leaves)
    advising = keys["ICBC Shanghai (advising bank)"]
    issuing = keys["Bank of Ningbo (issuing bank)"]
    sig = advising.sign(root)
    con.print(f"\nPresentation: {len(docs)} documents, Merkle root [cyan]{root.hex()}[/]")
    con.print(f"signed by the advising bank: {sig.hex()[:32]}…  DER {len(crypto.signature_to_der(sig))} bytes")
    ok = advising.public_key().verify(root, sig)
    con.print(f"issuing bank verifies the signature: [green]{ok}[/]")
    i = 1
    proof = crypto.merkle_proof(leaves, i)
    con.print(
        f"bill of lading alone, proved against the root with {len(proof)} hashes: "
        f"[green]{crypto.verify_merkle_proof(root, leaves[i], i, len(leaves), proof)}[/]"
    )
    forged = crypto.sm3(b"COSU6342118800 | shipped on board 2026-10-20")
    con.print(f"a back-dated bill of lading against the same proof: [red]{crypto.verify_merkle_proof(root, forged, i, len(leaves), proof)}[/]")

    sealed = crypto.seal([issuing.public_key(), advising.public_key()], docs["commercial invoice"])
    con.print(f"\ninvoice sealed for both banks (SM2 key wrap + SM4-GCM): {len(sealed)} bytes")
    con.print(f"issuing bank opens it: {crypto.open_sealed(issuing, sealed)[:24]!r}…")
    try:
        crypto.open_sealed(keys["Shanghai Customs"], sealed)
    except crypto.DecryptionError as e:
        con.print(f"customs cannot: [red]{e}[/]")

    # IoT: a warehouse's weight scales sign readings; the node checks them in one batch call.
    con.print(f"\n{readings:,} signed warehouse readings from 50 devices, verified as one batch:")
    devices = [crypto.PrivateKey.generate() for _ in range(50)]
    pks = [d.public_key().to_bytes() for d in devices]
    items = []
    t0 = time.perf_counter()
    for n in range(readings):
        d = n % len(devices)
        msg = b"scale-%02d|seq=%d|kg=%d" % (d, n, 24_000 - n % 97)
        items.append((pks[d], msg, devices[d].sign(msg)))
    t_sign = time.perf_counter() - t0
    bad = readings // 3
    pk, msg, s = items[bad]
    items[bad] = (pk, msg.replace(b"kg=", b"kg=9"), s)  # tampered reading
    t0 = time.perf_counter()
    res = crypto.verify_batch(items)
    t_ver = time.perf_counter() - t0
    failed = [k for k, r in enumerate(res) if not r]
    con.print(f"  signed in {t_sign:.2f} s ({readings / t_sign:,.0f}/s on one core)")
    con.print(f"  verified in {t_ver:.3f} s ({readings / t_ver:,.0f}/s, {os.cpu_count()} cores, GIL released)")
    con.print(f"  rejected items: {failed} (the tampered reading was #{bad})")
    con.rule("[bold]done")
