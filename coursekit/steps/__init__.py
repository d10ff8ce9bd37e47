"""The pipeline's steps, one module per command of ``python -m coursekit``.

:mod:`~coursekit.steps.data` (the data files), :mod:`~coursekit.steps.build`
(the release), :mod:`~coursekit.steps.collect` (an LMS download or a folder
into ``submitted/``), :mod:`~coursekit.steps.exchange` (nbgrader's own
collect, regular files only), :mod:`~coursekit.steps.grade`,
:mod:`~coursekit.steps.feedback`, :mod:`~coursekit.steps.report`,
:mod:`~coursekit.steps.lms`, and :mod:`~coursekit.steps.demo`, which runs the
others on a made-up class. Steps use the layers below them
(:mod:`coursekit.grading`, :mod:`coursekit.pages`, :mod:`coursekit.insight`,
:mod:`coursekit.common`) and, to chain, one another; nothing below imports a step.
"""
