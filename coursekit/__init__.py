"""coursekit: the instructor and TA pipeline of the k-means clustering lab.

The package is laid out as the pipeline reads, in layers; imports run one way,
from the top down (``tests/test_architecture.py`` checks it):

- :mod:`coursekit.cli`: the commands (``python -m coursekit --help``), a thin
  wrapper that prints the steps' errors for people;
- :mod:`coursekit.steps`: one module per command: data, build, collect,
  exchange, grade, feedback, report, lms, demo;
- :mod:`coursekit.grading` (the grading engine), :mod:`coursekit.pages` (every
  HTML page, and the sanitizer of student content) and
  :mod:`coursekit.insight` (failures and similarity for the class report);
- :mod:`coursekit.common`: paths, files, the course's files and config,
  notebooks, preprocessors and per-student results.
"""

__version__ = "0.1.0"
