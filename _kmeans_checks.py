"""Input checks for the k-means helper (``KmeansAnimate2D.py``).

Every public function of the helper, and the animation class, first turns
what it was given into clean NumPy arrays, or raises an error that says what
is wrong ("X must be a 2-D array of shape (n, d); got shape (5,)"). Those
checks live here, so that ``KmeansAnimate2D.py`` shows the algorithm and
``kmeans_animation.py`` the pictures; both import from this module.

``check_random_state`` is public (``KmeansAnimate2D.check_random_state``);
the other functions are internal to the helper.
"""

import numbers

import numpy as np


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
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return np.random.default_rng(int(random_state))
    raise TypeError(
        "random_state must be None, an int, a numpy.random.Generator or a "
        f"numpy.random.RandomState; got {type(random_state).__name__}"
    )


def check_int(value, name, minimum, maximum=None, maximum_text=None):
    """Return ``value`` as an int in [minimum, maximum], or raise.

    Parameters
    ----------
    value : object
        Must be an integer (``bool`` is refused).
    name : str
        Name used in error messages.
    minimum : int
    maximum : int, optional
    maximum_text : str, optional
        How the maximum is described in the error message, e.g.
        ``"the number of points n=30"``.

    Returns
    -------
    value : int
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}; got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum_text or maximum}; got {value}")
    return value


def as_numeric_array(values, name):
    """Convert array-like ``values`` to an ndarray of real numbers, or raise TypeError."""
    if values is None or isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be an array of numbers; got {type(values).__name__}")
    try:
        array = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of numbers: {exc}") from exc
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"{name} must hold real numbers; got an array of dtype {array.dtype}")
    return array


def all_finite(array):
    """Whether every entry of ``array`` is finite (no NaN, no infinity)."""
    # Summing first is much cheaper than an elementwise check and is finite
    # whenever every entry is; only an overflowing sum needs the full check.
    return bool(np.isfinite(array.sum())) or bool(np.isfinite(array).all())


def check_data(X, name="X", n_columns=None):
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
    array = as_numeric_array(X, name)
    expected = f"(n, {n_columns})" if n_columns is not None else "(n, d)"
    if array.ndim != 2 or (n_columns is not None and array.shape[1] != n_columns):
        raise ValueError(f"{name} must be a 2-D array of shape {expected}; got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must hold at least one point; got shape {array.shape}")
    dtype = np.float32 if array.dtype == np.float32 else np.float64
    array = np.ascontiguousarray(array, dtype=dtype)
    if not all_finite(array):
        raise ValueError(f"{name} contains NaN or infinity")
    return array


def check_representatives(Z, n_dims, name="Z", n_groups=None):
    """Validate representatives; return a float64 (k, d) copy.

    Parameters
    ----------
    Z : array-like of shape (k, d)
    n_dims : int
        Required number of columns d (that of the data).
    name : str
        Name used in error messages.
    n_groups : int, optional
        Required number of rows k.

    Returns
    -------
    Z : ndarray of shape (k, d), float64
        A new array: changing it never changes the caller's.
    """
    array = as_numeric_array(Z, name)
    k_text = "k" if n_groups is None else f"k={n_groups}"
    if (array.ndim != 2 or array.shape[1] != n_dims
            or (n_groups is not None and array.shape[0] != n_groups)):
        raise ValueError(
            f"{name} must have shape ({k_text}, {n_dims}), one row per "
            f"representative and as many columns as the data; got shape {array.shape}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one representative; got shape {array.shape}")
    array = np.array(array, dtype=np.float64, order="C")
    if not all_finite(array):
        raise ValueError(f"{name} contains NaN or infinity")
    return array


def check_labels(labels, n_points, n_groups, name="labels"):
    """Validate group assignments.

    Parameters
    ----------
    labels : array-like of shape (n,)
        Whole numbers in 0, ..., k-1 (floats such as 2.0, which the original
        lab produced, are accepted).
    n_points : int
        Required length n (the number of data points).
    n_groups : int
        The number of groups k.
    name : str
        Name used in error messages.

    Returns
    -------
    labels : ndarray of shape (n,), int64
    """
    array = as_numeric_array(labels, name)
    if array.shape != (n_points,):
        raise ValueError(
            f"{name} must have shape ({n_points},), one group per data point; got shape {array.shape}"
        )
    if np.issubdtype(array.dtype, np.floating):
        if not (all_finite(array) and np.array_equal(array, np.round(array))):
            raise ValueError(f"{name} must hold whole numbers 0, ..., k-1")
    array = array.astype(np.int64)
    if array.size and (array.min() < 0 or array.max() >= n_groups):
        raise ValueError(
            f"{name} must lie in 0, ..., {n_groups - 1} (k={n_groups}); "
            f"got values from {array.min()} to {array.max()}"
        )
    return array
