"""Make a signed demo firmware bundle that a simulated unit boots: for the demo, training, the benches and tests.

It lives in ``console/`` because its boot image is the simulator's (only the composition root knows units are
simulated); ``tools/make_demo_bundle.py`` is its command line:

    .venv/bin/python tools/make_demo_bundle.py --out /tmp/demo/df2-2.0.0.zip --version 2.0.0
    .venv/bin/python tools/make_demo_bundle.py --out big.zip --system-mib 256 --raw-system --no-trust

The bundle holds a ``boot`` image with a proper NAIADBOOT header (so the simulator's bootloader boots
it and reports its version) and a ``system`` image: an Android sparse image with data, a FILL run and a
DONT_CARE hole by default, or a raw one.  Contents derive from the version (and ``--seed``), so two
versions differ and the same version is the same bytes.  A release key is made in ``--key-dir`` unless
one is there already, and its public half is added to the station's trust store (``NAIAD_CONFIG_DIR``)
unless ``--no-trust``.  The key is unencrypted: it is a demo key, never a release key.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from firmware.pack import ModelSpec, PartitionSource, pack_bundle
from firmware.signing import (
    PRIVATE_KEY_FILE,
    PUBLIC_KEY_FILE,
    TrustStore,
    generate_release_key,
    key_id,
    load_private_key,
)
from firmware.sparse_write import write_sparse
from simulator.slots import build_boot_image

MiB = 1 << 20
_PIECE = MiB
_FILL_WORD = b"\xef\xbe\xad\xde"


@dataclass(frozen=True)
class DemoBundle:
    path: Path
    version: str
    security_version: int
    key_dir: Path
    key_id: str


def _random_stream(out: BinaryIO, rng: random.Random, size: int) -> None:
    while size:
        step = min(size, _PIECE)
        out.write(rng.randbytes(step))
        size -= step


def _repeat(out: BinaryIO, word: bytes, size: int) -> None:
    piece = word * (_PIECE // len(word))
    while size:
        step = min(size, len(piece))
        out.write(piece[:step])
        size -= step


def write_system_image(path: Path, size: int, rng: random.Random, *, sparse: bool) -> None:
    """A system image of ``size`` bytes (a multiple of 32 KiB): data, a fill run, zeros, data.

    As a sparse image the zeros become a DONT_CARE hole, so the image exercises every chunk kind a
    flasher must handle; as a raw image it is those bytes as they are.
    """
    if size <= 0 or size % (32 * 1024):
        raise ValueError("the system image size must be a positive multiple of 32 KiB")
    eighth = size // 8
    with tempfile.TemporaryFile() as raw:
        _random_stream(raw, rng, 3 * eighth)
        _repeat(raw, _FILL_WORD, eighth)
        _repeat(raw, b"\0", 2 * eighth)
        _random_stream(raw, rng, size - 6 * eighth)
        raw.seek(0)
        with path.open("wb") as out:
            if sparse:
                write_sparse(raw, out, dont_care_zeros=True)
            else:
                while data := raw.read(_PIECE):
                    out.write(data)


def _release_key(key_dir: Path) -> tuple[Path, Path]:
    private, public = key_dir / PRIVATE_KEY_FILE, key_dir / PUBLIC_KEY_FILE
    if not private.exists():
        generate_release_key(key_dir)
    return private, public


def make_demo_bundle(
    out: Path,
    *,
    version: str = "2.0.0",
    security_version: int = 0,
    model: str = "df2",
    key_dir: Path | None = None,
    system_size: int = 4 * MiB,
    boot_payload_size: int = 256 * 1024,
    sparse_system: bool = True,
    compress: bool = False,
    trust: bool = True,
    seed: str = "",
) -> DemoBundle:
    """Write a signed bundle of ``version`` for ``model`` to ``out`` (replacing it) and return what was made."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    key_dir = Path(key_dir) if key_dir is not None else out.parent / "demo-release-key"
    private, public = _release_key(key_dir)
    key = load_private_key(private)
    if trust:
        TrustStore().add(public)
    rng = random.Random(hashlib.sha256(f"{seed}/{model}/{version}".encode()).digest())
    with tempfile.TemporaryDirectory(prefix="naiad-demo-images-") as work:
        boot = Path(work) / "boot.img"
        payload = rng.randbytes(boot_payload_size)
        boot.write_bytes(build_boot_image(version, model, payload, security_version=security_version, demo=True))
        system = Path(work) / ("system.simg" if sparse_system else "system.img")
        write_system_image(system, system_size, rng, sparse=sparse_system)
        pack_bundle(
            out,
            key=key,
            models=[ModelSpec(model)],
            version=version,
            security_version=security_version,
            partitions=[PartitionSource("boot", boot), PartitionSource("system", system)],
            compress=compress,
            overwrite=True,
        )
    return DemoBundle(out, version, security_version, key_dir, key_id(key.public_key()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="the bundle file to write")
    parser.add_argument("--version", default="2.0.0")
    parser.add_argument("--security-version", type=int, default=0)
    parser.add_argument("--model", default="df2", help="a model id of the model table")
    parser.add_argument("--key-dir", type=Path, help="release key directory (made if empty)")
    parser.add_argument("--system-mib", type=int, default=4, help="size of the system image in MiB")
    parser.add_argument("--raw-system", action="store_true", help="a raw system image instead of a sparse one")
    parser.add_argument("--compress", action="store_true", help="deflate the images in the bundle")
    parser.add_argument("--no-trust", action="store_true", help="do not add the key to the station's trust store")
    parser.add_argument("--seed", default="", help="varies the contents for the same version")
    args = parser.parse_args(argv)
    made = make_demo_bundle(
        args.out,
        version=args.version,
        security_version=args.security_version,
        model=args.model,
        key_dir=args.key_dir,
        system_size=args.system_mib * MiB,
        sparse_system=not args.raw_system,
        compress=args.compress,
        trust=not args.no_trust,
        seed=args.seed,
    )
    print(f"{made.path}  version {made.version}  signed by {made.key_id[:32]}  (keys in {made.key_dir})")
    return 0
