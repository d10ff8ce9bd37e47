"""Fast paths of the k-means helper: the same results, less time and memory.

``KmeansAnimate2D.py`` shows the two steps of k-means with the plain NumPy
formulas a student would write. Those formulas build temporary arrays such
as all n * k * d differences x_i - z_j, which is fine for the lab's 300
points but not for 60,000 MNIST images with k = 256 (12 billion numbers).
This module computes the same things block by block, with the tricks that
keep one Lloyd iteration within 1.5x of scikit-learn's
(``bench/bench_helper.py`` measures it):

- distances in few dimensions computed coordinate by coordinate in blocks
  that fit a core's cache; in more dimensions, with one matrix product
  ||x||^2 - 2 x.z + ||z||^2 per block (as scikit-learn does), plus a bound
  on its rounding error: a point whose two nearest representatives are
  closer than that bound is decided again from ||x - z||^2 computed
  directly, so ties still go to the lowest index;
- group sums with ``np.bincount`` per coordinate, or, in many dimensions,
  with a sparse one-hot matrix product;
- in many dimensions, blocks of rows handled by as many threads as BLAS
  may use, each calling a one-thread BLAS (as scikit-learn does): an idle
  multi-threaded BLAS keeps spinning after each product and slows whatever
  runs next. Blocks are fixed by the data's size alone and their sums are
  added in order, so the results do not depend on the number of threads;
- J_clust after an update step from the group sums alone (no extra pass
  over the data);
- scratch arrays reused between iterations.

The results are the same as those of the plain formulas: the same labels
(exact ties included) and, up to ``PLAIN_MAX_ENTRIES`` numbers, the very same
floating-point sums, so the readable functions in ``KmeansAnimate2D.py``
use the plain formulas up to that size and this module beyond it.

Everything here takes arrays already checked by ``_kmeans_checks.py``:
data ``X`` of shape (n, d), float32 or float64, C-contiguous; ``Z`` float64
of shape (k, d); labels int64 of shape (n,).
"""

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import numpy as np

try:  # installed with scikit-learn; without it BLAS keeps its own threads
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover
    ThreadpoolController = None

# Up to this many dimensions, distances are computed directly as
# sum_a (x_ia - z_ja)^2, which is exact and, with so few terms, as fast as
# the matrix-product form used in more dimensions.
DIRECT_MAX_DIM = 4

# Target number of entries in the (rows, k) blocks of distances: small
# enough to stay in a core's cache, large enough that Python overhead per
# block does not matter.
DIRECT_BLOCK_ENTRIES = 1 << 16
PRODUCT_BLOCK_ENTRIES = 1 << 20
MAX_BLOCK_ROWS = 8192

# Up to this many dimensions, per-dimension np.bincount is the fastest way
# to sum the points of each group; above it a sparse one-hot product wins.
BINCOUNT_MAX_DIM = 32

# Rows per block when summing groups with a sparse one-hot product; about
# 1000 rows keeps the float64 copy of a block in cache.
SUM_BLOCK_ROWS = 1024

# Rows per part of the data whose group sums are computed on their own (by
# one thread) and then added in order.
SUM_PART_ROWS = 8 * SUM_BLOCK_ROWS

# Bound on the number of float64 entries in other temporary arrays.
MAX_TEMP_ENTRIES = 1 << 18

# The readable functions of KmeansAnimate2D.py use their plain formulas
# while the numbers involved (n * k * d for distances, n * d otherwise)
# stay below this, and call this module above it. Below it the results are
# identical to this module's, to the last bit: the distances are summed in
# the same order, a single block is used for J_clust, and in more than
# BINCOUNT_MAX_DIM dimensions at most SUM_BLOCK_ROWS points are summed, one
# block, in the order np.add.at uses.
PLAIN_MAX_ENTRIES = SUM_BLOCK_ROWS * (BINCOUNT_MAX_DIM + 1)


