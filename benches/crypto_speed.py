"""Crypto core benchmark: every figure beside a reference measured in the same run.

    .venv/bin/python benches/crypto_speed.py [--quick] [--only-sm4] [--json OUT] [--markdown]

References: the system OpenSSL (`openssl speed`), the pure-Python gmssl package, OpenSSL's
SM4-GCM through `cryptography` (the path tfnode used before its own), and for the
Python-binding overhead the pure-Rust figure of the same operation (the crates'
`examples/*_speed.rs`). Aims are those of DESIGN.md for this 2-core machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tfnode import crypto  # noqa: E402


def rate(fn, min_time: float = 1.0, batch: int = 1, clock=time.thread_time) -> float:
    """Operations per second of fn() (each call does `batch` operations), best of 3 rounds.

    Single-threaded figures divide by this thread's CPU time, like the Rust examples'
    `per_cpu_second` and `openssl speed`: on a shared machine the wall clock also counts
    time other processes took. Calls that use both cores pass clock=time.perf_counter."""
    fn()
    best = 0.0
    for _ in range(3):
        n, t0, w0 = 0, clock(), time.perf_counter()
        while True:
            fn()
            n += batch
            el = clock() - t0
            if time.perf_counter() - w0 >= min_time / 3 and el > 0:
                break
        best = max(best, n / el)
    return best


def openssl_speed(secs: int) -> dict[str, float]:
    out = {}
    try:
        txt = subprocess.run(
            ["openssl", "speed", "-seconds", str(secs), "sm2"], capture_output=True, text=True, timeout=120
        ).stdout
        m = re.search(r"SM2 \(CurveSM2\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", txt)
        if m:
            out["sm2_sign"], out["sm2_verify"] = float(m.group(1)), float(m.group(2))
        txt = subprocess.run(
            ["openssl", "speed", "-seconds", str(secs), "-bytes", "16384", "-evp", "sm3"],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        m = re.search(r"^sm3\s+([\d.]+)k", txt, re.M)
        if m:
            out["sm3_16k_MBps"] = float(m.group(1)) * 1000 / 1e6
        txt = subprocess.run(
            ["openssl", "speed", "-seconds", str(secs), "-bytes", "64", "-evp", "sm3"],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        m = re.search(r"^sm3\s+([\d.]+)k", txt, re.M)
        if m:
            out["sm3_64B_msgps"] = float(m.group(1)) * 1000 / 64
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"openssl speed unavailable: {e}", file=sys.stderr)
    return out


def rust_speed(crate: str, example: str, threads: int | None = None) -> dict[str, float]:
    env = dict(os.environ)
    if threads:
        env["RAYON_NUM_THREADS"] = str(threads)
    p = subprocess.run(
        ["cargo", "run", "-q", "--release", "-p", crate, "--example", example],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    res = {}
    for line in p.stdout.splitlines():
        try:
            o = json.loads(line)
            # Per CPU-second where the example reports it (single-thread figures), so the
            # comparison with the Python figures (thread CPU time) is like for like.
            res[o["name"]] = float(o.get("per_cpu_second", o["value"]))
        except (ValueError, KeyError):
            pass
    if p.returncode != 0:
        print(f"cargo example {crate} failed:\n{p.stderr[-2000:]}", file=sys.stderr)
    return res


def gmssl_refs(quick: bool) -> dict[str, float]:
    from gmssl import sm2, sm3

    sk = crypto.PrivateKey.generate()
    pub = sk.public_key().to_bytes()[1:].hex()
    g = sm2.CryptSM2(private_key=sk.to_bytes().hex(), public_key=pub)
    sig = g.sign_with_sm3(b"m")
    t = 0.5 if quick else 1.5
    data = bytes(16384)
    return {
        "sm2_sign": rate(lambda: g.sign_with_sm3(b"m"), t),
        "sm2_verify": rate(lambda: g.verify_with_sm3(sig, b"m"), t),
        "sm3_16k_MBps": rate(lambda: sm3.sm3_hash(list(data)), t) * 16384 / 1e6,
    }


def python_figures(quick: bool) -> dict[str, float]:
    t = 0.6 if quick else 2.0
    sk = crypto.PrivateKey.generate()
    pk = sk.public_key()
    msg = b"x" * 100
    sig = sk.sign(msg)
    data16k = os.urandom(16384)
    many = [os.urandom(64) for _ in range(8192)]
    packed = b"".join(many)
    keys = [crypto.PrivateKey.generate() for _ in range(64)]
    items = []
    for i in range(4096):
        k = keys[i % 64]
        m = b"batch item %d" % i
        items.append((k.public_key().to_bytes(), m, k.sign(m)))
    uncached = [crypto.PrivateKey.generate() for _ in range(512)]
    uitems = [(k.public_key().to_bytes(), b"m", k.sign(b"m")) for k in uncached]
    crypto.set_key_cache_capacity(0)  # force the uncached path
    v_uncached = rate(lambda: crypto.verify_batch(uitems[:1]), t)
    crypto.set_key_cache_capacity(4096)
    out = {
        "sm2_sign": rate(lambda: sk.sign(msg), t),
        "sm2_verify_uncached": v_uncached,
        "sm2_verify_cached": rate(lambda: pk.verify(msg, sig), t),
        "sm2_verify_batch": rate(lambda: crypto.verify_batch(items), t, batch=len(items), clock=time.perf_counter),
        "sm3_16k_MBps": rate(lambda: crypto.sm3(data16k), t) * 16384 / 1e6,
        "sm3_many_64B": rate(lambda: crypto.sm3_many(many), t, batch=len(many)),
        "sm3_many_packed_64B": rate(lambda: crypto.sm3_many_packed(packed, 64), t, batch=len(many)),
    }
    leaves = [i.to_bytes(32, "big") for i in range(1 << 20)]
    best = min(_timed(lambda: crypto.merkle_root(leaves)) for _ in range(2 if quick else 3))
    out["merkle_2^20_cpu_s"] = min(_timed(lambda: crypto.merkle_root(leaves), time.process_time) for _ in range(2))
    out["merkle_2^20_s"] = best
    out.update(sm4_gcm_figures(t, data16k))
    return out


def sm4_gcm_figures(t: float, data16k: bytes) -> dict[str, float]:
    """SM4-GCM through tfnode.crypto (the Rust core) and through OpenSSL (`cryptography`,
    one Cipher object per message as tfnode.crypto did before), measured alternately in
    this run. aad is 4 bytes, as the P2P links' frame header."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = crypto.Sm4Gcm.generate_key()
    box = crypto.Sm4Gcm(key)
    nonce = crypto.Sm4Gcm.random_nonce()
    algo = algorithms.SM4(key)
    aad = b"\x00\x00\x04\x10"

    def openssl(pt: bytes) -> bytes:
        enc = Cipher(algo, modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(aad)
        return enc.update(pt) + enc.finalize() + enc.tag

    data1k = data16k[:1024]
    assert box.encrypt(nonce, data1k, aad) == openssl(data1k), "the two SM4-GCM paths disagree"
    out = {"sm4_gcm_backend": box.backend}
    # Several messages per timed call: reading the thread's CPU clock is a system call of
    # ~1 µs, as long as a whole 1 KiB frame now and 6% of a 16 KiB message.
    big = [data16k] * 8

    def ours_16k() -> None:
        for m in big:
            box.encrypt(nonce, m, aad)

    def openssl_16k() -> None:
        for m in big:
            openssl(m)

    out["sm4_gcm_16k_MBps"] = rate(ours_16k, t, batch=len(big)) * 16384 / 1e6
    out["sm4_gcm_openssl_16k_MBps"] = rate(openssl_16k, t, batch=len(big)) * 16384 / 1e6
    for size, label in ((1024, "1k"), (256, "256B")):
        frames = [data16k[:size]] * 64

        def ours_frames(frames: list[bytes] = frames) -> None:
            for f in frames:
                box.encrypt(nonce, f, aad)

        def openssl_frames(frames: list[bytes] = frames) -> None:
            for f in frames:
                openssl(f)

        out[f"sm4_gcm_{label}_us"] = 1e6 / rate(ours_frames, t, batch=len(frames))
        out[f"sm4_gcm_openssl_{label}_us"] = 1e6 / rate(openssl_frames, t, batch=len(frames))
    aes = AESGCM(AESGCM.generate_key(128))
    out["aes_gcm_16k_MBps"] = rate(lambda: aes.encrypt(nonce, data16k, aad), t) * 16384 / 1e6
    return out


def _timed(fn, clock=time.perf_counter) -> float:
    t0 = clock()
    fn()
    return clock() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter runs (noisier)")
    ap.add_argument("--json", type=Path, help="also write all raw figures to this file")
    ap.add_argument("--markdown", action="store_true", help="print rows for docs/benchmarks.md")
    ap.add_argument("--only-sm4", action="store_true", help="only the SM4-GCM figures (Python API, pure Rust, OpenSSL)")
    a = ap.parse_args()

    if a.only_sm4:
        ossl: dict[str, float] = {}
        gm: dict[str, float] = {}
        print("measuring pure-Rust SM4-GCM (cargo example) ...", file=sys.stderr)
        rs = rust_speed("tfnode-sm4", "sm4_speed")
        print("measuring SM4-GCM through Python ...", file=sys.stderr)
        py = sm4_gcm_figures(0.6 if a.quick else 2.0, os.urandom(16384))
    else:
        print("measuring openssl speed ...", file=sys.stderr)
        ossl = openssl_speed(1 if a.quick else 3)
        print("measuring gmssl (pure Python) ...", file=sys.stderr)
        gm = gmssl_refs(a.quick)
        print("measuring pure-Rust figures (cargo examples) ...", file=sys.stderr)
        rs = {}
        for crate, example in (
            ("tfnode-sm3", "sm3_speed"),
            ("tfnode-sm2", "sm2_speed"),
            ("tfnode-merkle", "merkle_speed"),
            ("tfnode-sm4", "sm4_speed"),
        ):
            rs.update(rust_speed(crate, example))
        all_threads = [v for k, v in rs.items() if k.startswith("sm2_verify_batch_") and k.endswith("threads")]
        if all_threads:
            rs["sm2_verify_batch_all"] = all_threads[0]
        print("measuring through Python ...", file=sys.stderr)
        crypto.set_key_cache_capacity(4096)
        py = python_figures(a.quick)

    rows = []

    def row(what, ours, ref_name, ref, aim, higher_better=True):
        if ours is None:
            return
        ratio = (ours / ref if higher_better else ref / ours) if ref else None
        rows.append((what, ours, ref_name, ref, ratio, aim))

    if not a.only_sm4:
        row("SM2 sign /s, 1 core (Python API)", py["sm2_sign"], "openssl", ossl.get("sm2_sign"), ">= 65,000")
        row("SM2 sign /s, 1 core (Python API)", py["sm2_sign"], "gmssl", gm["sm2_sign"], "")
        row(
            "SM2 verify /s, 1 core, uncached key (Python API)",
            py["sm2_verify_uncached"],
            "openssl",
            ossl.get("sm2_verify"),
            ">= 25,000",
        )
        row(
            "SM2 verify /s, 1 core, uncached key (Python API)", py["sm2_verify_uncached"], "gmssl", gm["sm2_verify"], ""
        )
        row(
            "SM2 verify /s, 1 core, cached key (Python API)",
            py["sm2_verify_cached"],
            "openssl",
            ossl.get("sm2_verify"),
            ">= 50,000",
        )
        row(
            "SM2 verify_batch /s, all cores (Python API)",
            py["sm2_verify_batch"],
            "same, pure Rust 1 thread",
            rs.get("sm2_verify_batch_1thread"),
            ">= 1.8x one core",
        )
        row(
            "SM2 verify_batch /s, all cores (Python API)",
            py["sm2_verify_batch"],
            "same, pure Rust all threads",
            rs.get("sm2_verify_batch_all"),
            ">= 0.9 (binding < 10%)",
        )
        row(
            "SM3 MB/s, one 16 KB stream (Python API)", py["sm3_16k_MBps"], "openssl", ossl.get("sm3_16k_MBps"), ">= 380"
        )
        row("SM3 MB/s, one 16 KB stream (Python API)", py["sm3_16k_MBps"], "gmssl", gm["sm3_16k_MBps"], "")
        row(
            "SM3 64-byte messages /s, multi-buffer, 1 call (Python API)",
            py["sm3_many_64B"],
            "openssl (one at a time)",
            ossl.get("sm3_64B_msgps"),
            ">= 8,000,000 per core",
        )
        row(
            "SM3 64-byte messages /s, list in/out (Python API)",
            py["sm3_many_64B"],
            "same, pure Rust",
            rs.get("sm3_many_64B"),
            ">= 0.9 (binding < 10%)",
        )
        row(
            "SM3 64-byte messages /s, packed (Python API)",
            py["sm3_many_packed_64B"],
            "same, pure Rust",
            rs.get("sm3_many_64B"),
            ">= 0.9 (binding < 10%)",
        )
        row(
            "Merkle root 2^20 leaves, s wall (Python API, all cores)",
            py["merkle_2^20_s"],
            "pure Rust, 2 cores, wall",
            rs.get("merkle_root_2^20_2cores"),
            "",
            higher_better=False,
        )
        row(
            "Merkle root 2^20 leaves, CPU s (Python API)",
            py["merkle_2^20_cpu_s"],
            "pure Rust, 1 core, CPU s",
            rs.get("merkle_root_2^20_1core_cpu_time"),
            "<= 0.25 s on 1 core",
            higher_better=False,
        )
        row(
            "SM2 verify_batch, 2 threads / 1 thread (pure Rust)",
            rs.get("sm2_verify_batch_all", 0),
            "1 thread",
            rs.get("sm2_verify_batch_1thread"),
            ">= 1.8x",
        )
    sm4 = f"SM4-GCM MB/s, 16 KB (Python API, {py['sm4_gcm_backend']})"
    row(sm4, py["sm4_gcm_16k_MBps"], "OpenSSL via cryptography", py["sm4_gcm_openssl_16k_MBps"], "")
    row(sm4, py["sm4_gcm_16k_MBps"], "same, pure Rust", rs.get("sm4_gcm_auto_16384_MBps"), ">= 0.9 (binding < 10%)")
    row(sm4, py["sm4_gcm_16k_MBps"], "AES-128-GCM, OpenSSL", py["aes_gcm_16k_MBps"], "")
    for label, what in (("1k", "1 KiB"), ("256B", "256-byte")):
        row(
            f"SM4-GCM us per {what} frame (Python API)",
            py[f"sm4_gcm_{label}_us"],
            "OpenSSL via cryptography",
            py[f"sm4_gcm_openssl_{label}_us"],
            "",
            higher_better=False,
        )

    today = dt.date.today().isoformat()
    print(f"\ntfnode crypto benchmark, {today}, {os.cpu_count()} cores")
    print(f"{'figure':58} {'ours':>14} {'reference':>26} {'ref value':>14} {'ratio':>8}  aim")
    for what, ours, rn, ref, ratio, aim in rows:
        rv = f"{ref:,.1f}" if ref is not None else "n/a"
        rt = f"{ratio:.2f}x" if ratio is not None else "n/a"
        print(f"{what:58} {ours:>14,.2f} {rn:>26} {rv:>14} {rt:>8}  {aim}")
    print("\npure-Rust figures:", json.dumps({k: round(v, 3) for k, v in rs.items()}))
    if a.markdown:
        print("\n| date | figure | ours | reference | ref value | ratio | aim |\n|---|---|---|---|---|---|---|")
        for what, ours, rn, ref, ratio, aim in rows:
            rv = f"{ref:,.1f}" if ref is not None else "n/a"
            rt = f"{ratio:.2f}x" if ratio is not None else "n/a"
            print(f"| {today} | {what} | {ours:,.2f} | {rn} | {rv} | {rt} | {aim} |")
    if a.json:
        a.json.write_text(json.dumps({"date": today, "openssl": ossl, "gmssl": gm, "rust": rs, "python": py}, indent=2))


if __name__ == "__main__":
    main()
