"""Benchmark: the solved notebook, top to bottom, on the bundled and on full-size MNIST.

Budgets (DESIGN.md section 7, on 2 cores): at most 60 s on the bundled data
and at most 120 s on a full-size (60,000 x 784) mnist.npz. The full-size file
is synthetic: the bundled digits shifted by up to two pixels (seeded), which
costs k-means the same as real MNIST of that size.

For each data set the script runs the executed master notebook several times
in a scratch folder and reports the median wall time, as a ratio to the
budget and to a baseline measured in the same run (an empty notebook: kernel
start-up only). It also reads from the notebook's own output the k = 256 test
accuracy and the digits predicted for the two photos of a "4".

Usage::

    .venv/bin/python -m bench.bench_notebook [--runs 3] [--quick] [--out bench/results/notebook.md]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import numpy as np
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent

from coursekit.steps import build
from coursekit.steps.data import load_mnist_npz, save_npz_reproducibly

MASTER = ROOT / "source" / "clustering" / "clustering.ipynb"
BUDGETS = {"bundled": 60.0, "full-size": 120.0}


def make_full_size_mnist(path, n_train=60_000, n_test=10_000, random_state=0):
    """Write a keras-layout MNIST of full size made from the bundled digits, shifted."""
    (x_train, y_train), (x_test, y_test) = load_mnist_npz(ROOT / "data" / "mnist.npz")
    rng = np.random.default_rng(random_state)

    def grow(images, labels, n):
        pick = rng.integers(0, len(images), size=n)
        out = np.zeros((n, 28, 28), dtype=np.uint8)
        shifts = rng.integers(-2, 3, size=(n, 2))
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                chosen = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
                out[chosen] = np.roll(images[pick[chosen]], (dy, dx), axis=(1, 2))
        return out, labels[pick]

    xtr, ytr = grow(x_train, y_train, n_train)
    xte, yte = grow(x_test, y_test, n_test)
    save_npz_reproducibly(path, {"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte})


def run_notebook(nb_path, workdir, timeout=600):
    """Execute a notebook in ``workdir``; return (seconds, executed notebook)."""
    nb = nbformat.read(nb_path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}})
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start, nb


def notebook_findings(nb):
    """The k = 256 accuracy and the photo predictions, read from the notebook's output."""
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    accuracy = re.search(r"k = 256: test accuracy ([0-9.]+)", text)
    predictions = dict(re.findall(r"(number4\w*\.jpg): cluster \d+, predicted digit (-?\d+)", text))
    return {"accuracy_k256": float(accuracy.group(1)) if accuracy else None, "predictions": predictions}


def prepare_folder(folder, mnist=None):
    folder.mkdir(parents=True, exist_ok=True)
    for name, path in build.course_files().items():
        shutil.copyfile(path, folder / name)
    shutil.copyfile(MASTER, folder / MASTER.name)
    if mnist is not None:
        shutil.copyfile(mnist, folder / "mnist.npz")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per data set (median reported)")
    parser.add_argument("--quick", action="store_true", help="one run, bundled data only")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) and a .json beside it")
    args = parser.parse_args(argv)
    runs = 1 if args.quick else args.runs

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-notebook-") as scratch:
        scratch = Path(scratch)
        empty = scratch / "empty.ipynb"
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("pass")]), empty)
        baseline = statistics.median(run_notebook(empty, scratch)[0] for _ in range(runs))

        datasets = {"bundled": None}
        if not args.quick:
            full = scratch / "mnist_full_size.npz"
            make_full_size_mnist(full)
            datasets["full-size"] = full
        for name, mnist in datasets.items():
            times, findings = [], None
            for run in range(runs):
                folder = scratch / f"{name}-{run}"
                prepare_folder(folder, mnist)
                seconds, nb = run_notebook(folder / MASTER.name, folder)
                times.append(seconds)
                findings = notebook_findings(nb)
                print(f"{name} run {run + 1}: {seconds:.1f} s", flush=True)
            median = statistics.median(times)
            rows.append({
                "data": name, "median_s": round(median, 2), "runs": runs, "budget_s": BUDGETS[name],
                "within_budget": median <= BUDGETS[name], "ratio_to_empty_notebook": round(median / baseline, 1),
                **findings,
            })

    table = ["| data | median (s) | budget (s) | within | x empty notebook | k=256 test accuracy | photo predictions |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['data']} | {r['median_s']:.1f} | {r['budget_s']:.0f} | {'yes' if r['within_budget'] else 'NO'} | "
                     f"{r['ratio_to_empty_notebook']} | {r['accuracy_k256']} | {r['predictions']} |")
    table.append(f"\nbaseline: an empty notebook (kernel start-up) takes {baseline:.2f} s (median of {runs}).")
    print("\n".join(table))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(table) + "\n")
        args.out.with_suffix(".json").write_text(json.dumps({"baseline_s": baseline, "rows": rows}, indent=2))
    return 0 if all(r["within_budget"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
