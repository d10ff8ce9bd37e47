"""A Jupyter server extension: formgrader goes through a notebook's submissions in the order its list shows.

nbgrader's formgrader (0.9) uses three orders for one notebook's submissions:
its list ("Manual Grading", the assignment, the notebook) sorts them by their
ids; the numbers it shows ("Submission #3", "2 remaining") count them in the
order the gradebook happens to return them; Next and Prev go by the ids. So a
TA on "Submission #1" pressed Next and reached "Submission #4", and Next on
the last submission went back to the list.

This extension makes the list's order the only one:

- a submission's number is its row in the list (:func:`list_order`, by
  submission id: the ids are random, so the order says nothing about the
  students and anonymous grading stays anonymous); Next and Prev already go
  by the ids, so "Submission #n" is followed by "Submission #n+1";
- Next on the last submission goes to the first one in the list that still
  needs grading by hand (a written answer not graded yet), and to the list
  only when none does (:func:`after_the_last`).

nbgrader has no setting for either, so the extension replaces two methods when
the server loads it: ``NbGraderAPI.get_notebook_submission_indices`` (which
numbers the list and the grading page) and
``SubmissionNavigationHandler._next``. Switched on, like
:mod:`coursekit.pages.formgrade_csp`, by ``jupyter-config/coursekit.json``.
"""

from __future__ import annotations

import logging

from nbgrader.apps.api import NbGraderAPI
from nbgrader.server_extensions.formgrader.handlers import SubmissionNavigationHandler

log = logging.getLogger(__name__)

_nbgraders_next = SubmissionNavigationHandler._next


def list_order(api, assignment_id, notebook_id):
    """The ids of a notebook's submissions whose autograded file exists, in the order formgrader lists them."""
    with api.gradebook as gradebook:
        notebooks = gradebook.notebook_submissions(notebook_id, assignment_id)
        return sorted(submission.id for submission in api._filter_existing_notebooks(assignment_id, notebooks))


def submission_indices(api, assignment_id, notebook_id):
    """{submission id: its row in formgrader's list, from 0}: replaces ``NbGraderAPI.get_notebook_submission_indices``."""
    return {submission_id: row for row, submission_id in enumerate(list_order(api, assignment_id, notebook_id))}


def after_the_last(gradebook, submission_ids, current_id):
    """Where Next goes from the last submission: the first other one still to grade by hand, or None (the list)."""
    for submission_id in submission_ids:
        if submission_id != current_id and gradebook.find_submission_notebook_by_id(submission_id).needs_manual_grade:
            return submission_id
    return None


def next_submission(handler, assignment_id, notebook_id, submission):
    """Replaces ``SubmissionNavigationHandler._next``: nbgrader's, except after the last submission."""
    submission_ids = handler._get_submission_ids(assignment_id, notebook_id)
    if submission_ids and submission_ids[-1] == submission.id:
        pending = after_the_last(handler.gradebook, submission_ids, submission.id)
        if pending is not None:
            return handler._submission_url(pending)
    return _nbgraders_next(handler, assignment_id, notebook_id, submission)


def _jupyter_server_extension_points():
    return [{"module": __name__}]


def _load_jupyter_server_extension(serverapp):
    """Give formgrader one order for its list, its numbers and its Next."""
    NbGraderAPI.get_notebook_submission_indices = submission_indices
    SubmissionNavigationHandler._next = next_submission
    serverapp.log.info("coursekit: formgrader numbers and Next follow its list; Next after the last goes to what is left to grade")
