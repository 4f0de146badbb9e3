"""xpnet.sklearn.MLPClassifier against sklearn.neural_network.MLPClassifier: accuracy and fit time.

Same hyperparameters (scikit-learn's defaults, ``max_iter=200``), same ``random_state``,
same standardised 75/25 stratified split per seed, on digits, iris and breast cancer.
Prints a Markdown table (the one in ``docs/sklearn.md``)::

    python -m benchmarks.sklearn_mlp [--seeds 5] [--backends numpy,numpy-float32,torch]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkMLP
from sklearn.preprocessing import StandardScaler

from xpnet.sklearn import MLPClassifier

DATASETS = {"digits": load_digits, "iris": load_iris, "breast_cancer": load_breast_cancer}
VARIANTS = {
    "numpy": {},
    "numpy-float32": {"dtype": "float32"},
    "torch": {"backend": "torch"},
    "cupy": {"backend": "cupy"},
}


def _run(make, X_tr, y_tr, X_te, y_te) -> tuple[float, float]:
    est = make()
    t0 = time.perf_counter()
    est.fit(X_tr, y_tr)
    seconds = time.perf_counter() - t0
    return float(est.score(X_te, y_te)), seconds


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--backends", default="numpy,numpy-float32,torch",
                        help=f"comma-separated, from {sorted(VARIANTS)}")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.backends.split(",") if v.strip()]
    rows = []
    warnings.simplefilter("ignore", ConvergenceWarning)
    for name, load in DATASETS.items():
        X, y = load(return_X_y=True)
        acc: dict[str, list[float]] = {"sklearn": [], **{v: [] for v in variants}}
        sec: dict[str, list[float]] = {k: [] for k in acc}
        for seed in range(args.seeds):
            X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
            scaler = StandardScaler().fit(X_tr)
            X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
            a, s = _run(lambda seed=seed: SkMLP(random_state=seed), X_tr, y_tr, X_te, y_te)
            acc["sklearn"].append(a)
            sec["sklearn"].append(s)
            for v in variants:
                kw = VARIANTS[v]
                a, s = _run(lambda seed=seed, kw=kw: MLPClassifier(random_state=seed, **kw), X_tr, y_tr, X_te, y_te)
                acc[v].append(a)
                sec[v].append(s)
        row = {"dataset": name, "n_train": len(y_tr),
               **{f"acc_{k}": float(np.mean(v)) for k, v in acc.items()},
               **{f"std_{k}": float(np.std(v)) for k, v in acc.items()},
               **{f"sec_{k}": float(np.median(v)) for k, v in sec.items()}}
        rows.append(row)
    cols = ["sklearn", *variants]
    print("| dataset | " + " | ".join(f"accuracy {c}" for c in cols) + " | "
          + " | ".join(f"fit s {c}" for c in cols) + " |")
    print("|---" * (1 + 2 * len(cols)) + "|")
    for r in rows:
        accs = " | ".join(f"{100 * r[f'acc_{c}']:.2f} ± {100 * r[f'std_{c}']:.2f}" for c in cols)
        secs = " | ".join(f"{r[f'sec_{c}']:.3f}" for c in cols)
        print(f"| {r['dataset']} (n={r['n_train']}) | {accs} | {secs} |")
    return rows


if __name__ == "__main__":
    main()
