"""k-means clustering with Lloyd's algorithm, and an animation of it in 2-D.

Notation follows Boyd & Vandenberghe, *Introduction to Applied Linear
Algebra* (VMLS), chapter 4:

- ``x_1, ..., x_N`` are the data vectors (the rows of ``X``, shape (N, d)),
- ``z_1, ..., z_k`` are the group representatives (the rows of ``Z``,
  shape (k, d)),
- ``c_i`` is the group that ``x_i`` is assigned to (``labels[i]``; the
  groups are numbered 0, ..., k - 1 as in Python),
- the clustering objective is the *mean* squared distance

      J_clust = (1/N) * sum_i ||x_i - z_{c_i}||^2.

  scikit-learn's ``KMeans.inertia_`` is the *sum* ``N * J_clust``.

Lloyd's algorithm alternates two steps, each of which can only lower
J_clust:

1. assignment: give every x_i the nearest representative,
2. update: move every z_j to the mean of its group.

The numerical functions (``assign_clusters``, ``update_representatives``,
``clustering_objective``, ``lloyd_kmeans``, ``init_random_rows``,
``init_kmeans_plusplus``) work in any dimension d and are vectorized over
the points. ``lloyd_kmeans`` performs the same iteration as scikit-learn's
``KMeans(algorithm="lloyd", n_init=1, tol=0)`` started from the same
representatives, so both give the same labels and (up to rounding) the same
representatives, except that an empty group keeps its previous
representative here where scikit-learn moves it to a far-away point.

``KmeansAnimate2D`` runs Lloyd's algorithm once on 2-D data, records every
step, and shows it as an animation (desktop window, Jupyter/Colab HTML, or
animated GIF).

The camelCase functions of the original lab (``initializeCentroids``,
``assignPointsToClusters``, ``optimizeCentroids``, ``generateClusters``)
are kept so that older notebooks keep working.

Speed: one Lloyd iteration costs about as much as scikit-learn's (within
1.5x on 100,000 2-D points and on 60,000 x 784 points); the script
``bench/bench_helper.py`` measures it.
"""

import hashlib
import itertools
import numbers
import os
import re
from typing import NamedTuple

import numpy as np

__all__ = [
    "AnimationHTML",
    "Frame",
    "KmeansAnimate2D",
    "assign_clusters",
    "check_random_state",
    "clustering_objective",
    "generate_blobs",
    "init_kmeans_plusplus",
    "init_random_rows",
    "lloyd_kmeans",
    "update_representatives",
    # names kept from the original lab
    "assignPointsToClusters",
    "generateClusters",
    "initializeCentroids",
    "optimizeCentroids",
]

# Up to this many dimensions, distances are computed directly as
# sum_a (x_ia - z_ja)^2, which is exact and, with so few terms, as fast as
# the matrix-product form used in more dimensions.
_DIRECT_MAX_DIM = 4

# Target number of entries in the (rows, k) blocks of distances: small
# enough to stay in a core's cache, large enough that Python overhead per
# block does not matter.
_DIRECT_BLOCK_ENTRIES = 1 << 16
_PRODUCT_BLOCK_ENTRIES = 1 << 20
_MAX_BLOCK_ROWS = 8192

# Up to this many dimensions, per-dimension np.bincount is the fastest way
# to sum the points of each group; above it a sparse one-hot product wins.
_BINCOUNT_MAX_DIM = 32

# Rows per block when summing groups with a sparse one-hot product; about
# 1000 rows keeps the float64 copy of a block in cache.
_SUM_BLOCK_ROWS = 1024

# Bound on the number of float64 entries in other temporary arrays.
_MAX_TEMP_ENTRIES = 1 << 18


