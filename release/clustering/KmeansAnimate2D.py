"""k-means clustering: Lloyd's algorithm, step by step.

Notation of Boyd & Vandenberghe, *Introduction to Applied Linear Algebra*,
chapter 4: data vectors x_1, ..., x_N (the rows of X, shape (N, d)), group
representatives z_1, ..., z_k (the rows of Z, shape (k, d)), and c_i, the
group of x_i (``labels[i]``, numbered 0, ..., k-1 as in Python). Read this
file from the top: the assignment step, the update step, the objective
J_clust and Lloyd's loop come first.

Also here: random and k-means++ initialisation, ``generate_blobs``, and the
names of the original lab. The animation (``KmeansAnimate2D``) lives in
``kmeans_animation.py``, the input checks in ``_kmeans_checks.py``, and the
speed-ups for big data (MNIST) in ``_kmeans_fast.py``; all of it can be
used from here: ``import KmeansAnimate2D as animate``.
"""

import numpy as np

import _kmeans_fast as _fast
from _kmeans_checks import check_data as _check_data, check_int as _check_int
from _kmeans_checks import check_labels as _check_labels, check_random_state
from _kmeans_checks import check_representatives as _check_representatives
from kmeans_animation import Animation2D, AnimationHTML, Frame

__all__ = [
    "assign_clusters", "update_representatives", "clustering_objective", "lloyd_kmeans",
    "init_random_rows", "init_kmeans_plusplus", "check_random_state", "generate_blobs",
    "KmeansAnimate2D", "Frame", "AnimationHTML",
    # names kept from the original lab
    "initializeCentroids", "assignPointsToClusters", "optimizeCentroids", "generateClusters",
]


# ---------------------------------------------------------------------------
# Step 1, assignment: every x_i goes to its nearest representative
# ---------------------------------------------------------------------------


def assign_clusters(X, Z):
    """Assignment step: give each data vector its nearest representative.

    ``c_i = argmin_j ||x_i - z_j||`` for every data vector x_i.

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
    The labels are those of distances computed in float64, also for
    float32 data. For big inputs (more than
    ``_kmeans_fast.PLAIN_MAX_ENTRIES`` differences) ``_kmeans_fast.nearest``
    computes the same labels in blocks of rows, in more than 4 dimensions
    from a matrix product as scikit-learn does, with near-ties decided
    again exactly.
    """
    X = _check_data(X, "X")
    Z = _check_representatives(Z, X.shape[1], "Z")
    n, d = X.shape
    k = Z.shape[0]
    if n * k * d > _fast.PLAIN_MAX_ENTRIES:
        return _fast.nearest(X, Z)  # same labels, without the (n, k, d) array below
    # differences[i, j] = x_i - z_j, all at once by broadcasting: (n, 1, d) - (1, k, d)
    differences = X.astype(np.float64)[:, np.newaxis, :] - Z[np.newaxis, :, :]
    squared_distances = np.sum(differences ** 2, axis=2)  # ||x_i - z_j||^2, shape (n, k)
    # argmin returns the first smallest entry: a tie goes to the lowest index.
    return np.argmin(squared_distances, axis=1).astype(np.int64)


# ---------------------------------------------------------------------------
# Step 2, update: every z_j moves to the mean of its group
# ---------------------------------------------------------------------------


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
    k = Z_prev.shape[0]
    labels = _check_labels(labels, X.shape[0], k)
    if X.size > _fast.PLAIN_MAX_ENTRIES:
        return _fast.group_means(X, labels, Z_prev)  # same means, summed faster
    sizes = np.bincount(labels, minlength=k)  # |G_j|
    sums = np.zeros((k, X.shape[1]))
    np.add.at(sums, labels, X)  # sums[labels[i]] += x_i for every i
    Z = Z_prev.copy()
    nonempty = sizes > 0
    Z[nonempty] = sums[nonempty] / sizes[nonempty, np.newaxis]
    return Z


# ---------------------------------------------------------------------------
# The objective J_clust
# ---------------------------------------------------------------------------


