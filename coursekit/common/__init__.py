"""The base every layer may use; it imports nothing else of coursekit.

:mod:`~coursekit.common.paths`, :mod:`~coursekit.common.errors` (what a command
reports to people without a traceback), :mod:`~coursekit.common.files` (atomic writes,
regular-file reads), :mod:`~coursekit.common.course` (the helper and data files,
the course config), :mod:`~coursekit.common.notebooks` (reading nbgrader
notebooks), :mod:`~coursekit.common.preprocessors` (the course's small nbgrader
preprocessors) and :mod:`~coursekit.common.results` (each student's grading
outcome, shared by the grade, feedback and report steps).
"""
