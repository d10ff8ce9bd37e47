"""Benchmark KmeansAnimate2D.py against scikit-learn's Lloyd k-means.

Measures, as the median of several runs:

- time per Lloyd iteration of ``lloyd_kmeans`` and of scikit-learn's
  ``KMeans(algorithm="lloyd", n_init=1, tol=0)``, both started from the same
  representatives and given the same ``max_iter``, each fit's time divided
  by its number of iterations, for
  (a) 100,000 2-D points with k = 8 and
  (b) 60,000 x 784 float32 points (MNIST-sized, synthetic) with k = 256;
- time to render the first 10 frames of a 300-point animation to HTML/JS
  (``KmeansAnimate2D.to_jshtml``), and to write them as a GIF.

Runs alternate between the two implementations so that background load
affects both alike. Usage, from the repository's root (``-m`` puts the root,
where the helper is, on the import path)::

    python -m bench.bench_helper            # full run (about a minute)
    python -m bench.bench_helper --quick    # small sizes, a few seconds
    python -m bench.bench_helper --out results.json   # or results.md

Targets: ratio (ours / scikit-learn) at most 1.5; HTML rendering under 1 s.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402

import KmeansAnimate2D as kmeans  # noqa: E402

RATIO_TARGET = 1.5
HTML_TARGET_SECONDS = 1.0


def make_blobs_2d(n, seed):
    """2-D standard normal points: no clear groups, so Lloyd converges slowly."""
    return np.random.default_rng(seed).normal(size=(n, 2))


def make_mnist_like(n, d, seed, n_prototypes=64):
    """float32 points in [0, 1]^d around random prototypes, like pixel data."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((n_prototypes, d), dtype=np.float32)
    noise = rng.normal(scale=0.25, size=(n, d)).astype(np.float32)
    X = prototypes[rng.integers(n_prototypes, size=n)] + noise
    return np.clip(X, 0.0, 1.0, out=X)


def time_ours(X, Z0, max_iter):
    start = time.perf_counter()
    labels, Z, J_history = kmeans.lloyd_kmeans(X, Z0, max_iter=max_iter)
    elapsed = time.perf_counter() - start
    return elapsed / len(J_history), len(J_history), (labels, Z)


def time_sklearn(X, Z0, max_iter):
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=Z0.shape[0], init=Z0, n_init=1, algorithm="lloyd",
                   max_iter=max_iter, tol=0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    elapsed = time.perf_counter() - start
    return elapsed / model.n_iter_, model.n_iter_, (model.labels_, model.cluster_centers_)


def bench_lloyd(name, X, k, repeats, max_iter, seed):
    """Interleaved timings of both implementations; returns a result row."""
    Z0 = kmeans.init_random_rows(X, k, random_state=seed)
    # Warm-up: imports, thread pools and first-touch memory are not timed.
    time_ours(X, Z0, 2)
    time_sklearn(X, Z0, 2)
    ours, theirs = [], []
    for _ in range(repeats):
        per_iter, ours_iters, ours_result = time_ours(X, Z0, max_iter)
        ours.append(per_iter)
        per_iter, sk_iters, sk_result = time_sklearn(X, Z0, max_iter)
        theirs.append(per_iter)
    ours_ms, sk_ms = 1e3 * statistics.median(ours), 1e3 * statistics.median(theirs)
    return {
        "case": name,
        "n": X.shape[0], "d": X.shape[1], "k": k, "dtype": str(X.dtype),
        "max_iter": max_iter,
        "ours_ms_per_iter": round(ours_ms, 3),
        "sklearn_ms_per_iter": round(sk_ms, 3),
        "ratio": round(ours_ms / sk_ms, 3),
        "ours_n_iter": ours_iters,
        "sklearn_n_iter": sk_iters,
        "labels_agree": round(float(np.mean(ours_result[0] == sk_result[0])), 6),
        "max_center_diff": float(np.abs(ours_result[1] - sk_result[1]).max()),
        "runs_ms": {"ours": [round(1e3 * t, 3) for t in ours],
                    "sklearn": [round(1e3 * t, 3) for t in theirs]},
    }