def clustering_objective(X, labels, Z):
    """The clustering objective J_clust, the mean squared distance.

    ``J_clust = (1/N) * sum_i ||x_i - z_{c_i}||^2``. scikit-learn's
    ``KMeans.inertia_`` is the sum, ``N * J_clust``.

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
    if X.size > _fast.PLAIN_MAX_ENTRIES:
        return _fast.objective(X, labels, Z)  # same sum, in blocks of rows
    differences = X.astype(np.float64) - Z[labels]  # row i: x_i - z_{c_i}
    # einsum("ij,ij->", D, D) is the sum of all squared entries of D.
    return float(np.einsum("ij,ij->", differences, differences) / X.shape[0])


# ---------------------------------------------------------------------------
# Lloyd's algorithm: alternate the two steps until nothing changes
# ---------------------------------------------------------------------------


def lloyd_kmeans(X, Z0, max_iter=300):
    """Run Lloyd's k-means algorithm from given initial representatives.

    Each iteration assigns every x_i to its nearest representative and then
    moves every z_j to the mean of its group; neither step can raise
    J_clust. The iteration is the same as scikit-learn's
    ``KMeans(n_clusters=k, init=Z0, n_init=1, algorithm="lloyd", tol=0)``,
    so both give the same labels and, up to rounding, the same
    representatives (as long as no group becomes empty; here an empty
    group keeps its representative).

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


def _run_lloyd(X, Z0, max_iter, on_iteration=None):
    """Lloyd's loop on checked inputs (for ``lloyd_kmeans`` and the animation).

    The two steps are those of ``assign_clusters`` and
    ``update_representatives`` with the same results, done by
    ``_kmeans_fast`` on data prepared once, so that MNIST-sized runs keep
    up with scikit-learn.

    Parameters
    ----------
    X : ndarray of shape (n, d), checked
    Z0 : ndarray of shape (k, d), float64, checked
    max_iter : int
    on_iteration : callable, optional
        Called as ``on_iteration(iteration, labels, Z, J_clust)`` after each
        update step.

    Returns
    -------
    labels, Z, J_history
        As for ``lloyd_kmeans``.
    converged : bool
        Whether the assignment stopped changing within ``max_iter``.
    """
    points = _fast.PreparedPoints(X)
    Z = Z0
    J_history = []
    previous_labels = None
    converged = False
    for iteration in range(1, max_iter + 1):
        labels = points.nearest(Z)  # step 1: c_i = nearest representative
        Z, J = points.update(labels, Z)  # step 2: z_j = mean of group j; J_clust
        J_history.append(J)
        converged = previous_labels is not None and np.array_equal(labels, previous_labels)
        if on_iteration is not None:
            on_iteration(iteration, labels, Z, J)
        if converged:  # same groups as before: Z will not move any more
            break
        previous_labels = labels
    if not converged:
        labels = points.nearest(Z)  # stopped by max_iter: groups of the final Z
    return labels, Z, J_history, converged


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
    closest_sq = _fast.squared_distances_to(X, X[chosen[0]])  # D(x_i)^2
    closest_sq[chosen[0]] = 0.0
    for _ in range(1, k):
        cumulative = np.cumsum(closest_sq)
        if cumulative[-1] > 0:
            # side="right" never lands on a point with zero weight.
            target = rng.random() * cumulative[-1]
            index = min(int(np.searchsorted(cumulative, target, side="right")), n - 1)
        else:
            # Every point coincides with a chosen one: pick an unused row.
            index = int(rng.choice(np.setdiff1d(np.arange(n), chosen)))
        chosen.append(index)
        np.minimum(closest_sq, _fast.squared_distances_to(X, X[index]), out=closest_sq)
        closest_sq[index] = 0.0
    return X[chosen].astype(np.float64)


# ---------------------------------------------------------------------------
# The animation: the algorithm above, recorded step by step
# ---------------------------------------------------------------------------