def threads_allowed():
    """Threads the fast paths may use: the limit set for OpenMP or BLAS, else the usable cores."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Lanes:
    """Numbered tasks run in up to ``threads`` threads, each with its own Workspace.

    Task i runs in lane i % threads; a lane runs its tasks in order. With
    more than one lane, BLAS is held to one thread meanwhile.
    """

    def __init__(self, threads=None):
        self.threads = max(1, threads or threads_allowed())
        self.workspaces = [Workspace() for _ in range(self.threads)]
        self._blas = ThreadpoolController() if self.threads > 1 and ThreadpoolController else None

    def run(self, count, task):
        """``[task(i, workspace) for i in range(count)]``, spread over the lanes."""
        lanes = min(self.threads, count)
        if lanes <= 1:
            return [task(i, self.workspaces[0]) for i in range(count)]

        def lane(first):
            return {i: task(i, self.workspaces[first]) for i in range(first, count, lanes)}

        limit = self._blas.limit(limits=1, user_api="blas") if self._blas else nullcontext()
        with limit, ThreadPoolExecutor(lanes) as pool:
            done = {}
            for results in pool.map(lane, range(lanes)):
                done.update(results)
        return [done[i] for i in range(count)]


def _block_rows(k, entries):
    """Rows per block so that a (rows, k) block holds about ``entries``."""
    return int(min(MAX_BLOCK_ROWS, max(64, entries // k)))


class Workspace:
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


# ---------------------------------------------------------------------------
# Assignment step
# ---------------------------------------------------------------------------


def squared_distances_to(X, z):
    """||x_i - z||^2 for every row of X, computed directly in float64, in blocks."""
    out = np.empty(X.shape[0])
    step = max(1, MAX_TEMP_ENTRIES // X.shape[1])
    for start in range(0, X.shape[0], step):
        diff = np.asarray(X[start:start + step], dtype=np.float64) - z
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
    workspace : Workspace
    """
    d, n = columns.shape
    k = Z.shape[0]
    rows = min(n, _block_rows(k, DIRECT_BLOCK_ENTRIES))
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
        # Summed coordinate by coordinate, in the order np.sum uses for
        # fewer than 8 terms, so the plain formula gives the same bits.
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
    max_pairs = max(1, MAX_TEMP_ENTRIES // n_dims)
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


def _nearest_by_product(X_ones, Z, x_norms, X_exact, Z_exact, labels, lanes):
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
    lanes : Lanes
        Blocks of rows are shared out among its threads.
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
    rows = min(n, _block_rows(k, PRODUCT_BLOCK_ENTRIES))

    def block(number, workspace):
        start = number * rows
        stop = min(n, start + rows)
        D = workspace.get("products", (rows, k), dtype)[: stop - start]
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
            nearest[unsure] = _nearest_among_candidates(X_exact[start + unsure], Z_exact, candidates)
        labels[start:stop] = nearest

    lanes.run(-(-n // rows), block)


# ---------------------------------------------------------------------------
# Update step
# ---------------------------------------------------------------------------


def _one_hot_sums(X, labels, k, workspace):
    """Per-group sums of the rows of X via sparse one-hot products, block by block."""
    from scipy import sparse

    sums = np.zeros((k, X.shape[1]))
    rows = min(X.shape[0], SUM_BLOCK_ROWS)
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


def _one_hot_sums_in_parts(X, labels, k, lanes):
    """``_one_hot_sums`` on parts of SUM_PART_ROWS rows, shared out among ``lanes``; added in order."""
    def part(number, workspace):
        start = number * SUM_PART_ROWS
        return _one_hot_sums(X[start:start + SUM_PART_ROWS], labels[start:start + SUM_PART_ROWS], k, workspace)

    parts = lanes.run(-(-X.shape[0] // SUM_PART_ROWS), part)
    sums = parts[0]
    for other in parts[1:]:
        sums += other
    return sums


def group_sums(X, labels, k, columns=None, lanes=None):
    """Per-group sums and sizes.

    Parameters
    ----------
    X : ndarray of shape (n, d)
    labels : int64 ndarray of shape (n,), values in 0, ..., k-1
    k : int
    columns : ndarray of shape (d, n), optional
        X transposed to contiguous rows, which np.bincount reads faster
        than the strided columns of X.
    lanes : Lanes, optional
        Threads for many dimensions (default: a new one).

    Returns
    -------
    sums : ndarray of shape (k, d), float64
        sum_{i in G_j} x_i, accumulated in float64 whatever the dtype of X.
    counts : int64 ndarray of shape (k,)
        |G_j|.
    """
    counts = np.bincount(labels, minlength=k)
    if X.shape[1] > BINCOUNT_MAX_DIM:
        return _one_hot_sums_in_parts(X, labels, k, lanes or Lanes()), counts
    if columns is None:
        columns = X.T
    sums = np.empty((k, X.shape[1]))
    for a in range(X.shape[1]):
        sums[:, a] = np.bincount(labels, weights=columns[a], minlength=k)
    return sums, counts


def means_or_previous(sums, counts, Z_prev):
    """Group means sums / counts; an empty group keeps its row of Z_prev."""
    Z = Z_prev.copy()
    nonempty = counts > 0
    Z[nonempty] = sums[nonempty] / counts[nonempty, None]
    return Z


def group_means(X, labels, Z_prev):
    """``update_representatives`` for big inputs (same result)."""
    sums, counts = group_sums(X, labels, Z_prev.shape[0])
    return means_or_previous(sums, counts, Z_prev)


# ---------------------------------------------------------------------------
# J_clust
# ---------------------------------------------------------------------------


def objective(X, labels, Z):
    """``clustering_objective`` for big inputs, in blocks of rows (same result)."""
    total = 0.0
    step = max(1, MAX_TEMP_ENTRIES // X.shape[1])
    for start in range(0, X.shape[0], step):
        block = np.asarray(X[start:start + step], dtype=np.float64)
        diff = block - Z[labels[start:start + step]]
        total += np.einsum("ij,ij->", diff, diff)
    return float(total / X.shape[0])


# ---------------------------------------------------------------------------
# The data, prepared once for many Lloyd iterations
# ---------------------------------------------------------------------------


class PreparedPoints:
    """Checked data, prepared once for the many steps of Lloyd's algorithm.

    In few dimensions the coordinates are stored as contiguous rows for the
    direct method. Otherwise the data are shifted to zero mean (the shift
    rounded to the dtype of X): the expanded form ||x||^2 - 2 x.z + ||z||^2
    loses accuracy for data far from the origin, and scikit-learn shifts its
    data for the same reason.

    Parameters
    ----------
    X : ndarray of shape (n, d), float32 or float64, checked
    threads : int, optional
        Threads for many dimensions (default: ``threads_allowed()``); the
        results are the same for any number.

    Attributes
    ----------
    shift : ndarray of shape (d,)
        The (rounded) mean of the data, in float64.
    total_deviation : float
        sum_i ||x_i - shift||^2, in float64.
    """

    def __init__(self, X, threads=None):
        self.X = X
        self.lanes = Lanes(threads)
        self.workspace = self.lanes.workspaces[0]
        n, d = X.shape
        if d <= DIRECT_MAX_DIM:
            self.columns = np.ascontiguousarray(X.T, dtype=np.float64)
            self.shift = self.columns.mean(axis=1)
            self.total_deviation = float(sum(
                np.square(column - mean).sum() for column, mean in zip(self.columns, self.shift)
            ))
        else:
            self.columns = None
            shift = X.mean(axis=0, dtype=np.float64).astype(X.dtype)
            self.shift = shift.astype(np.float64)
            self.centered_ones = np.empty((n, d + 1), dtype=X.dtype)
            np.subtract(X, shift, out=self.centered_ones[:, :d])
            self.centered_ones[:, d] = 1
            deviations = squared_distances_to(X, self.shift)
            self.total_deviation = float(deviations.sum())
            # For the rounding-error bound only, so the exact (unrounded)
            # shifted norms are as good as those of the stored values.
            self.centered_norms = np.sqrt(deviations)

    def nearest(self, Z, out=None):
        """Assignment step: index of the nearest row of Z for every point.

        Parameters
        ----------
        Z : ndarray of shape (k, d), float64
        out : int64 ndarray of shape (n,), optional
            Written to and returned when given.

        Returns
        -------
        labels : int64 ndarray of shape (n,)
            Ties go to the lowest index.
        """
        labels = np.empty(self.X.shape[0], dtype=np.int64) if out is None else out
        if self.columns is not None:
            # In two dimensions the blocks are too small for threads to pay.
            _nearest_direct(self.columns, Z, labels, self.workspace)
        else:
            _nearest_by_product(self.centered_ones, Z - self.shift, self.centered_norms,
                                self.X, Z, labels, self.lanes)
        return labels

    def update(self, labels, Z_prev):
        """Update step, and J_clust for its result.

        J_clust comes from per-group sums: for the mean z_j of group G_j,
        sum_{i in G_j} ||x_i - m||^2 = sum_{i in G_j} ||x_i - z_j||^2
        + |G_j| ||z_j - m||^2 for any m, so with m (about) the data mean,
        N J_clust = sum_i ||x_i - m||^2 - sum_j |G_j| ||z_j - m||^2. That
        costs O(k d) instead of another pass over the data, and agrees with
        ``clustering_objective`` up to rounding.

        Parameters
        ----------
        labels : int64 ndarray of shape (n,)
        Z_prev : ndarray of shape (k, d), float64

        Returns
        -------
        Z : ndarray of shape (k, d), float64
            Group means; an empty group keeps its row of ``Z_prev``.
        J_clust : float
        """
        sums, counts = group_sums(self.X, labels, Z_prev.shape[0], self.columns, self.lanes)
        Z = means_or_previous(sums, counts, Z_prev)
        offsets = Z - self.shift
        between = float(counts @ np.einsum("ij,ij->i", offsets, offsets))
        return Z, max(self.total_deviation - between, 0.0) / self.X.shape[0]


def nearest(X, Z):
    """``assign_clusters`` for big inputs (same labels)."""
    return PreparedPoints(X).nearest(Z)
