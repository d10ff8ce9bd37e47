"""coursekit: the instructor and TA pipeline of the k-means clustering lab.

One module per pipeline step, with a thin command-line interface on top
(``python -m coursekit --help``):

- :mod:`coursekit.data` builds, verifies and downloads the data files in ``data/``;
- :mod:`coursekit.build` turns the master notebook into the student release;
- :mod:`coursekit.collect` puts a folder or an LMS zip of notebooks into ``submitted/``;
- :mod:`coursekit.grade` autogrades them with nbgrader and records each student's status;
- :mod:`coursekit.feedback` writes HTML feedback per student, without hidden tests;
- :mod:`coursekit.report` writes ``grades.csv`` and the class report;
- :mod:`coursekit.demo` runs the whole job on a bundled demo class.

Shared pieces: :mod:`coursekit.notebooks` (reading nbgrader notebooks),
:mod:`coursekit.preprocessors` (the course's nbgrader preprocessors),
:mod:`coursekit.results` (per-student grading outcomes), :mod:`coursekit.paths`.
"""

__version__ = "0.1.0"