class KmeansAnimate2D(Animation2D):
    """Lloyd's k-means on 2-D data, recorded step by step for animation.

    The constructor checks the input and picks the initial representatives
    (so ``random_state`` is used at once). The algorithm runs in
    :meth:`run`, which is called by itself the first time a result
    (``labels_``, ``frames_``, ...) or a picture is needed.

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
        Randomness of the initialisation; see ``check_random_state``.
    max_iter : int, default=100
        Maximum number of Lloyd iterations.
    init : {"random", "k-means++"}, default="random"
        How to choose initial representatives when ``startCentroids`` is
        not given: k distinct random data points, or k-means++ seeding.

    Attributes
    ----------
    initial_centroids_ : ndarray of shape (k, 2)
        Representatives the run starts from.
    labels_ : ndarray of shape (n,)
        Final group c_i of every point.
    centroids_ : ndarray of shape (k, 2)
        Final representatives z_j.
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

    # The attributes that run() sets.
    _RESULTS = frozenset({"labels_", "centroids_", "n_iter_", "converged_", "J_history_", "frames_"})

    def __init__(self, k, data, startCentroids=None, columns=None, labels=None,
                 random_state=None, max_iter=100, *, init="random", lables=None):
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
            startCentroids = _check_representatives(startCentroids, 2, "startCentroids", n_groups=self.k)
        self.startCentroids = startCentroids
        if columns is None and hasattr(data, "columns"):
            columns = list(data.columns)
        self.columns = self._check_names(columns, 2, "columns")
        if labels is not None and lables is not None:
            raise TypeError("give the group names as labels or lables, not both")
        self.cluster_labels = self._check_names(labels if labels is not None else lables, self.k, "labels")
        self.initial_centroids_ = self._initial_centroids()

    # -- the run ----------------------------------------------------------------

    def _initial_centroids(self):
        if self.startCentroids is not None:
            return self.startCentroids.copy()
        if self.init == "k-means++":
            return init_kmeans_plusplus(self.points, self.k, self.random_state)
        return init_random_rows(self.points, self.k, self.random_state)

    def run(self):
        """Run Lloyd's algorithm and record every step as a :class:`Frame`.

        Called by itself the first time a result or a picture is needed;
        calling it again gives the same results.

        Returns
        -------
        self : KmeansAnimate2D
        """
        X, Z0 = self.points, self.initial_centroids_
        unassigned = np.full(X.shape[0], -1, dtype=np.int64)
        frames = [Frame("initial", 0, unassigned, Z0, float("nan"))]

        def record(iteration, labels, Z, _):
            # Exact objectives for the pictures; the run's own J_clust comes
            # from per-group sums and can differ in the last digits.
            labels = labels.copy()
            Z_before = frames[-1].centroids
            frames.append(Frame("assignment", iteration, labels, Z_before,
                                clustering_objective(X, labels, Z_before)))
            frames.append(Frame("update", iteration, labels, Z, clustering_objective(X, labels, Z)))

        labels, Z, _, converged = _run_lloyd(X, Z0, self.max_iter, record)
        self.labels_ = labels
        self.centroids_ = Z
        self.converged_ = converged
        self.frames_ = frames
        self.n_iter_ = frames[-1].iteration
        self.J_history_ = [frame.J_clust for frame in frames if frame.step == "update"]
        return self

    def __getattr__(self, name):
        # Python calls this only for attributes that are not set: the
        # results of run() before it has run.
        if name in KmeansAnimate2D._RESULTS and "initial_centroids_" in self.__dict__:
            self.run()
            return self.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self):
        if "frames_" not in self.__dict__:
            return f"KmeansAnimate2D(k={self.k}, n={self.points.shape[0]}, not run yet)"
        return (f"KmeansAnimate2D(k={self.k}, n={self.points.shape[0]}, "
                f"n_iter_={self.n_iter_}, converged_={self.converged_})")


# ---------------------------------------------------------------------------
# Synthetic data
# ---------------------------------------------------------------------------


def generate_blobs(n_points, n_clusters, points_range=(1.0, 20.0), std=1.0, random_state=None):
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
    n_clusters = _check_int(n_clusters, "n_clusters", 1, n_points, f"n_points={n_points}")
    low, high = (float(v) for v in points_range)
    if not (np.isfinite(low) and np.isfinite(high) and low <= high):
        raise ValueError(f"points_range must be (low, high) with low <= high; got {points_range}")
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
    """Kept for older notebooks: ``update_representatives(points, clusters, centroids)``.

    Unlike the original, an empty cluster keeps its centroid instead of
    becoming NaN.
    """
    return update_representatives(points, clusters, centroids)


def generateClusters(n_points, n_clusters, points_range=(1.0, 20.0), std=1, random_state=None):
    """Kept for older notebooks: same as :func:`generate_blobs`."""
    return generate_blobs(n_points, n_clusters, points_range, std, random_state)
