"""The failures a command reports to people, without a traceback (:func:`coursekit.cli.main`).

Each step raises a :class:`CourseError` of its own (``BuildError``,
``CollectError``, ``GradeError``, ...), whose message names the file and what
is wrong; a grading batch stopped by a signal raises :class:`GradingInterrupted`.
They live here, in the layer every other one imports, so that the command line
catches them without importing the steps a command does not run.
"""

import signal


class CourseError(Exception):
    """A problem a person can fix: a file missing, unreadable or wrong; the message says which and what."""


class GradingInterrupted(KeyboardInterrupt):
    """The batch was stopped by SIGINT or SIGTERM; every student it finished is saved.

    A KeyboardInterrupt, so that code which lets Ctrl-C through lets it through too.

    Attributes
    ----------
    signum : int
        The signal that stopped it.
    exit_code : int
        The exit code of a program ended by that signal: 130 for SIGINT, 143 for SIGTERM.
    """

    def __init__(self, signum):
        super().__init__(f"grading stopped by {signal.Signals(signum).name}")
        self.signum = signum
        self.exit_code = 128 + signum
