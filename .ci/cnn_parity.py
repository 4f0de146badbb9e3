"""CNN trajectory parity for .ci/gpu-validate: a small ``xpnet.models.cnn`` trained in lockstep.

    python3 .ci/cnn_parity.py numpy,cupy float64 [steps]

Digits (1x8x8), ``cnn((1, 8, 8), 10, channels=(8, 16), hidden=(32,))``, Adam lr 1e-3,
batch 32, the library's default parity tolerances (docs/parity.md). Prints the report's
summary and table; exit status 1 when the backends disagree or one is unusable (a GPU run
must not pass by skipping its GPU).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

import xpnet  # noqa: E402
from xpnet.data import StandardScaler, load_dataset  # noqa: E402
from xpnet.models import cnn  # noqa: E402
from xpnet.testing import check_parity, get_backend  # noqa: E402


def main(argv: list[str]) -> int:
    names = [n for n in argv[0].split(",") if n]
    dtype = argv[1] if len(argv) > 1 else "float64"
    steps = int(argv[2]) if len(argv) > 2 else 50
    for n in names:
        get_backend(n)  # raises BackendUnavailable: an unusable GPU fails, never skips
    ds = load_dataset("digits")
    X = np.asarray(StandardScaler().fit_transform(ds.X)[:1024], dtype=np.float64)
    y = np.asarray(ds.y[:1024])
    report = check_parity(
        lambda g: cnn((1, 8, 8), 10, channels=(8, 16), hidden=(32,), generator=g),
        xpnet.CrossEntropyLoss(), lambda p: xpnet.optim.Adam(p, lr=1e-3), X, y,
        backends=[n for n in names if n != "numpy"], steps=steps, batch_size=32, dtype=dtype,
        raise_on_failure=False,
    )
    print(report.summary())
    print(report.format_table(max_rows=12))
    missing = {n for n in names if n != "numpy"} - {b for b in report.backends}
    if missing:
        print(f"cnn parity: backends not run: {sorted(missing)}")
        return 1
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
