"""Key store benchmark: time per Initial Key derive + KCV + TR-31 wrap + release, and per signature, on
SoftHSM2 and in software.

    .venv/bin/python bench/bench_keystore.py [--units 200] [--bits 128]

Each store gets a fresh BDK (a throwaway SoftHSM2 token in a temporary directory; a software store file there
too), then for ``--units`` Initial Key IDs: derive the Initial Key, read its KCV, wrap it under a fresh one-time
KBPK, release it; and ``--units`` ECDSA P-256 signatures (``store.sign``, what the provisioning CA does three
times per unit: the device certificate, the load and the commit statements) with a fresh signing key.  Prints
the medians and p95s and the opening time (scrypt for the software store, module load and login for
SoftHSM2).  Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from keys import tr31  # noqa: E402
from keys.store import KeyStore  # noqa: E402

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
_PIN = "20261130"
_HEADER = tr31.Header(key_usage="B1", algorithm="A", mode_of_use="X", exportability="E")


def softhsm_store(directory: Path) -> KeyStore | None:
    """A store on a fresh SoftHSM2 token in ``directory`` (SOFTHSM2_CONF set for this process); None if absent."""
    if not (shutil.which("softhsm2-util") and Path(SOFTHSM_MODULE).exists()):
        return None
    (directory / "tokens").mkdir()
    config = directory / "softhsm2.conf"
    config.write_text(f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(config)
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "bench", "--so-pin", _PIN, "--pin", _PIN],
        check=True,
        capture_output=True,
    )
    from keys.store_pkcs11 import Pkcs11Config, Pkcs11KeyStore

    return Pkcs11KeyStore(Pkcs11Config(SOFTHSM_MODULE, "bench"), _PIN)


def software_store(directory: Path) -> KeyStore:
    """A software store file in ``directory``."""
    from keys.store_software import SoftwareKeyStore

    return SoftwareKeyStore("bench passphrase", directory / "keystore.json")


def _run(name: str, opener: Callable[[Path], KeyStore | None], units: int, length: int, directory: Path) -> None:
    started = time.perf_counter()
    store = opener(directory)
    opened = time.perf_counter() - started
    if store is None:
        print(f"{name:<12} skipped: not installed")
        return
    try:
        store.generate_bdk("bench BDK", length)
        times = []
        for unit in range(units):
            started = time.perf_counter()
            handle = store.derive_initial_key("bench BDK", bytes.fromhex("12345678") + unit.to_bytes(4, "big"))
            store.initial_key_kcv(handle)
            store.wrap_tr31(os.urandom(32), _HEADER, handle)
            store.release(handle)
            times.append(time.perf_counter() - started)
        store.generate_signing_key("bench CA")
        signing = []
        for _ in range(units):
            statement = os.urandom(200)  # about a certificate's to-be-signed part
            started = time.perf_counter()
            store.sign("bench CA", statement)
            signing.append(time.perf_counter() - started)
    finally:
        store.close()
    print(
        f"{name:<12} open {opened * 1e3:7.1f} ms   derive+KCV+wrap+release: {_figures(times)}   "
        f"sign: {_figures(signing)} ({units} each)"
    )


def _figures(times: list[float]) -> str:
    p95 = statistics.quantiles(times, n=20)[-1] if len(times) > 1 else times[0]
    return f"median {statistics.median(times) * 1e3:6.2f} ms, p95 {p95 * 1e3:6.2f} ms"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--bits", type=int, choices=(128, 256), default=128)
    args = parser.parse_args(argv)
    print(f"AES-{args.bits} BDK, AES-256 one-time KBPK, TR-31 version D B1")
    for name, opener in (("SoftHSM2", softhsm_store), ("software", software_store)):
        with tempfile.TemporaryDirectory(prefix="naiad-bench-keystore-") as directory:
            _run(name, opener, args.units, args.bits // 8, Path(directory))
    print(f"load average while measuring: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