def _block_rows(k, entries):
    """Rows per block so that a (rows, k) block holds about ``entries``."""
    return int(min(_MAX_BLOCK_ROWS, max(64, entries // k)))


# ---------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------


def check_random_state(random_state):
    """Turn ``random_state`` into a NumPy random generator.

    Parameters
    ----------
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        ``None`` uses NumPy's global random state, so ``np.random.seed``
        makes results reproducible as in older notebooks. An int seeds a
        new ``numpy.random.Generator``. A Generator or RandomState is used
        as it is.

    Returns
    -------
    rng : numpy.random.Generator or numpy.random.RandomState

    Raises
    ------
    TypeError
        If ``random_state`` is of any other type.
    """
    if random_state is None:
        return np.random.mtrand._rand
    if isinstance(random_state, (np.random.Generator, np.random.RandomState)):
        return random_state
    if isinstance(random_state, numbers.Integral) and not isinstance(
        random_state, bool
    ):
        return np.random.default_rng(int(random_state))
    raise TypeError(
        "random_state must be None, an int, a numpy.random.Generator or a "
        f"numpy.random.RandomState; got {type(random_state).__name__}"
    )


def _check_int(value, name, minimum, maximum=None, maximum_text=None):
    """Return ``value`` as an int in [minimum, maximum], or raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}; got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(
            f"{name} must be at most {maximum_text or maximum}; got {value}"
        )
    return value


def _as_numeric_array(values, name):
    """Convert array-like ``values`` to an ndarray of real numbers."""
    if values is None or isinstance(values, (str, bytes)):
        raise TypeError(
            f"{name} must be an array of numbers; got {type(values).__name__}"
        )
    try:
        array = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of numbers: {exc}") from exc
    if not (
        np.issubdtype(array.dtype, np.integer)
        or np.issubdtype(array.dtype, np.floating)
    ):
        raise TypeError(
            f"{name} must hold real numbers; got an array of dtype {array.dtype}"
        )
    return array


def _all_finite(array):
    # Summing first is much cheaper than an elementwise check and is finite
    # whenever every entry is; only an overflowing sum needs the full check.
    return bool(np.isfinite(array.sum())) or bool(np.isfinite(array).all())


def _check_data(X, name="X", n_columns=None):
    """Validate a data matrix.

    Parameters
    ----------
    X : array-like of shape (n, d)
    name : str
        Name used in error messages.
    n_columns : int, optional
        Required number of columns d.

    Returns
    -------
    X : ndarray of shape (n, d)
        C-contiguous; float32 if the input was float32 (so the distance
        matrix product runs in single precision, as in scikit-learn),
        float64 otherwise.
    """
    array = _as_numeric_array(X, name)
    expected = f"(n, {n_columns})" if n_columns is not None else "(n, d)"
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape {expected}; got shape {array.shape}"
        )
    if n_columns is not None and array.shape[1] != n_columns:
        raise ValueError(
            f"{name} must be a 2-D array of shape {expected}; got shape {array.shape}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(
            f"{name} must hold at least one point; got shape {array.shape}"
        )
    dtype = np.float32 if array.dtype == np.float32 else np.float64
    array = np.ascontiguousarray(array, dtype=dtype)
    if not _all_finite(array):
        raise ValueError(f"{name} contains NaN or infinity")
    return array


def _check_representatives(Z, n_dims, name="Z", n_groups=None):
    """Validate representatives; return a float64 (k, d) copy."""
    array = _as_numeric_array(Z, name)
    k_text = "k" if n_groups is None else f"k={n_groups}"
    if (
        array.ndim != 2
        or array.shape[1] != n_dims
        or (n_groups is not None and array.shape[0] != n_groups)
    ):
        raise ValueError(
            f"{name} must have shape ({k_text}, {n_dims}), one row per "
            f"representative and as many columns as the data; got shape {array.shape}"
        )
    if array.shape[0] == 0:
        raise ValueError(
            f"{name} must hold at least one representative; got shape {array.shape}"
        )
    array = np.array(array, dtype=np.float64, order="C")
    if not _all_finite(array):
        raise ValueError(f"{name} contains NaN or infinity")
    return array


def _check_labels(labels, n_points, n_groups, name="labels"):
    """Validate group assignments; return an int64 array of shape (n,)."""
    array = _as_numeric_array(labels, name)
    if array.shape != (n_points,):
        raise ValueError(
            f"{name} must have shape ({n_points},), one group per data point; "
            f"got shape {array.shape}"
        )
    if np.issubdtype(array.dtype, np.floating):
        # The original lab stored labels as floats; accept whole numbers.
        if not (_all_finite(array) and np.array_equal(array, np.round(array))):
            raise ValueError(f"{name} must hold whole numbers 0, ..., k-1")
    array = array.astype(np.int64)
    if array.size and (array.min() < 0 or array.max() >= n_groups):
        raise ValueError(
            f"{name} must lie in 0, ..., {n_groups - 1} (k={n_groups}); "
            f"got values from {array.min()} to {array.max()}"
        )
    return array


# ---------------------------------------------------------------------------
# Assignment step
# ---------------------------------------------------------------------------


class _Workspace:
    """Scratch arrays kept between calls.

    A fresh multi-megabyte array every iteration costs a page fault per
    4 kB page on first use, which is far from free (about 1 us each on
    some virtual machines); reusing the same memory avoids that.
    """

    def __init__(self):
        self._arrays = {}

    def get(self, name, shape, dtype=np.float64):
        """An uninitialised array of this shape and dtype, reused when possible."""
        array = self._arrays.get(name)
        if array is None or array.shape != shape or array.dtype != np.dtype(dtype):
            array = self._arrays[name] = np.empty(shape, dtype=dtype)
        return array


def _squared_deviations(X, center):
    """Return ||x_i - center||^2 for each row, computed in float64."""
    out = np.empty(X.shape[0])
    step = max(1, _MAX_TEMP_ENTRIES // X.shape[1])
    for start in range(0, X.shape[0], step):
        diff = np.asarray(X[start:start + step], dtype=np.float64) - center
        out[start:start + step] = np.einsum("ij,ij->i", diff, diff)
    return out


def _nearest_direct(columns, Z, labels, workspace):
    """Nearest representative from directly computed distances.

    Parameters
    ----------
    columns : ndarray of shape (d, n), float64
        The data, one row per coordinate (contiguous for fast passes).
    Z : ndarray of shape (k, d), float64
    labels : int64 ndarray of shape (n,)
        Output: index of the nearest representative, ties to the lowest.
    workspace : _Workspace
    """
    d, n = columns.shape
    k = Z.shape[0]
    rows = min(n, _block_rows(k, _DIRECT_BLOCK_ENTRIES))
    z_columns = [Z[:, a, None] for a in range(d)]
    # Weight k - j marks representative j, so the largest weight among the
    # exact minima picks the lowest index.
    code_dtype = np.min_scalar_type(k)
    weights = (k - np.arange(k)).astype(code_dtype)[:, None]
    dist, term = workspace.get("dist", (k, rows)), workspace.get("term", (k, rows))
    is_min = workspace.get("is_min", (k, rows), bool)
    code = workspace.get("code", (k, rows), code_dtype)
    best = workspace.get("best", (rows,))
    top = workspace.get("top", (rows,), code_dtype)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        m = stop - start
        D, T, M, C = dist[:, :m], term[:, :m], is_min[:, :m], code[:, :m]
        b, t = best[:m], top[:m]
        np.subtract(columns[0, start:stop], z_columns[0], out=D)
        np.square(D, out=D)
        for a in range(1, d):
            np.subtract(columns[a, start:stop], z_columns[a], out=T)
            np.square(T, out=T)
            D += T
        np.minimum.reduce(D, axis=0, out=b)
        np.equal(D, b, out=M)
        np.multiply(M, weights, out=C)
        np.maximum.reduce(C, axis=0, out=t)
        np.subtract(k, t, out=labels[start:stop], dtype=np.int64)


def _row_batches(pair_counts, n_dims):
    """Split rows into consecutive batches of about a bounded number of pairs.

    A batch holds at most ``max_pairs + max(pair_counts)`` pairs.
    """
    max_pairs = max(1, _MAX_TEMP_ENTRIES // n_dims)
    first_pair = np.cumsum(pair_counts) - pair_counts
    batch_of_row = first_pair // max_pairs
    cuts = np.flatnonzero(np.diff(batch_of_row)) + 1
    bounds = np.concatenate(([0], cuts, [len(pair_counts)]))
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


def _nearest_among_candidates(X_rows, Z, candidates):
    """Exact nearest representative for a few rows, ties to the lowest index.

    Parameters
    ----------
    X_rows : ndarray of shape (m, d)
    Z : ndarray of shape (k, d), float64
    candidates : bool ndarray of shape (m, k)
        Representatives that may be the nearest; each row has at least one.

    Returns
    -------
    labels : int64 ndarray of shape (m,)
    """
    labels = np.empty(X_rows.shape[0], dtype=np.int64)
    pair_counts = candidates.sum(axis=1)
    # Whole rows per batch: all candidates of a row are then summed by the
    # same reduction, so equal squared differences give equal distances.
    for start, stop in _row_batches(pair_counts, X_rows.shape[1]):
        rows, cols = np.nonzero(candidates[start:stop])
        diff = np.asarray(X_rows[start + rows], dtype=np.float64) - Z[cols]
        np.square(diff, out=diff)
        dist = diff.sum(axis=1)
        # np.nonzero lists pairs row by row with increasing column, so the
        # first pair reaching the row minimum has the lowest index.
        row_starts = np.concatenate(([0], np.cumsum(pair_counts[start:stop])[:-1]))
        row_min = np.minimum.reduceat(dist, row_starts)
        is_min = np.flatnonzero(dist == row_min[rows])
        _, first = np.unique(rows[is_min], return_index=True)
        labels[start:stop] = cols[is_min[first]]
    return labels


def _nearest_by_product(X_ones, Z, x_norms, X_exact, Z_exact, labels, workspace):
    """Nearest representative via the expanded distance, ties checked exactly.

    Distances come from ||x||^2 - 2 x.z + ||z||^2 with one matrix product
    per block of rows (fast, but rounding can break exact ties). Rows whose
    two smallest distances are closer than a bound on that rounding error
    are decided again from the directly computed float64 distances
    ||x - z||^2 on ``X_exact`` and ``Z_exact``.

    Parameters
    ----------
    X_ones : ndarray of shape (n, d + 1), float32 or float64
        Data used for the matrix product (shifted to zero mean), with a
        last column of ones that makes the product add ||z_j||^2.
    Z : ndarray of shape (k, d), float64
        Representatives in the same coordinates as ``X_ones``.
    x_norms : ndarray of shape (n,)
        ||x_i|| of the rows of ``X``.
    X_exact, Z_exact : ndarray
        The same points and representatives in the caller's coordinates.
    labels : int64 ndarray of shape (n,)
        Output: index of the nearest representative, ties to the lowest.
    workspace : _Workspace
    """
    n, d = X_ones.shape[0], Z.shape[1]
    k = Z.shape[0]
    if k == 1:
        labels.fill(0)
        return
    dtype = X_ones.dtype
    Z_product = Z.astype(dtype)
    z_sq = np.einsum("ij,ij->i", Z_product, Z_product, dtype=np.float64)
    z_norm_max = np.sqrt(z_sq.max())
    # [x_i, 1] . [-2 z_j, ||z_j||^2] = ||x_i - z_j||^2 - ||x_i||^2: one
    # matrix product, no extra pass over the (rows, k) block. Scaling by -2
    # is exact in floating point.
    W = np.empty((d + 1, k), dtype=dtype)
    np.multiply(Z_product.T, -2, out=W[:d])
    W[d] = z_sq
    # With unit roundoff u = eps / 2, the rounding error of one expanded
    # distance is at most about (d + 4) u (||x|| + ||z||)^2: d + 1 terms of
    # the dot product, the cast of z, and the shift of x. Two distances are
    # compared, and the bound is doubled again as a margin.
    tol_scale = 2.0 * (d + 4) * np.finfo(dtype).eps
    rows = min(n, _block_rows(k, _PRODUCT_BLOCK_ENTRIES))
    block = workspace.get("products", (rows, k), dtype)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        D = block[: stop - start]
        np.matmul(X_ones[start:stop], W, out=D)
        index = np.arange(stop - start)
        nearest = D.argmin(axis=1)
        best = D[index, nearest]
        D[index, nearest] = np.inf
        runner_up = D.min(axis=1)
        tol = tol_scale * (x_norms[start:stop] + z_norm_max) ** 2
        unsure = np.flatnonzero(runner_up <= best + tol)
        if unsure.size:
            D[index, nearest] = best
            candidates = D[unsure] <= (best[unsure] + tol[unsure])[:, None]
            nearest[unsure] = _nearest_among_candidates(
                X_exact[start + unsure], Z_exact, candidates
            )
        labels[start:stop] = nearest


class _PreparedPoints:
    """Validated data, prepared once for many nearest-representative searches.

    In few dimensions the coordinates are stored as contiguous rows for the
    direct method. Otherwise the data are shifted to zero mean (the shift
    rounded to the dtype of X): the expanded form ||x||^2 - 2 x.z + ||z||^2
    loses accuracy for data far from the origin, and scikit-learn shifts its
    data for the same reason.

    Attributes
    ----------
    shift : ndarray of shape (d,)
        The (rounded) mean of the data, in float64.
    total_deviation : float
        sum_i ||x_i - shift||^2, in float64.
    """

    def __init__(self, X):
        self.X = X
        self.workspace = _Workspace()
        n, d = X.shape
        if d <= _DIRECT_MAX_DIM:
            self.columns = np.ascontiguousarray(X.T, dtype=np.float64)
            self.shift = self.columns.mean(axis=1)
            self.total_deviation = float(sum(
                np.square(column - mean).sum()
                for column, mean in zip(self.columns, self.shift)
            ))
        else:
            shift = X.mean(axis=0, dtype=np.float64).astype(X.dtype)
            self.shift = shift.astype(np.float64)
            self.centered_ones = np.empty((n, d + 1), dtype=X.dtype)
            np.subtract(X, shift, out=self.centered_ones[:, :d])
            self.centered_ones[:, d] = 1
            deviations = _squared_deviations(X, self.shift)
            self.total_deviation = float(deviations.sum())
            # For the rounding-error bound only, so the exact (unrounded)
            # shifted norms are as good as those of the stored values.
            self.centered_norms = np.sqrt(deviations)

    def nearest(self, Z, out=None):
        """Labels of the nearest rows of Z (float64, shape (k, d)).

        Written to ``out`` (int64, shape (n,)) when given.
        """
        labels = np.empty(self.X.shape[0], dtype=np.int64) if out is None else out
        if self.X.shape[1] <= _DIRECT_MAX_DIM:
            _nearest_direct(self.columns, Z, labels, self.workspace)
        else:
            _nearest_by_product(self.centered_ones, Z - self.shift, self.centered_norms,
                                self.X, Z, labels, self.workspace)
        return labels

    def group_sums(self, labels, k):
        """Per-group sums (float64) and sizes for labels in 0, ..., k-1."""
        return _group_sums(self.X, labels, k, getattr(self, "columns", None),
                           self.workspace)


def assign_clusters(X, Z):
    """Assignment step: give each data vector its nearest representative.

    Computes ``c_i = argmin_j ||x_i - z_j||`` for every data vector x_i.

    Parameters
    ----------
    X : array-like of shape (n, d)
        Data vectors x_i, one per row.
    Z : array-like of shape (k, d)
        Representatives z_j, one per row.

    Returns
    -------
    labels : ndarray of shape (n,), dtype int64
        ``labels[i]`` is c_i, the index of the nearest representative.
        Ties go to the lowest index.

    Notes
    -----
    In d <= 4 dimensions the distances ||x_i - z_j||^2 are computed
    directly in float64. In more dimensions they are first computed as
    ||x||^2 - 2 x.z + ||z||^2 with a matrix product (in float32 when X is
    float32, as scikit-learn does) on data shifted to zero mean; whenever
    the two smallest of these are within a bound on their rounding error,
    that point is decided again from ||x_i - z_j||^2 computed directly in
    float64. Either way ties are exact: a point exactly midway between two
    representatives, or a duplicated representative, goes to the lowest
    index.
    """
    X = _check_data(X, "X")
    Z = _check_representatives(Z, X.shape[1], "Z")
    return _PreparedPoints(X).nearest(Z)


# ---------------------------------------------------------------------------
# Update step and objective
# ---------------------------------------------------------------------------


def _one_hot_sums(X, labels, k, workspace):
    """Per-group sums of the rows of X via sparse one-hot products."""
    from scipy import sparse

    sums = np.zeros((k, X.shape[1]))
    rows = min(X.shape[0], _SUM_BLOCK_ROWS)
    # float64 copy of one block at a time: sums accumulate in double
    # precision without doubling the memory held by X.
    block64 = workspace.get("block64", (rows, X.shape[1]))
    for start in range(0, X.shape[0], rows):
        block_labels = labels[start:start + rows]
        size = block_labels.shape[0]
        indptr = np.zeros(k + 1, dtype=np.int64)
        np.cumsum(np.bincount(block_labels, minlength=k), out=indptr[1:])
        # Row j of the one-hot matrix lists the points of group j.
        one_hot = sparse.csr_array(
            (np.ones(size), np.argsort(block_labels, kind="stable"), indptr),
            shape=(k, size),
        )
        np.copyto(block64[:size], X[start:start + size])
        sums += one_hot @ block64[:size]
    return sums


def _group_sums(X, labels, k, columns=None, workspace=None):
    """Return (sums, counts): per-group sums of rows (k, d) and sizes (k,).

    Sums are accumulated in float64 whatever the dtype of X. ``columns``,
    if given, is X transposed to contiguous rows, which np.bincount reads
    faster than the strided columns of X.
    """
    counts = np.bincount(labels, minlength=k)
    if X.shape[1] > _BINCOUNT_MAX_DIM:
        if workspace is None:
            workspace = _Workspace()
        return _one_hot_sums(X, labels, k, workspace), counts
    if columns is None:
        columns = X.T
    sums = np.empty((k, X.shape[1]))
    for a in range(X.shape[1]):
        sums[:, a] = np.bincount(labels, weights=columns[a], minlength=k)
    return sums, counts


def _group_means(sums, counts, Z_prev):
    """Means of the non-empty groups; empty groups keep Z_prev."""
    Z = Z_prev.copy()
    nonempty = counts > 0
    Z[nonempty] = sums[nonempty] / counts[nonempty, None]
    return Z


def update_representatives(X, labels, Z_prev):
    """Update step: move each representative to the mean of its group.

    ``z_j = (1/|G_j|) * sum_{i in G_j} x_i``, where ``G_j = {i : c_i = j}``.

    Parameters
    ----------
    X : array-like of shape (n, d)
        Data vectors x_i.
    labels : array-like of shape (n,)
        Group assignments c_i in 0, ..., k-1.
    Z_prev : array-like of shape (k, d)
        Current representatives. An empty group keeps its representative
        (scikit-learn instead moves it to a far-away point).

    Returns
    -------
    Z : ndarray of shape (k, d), dtype float64
        New representatives. Means are accumulated in float64.
    """
    X = _check_data(X, "X")
    Z_prev = _check_representatives(Z_prev, X.shape[1], "Z_prev")
    labels = _check_labels(labels, X.shape[0], Z_prev.shape[0])
    sums, counts = _group_sums(X, labels, Z_prev.shape[0])
    return _group_means(sums, counts, Z_prev)


def clustering_objective(X, labels, Z):
    """The clustering objective J_clust, the mean squared distance.

    ``J_clust = (1/N) * sum_i ||x_i - z_{c_i}||^2``. Note that
    scikit-learn's ``inertia_`` is the sum, ``N * J_clust``.

    Parameters
    ----------
    X : array-like of shape (n, d)
        Data vectors x_i.
    labels : array-like of shape (n,)
        Group assignments c_i in 0, ..., k-1.
    Z : array-like of shape (k, d)
        Representatives z_j.

    Returns
    -------
    J_clust : float
    """
    X = _check_data(X, "X")
    Z = _check_representatives(Z, X.shape[1], "Z")
    labels = _check_labels(labels, X.shape[0], Z.shape[0])
    total = 0.0
    step = max(1, _MAX_TEMP_ENTRIES // X.shape[1])
    for start in range(0, X.shape[0], step):
        block = np.asarray(X[start:start + step], dtype=np.float64)
        diff = block - Z[labels[start:start + step]]
        total += np.einsum("ij,ij->", diff, diff)
    return float(total / X.shape[0])


# ---------------------------------------------------------------------------
# Lloyd's algorithm
# ---------------------------------------------------------------------------


def _run_lloyd(X, Z0, max_iter, on_iteration=None):
    """Lloyd's algorithm on validated inputs.

    Each iteration is one assignment step followed by one update step, as
    in scikit-learn. It stops after the first iteration whose assignment
    equals the previous one (the representatives then no longer move), or
    after ``max_iter`` iterations; in the latter case the points are
    assigned once more so that the labels match the final representatives.

    J_clust after an update step comes from per-group sums: for the mean
    z_j of group G_j, sum_{i in G_j} ||x_i - m||^2 = sum_{i in G_j}
    ||x_i - z_j||^2 + |G_j| ||z_j - m||^2 for any m, so with m (about) the
    data mean, N J_clust = sum_i ||x_i - m||^2 - sum_j |G_j| ||z_j - m||^2.
    That costs O(k d) per iteration instead of another pass over the data.

    Parameters
    ----------
    X : ndarray of shape (n, d), validated
    Z0 : ndarray of shape (k, d), float64, validated
    max_iter : int
    on_iteration : callable, optional
        Called as ``on_iteration(iteration, labels, Z, J_clust)`` after
        each update step. ``labels`` is overwritten later: copy it to keep it.

    Returns
    -------
    labels : ndarray of shape (n,)
    Z : ndarray of shape (k, d)
    J_history : list of float
    converged : bool
    """
    points = _PreparedPoints(X)
    n, k = X.shape[0], Z0.shape[0]
    Z = Z0
    # Two label arrays used in turn: the current and the previous assignment.
    labels, previous_labels = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    J_history = []
    converged = False
    for iteration in range(1, max_iter + 1):
        points.nearest(Z, out=labels)
        sums, counts = points.group_sums(labels, k)
        Z = _group_means(sums, counts, Z)
        offsets = Z - points.shift
        between = float(counts @ np.einsum("ij,ij->i", offsets, offsets))
        J = max(points.total_deviation - between, 0.0) / n
        J_history.append(J)
        converged = iteration > 1 and np.array_equal(labels, previous_labels)
        if on_iteration is not None:
            on_iteration(iteration, labels, Z, J)
        if converged:
            break
        labels, previous_labels = previous_labels, labels
    if not converged:
        labels = points.nearest(Z, out=labels)
    return labels, Z, J_history, converged


def lloyd_kmeans(X, Z0, max_iter=300):
    """Run Lloyd's k-means algorithm from given initial representatives.

    Each iteration assigns every x_i to its nearest representative and then
    moves every z_j to the mean of its group. The iteration is the same as
    scikit-learn's ``KMeans(n_clusters=k, init=Z0, n_init=1,
    algorithm="lloyd", tol=0)``, so both give the same labels and, up to
    rounding, the same representatives (as long as no group becomes
    empty; here an empty group keeps its representative).

    Parameters
    ----------
    X : array-like of shape (n, d)
        Data vectors x_i. float32 input keeps the distance computation in
        float32 (means are still accumulated in float64).
    Z0 : array-like of shape (k, d)
        Initial representatives z_j.
    max_iter : int, default=300
        Maximum number of iterations.

    Returns
    -------
    labels : ndarray of shape (n,), dtype int64
        Final assignment c_i, the nearest final representative (ties to
        the lowest index).
    Z : ndarray of shape (k, d), dtype float64
        Final representatives.
    J_history : list of float
        J_clust (mean squared distance) after the update step of each
        iteration; ``len(J_history)`` is the number of iterations run, like
        scikit-learn's ``n_iter_``. It never increases (up to rounding). It
        is computed from per-group sums and agrees with
        ``clustering_objective`` up to rounding.

    Notes
    -----
    The algorithm stops after the first iteration whose assignment equals
    the previous one, or after ``max_iter`` iterations. In the latter case
    the labels are recomputed for the final Z, so
    ``clustering_objective(X, labels, Z) <= J_history[-1]``.
    """
    X = _check_data(X, "X")
    Z0 = _check_representatives(Z0, X.shape[1], "Z0")
    max_iter = _check_int(max_iter, "max_iter", 1)
    labels, Z, J_history, _ = _run_lloyd(X, Z0, max_iter)
    return labels, Z, J_history


# ---------------------------------------------------------------------------
# Initialisation
# ---------------------------------------------------------------------------


def init_random_rows(X, k, random_state=None):
    """Choose k distinct rows of X at random as initial representatives.

    Parameters
    ----------
    X : array-like of shape (n, d)
        Data vectors x_i.
    k : int
        Number of groups, 1 <= k <= n.
    random_state : None, int, numpy.random.Generator or RandomState
        See :func:`check_random_state`.

    Returns
    -------
    Z0 : ndarray of shape (k, d), dtype float64
        Rows of X with k different indices (they may still be equal if X
        has repeated rows).
    """
    X = _check_data(X, "X")
    k = _check_int(k, "k", 1, X.shape[0], f"the number of points n={X.shape[0]}")
    rng = check_random_state(random_state)
    rows = rng.choice(X.shape[0], size=k, replace=False)
    return X[rows].astype(np.float64)


def _squared_distances_to(X, z):
    """||x_i - z||^2 for every row, computed directly in float64."""
    out = np.empty(X.shape[0])
    step = max(1, _MAX_TEMP_ENTRIES // X.shape[1])
    for start in range(0, X.shape[0], step):
        diff = np.asarray(X[start:start + step], dtype=np.float64) - z
        out[start:start + step] = np.einsum("ij,ij->i", diff, diff)
    return out


def init_kmeans_plusplus(X, k, random_state=None):
    """k-means++ seeding (Arthur & Vassilvitskii, 2007).

    The first representative is a uniformly random row of X. Each further
    one is a row x_i drawn with probability proportional to D(x_i)^2, the
    squared distance to the nearest representative chosen so far, which
    spreads the representatives over the data.

    Parameters
    ----------
    X : array-like of shape (n, d)
        Data vectors x_i.
    k : int
        Number of groups, 1 <= k <= n.
    random_state : None, int, numpy.random.Generator or RandomState
        See :func:`check_random_state`.

    Returns
    -------
    Z0 : ndarray of shape (k, d), dtype float64
        Rows of X with k different indices.

    Notes
    -----
    This is the plain D^2 sampling, one candidate per step; scikit-learn's
    ``init="k-means++"`` tries several candidates per step and keeps the
    best, so its picks differ for the same seed.
    """
    X = _check_data(X, "X")
    n = X.shape[0]
    k = _check_int(k, "k", 1, n, f"the number of points n={n}")
    rng = check_random_state(random_state)
    chosen = [int(rng.choice(n))]
    closest_sq = _squared_distances_to(X, X[chosen[0]])
    closest_sq[chosen[0]] = 0.0
    for _ in range(1, k):
        cumulative = np.cumsum(closest_sq)
        if cumulative[-1] > 0:
            # side="right" never lands on a point with zero weight.
            target = rng.random() * cumulative[-1]
            index = min(int(np.searchsorted(cumulative, target, side="right")), n - 1)
        else:
            # Every point coincides with a chosen one: pick an unused row.
            unused = np.setdiff1d(np.arange(n), chosen)
            index = int(rng.choice(unused))
        chosen.append(index)
        np.minimum(closest_sq, _squared_distances_to(X, X[index]), out=closest_sq)
        closest_sq[index] = 0.0
    return X[chosen].astype(np.float64)


# ---------------------------------------------------------------------------
# Synthetic data
# ---------------------------------------------------------------------------


def generate_blobs(
    n_points, n_clusters, points_range=(1.0, 20.0), std=1.0, random_state=None
):
    """Make 2-D points scattered around randomly placed centres.

    Parameters
    ----------
    n_points : int
        Number of points, at least ``n_clusters``.
    n_clusters : int
        Number of centres; points are split over them as evenly as possible.
    points_range : (float, float), default=(1.0, 20.0)
        Both coordinates of every centre are drawn uniformly from this range.
    std : float, default=1.0
        Standard deviation of the normal noise around each centre.
    random_state : None, int, numpy.random.Generator or RandomState
        See :func:`check_random_state`.

    Returns
    -------
    points : ndarray of shape (n_points, 2)
        Grouped by centre: the first points belong to centre 0, and so on.
    """
    n_points = _check_int(n_points, "n_points", 1)
    n_clusters = _check_int(
        n_clusters, "n_clusters", 1, n_points, f"n_points={n_points}"
    )
    low, high = (float(v) for v in points_range)
    if not (np.isfinite(low) and np.isfinite(high) and low <= high):
        raise ValueError(
            f"points_range must be (low, high) with low <= high; got {points_range}"
        )
    if not (np.isfinite(std) and std >= 0):
        raise ValueError(f"std must be a non-negative number; got {std}")
    rng = check_random_state(random_state)
    centres = rng.uniform(low, high, size=(n_clusters, 2))
    sizes = np.full(n_clusters, n_points // n_clusters)
    sizes[: n_points % n_clusters] += 1
    return np.repeat(centres, sizes, axis=0) + rng.normal(scale=std, size=(n_points, 2))


# ---------------------------------------------------------------------------
# Names kept from the original lab
# ---------------------------------------------------------------------------


def initializeCentroids(k, points, random_state=None):
    """Kept for older notebooks: ``init_random_rows(points, k, random_state)``."""
    return init_random_rows(points, k, random_state=random_state)


def assignPointsToClusters(centroids, points):
    """Kept for older notebooks: same as ``assign_clusters(points, centroids)``.

    Returns int64 labels (the original returned them as floats).
    """
    return assign_clusters(points, centroids)


def optimizeCentroids(centroids, points, clusters):
    """Kept for older notebooks: ``update_representatives(points, clusters,
    centroids)``.

    Unlike the original, an empty cluster keeps its centroid instead of
    becoming NaN.
    """
    return update_representatives(points, clusters, centroids)


def generateClusters(
    n_points, n_clusters, points_range=(1.0, 20.0), std=1, random_state=None
):
    """Kept for older notebooks: same as :func:`generate_blobs`."""
    return generate_blobs(n_points, n_clusters, points_range, std, random_state)


# ---------------------------------------------------------------------------
# Animation
# ---------------------------------------------------------------------------


class Frame(NamedTuple):
    """One picture of the animation.

    Attributes
    ----------
    step : str
        ``"initial"`` (initial representatives, points not yet assigned),
        ``"assignment"`` (points just reassigned, representatives not yet
        moved) or ``"update"`` (representatives just moved to the means).
    iteration : int
        0 for the initial frame, then 1, 2, ...
    labels : ndarray of shape (n,)
        Group of every point; -1 while unassigned.
    centroids : ndarray of shape (k, 2)
        Representatives shown.
    J_clust : float
        Mean squared distance for these labels and representatives
        (NaN in the initial frame).
    """

    step: str
    iteration: int
    labels: np.ndarray
    centroids: np.ndarray
    J_clust: float


class AnimationHTML(str):
    """HTML/JS animation that Jupyter shows exactly once.

    A ``str`` holding the HTML (also available as ``.data``, like
    ``IPython.display.HTML``). ``KmeansAnimate2D.animate_jupyter_nb`` shows
    it at once; when it is then also the last expression of the cell,
    Jupyter would show it a second time, which this class suppresses.
    """

    @property
    def data(self):
        return str(self)

    def _repr_html_(self):
        return str(self)

    def _ipython_display_(self):
        from IPython import get_ipython
        from IPython.display import HTML, display

        shell = get_ipython()
        cell = getattr(shell, "execution_count", None)
        if cell is not None and getattr(self, "_shown_in_cell", None) == cell:
            return
        self._shown_in_cell = cell
        display(HTML(str(self)))


_rendered_players = itertools.count()


def _stable_element_ids(html):
    """Replace matplotlib's random (uuid4) player id with a reproducible one.

    The same notebook run twice then gives byte-identical output, which lets
    the course check that its executed notebooks are up to date. The id mixes
    a hash of the frames with a per-process counter, so two players in one
    notebook still get different ids.
    """
    match = re.search(r"_anim_img([0-9a-f]{32})", html)
    if match is None:
        return html
    random_id = match.group(1)
    digest = hashlib.sha256(html.replace(random_id, "").encode())
    digest.update(str(next(_rendered_players)).encode())
    return html.replace(random_id, digest.hexdigest()[:32])


def _palette(k):
    """k fixed RGBA colours, one per group, plus grey for unassigned points."""
    from matplotlib import colormaps

    if k <= 10:
        colours = colormaps["tab10"](np.arange(k))
    elif k <= 20:
        colours = colormaps["tab20"](np.arange(k))
    else:
        colours = colormaps["turbo"](np.linspace(0.05, 0.95, k))
    grey = np.array([[0.6, 0.6, 0.6, 1.0]])
    return np.vstack([colours, grey])


def _backend_is_interactive():
    import matplotlib

    backend = matplotlib.get_backend().lower()
    try:
        from matplotlib.backends import BackendFilter, backend_registry

        return backend in backend_registry.list_builtin(BackendFilter.INTERACTIVE)
    except ImportError:  # matplotlib < 3.9
        return backend not in {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}


class KmeansAnimate2D:
    """Lloyd's k-means on 2-D data, recorded step by step for animation.

    The algorithm runs once, at construction; the animation methods only
    draw the recorded frames.

    Parameters
    ----------
    k : int
        Number of groups, 1 <= k <= n.
    data : ndarray or DataFrame of shape (n, 2)
        Data vectors x_i, one per row.
    startCentroids : array-like of shape (k, 2), optional
        Initial representatives. By default they are chosen by ``init``.
    columns : sequence of two str, optional
        Axis labels. Taken from a DataFrame's columns when omitted.
    labels : sequence of k str, optional
        Names of the groups, shown in a legend. ``lables`` (the original
        lab's spelling) is accepted too.
    random_state : None, int, numpy.random.Generator or RandomState
        Randomness of the initialisation; see :func:`check_random_state`.
    max_iter : int, default=100
        Maximum number of Lloyd iterations.
    init : {"random", "k-means++"}, default="random"
        How to choose initial representatives when ``startCentroids`` is
        not given: k distinct random data points, or k-means++ seeding.

    Attributes
    ----------
    labels_ : ndarray of shape (n,)
        Final group c_i of every point.
    centroids_ : ndarray of shape (k, 2)
        Final representatives z_j.
    initial_centroids_ : ndarray of shape (k, 2)
        Representatives the run started from.
    n_iter_ : int
        Number of iterations run (assignment + update each).
    converged_ : bool
        Whether the assignment stopped changing within ``max_iter``.
    J_history_ : list of float
        J_clust (mean squared distance) after each update step.
    frames_ : list of Frame
        ``1 + 2 * n_iter_`` frames: the initial representatives, then an
        assignment frame and an update frame per iteration.

    Examples
    --------
    >>> import KmeansAnimate2D as animate
    >>> data = animate.generate_blobs(300, 3, random_state=0)
    >>> run = animate.KmeansAnimate2D(k=3, data=data, random_state=0)
    >>> run.animate_jupyter_nb()          # doctest: +SKIP
    >>> run.saveGIF("kmeans.gif", fps=2)  # doctest: +SKIP
    """

    figsize = (6.0, 5.0)
    dpi = 80

    def __init__(
        self,
        k,
        data,
        startCentroids=None,
        columns=None,
        labels=None,
        random_state=None,
        max_iter=100,
        *,
        init="random",
        lables=None,
    ):
        self.points = self._check_points(data)
        n = self.points.shape[0]
        self.k = _check_int(k, "k", 1, n, f"the number of points n={n}")
        self.max_iter = _check_int(max_iter, "max_iter", 1)
        self.random_state = random_state
        check_random_state(random_state)  # fail early on a bad type
        if init not in ("random", "k-means++"):
            raise ValueError(f'init must be "random" or "k-means++"; got {init!r}')
        self.init = init
        if startCentroids is not None:
            startCentroids = _check_representatives(
                startCentroids, 2, "startCentroids", n_groups=self.k
            )
        self.startCentroids = startCentroids
        if columns is None and hasattr(data, "columns"):
            columns = list(data.columns)
        self.columns = self._check_names(columns, 2, "columns")
        if labels is not None and lables is not None:
            raise TypeError("give the group names as labels or lables, not both")
        self.cluster_labels = self._check_names(
            labels if labels is not None else lables, self.k, "labels"
        )
        self._run()

    # -- validation ---------------------------------------------------------

    @staticmethod
    def _check_points(data):
        # Only real arrays (or DataFrames and other objects convertible via
        # __array__): a nested list is more likely a mistake than 2-D data.
        if not (isinstance(data, np.ndarray) or hasattr(data, "__array__")):
            raise TypeError(
                "data must be a NumPy array (or DataFrame) of shape (n, 2); got "
                f"{type(data).__name__}; use np.asarray(data) to convert a list"
            )
        # A private copy: the frames must not change if the caller later
        # edits their array.
        return _check_data(data, "data", n_columns=2).copy()

    @staticmethod
    def _check_names(names, count, what):
        if names is None:
            return None
        if isinstance(names, (str, bytes)):
            raise TypeError(
                f"{what} must be a sequence of {count} names, not a single string"
            )
        names = [str(name) for name in names]
        if len(names) != count:
            raise ValueError(f"{what} must hold {count} names; got {len(names)}")
        return names

    # -- the run ------------------------------------------------------------

    def _initial_centroids(self):
        if self.startCentroids is not None:
            return self.startCentroids.copy()
        if self.init == "k-means++":
            return init_kmeans_plusplus(self.points, self.k, self.random_state)
        return init_random_rows(self.points, self.k, self.random_state)

    def _run(self):
        X = self.points
        Z0 = self._initial_centroids()
        unassigned = np.full(X.shape[0], -1, dtype=np.int64)
        frames = [Frame("initial", 0, unassigned, Z0, float("nan"))]

        def record(iteration, labels, Z, _):
            labels = labels.copy()  # the run reuses its label arrays
            # Exact objectives for the pictures; the run's own J_clust comes
            # from per-group sums and can differ in the last digits.
            Z_before = frames[-1].centroids
            frames.append(Frame("assignment", iteration, labels, Z_before,
                                clustering_objective(X, labels, Z_before)))
            frames.append(Frame("update", iteration, labels, Z,
                                clustering_objective(X, labels, Z)))

        labels, Z, _, converged = _run_lloyd(X, Z0, self.max_iter, record)
        self.initial_centroids_ = Z0
        self.labels_ = labels
        self.centroids_ = Z
        self.converged_ = converged
        self.frames_ = frames
        self.n_iter_ = frames[-1].iteration
        self.J_history_ = [frame.J_clust for frame in frames if frame.step == "update"]

    def __repr__(self):
        return (
            f"KmeansAnimate2D(k={self.k}, n={self.points.shape[0]}, "
            f"n_iter_={self.n_iter_}, converged_={self.converged_})"
        )

    # -- drawing ------------------------------------------------------------

    def _axis_limits(self):
        # Fixed for the whole animation: every point and every position a
        # representative takes, plus a 5% margin.
        every_z = np.vstack([frame.centroids for frame in self.frames_])
        everything = np.vstack([self.points, every_z])
        low, high = everything.min(axis=0), everything.max(axis=0)
        margin = 0.05 * np.where(high > low, high - low, 1.0)
        return low - margin, high + margin

    def _setup_axes(self, fig):
        """Draw the parts that never change; return the artists that do."""
        from matplotlib.lines import Line2D

        colours = _palette(self.k)
        ax = fig.add_subplot()
        low, high = self._axis_limits()
        ax.set_xlim(low[0], high[0])
        ax.set_ylim(low[1], high[1])
        if self.columns is not None:
            ax.set_xlabel(self.columns[0])
            ax.set_ylabel(self.columns[1])
        points = ax.scatter(self.points[:, 0], self.points[:, 1], s=18,
                            color=colours[-1], edgecolors="none", alpha=0.8)
        paths = [ax.plot([], [], "-", color=colours[j], linewidth=1.2, alpha=0.7)[0]
                 for j in range(self.k)]
        representatives = ax.scatter(
            self.frames_[0].centroids[:, 0], self.frames_[0].centroids[:, 1],
            s=200, marker="*", color=colours[: self.k], edgecolors="black",
            linewidths=1.2, zorder=3,
        )
        if self.cluster_labels is not None:
            handles = [Line2D([], [], linestyle="", marker="o", color=colours[j])
                       for j in range(self.k)]
            ax.legend(handles, self.cluster_labels, loc="upper left",
                      bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
            fig.subplots_adjust(left=0.12, right=0.72, top=0.86, bottom=0.11)
        else:
            fig.subplots_adjust(left=0.12, right=0.95, top=0.86, bottom=0.11)
        title = ax.set_title("")
        return {"points": points, "paths": paths, "representatives": representatives,
                "title": title, "colours": colours}

    def _title(self, index):
        frame = self.frames_[index]
        if frame.step == "initial":
            return f"k = {self.k}, iteration 0: initial representatives\n "
        last = self.converged_ and frame.iteration == self.n_iter_
        done = " (converged)" if last else ""
        return (f"k = {self.k}, iteration {frame.iteration}: {frame.step} step{done}\n"
                f"J_clust = {frame.J_clust:.4g}")

    def _draw_frame(self, index, artists):
        frame = self.frames_[index]
        colours = artists["colours"]
        # -1 (unassigned) indexes the grey row at the end of the palette.
        artists["points"].set_facecolor(colours[frame.labels])
        artists["representatives"].set_offsets(frame.centroids)
        # Path of each representative so far: its position after every
        # update step up to this frame.
        shown = [self.frames_[0].centroids] + [
            f.centroids for f in self.frames_[1:index + 1] if f.step == "update"]
        history = np.stack(shown)
        for j, path in enumerate(artists["paths"]):
            path.set_data(history[:, j, 0], history[:, j, 1])
        artists["title"].set_text(self._title(index))
        return [artists["points"], artists["representatives"], artists["title"],
                *artists["paths"]]

    def _make_animation(self, fig, interval, repeat):
        from matplotlib.animation import FuncAnimation

        artists = self._setup_axes(fig)
        return FuncAnimation(
            fig, self._draw_frame, frames=len(self.frames_), fargs=(artists,),
            init_func=lambda: self._draw_frame(0, artists),
            interval=interval, repeat=repeat, blit=False,
        )

    def _offscreen_figure(self):
        # A Figure with its own Agg canvas is never registered with pyplot:
        # Jupyter shows no stray static copy and nothing needs closing.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=self.figsize, dpi=self.dpi)
        FigureCanvasAgg(fig)
        return fig

    @staticmethod
    def _check_interval(interval):
        if not (isinstance(interval, numbers.Real) and interval > 0):
            raise ValueError(
                f"interval must be a positive number of milliseconds; got {interval!r}"
            )

    # -- public output --------------------------------------------------------

    def animate(self, interval=500, repeat=True, show=None):
        """Animate in a desktop window (Tk, Qt, macOS, ... backends).

        Parameters
        ----------
        interval : float, default=500
            Milliseconds between frames.
        repeat : bool, default=True
            Start again after the last frame.
        show : bool, optional
            Call ``plt.show()`` (which blocks until the window is closed).
            By default only when the matplotlib backend is interactive.

        Returns
        -------
        animation : matplotlib.animation.FuncAnimation
            Keep a reference while it plays. Its figure belongs to pyplot;
            close it with ``plt.close(animation._fig)`` when not shown.
            In Jupyter use :meth:`animate_jupyter_nb` instead.
        """
        import matplotlib.pyplot as plt

        self._check_interval(interval)
        fig = plt.figure(figsize=self.figsize)
        animation = self._make_animation(fig, interval, repeat)
        self._animObj = animation  # an unreferenced animation stops playing
        if show is None:
            show = _backend_is_interactive()
        if show:
            plt.show()
        return animation

    def to_jshtml(self, interval=500, default_mode="once"):
        """Render the animation as self-contained HTML with a JavaScript player.

        Parameters
        ----------
        interval : float, default=500
            Milliseconds between frames.
        default_mode : {"once", "loop", "reflect"}, default="once"
            What the player does after the last frame.

        Returns
        -------
        html : str
            One embedded PNG per frame; works in classic Notebook,
            JupyterLab and Colab.
        """
        self._check_interval(interval)
        if default_mode not in ("once", "loop", "reflect"):
            raise ValueError(
                f'default_mode must be "once", "loop" or "reflect"; got {default_mode!r}'
            )
        figure = self._offscreen_figure()
        animation = self._make_animation(figure, interval, repeat=False)
        return _stable_element_ids(animation.to_jshtml(default_mode=default_mode))

    def animate_jupyter_nb(self, interval=500, default_mode="once"):
        """Show the animation in Jupyter (Notebook, JupyterLab, Colab).

        Parameters
        ----------
        interval : float, default=500
            Milliseconds between frames.
        default_mode : {"once", "loop", "reflect"}, default="once"
            What the player does after the last frame.

        Returns
        -------
        html : AnimationHTML
            The HTML (a ``str`` with ``.data``). It is shown once, even when
            this call is the last line of the cell. Without IPython
            nothing is shown and the HTML is just returned.
        """
        html = AnimationHTML(self.to_jshtml(interval, default_mode))
        try:
            from IPython.display import display
        except ImportError:
            return html
        display(html)
        return html

    def saveGIF(self, filename, fps=2):
        """Write the animation as an animated GIF (with Pillow).

        Does not need :meth:`animate` first.

        Parameters
        ----------
        filename : str or path-like
            ".gif" is appended unless the name already ends with it (the
            original lab expected the name without extension).
        fps : float, default=2
            Frames per second.

        Returns
        -------
        path : str
            The file written.
        """
        from PIL import Image

        if not (isinstance(fps, numbers.Real) and fps > 0):
            raise ValueError(f"fps must be a positive number; got {fps!r}")
        path = os.fspath(filename)
        if not path.lower().endswith(".gif"):
            path += ".gif"
        fig = self._offscreen_figure()
        artists = self._setup_axes(fig)
        images = []
        for index in range(len(self.frames_)):
            self._draw_frame(index, artists)
            fig.canvas.draw()
            rgba = np.asarray(fig.canvas.buffer_rgba())
            images.append(Image.fromarray(rgba[:, :, :3].copy()))
        images[0].save(path, save_all=True, append_images=images[1:],
                       duration=int(round(1000 / fps)), loop=0)
        return path