def bench_rendering(repeats, n_points=300, n_frames=10):
    """Median seconds to render n_frames of an n_points animation."""
    data = kmeans.generate_blobs(n_points, 4, random_state=0)
    # A start far from the groups, so that the run has enough frames.
    start = np.array([[0.0, 0.0], [0.5, 0.0], [0.0, 0.5], [0.5, 0.5]])
    run = kmeans.KmeansAnimate2D(k=4, data=data, startCentroids=start)
    if len(run.frames_) < n_frames:
        raise RuntimeError(f"only {len(run.frames_)} frames; need {n_frames}")
    run.frames_ = run.frames_[:n_frames]  # time exactly n_frames frames

    html_times, gif_times = [], []
    cold = None
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            html = run.to_jshtml()
            t1 = time.perf_counter()
            run.saveGIF(os.path.join(tmp, "bench.gif"), fps=2)
            t2 = time.perf_counter()
            if i == 0:
                cold = t1 - t0  # includes first-use costs (fonts, imports)
                continue
            html_times.append(t1 - t0)
            gif_times.append(t2 - t1)
    frames_in_html = html.count("data:image/png;base64,")
    return {
        "case": f"render {n_points} points, {n_frames} frames",
        "html_seconds_median": round(statistics.median(html_times), 4),
        "html_seconds_first_call": round(cold, 4),
        "gif_seconds_median": round(statistics.median(gif_times), 4),
        "frames_in_html": frames_in_html,
        "html_bytes": len(html),
    }


def environment():
    import matplotlib
    import sklearn

    info = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "matplotlib": matplotlib.__version__,
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "openblas_env": {key: value for key, value in os.environ.items()
                         if key.startswith("OPENBLAS")},
    }
    try:
        from threadpoolctl import threadpool_info

        info["threadpools"] = [
            {key: pool.get(key) for key in
             ("user_api", "internal_api", "num_threads", "architecture", "version")}
            for pool in threadpool_info()
        ]
    except ImportError:
        info["threadpools"] = "threadpoolctl not installed"
    return info


def markdown(results):
    lines = [
        "| case | ours ms/iter | sklearn ms/iter | ratio | target | iters (ours/sk) | labels agree |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results["lloyd"]:
        lines.append(
            f"| {row['n']} x {row['d']} {row['dtype']}, k={row['k']} "
            f"| {row['ours_ms_per_iter']:.2f} | {row['sklearn_ms_per_iter']:.2f} "
            f"| {row['ratio']:.2f} | <= {RATIO_TARGET} "
            f"| {row['ours_n_iter']}/{row['sklearn_n_iter']} | {row['labels_agree']:.4f} |"
        )
    render = results["rendering"]
    lines += [
        "",
        "| rendering | median s | first call s | target |",
        "| --- | ---: | ---: | ---: |",
        f"| HTML/JS, {render['case']} ({render['frames_in_html']} frames found) "
        f"| {render['html_seconds_median']:.3f} | {render['html_seconds_first_call']:.3f} "
        f"| < {HTML_TARGET_SECONDS} |",
        f"| GIF, {render['case']} | {render['gif_seconds_median']:.3f} | | |",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small problem sizes and 3 repeats (a few seconds)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per measurement (default 5, quick 3)")
    parser.add_argument("--max-iter", type=int, default=10,
                        help="Lloyd iterations per timed fit (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help="also write results to this .json or .md file")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 5)
    if repeats < 1 or args.max_iter < 1:
        parser.error("--repeats and --max-iter must be at least 1")

    if args.quick:
        cases = [("2-D normal", make_blobs_2d(20_000, args.seed), 8),
                 ("MNIST-sized float32", make_mnist_like(6_000, 784, args.seed), 64)]
    else:
        cases = [("2-D normal", make_blobs_2d(100_000, args.seed), 8),
                 ("MNIST-sized float32", make_mnist_like(60_000, 784, args.seed), 256)]

    results = {"environment": environment(), "quick": args.quick, "repeats": repeats,
               "lloyd": [], "rendering": None}
    for name, X, k in cases:
        print(f"timing {name}: {X.shape[0]} x {X.shape[1]}, k={k} ...", flush=True)
        results["lloyd"].append(bench_lloyd(name, X, k, repeats, args.max_iter, args.seed))
    print("timing rendering ...", flush=True)
    results["rendering"] = bench_rendering(repeats)
    results["environment"]["load_average_end"] = (
        list(os.getloadavg()) if hasattr(os, "getloadavg") else None)

    table = markdown(results)
    print()
    print(table)
    print()
    print("threadpools:", json.dumps(results["environment"]["threadpools"]))
    print("load average (start, end):", results["environment"]["load_average"],
          results["environment"]["load_average_end"])
    if args.out is not None:
        if args.out.suffix.lower() == ".json":
            args.out.write_text(json.dumps(results, indent=2) + "\n")
        else:
            args.out.write_text(table + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
