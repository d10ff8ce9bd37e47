"""The grading engine: one student's notebook in, points and incidents out.

:mod:`~coursekit.grading.parallel` spreads students over workers, each
grading one through :mod:`~coursekit.grading.autograde` (nbgrader's API) and
:mod:`~coursekit.grading.gradebook`. While a notebook runs:
:mod:`~coursekit.grading.repair` (its structure put right first),
:mod:`~coursekit.grading.execute` (limits, restarts, seeds),
:mod:`~coursekit.grading.sandbox` and :mod:`~coursekit.grading.ceiling` (the
kernel's prison and its memory), :mod:`~coursekit.grading.outputs` (bounded
outputs), :mod:`~coursekit.grading.timing` (time limits), and the checker
(:mod:`~coursekit.grading.checker`, :mod:`~coursekit.grading.check_runner`,
:mod:`~coursekit.grading.plain_data`), which judges hidden tests outside the
student's interpreter. ``make build`` also checks that each hidden test names
what the exercise states and checks nothing else
(:mod:`~coursekit.grading.requirements`).
"""
