"""coursekit: the instructor and TA pipeline of the k-means clustering lab.

One module per pipeline step, with a thin command-line interface on top
(``python -m coursekit --help``):

- :mod:`coursekit.data` builds, verifies and downloads the data files in ``data/``.
"""

__version__ = "0.1.0"
