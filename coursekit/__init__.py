"""coursekit: the instructor and TA pipeline of the k-means clustering lab.

One module per pipeline step, with a thin command-line interface on top
(``python -m coursekit --help``):

- :mod:`coursekit.data` builds, verifies and downloads the data files in ``data/``;
- :mod:`coursekit.build` turns the master notebook into the student release;
- :mod:`coursekit.collect` puts a folder or an LMS zip of notebooks into ``submitted/``;
- :mod:`coursekit.grade` autogrades them with nbgrader and records each student's status,
  through :mod:`coursekit.parallel` (worker processes, interrupts, shards),
  :mod:`coursekit.autograde` (one student through nbgrader's API) and
  :mod:`coursekit.gradebook` (the gradebook: registration, roster, scores, merges);
- :mod:`coursekit.feedback` writes HTML feedback per student, without hidden tests;
- :mod:`coursekit.report` writes ``grades.csv`` and the class report;
- :mod:`coursekit.lms` writes the same totals and the feedback pages in Moodle's and
  Canvas's bulk formats (and a plain zip of pages);
- :mod:`coursekit.demo` runs the whole job on a bundled demo class.

Imports run one way: cli -> steps -> parallel -> autograde -> gradebook.

How a notebook runs while it is graded: :mod:`coursekit.execute` (limits,
restarts, seeds), :mod:`coursekit.sandbox` (the bubblewrap sandbox),
:mod:`coursekit.outputs` (output bounds), :mod:`coursekit.timing` (time limits
calibrated from the solution), :mod:`coursekit.repair` (a submission's
structure put right before grading).

Shared pieces: :mod:`coursekit.notebooks` (reading nbgrader notebooks),
:mod:`coursekit.preprocessors` (the course's nbgrader preprocessors),
:mod:`coursekit.results` (per-student grading outcomes), :mod:`coursekit.paths`.
"""

__version__ = "0.1.0"
