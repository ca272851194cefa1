"""Make a signed demo firmware bundle that a simulated unit boots (the code is ``console/demo_bundle.py``).

.venv/bin/python tools/make_demo_bundle.py --out /tmp/demo/df2-2.0.0.zip --version 2.0.0
.venv/bin/python tools/make_demo_bundle.py --out big.zip --system-mib 256 --raw-system --no-trust
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from console.demo_bundle import DemoBundle, MiB, main, make_demo_bundle, write_system_image  # noqa: E402

__all__ = ["DemoBundle", "MiB", "main", "make_demo_bundle", "write_system_image"]

if __name__ == "__main__":
    raise SystemExit(main())
