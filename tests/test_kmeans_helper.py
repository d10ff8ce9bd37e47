"""Tests for KmeansAnimate2D.py (k-means helpers) and kmeans_animation.py (the 2-D animation)."""

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

os.environ["MPLBACKEND"] = "Agg"  # headless, before pyplot is imported

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kmeans_animation  # noqa: E402
import KmeansAnimate2D as km  # noqa: E402  (the repository root is on pytest's pythonpath)

pytestmark = pytest.mark.timeout(120)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def blobs(n, d, n_centres, seed, spread=10.0, dtype=np.float64):
    """Gaussian blobs around random centres (groups of unequal size)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-spread, spread, size=(n_centres, d))
    return (centres[rng.integers(n_centres, size=n)] + rng.normal(size=(n, d))).astype(dtype)


def brute_force_labels(X, Z):
    """Nearest representative by explicit distances, first index on ties."""
    X = np.asarray(X, dtype=np.float64)
    Z = np.asarray(Z, dtype=np.float64)
    dist = ((X[:, None, :] - Z[None, :, :]) ** 2).sum(axis=2)
    return dist.argmin(axis=1)


def assert_no_group_empties(X, Z0, max_iter=300):
    """scikit-learn moves an emptied group's representative elsewhere, where
    ours keeps it; comparisons are only meaningful without empty groups."""
    sizes = []
    km._run_lloyd(km._check_data(X), np.asarray(Z0, dtype=np.float64), max_iter,
                  lambda it, labels, Z, J: sizes.append(np.bincount(labels, minlength=len(Z0))))
    assert np.min(sizes) > 0, "test data set up badly: a group became empty"


def sklearn_lloyd(X, Z0, max_iter=300):
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=Z0.shape[0], init=Z0, n_init=1, algorithm="lloyd",
                   max_iter=max_iter, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X)


@pytest.fixture
def no_open_figures():
    """Fail if a test leaves a pyplot figure open."""
    plt.close("all")
    yield
    open_figures = plt.get_fignums()
    plt.close("all")
    assert open_figures == []


@pytest.fixture(scope="module")
def small_run():
    """A 2-D run with a poor start, so that it takes several iterations."""
    data = km.generate_blobs(120, 3, random_state=3)
    start = data[:3]  # all three from the first blob
    return km.KmeansAnimate2D(k=3, data=data, startCentroids=start)


# ---------------------------------------------------------------------------
# agreement with scikit-learn
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, d, k, seed",
    [(300, 2, 3, 0), (500, 2, 5, 1), (800, 3, 4, 2), (600, 10, 6, 3),
     (400, 50, 4, 4), (2000, 2, 8, 5), (1500, 64, 10, 7)],
)
def test_lloyd_matches_sklearn(n, d, k, seed):
    X = blobs(n, d, k, seed)
    Z0 = km.init_random_rows(X, k, random_state=seed)
    assert_no_group_empties(X, Z0)
    labels, Z, J_history = km.lloyd_kmeans(X, Z0)
    model = sklearn_lloyd(X, Z0)
    np.testing.assert_array_equal(labels, model.labels_)
    np.testing.assert_allclose(Z, model.cluster_centers_, rtol=1e-10, atol=1e-10)
    assert len(J_history) == model.n_iter_
    # J_clust is the mean squared distance; inertia_ is the sum.
    assert J_history[-1] == pytest.approx(model.inertia_ / n, rel=1e-10)


def test_lloyd_matches_sklearn_float32():
    X = blobs(3000, 20, 6, seed=7, dtype=np.float32)
    Z0 = km.init_random_rows(X, 6, random_state=7)
    assert_no_group_empties(X, Z0)
    labels, Z, J_history = km.lloyd_kmeans(X, Z0)
    model = sklearn_lloyd(X, Z0)
    np.testing.assert_array_equal(labels, model.labels_)
    np.testing.assert_allclose(Z, model.cluster_centers_, rtol=1e-4, atol=1e-4)
    assert len(J_history) == model.n_iter_


def test_lloyd_matches_sklearn_when_stopped_by_max_iter():
    X = np.random.default_rng(8).normal(size=(2000, 2))  # converges slowly
    Z0 = km.init_random_rows(X, 7, random_state=8)
    assert_no_group_empties(X, Z0, max_iter=3)
    labels, Z, J_history = km.lloyd_kmeans(X, Z0, max_iter=3)
    model = sklearn_lloyd(X, Z0, max_iter=3)
    assert len(J_history) == 3 == model.n_iter_
    np.testing.assert_array_equal(labels, model.labels_)
    np.testing.assert_allclose(Z, model.cluster_centers_, rtol=1e-10, atol=1e-10)
    # labels are reassigned to the final Z, which can only lower J_clust
    np.testing.assert_array_equal(labels, km.assign_clusters(X, Z))
    assert km.clustering_objective(X, labels, Z) <= J_history[-1] + 1e-12


def test_objective_matches_sklearn_inertia_over_n():
    X = blobs(500, 4, 3, seed=9)
    Z0 = km.init_random_rows(X, 3, random_state=9)
    model = sklearn_lloyd(X, Z0)
    J = km.clustering_objective(X, model.labels_, model.cluster_centers_)
    assert J == pytest.approx(model.inertia_ / X.shape[0], rel=1e-10)


# ---------------------------------------------------------------------------
# Lloyd's algorithm
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("d", [2, 7])
def test_J_never_increases(d):
    X = np.random.default_rng(10).normal(size=(3000, d))
    Z0 = km.init_random_rows(X, 9, random_state=10)
    _, _, J_history = km.lloyd_kmeans(X, Z0)
    J = np.asarray(J_history)
    assert len(J) > 3
    assert np.all(np.diff(J) <= 1e-12 * J[0])


def test_J_history_agrees_with_objective():
    X = blobs(1000, 3, 4, seed=11)
    Z0 = km.init_random_rows(X, 4, random_state=11)
    labels, Z, J_history = km.lloyd_kmeans(X, Z0)
    assert J_history[-1] == pytest.approx(km.clustering_objective(X, labels, Z), rel=1e-12)
    assert J_history[-1] == J_history[-2]  # the last iteration changes nothing


def test_lloyd_is_a_fixed_point_at_convergence():
    X = blobs(700, 5, 3, seed=12)
    labels, Z, _ = km.lloyd_kmeans(X, km.init_random_rows(X, 3, random_state=12))
    np.testing.assert_array_equal(km.assign_clusters(X, Z), labels)
    np.testing.assert_allclose(km.update_representatives(X, labels, Z), Z, rtol=1e-12, atol=1e-12)


def test_lloyd_keeps_an_empty_group():
    X = blobs(200, 2, 2, seed=13)
    far = np.array([1e3, 1e3])
    Z0 = np.vstack([X[0], X[1], far])
    labels, Z, J_history = km.lloyd_kmeans(X, Z0)
    assert not np.isnan(Z).any()
    assert 2 not in labels
    np.testing.assert_array_equal(Z[2], far)
    assert np.all(np.diff(J_history) <= 1e-12 * J_history[0])


def test_lloyd_with_one_group_gives_the_mean():
    X = blobs(100, 3, 2, seed=14)
    labels, Z, J_history = km.lloyd_kmeans(X, X[:1])
    np.testing.assert_array_equal(labels, 0)
    np.testing.assert_allclose(Z[0], X.mean(axis=0))
    assert len(J_history) == 2
    assert J_history[-1] == pytest.approx(((X - X.mean(axis=0)) ** 2).sum(axis=1).mean())


def test_lloyd_breaks_ties_to_the_lowest_index():
    X = np.array([[-1.0], [0.0], [1.0]])  # 0 is midway between the two starts
    labels, Z, _ = km.lloyd_kmeans(X, np.array([[1.0], [-1.0]]))
    np.testing.assert_array_equal(labels, [1, 0, 0])
    np.testing.assert_allclose(Z, [[0.5], [-1.0]])


def test_lloyd_accepts_lists():
    labels, Z, J = km.lloyd_kmeans([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0]], [[0.0, 0.0], [5.0, 5.0]])
    np.testing.assert_array_equal(labels, [0, 0, 1])
    assert labels.dtype == np.int64 and Z.dtype == np.float64


# ---------------------------------------------------------------------------
# assignment step
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, d, k", [(500, 1, 3), (1000, 2, 8), (300, 2, 400), (2000, 4, 5), (1500, 5, 3),
                (700, 40, 17), (20000, 3, 2)],
)
def test_assign_matches_brute_force(n, d, k):
    rng = np.random.default_rng(n + d + k)
    X = rng.normal(size=(n, d))
    Z = rng.normal(size=(k, d))
    labels = km.assign_clusters(X, Z)
    assert labels.dtype == np.int64 and labels.shape == (n,)
    np.testing.assert_array_equal(labels, brute_force_labels(X, Z))


@pytest.mark.parametrize("d", [2, 8])
@pytest.mark.parametrize("offset", [0.0, 1e6])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_assign_midway_points_go_to_the_lowest_index(d, offset, dtype):
    a = np.zeros(d)
    b = np.zeros(d)
    b[0] = 2.0
    midway = np.zeros(d)
    midway[0] = 1.0
    X = (np.vstack([midway, midway + 0.5 * np.eye(d)[1], a, b]) + offset).astype(dtype)
    for Z in (np.vstack([a, b]), np.vstack([b, a])):
        labels = km.assign_clusters(X, Z + offset)
        assert labels[0] == 0 and labels[1] == 0  # exact ties
        np.testing.assert_array_equal(labels[2:], brute_force_labels(X[2:] - offset, Z)[:])


@pytest.mark.parametrize("d", [2, 6])
def test_assign_duplicate_representatives_go_to_the_lowest_index(d):
    rng = np.random.default_rng(15)
    X = rng.normal(size=(20000, d)) + 3.0  # several blocks of rows
    z = rng.normal(size=d)
    Z = np.vstack([z + 10, z, z, z + 20, z])
    labels = km.assign_clusters(X, Z)
    assert set(np.unique(labels)) <= {0, 1, 3}
    np.testing.assert_array_equal(labels, brute_force_labels(X, Z))


def test_assign_grid_of_ties():
    # Integer grid against the four corners of the unit square: many exact ties.
    X = np.array([[x, y] for x in np.arange(-2, 3) * 0.5 for y in np.arange(-2, 3) * 0.5])
    Z = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_array_equal(km.assign_clusters(X, Z), brute_force_labels(X, Z))
    X8 = np.hstack([X, np.zeros((len(X), 6))])
    Z8 = np.hstack([Z, np.zeros((4, 6))])
    np.testing.assert_array_equal(km.assign_clusters(X8, Z8), brute_force_labels(X, Z))


def test_assign_far_from_origin_high_dimension():
    # The expanded distance formula loses accuracy here; labels must not.
    rng = np.random.default_rng(16)
    X = rng.normal(size=(3000, 30)) + 1e5
    Z = X[rng.choice(3000, 12, replace=False)]
    np.testing.assert_array_equal(km.assign_clusters(X, Z), brute_force_labels(X - 1e5, Z - 1e5))


def test_assign_float32_matches_float64_brute_force():
    rng = np.random.default_rng(17)
    X = rng.random((4000, 50), dtype=np.float32)
    Z = X[:30].astype(np.float64)
    np.testing.assert_array_equal(km.assign_clusters(X, Z), brute_force_labels(X, Z))


@pytest.mark.parametrize("n, d, k", [(1000, 2, 16), (500, 5, 13), (60, 200, 2), (30, 3, 300), (2000, 4, 4)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_assign_plain_formula_and_fast_path_agree(n, d, k, dtype):
    """KmeansAnimate2D.py uses the plain formula up to PLAIN_MAX_ENTRIES, _kmeans_fast above: same labels."""
    import _kmeans_fast as fast

    assert n * k * d <= fast.PLAIN_MAX_ENTRIES
    rng = np.random.default_rng(n + d + k)
    X = rng.integers(-2, 3, size=(n, d)).astype(dtype)  # integer grid: many exact ties
    Z = np.vstack([X[rng.choice(n, k)], X[:1]]).astype(np.float64)  # a duplicated representative
    np.testing.assert_array_equal(km.assign_clusters(X, Z), fast.nearest(km._check_data(X), Z))
    X = (rng.normal(size=(n, d)) * 1e3 + 1e5).astype(dtype)
    Z = X[rng.choice(n, k)].astype(np.float64)
    np.testing.assert_array_equal(km.assign_clusters(X, Z), fast.nearest(km._check_data(X), Z))


@pytest.mark.parametrize("n, d, k", [(16000, 2, 5), (1024, 33, 6), (990, 34, 3), (3000, 11, 40)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_update_and_objective_plain_formulas_and_fast_paths_agree_bit_for_bit(n, d, k, dtype):
    import _kmeans_fast as fast

    assert n * d <= fast.PLAIN_MAX_ENTRIES
    rng = np.random.default_rng(n + d)
    X = (rng.normal(size=(n, d)) * 10.0 ** rng.uniform(-3, 3, size=(n, d))).astype(dtype)
    labels = rng.integers(0, k - 1, size=n)  # group k-1 stays empty
    Z = rng.normal(size=(k, d))
    checked = km._check_data(X)
    np.testing.assert_array_equal(km.update_representatives(X, labels, Z), fast.group_means(checked, labels, Z))
    assert km.clustering_objective(X, labels, Z) == fast.objective(checked, labels, Z)


@pytest.mark.parametrize("d", [2, 40])
def test_the_fast_paths_give_the_same_bits_for_any_number_of_threads(d):
    """Blocks and parts depend on the data alone: 1 thread or 3 give the same labels, means and J_clust."""
    import threading

    import _kmeans_fast as fast

    X = blobs(3 * fast.SUM_PART_ROWS + 5, d, 7, seed=d, dtype=np.float32)
    Z = X[:7].astype(np.float64)
    runs = []
    for threads in (1, 3):
        points = fast.PreparedPoints(X, threads=threads)
        labels = points.nearest(Z)
        runs.append((labels, *points.update(labels, Z)))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert runs[0][2] == runs[1][2]
    together = threading.Barrier(3, timeout=10)  # raises BrokenBarrierError unless three lanes run at once
    assert fast.Lanes(3).run(6, lambda i, workspace: (together.wait(), i)[1]) == list(range(6))


# ---------------------------------------------------------------------------
# update step and objective
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("d", [2, 40])
def test_update_gives_group_means(d):
    rng = np.random.default_rng(18)
    X = rng.normal(size=(1000, d))
    labels = rng.integers(0, 6, size=1000)
    Z = km.update_representatives(X, labels, np.zeros((6, d)))
    expected = np.array([X[labels == j].mean(axis=0) for j in range(6)])
    assert Z.dtype == np.float64 and Z.shape == (6, d)
    np.testing.assert_allclose(Z, expected, rtol=1e-12, atol=1e-12)


def test_update_empty_group_keeps_previous_representative():
    X = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0]])
    Z_prev = np.array([[1.0, 1.0], [7.0, 7.0], [-3.0, 4.0]])
    Z = km.update_representatives(X, [0, 0, 1], Z_prev)
    np.testing.assert_array_equal(Z, [[1.0, 0.0], [10.0, 10.0], [-3.0, 4.0]])
    assert not np.isnan(Z).any()
    np.testing.assert_array_equal(Z_prev[2], [-3.0, 4.0])  # input untouched


def test_update_float32_accumulates_in_float64():
    # float32 sums of 10^5 values near 1000 would be off in the 4th digit.
    rng = np.random.default_rng(19)
    X = (1000.0 + rng.random((100_000, 40))).astype(np.float32)
    labels = np.zeros(100_000, dtype=np.int64)
    Z = km.update_representatives(X, labels, np.zeros((1, 40)))
    np.testing.assert_allclose(Z[0], X.astype(np.float64).mean(axis=0), rtol=1e-13)


def test_objective_is_mean_squared_distance():
    X = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
    Z = np.array([[0.0, 0.0], [1.0, 1.0]])
    assert km.clustering_objective(X, [0, 0, 1], Z) == pytest.approx(25.0 / 3)
    assert isinstance(km.clustering_objective(X, [0, 0, 1], Z), float)


# ---------------------------------------------------------------------------
# initialisation and random_state
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("init", [km.init_random_rows, km.init_kmeans_plusplus])
def test_init_returns_distinct_rows_of_X(init):
    X = np.random.default_rng(20).normal(size=(200, 3))
    Z0 = init(X, 7, random_state=0)
    assert Z0.shape == (7, 3) and Z0.dtype == np.float64
    rows = [int(np.flatnonzero((X == z).all(axis=1))[0]) for z in Z0]
    assert len(set(rows)) == 7


@pytest.mark.parametrize("init", [km.init_random_rows, km.init_kmeans_plusplus])
def test_init_is_deterministic_with_random_state(init):
    X = np.random.default_rng(21).normal(size=(300, 2))
    np.testing.assert_array_equal(init(X, 5, random_state=3), init(X, 5, random_state=3))
    assert not np.array_equal(init(X, 5, random_state=3), init(X, 5, random_state=4))
    a = init(X, 5, random_state=np.random.default_rng(5))
    b = init(X, 5, random_state=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    a = init(X, 5, random_state=np.random.RandomState(5))
    b = init(X, 5, random_state=np.random.RandomState(5))
    np.testing.assert_array_equal(a, b)
    np.random.seed(6)
    a = init(X, 5)
    np.random.seed(6)
    np.testing.assert_array_equal(a, init(X, 5))


def test_kmeans_plusplus_spreads_over_separated_groups():
    rng = np.random.default_rng(22)
    centres = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    X = np.repeat(centres, 50, axis=0) + 0.01 * rng.normal(size=(150, 2))
    for seed in range(10):
        Z0 = km.init_kmeans_plusplus(X, 3, random_state=seed)
        assert sorted(km.assign_clusters(Z0, centres)) == [0, 1, 2]


def test_kmeans_plusplus_with_repeated_points():
    X = np.array([[0.0, 0.0]] * 5 + [[1.0, 1.0]] * 5)
    Z0 = km.init_kmeans_plusplus(X, 2, random_state=0)
    assert sorted(map(tuple, Z0)) == [(0.0, 0.0), (1.0, 1.0)]
    Z0 = km.init_kmeans_plusplus(X, 4, random_state=0)  # only 2 distinct points
    assert Z0.shape == (4, 2)


def test_check_random_state():
    assert isinstance(km.check_random_state(3), np.random.Generator)
    g = np.random.default_rng(0)
    assert km.check_random_state(g) is g
    r = np.random.RandomState(0)
    assert km.check_random_state(r) is r
    assert km.check_random_state(None) is np.random.mtrand._rand
    for bad in ("seed", 1.5, True, [1, 2]):
        with pytest.raises(TypeError, match="random_state"):
            km.check_random_state(bad)


# ---------------------------------------------------------------------------
# input validation of the functions
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: km.assign_clusters(np.zeros(5), np.zeros((2, 1))), ValueError, r"2-D array.*got shape \(5,\)"),
        (lambda: km.assign_clusters(np.zeros((0, 2)), np.zeros((2, 2))), ValueError, "at least one point"),
        (lambda: km.assign_clusters(np.zeros((5, 2)), np.zeros((2, 3))), ValueError, r"Z must have shape \(k, 2\).*\(2, 3\)"),
        (lambda: km.assign_clusters(np.zeros((5, 2)), np.zeros((0, 2))), ValueError, "at least one representative"),
        (lambda: km.assign_clusters([[0.0, np.nan]], np.zeros((1, 2))), ValueError, "NaN or infinity"),
        (lambda: km.assign_clusters([[0.0, 1.0]], [[np.inf, 0.0]]), ValueError, "Z contains NaN or infinity"),
        (lambda: km.assign_clusters("abc", np.zeros((1, 2))), TypeError, "array of numbers"),
        (lambda: km.assign_clusters(None, np.zeros((1, 2))), TypeError, "array of numbers"),
        (lambda: km.assign_clusters(np.array([["a", "b"]]), np.zeros((1, 2))), TypeError, "real numbers"),
        (lambda: km.assign_clusters(np.zeros((2, 2), dtype=complex), np.zeros((1, 2))), TypeError, "real numbers"),
        (lambda: km.update_representatives(np.zeros((3, 2)), [0, 1], np.zeros((2, 2))), ValueError, r"labels must have shape \(3,\)"),
        (lambda: km.update_representatives(np.zeros((3, 2)), [0, 1, 2], np.zeros((2, 2))), ValueError, "labels must lie in 0, ..., 1"),
        (lambda: km.update_representatives(np.zeros((3, 2)), [0, -1, 1], np.zeros((2, 2))), ValueError, "labels must lie"),
        (lambda: km.update_representatives(np.zeros((3, 2)), [0, 0.5, 1], np.zeros((2, 2))), ValueError, "whole numbers"),
        (lambda: km.clustering_objective(np.zeros((3, 2)), [0, 0, 3], np.zeros((2, 2))), ValueError, "labels must lie"),
        (lambda: km.lloyd_kmeans(np.zeros((3, 2)), np.zeros((2, 2)), max_iter=0), ValueError, "max_iter must be at least 1"),
        (lambda: km.lloyd_kmeans(np.zeros((3, 2)), np.zeros((2, 2)), max_iter=2.5), TypeError, "max_iter must be an integer"),
        (lambda: km.lloyd_kmeans(np.zeros((3, 2)), np.zeros((2, 5))), ValueError, "Z0 must have shape"),
        (lambda: km.init_random_rows(np.zeros((3, 2)), 4), ValueError, r"k must be at most the number of points n=3"),
        (lambda: km.init_random_rows(np.zeros((3, 2)), 0), ValueError, "k must be at least 1"),
        (lambda: km.init_kmeans_plusplus(np.zeros((3, 2)), 2.0), TypeError, "k must be an integer"),
        (lambda: km.init_kmeans_plusplus(np.zeros((3, 2)), 2, random_state="x"), TypeError, "random_state"),
        (lambda: km.generate_blobs(3, 5), ValueError, "n_clusters must be at most"),
        (lambda: km.generate_blobs(10, 2, std=-1.0), ValueError, "std"),
    ],
)
def test_function_input_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_float_labels_of_the_old_lab_are_accepted():
    X = np.array([[0.0], [2.0], [10.0]])
    Z = km.update_representatives(X, np.array([0.0, 0.0, 1.0]), np.zeros((2, 1)))
    np.testing.assert_array_equal(Z, [[1.0], [10.0]])


# ---------------------------------------------------------------------------
# the class: run, frames, validation
# ---------------------------------------------------------------------------


def test_class_run_matches_lloyd_kmeans(small_run):
    run = small_run
    assert_no_group_empties(run.points, run.initial_centroids_)
    labels, Z, J_history = km.lloyd_kmeans(run.points, run.initial_centroids_)
    np.testing.assert_array_equal(run.labels_, labels)
    np.testing.assert_allclose(run.centroids_, Z, rtol=1e-12)
    assert run.n_iter_ == len(J_history) > 2
    np.testing.assert_allclose(run.J_history_, J_history, rtol=1e-10)
    assert run.converged_
    model = sklearn_lloyd(run.points, run.initial_centroids_)
    np.testing.assert_array_equal(run.labels_, model.labels_)
    assert run.n_iter_ == model.n_iter_


def test_class_frames(small_run):
    run = small_run
    frames = run.frames_
    assert len(frames) == 1 + 2 * run.n_iter_
    first = frames[0]
    assert first.step == "initial" and first.iteration == 0
    assert np.all(first.labels == -1) and np.isnan(first.J_clust)
    np.testing.assert_array_equal(first.centroids, run.initial_centroids_)
    for t in range(1, run.n_iter_ + 1):
        assignment, update = frames[2 * t - 1], frames[2 * t]
        assert (assignment.step, assignment.iteration) == ("assignment", t)
        assert (update.step, update.iteration) == ("update", t)
        # the assignment step keeps the representatives of the step before
        np.testing.assert_array_equal(assignment.centroids, frames[2 * t - 2].centroids)
        np.testing.assert_array_equal(assignment.labels, update.labels)
        assert assignment.J_clust == pytest.approx(
            km.clustering_objective(run.points, assignment.labels, assignment.centroids))
    J = np.array([f.J_clust for f in frames[1:]])
    assert np.all(np.diff(J) <= 1e-12 * J[0])  # every step lowers J_clust
    np.testing.assert_array_equal(frames[-1].labels, run.labels_)
    np.testing.assert_array_equal(frames[-1].centroids, run.centroids_)
    assert run.J_history_ == [f.J_clust for f in frames if f.step == "update"]


def test_class_is_deterministic_with_random_state():
    data = km.generate_blobs(200, 4, random_state=1)
    a = km.KmeansAnimate2D(4, data, random_state=7)
    b = km.KmeansAnimate2D(4, data, random_state=7)
    c = km.KmeansAnimate2D(4, data, random_state=8)
    np.testing.assert_array_equal(a.initial_centroids_, b.initial_centroids_)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert a.J_history_ == b.J_history_
    assert not np.array_equal(a.initial_centroids_, c.initial_centroids_)
    d = km.KmeansAnimate2D(4, data, random_state=7, init="k-means++")
    np.testing.assert_array_equal(
        d.initial_centroids_, km.init_kmeans_plusplus(data, 4, random_state=7))


def test_class_max_iter_limits_the_run():
    data = np.random.default_rng(23).normal(size=(400, 2))
    run = km.KmeansAnimate2D(6, data, random_state=0, max_iter=2)
    assert run.n_iter_ == 2 and not run.converged_
    assert len(run.frames_) == 5
    np.testing.assert_array_equal(run.labels_, km.assign_clusters(data, run.centroids_))


def test_class_copies_the_data():
    data = km.generate_blobs(50, 2, random_state=2)
    run = km.KmeansAnimate2D(2, data, random_state=0)
    data[:] = 0.0
    assert not np.all(run.points == 0.0)


def test_class_accepts_old_keyword_lables_and_dataframe():
    pd = pytest.importorskip("pandas")
    data = km.generate_blobs(60, 2, random_state=4)
    frame = pd.DataFrame(data, columns=["height", "weight"])
    run = km.KmeansAnimate2D(k=2, data=frame, lables=["small", "large"], random_state=0)
    assert run.cluster_labels == ["small", "large"]
    assert run.columns == ["height", "weight"]
    run = km.KmeansAnimate2D(2, data, None, ["x", "y"], ["a", "b"], random_state=0)
    assert run.columns == ["x", "y"] and run.cluster_labels == ["a", "b"]


GOOD = km.generate_blobs(30, 3, random_state=0)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(k=3, data=GOOD.tolist()), TypeError, "NumPy array"),
        (dict(k=3, data="data"), TypeError, "NumPy array"),
        (dict(k=3, data=None), TypeError, "NumPy array"),
        (dict(k=3, data=np.zeros((5, 3))), ValueError, r"data must be a 2-D array of shape \(n, 2\); got shape \(5, 3\)"),
        (dict(k=3, data=np.zeros(10)), ValueError, r"shape \(n, 2\); got shape \(10,\)"),
        (dict(k=3, data=np.zeros((0, 2))), ValueError, "at least one point"),
        (dict(k=3, data=np.array([[0.0, np.nan]] * 5)), ValueError, "NaN or infinity"),
        (dict(k=3, data=np.array([[0.0, np.inf]] * 5)), ValueError, "NaN or infinity"),
        (dict(k=0, data=GOOD), ValueError, "k must be at least 1"),
        (dict(k=31, data=GOOD), ValueError, "k must be at most the number of points n=30"),
        (dict(k=2.0, data=GOOD), TypeError, "k must be an integer"),
        (dict(k=3, data=GOOD, startCentroids=np.zeros((2, 2))), ValueError, r"startCentroids must have shape \(k=3, 2\).*\(2, 2\)"),
        (dict(k=3, data=GOOD, startCentroids=np.zeros((3, 3))), ValueError, "startCentroids must have shape"),
        (dict(k=3, data=GOOD, startCentroids=np.full((3, 2), np.nan)), ValueError, "NaN or infinity"),
        (dict(k=3, data=GOOD, columns=["x"]), ValueError, "columns must hold 2 names"),
        (dict(k=3, data=GOOD, columns="xy"), TypeError, "single string"),
        (dict(k=3, data=GOOD, labels=["a", "b"]), ValueError, "labels must hold 3 names"),
        (dict(k=3, data=GOOD, labels=["a", "b", "c"], lables=["a", "b", "c"]), TypeError, "not both"),
        (dict(k=3, data=GOOD, random_state="seed"), TypeError, "random_state"),
        (dict(k=3, data=GOOD, max_iter=0), ValueError, "max_iter must be at least 1"),
        (dict(k=3, data=GOOD, init="kmeans"), ValueError, "init must be"),
    ],
)
def test_class_input_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        km.KmeansAnimate2D(**kwargs)


# ---------------------------------------------------------------------------
# the animation: HTML, Jupyter, GIF, desktop
# ---------------------------------------------------------------------------


def count_embedded_frames(html):
    return html.count("data:image/png;base64,")


def test_html_has_one_image_per_frame(small_run, no_open_figures):
    html = small_run.to_jshtml(interval=200)
    assert isinstance(html, str)
    assert count_embedded_frames(html) == len(small_run.frames_)
    assert "<script" in html and "Animation" in html


def test_animate_jupyter_nb_displays_once_and_returns_html(small_run, no_open_figures, monkeypatch):
    pytest.importorskip("IPython")
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
    html = small_run.animate_jupyter_nb()
    assert isinstance(html, km.AnimationHTML) and isinstance(html, str)
    assert count_embedded_frames(html.data) == len(small_run.frames_)
    assert shown == [html]
    # What Jupyter calls to show the returned object: it displays the HTML.
    html._ipython_display_()
    assert isinstance(shown[-1], IPython.display.HTML)
    assert shown[-1].data == html.data


def test_animate_jupyter_nb_without_ipython(small_run, no_open_figures, monkeypatch):
    monkeypatch.setitem(sys.modules, "IPython.display", None)  # import fails
    html = small_run.animate_jupyter_nb()
    assert count_embedded_frames(html) == len(small_run.frames_)


def test_seed_notebook_call_still_works(no_open_figures, monkeypatch):
    pytest.importorskip("IPython")
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: None)
    import KmeansAnimate2D as animate

    data = animate.generateClusters(50, 3, random_state=0)
    result = animate.KmeansAnimate2D(k=3, data=data).animate_jupyter_nb()
    assert count_embedded_frames(result) >= 3


def test_gif_is_animated_with_one_image_per_frame(small_run, no_open_figures, tmp_path):
    from PIL import Image

    path = small_run.saveGIF(tmp_path / "run.gif", fps=4)
    assert path == str(tmp_path / "run.gif")
    with Image.open(path) as image:
        assert image.format == "GIF"
        assert image.is_animated
        assert image.n_frames == len(small_run.frames_)
        assert image.info["duration"] == 250


def test_gif_name_without_extension_gets_one(no_open_figures, tmp_path):
    from PIL import Image

    run = km.KmeansAnimate2D(2, km.generate_blobs(40, 2, random_state=5), random_state=1)
    path = run.saveGIF(str(tmp_path / "kmeans"))  # the old lab's usage
    assert path.endswith("kmeans.gif") and os.path.exists(path)
    with Image.open(path) as image:
        assert image.n_frames == len(run.frames_)


def test_output_argument_errors(small_run, tmp_path):
    with pytest.raises(ValueError, match="fps"):
        small_run.saveGIF(tmp_path / "x.gif", fps=0)
    with pytest.raises(ValueError, match="interval"):
        small_run.to_jshtml(interval=-5)
    with pytest.raises(ValueError, match="default_mode"):
        small_run.to_jshtml(default_mode="bounce")


def test_animate_returns_funcanimation(small_run):
    from matplotlib.animation import FuncAnimation

    plt.close("all")
    animation = small_run.animate(interval=100)  # Agg: not shown, not blocking
    try:
        assert isinstance(animation, FuncAnimation)
        assert plt.get_fignums() == [animation._fig.number]
        for index in range(len(small_run.frames_)):  # every frame draws
            animation._func(index, *animation._args)
        animation._fig.canvas.draw()
    finally:
        animation._draw_was_started = True  # silence "deleted without rendering"
        plt.close("all")


def test_frames_keep_colours_and_axis_limits(small_run):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure()
    FigureCanvasAgg(figure)
    artists = small_run._setup_axes(figure)
    axes = figure.axes[0]
    limits = (axes.get_xlim(), axes.get_ylim())
    colours = artists["colours"]
    for index, frame in enumerate(small_run.frames_):
        small_run._draw_frame(index, artists)
        assert (axes.get_xlim(), axes.get_ylim()) == limits
        expected = colours[frame.labels, :3]  # -1 -> grey, the last row
        np.testing.assert_allclose(artists["points"].get_facecolor()[:, :3], expected)
        assert f"iteration {frame.iteration}" in artists["title"].get_text()
    low, high = limits[0]
    assert low < small_run.points[:, 0].min() and high > small_run.points[:, 0].max()


# ---------------------------------------------------------------------------
# names kept from the original lab
# ---------------------------------------------------------------------------


def test_seed_aliases():
    X = km.generateClusters(90, 3, random_state=0)
    assert X.shape == (90, 2)
    np.testing.assert_array_equal(X, km.generate_blobs(90, 3, random_state=0))
    Z = km.initializeCentroids(3, X, random_state=1)
    np.testing.assert_array_equal(Z, km.init_random_rows(X, 3, random_state=1))
    labels = km.assignPointsToClusters(Z, X)
    np.testing.assert_array_equal(labels, km.assign_clusters(X, Z))
    np.testing.assert_array_equal(km.optimizeCentroids(Z, X, labels),
                                  km.update_representatives(X, labels, Z))


def test_html_is_the_same_in_two_fresh_processes():
    """Executed notebooks are compared byte for byte, so the player id must not be random."""
    import subprocess
    import sys

    script = (
        "import numpy as np, KmeansAnimate2D as K;"
        "d = np.random.default_rng(0).normal(size=(40, 2));"
        "print(K.KmeansAnimate2D(k=3, data=d, random_state=1).to_jshtml())"
    )
    root = str(Path(__file__).resolve().parent.parent)
    runs = [subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=True).stdout for _ in range(2)]
    assert runs[0] == runs[1] and 'class="kmeans-player"' in runs[0]


# ---------------------------------------------------------------------------
# the run is lazy; the HTML player works without ids
# ---------------------------------------------------------------------------


def test_class_runs_lloyd_on_first_use_not_in_init():
    data = km.generate_blobs(90, 3, random_state=6)
    run = km.KmeansAnimate2D(3, data, random_state=2)
    assert "frames_" not in vars(run) and "not run yet" in repr(run)
    assert run.initial_centroids_.shape == (3, 2)  # chosen at construction
    labels = run.labels_  # first use runs it
    assert "frames_" in vars(run) and len(run.frames_) == 1 + 2 * run.n_iter_
    again = km.KmeansAnimate2D(3, data, random_state=2)
    assert again.run() is again
    np.testing.assert_array_equal(again.labels_, labels)
    with pytest.raises(AttributeError, match="no_such_attribute"):
        run.no_such_attribute


def _player_data(html):
    return json.loads(re.search(r'<script type="application/json" class="kmeans-player-frames">(.*?)</script>',
                                html).group(1))


def test_html_player_shows_an_animated_image_without_javascript(small_run):
    from PIL import Image

    html = small_run.to_jshtml(interval=250)
    images = re.findall(r"data:image/png;base64,[A-Za-z0-9+/=]+", html)
    assert len(images) == len(set(images)) == len(small_run.frames_)
    img = re.search(r'<img class="kmeans-player-frame"[^>]*>', html).group(0)
    assert 'width="480" height="400"' in img and 'alt="k = 3, iteration 0: initial representatives"' in img
    # Where scripts do not run, the <img> plays every frame by itself and the
    # controls, which would do nothing, stay hidden.
    preview = re.search(r'src="data:image/webp;base64,([A-Za-z0-9+/=]+)"', img).group(1)
    with Image.open(io.BytesIO(base64.b64decode(preview))) as animated:
        assert animated.is_animated and animated.n_frames == len(images) and animated.size == (480, 400)
        assert animated.info["loop"] == 0
    assert '<div class="kmeans-player-controls" style="display: none">' in html
    data = _player_data(html)
    assert data["frames"] == images
    assert data["captions"][0] == "k = 3, iteration 0: initial representatives"
    assert re.fullmatch(r"k = 3, iteration 1: assignment step J_clust = [\d.]+", data["captions"][1])
    # No element ids and no global names per player: two identical players
    # on one page (two notebooks open in JupyterLab) cannot collide.
    assert " id=" not in html and "getElementById" not in html
    assert f'max="{len(images) - 1}"' in html and "maxcdn" not in html


def test_a_player_without_preview_starts_on_its_first_frame():
    frames = [kmeans_animation._png_data_uri(np.full((4, 6, 3), value, dtype=np.uint8)) for value in (0, 255)]
    html = kmeans_animation.player_html(frames)
    assert f'src="{frames[0]}"' in html and _player_data(html) == {"frames": frames, "captions": ["", ""]}
    with pytest.raises(ValueError, match="1 captions for 2 frames"):
        kmeans_animation.player_html(frames, captions=["one"])


@pytest.mark.skipif(shutil.which("chromium") is None and os.environ.get("CI") != "true",
                    reason="needs Debian's chromium (apt-get install chromium; CI installs it)")
def test_html_player_in_headless_chromium(small_run, tmp_path):
    """Two identical players on one page: each shows frame 0 at once and obeys only its own buttons."""
    player = small_run.to_jshtml(interval=50)
    probe = """<script>
    setTimeout(function () {
      var players = document.querySelectorAll(".kmeans-player");
      var before = [].map.call(players, function (p) {
        var i = p.querySelector("img");
        return [i.naturalWidth, i.naturalHeight, i.src.slice(0, 14), p.querySelector(".kmeans-player-controls").style.display];
      });
      var next = players[1].querySelector('button[data-action="next"]');
      next.click(); next.click();
      players[0].querySelector('button[data-action="play"]').click();
      setTimeout(function () {
        var state = [].map.call(players, function (p) { return p.querySelector("input").value; });
        var out = document.createElement("pre");
        out.id = "probe";
        out.textContent = JSON.stringify({before: before, state: state});
        document.body.appendChild(out);
      }, 2000);
    }, 100);
    </script>"""
    page = tmp_path / "page.html"
    page.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>{player}{player}{probe}</body></html>")
    browser = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=90,
    )
    probe = re.search(r'<pre id="probe">(.*?)</pre>', browser.stdout)
    assert probe, f"chromium gave no result: {browser.stderr[-2000:]}"
    result = json.loads(probe.group(1))
    # Frame 0 (a PNG, not the animated preview) and the controls, before any click.
    assert result["before"] == [[480, 400, "data:image/png", ""]] * 2
    last = len(small_run.frames_) - 1
    assert result["state"] == [str(last), "2"]  # played to the end / two steps: each its own
