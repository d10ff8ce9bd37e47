"""Running a student's notebook for grading: limits, restarts, seeds, warnings.

Two nbgrader preprocessors, switched on in ``nbgrader_config.py``
(``Autograde.autograde_preprocessors``):

- :class:`GuardedExecute` replaces nbgrader's ``Execute``. It runs the kernel in
  the sandbox (:mod:`coursekit.grading.sandbox`), gives each cell a time limit
  calibrated from the solution's own run time (:class:`~coursekit.grading.timing.TimeLimits`, from the
  ``cell_times.json`` that ``make build`` writes; at most ``c.Execute.timeout``)
  and the whole notebook a wall-clock budget. It records at most
  ``max_output_bytes`` / ``max_output_lines`` of output per cell (and
  ``max_notebook_output_bytes`` in all) as the messages arrive, replacing the
  rest by a note, so a flood of output costs neither memory nor time; the
  streams of a cell are merged in linear time. Before the last kernel stops,
  the files the assignment declares (``keep_files``) are copied back from the
  sandbox; links, pipes and folders the student left are reported, never
  followed. When a cell runs past its limit, the
  kernel dies (``os._exit``, a memory or CPU limit) or ignores interrupts, it
  kills the kernel, starts a fresh one, re-runs the cells that had completed
  (test cells without their checker tests, as they first ran), and goes on
  after the failing cell: the student keeps the credit of every
  test that does not depend on it. What happened is written to
  ``grading_incidents.json`` beside the graded notebook and noted in the
  outputs of the tests that ran afterwards and failed. Before each test cell it
  seeds Python's and NumPy's global random generators (the kernel also has
  ``PYTHONHASHSEED=0``), so the same submission always gets the same score,
  without touching the seeds a student sets inside their own functions.
- :class:`StderrIsNotFailure` runs after it: nbgrader fails any test cell that
  wrote to stderr, so a correct solution that merely prints a warning would
  score 0. It turns stderr text of test cells into ordinary output (marked as
  such); real errors still fail.
"""

from __future__ import annotations

import asyncio
import copy
import fnmatch
import json
import os
import stat
import tempfile
import zlib
from pathlib import Path
from queue import Empty
from time import monotonic

import zmq
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import ensure_async, run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete, CellTimeoutError, DeadKernelError
from nbformat.v4 import new_output
from nbgrader import utils
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Bool, Float, Integer, List, Unicode, default

from coursekit.common.course import course_files
from coursekit.grading.checker import CHECKER_GUARD, CheckerProcess, judge_cell, split_test_cell
from coursekit.grading.outputs import OutputBudget, bounded_error, merge_streams
from coursekit.grading.repair import REPAIRS_KEY
from coursekit.grading.sandbox import Sandbox, SandboxedKernelManager, SandboxUnavailable, check_sandbox
from coursekit.grading.timing import TimeLimits

INCIDENTS_FILE = "grading_incidents.json"
#: What nbgrader's exchange puts beside a submission: its receipts, not the student's files.
RECEIPTS = ("timestamp.txt", "submission_secret.txt")
GRADER_NOTE = "[grader]"


def _split(cell):
    """(kernel source, checker source, checker test names) of a cell: only graded code cells have checker tests."""
    if cell.cell_type == "code" and utils.is_grade(cell):
        return split_test_cell(cell.source)
    return cell.source, "", []


class GuardedExecute(Execute):
    """nbgrader's Execute with a sandbox, a notebook time budget and kernel restarts."""

    notebook_timeout = Integer(900, help="Seconds the whole notebook may run while grading").tag(config=True)
    # Each restart re-runs the completed cells; the notebook budget bounds their total cost.
    max_restarts = Integer(25, help="Fresh kernels started for one notebook before the rest is skipped").tag(config=True)
    seed_tests = Bool(True, help="Seed random and numpy.random before each test cell").tag(config=True)
    interrupt_on_timeout = Bool(False, help="Kill rather than interrupt: a loop may ignore SIGINT").tag(config=True)
    # How a print is split into stream messages depends on timing; merged, the
    # graded notebook and its feedback are the same from run to run. nbclient's
    # own merge is quadratic on long lines, so it is off and merge_streams does it.
    coalesce_streams = Bool(False, help="nbclient's stream merging (off: merge_streams replaces it)").tag(config=True)
    merge_streams = Bool(True, help="Merge the stream outputs of a cell, in linear time").tag(config=True)
    max_output_bytes = Integer(2_000_000, help="Output recorded per cell, in characters; the rest is dropped").tag(config=True)
    max_output_lines = Integer(5_000, help="Lines of text output recorded per cell").tag(config=True)
    max_notebook_output_bytes = Integer(8_000_000, help="Output recorded for the whole notebook").tag(config=True)
    keep_files = List(Unicode(), help="fnmatch patterns of files the notebook writes that are kept "
                      "(copied back from the sandbox as regular files)").tag(config=True)
    keep_file_max_mb = Float(5.0, help="Largest file kept, in MB").tag(config=True)
    test_cell_reserve_mb = Float(4.0, help="Space of the sandbox's writable tmpfs held back for test cells: "
                                 "released just before each test cell runs and taken again after it, so that a "
                                 "student whose code filled the space with junk still has room for the small "
                                 "files a test writes").tag(config=True)
    submission_files = List(Unicode(), help="fnmatch patterns of files a student may hand in besides the notebook "
                            "that the kernel gets (as regular files); by default none: the kernel gets the notebook "
                            "and the files the course ships with the assignment").tag(config=True)
    # An output message over the client's size limit is dropped, and with it maybe
    # the cell's final status: noted on the cell rather than taken for a hang.
    raise_on_iopub_timeout = Bool(False, help="Treat output that stops arriving as a timeout").tag(config=True)
    workers = Integer(1, help="Grading workers running at the same time (sets BLAS threads)").tag(config=True)
    incidents_file = Unicode(INCIDENTS_FILE).tag(config=True)
    limits_file = Unicode("cell_times.json", help="The solution's cell times, in the assignment's source folder "
                          "(written by `make build`)").tag(config=True)
    kernel_alive_interval = Float(0.1, help="Seconds between checks that the kernel is still alive").tag(config=True)
    checker_path = List(Unicode(), help="Folders the hidden-test checker imports from, besides the assignment's "
                        "source folder (coursekit.grading.checker)").tag(config=True)

    #: Relative paths of the working folder's files the kernel gets (None: all); set for each notebook.
    allowed_inputs = None

    @default("extra_arguments")
    def _no_pause_before_replies(self):
        # ipykernel sleeps 0.5 ms before each execute reply (Kernel._execute_sleep) so that output flushed late
        # still precedes it; nbclient waits for the kernel's idle status, which follows all of a cell's output
        # on the same channel, so the pause only delays: about 125 requests a graded notebook.
        return ["--Kernel._execute_sleep=0"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        sandbox = Sandbox(parent=self)
        if sandbox.enabled:
            try:
                check_sandbox()
            except SandboxUnavailable as reason:
                if not sandbox.allow_unsandboxed:
                    raise SandboxUnavailable(
                        f"{reason}. Refusing to run student code unsandboxed; set "
                        "c.Sandbox.allow_unsandboxed = True (or pass --allow-unsandboxed) to accept the risk."
                    ) from None
                self.log.warning("grading WITHOUT a sandbox: %s", reason)
                sandbox.enabled = False
        self.kernel_manager_class = SandboxedKernelManager if sandbox.enabled else AsyncKernelManager

    # -- the loop --------------------------------------------------------------
    def preprocess(self, nb, resources=None, km=None):
        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self._cell_timeout = self.timeout
        self.limits = TimeLimits.for_assignment(self._cell_times_path(resources), parent=self)
        self.budget = self.limits.notebook_budget(self.notebook_timeout)
        self._deadline = monotonic() + self.budget
        self._outputs = OutputBudget(self.max_output_bytes, self.max_output_lines, self.max_notebook_output_bytes)
        # What RepairSubmission did to the notebook before it ran (see coursekit.grading.repair).
        self.incidents = [{"cell": None, "grade_id": None, "what": f"repaired: {note}", "detail": ""}
                          for note in self.nb.metadata.pop(REPAIRS_KEY, [])]
        self._output_tasks = set()
        self._last_stop = None  # the incident of the last cell stopped by a limit
        self.workdir = workdir = Path((resources or {}).get("metadata", {}).get("path") or ".")
        (workdir / self.incidents_file).unlink(missing_ok=True)
        source_dir = self._source_dir(resources)
        self.allowed_inputs = self._allowed_inputs(source_dir, resources)
        self.checker = CheckerProcess([*self.checker_path, *([str(source_dir)] if source_dir else [])])
        completed, start, restarts = [], 0, 0
        try:
            while start < len(self.nb.cells):
                if self._remaining() <= 0:
                    self._skip_rest(start, self._budget_reason())
                    break
                if restarts > self.max_restarts:
                    self._skip_rest(start, f"not run: the kernel had to be restarted {self.max_restarts} times")
                    break
                start = self._run_kernel_from(start, completed, resources)
                restarts += 1
        finally:
            self.checker.close()
        self.timeout = self._cell_timeout
        self.set_widgets_metadata()
        (workdir / self.incidents_file).write_text(json.dumps(self.incidents, indent=2) + "\n")
        return self.nb, self.resources

    def _source_dir(self, resources):
        """The assignment's source folder, where the master is (None outside an nbgrader run)."""
        info = (resources or {}).get("nbgrader", {})
        if "assignment" not in info:
            return None
        coursedir = CourseDirectory(config=self.config)
        return Path(coursedir.format_path(coursedir.source_directory, ".", info["assignment"]))

    def _allowed_inputs(self, source_dir, resources):
        """The files of the working folder the kernel gets; every other one is reported as an incident.

        They are the graded notebook, the files the course ships with the
        assignment (nbgrader has just copied them over the student's, from
        ``source/``) and those matching :attr:`submission_files`. Anything
        else a student handed in stays out of the kernel. None (every file)
        outside an nbgrader run.
        """
        if source_dir is None:
            return None
        coursedir = CourseDirectory(config=self.config)
        course_files = {Path(path).relative_to(source_dir).as_posix()
                        for path in utils.find_all_files(str(source_dir), coursedir.ignore + ["*.ipynb"])}
        notebook = f"{resources['metadata']['name']}.ipynb" if resources.get("metadata", {}).get("name") else None
        allowed = course_files | ({notebook} if notebook else set())
        handed_in = []
        for folder, dirs, files in os.walk(self.workdir):
            dirs.sort()
            for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]):
                relative = Path(folder, name).relative_to(self.workdir).as_posix()
                if relative in allowed or relative in (self.incidents_file, *RECEIPTS):
                    continue
                if any(fnmatch.fnmatch(relative, pattern) for pattern in self.submission_files) and \
                        stat.S_ISREG(os.lstat(os.path.join(folder, name)).st_mode):
                    allowed.add(relative)
                    continue
                handed_in.append(relative)
        if handed_in:
            shown = ", ".join(handed_in[:10]) + (f" and {len(handed_in) - 10} more" if len(handed_in) > 10 else "")
            self.incidents.append({"cell": None, "grade_id": None, "detail": "",
                                   "what": f"handed in besides the notebook, not given to the kernel: {shown}"})
        return allowed

    def create_kernel_manager(self):
        """nbclient's kernel manager, told which files of the working folder the kernel gets."""
        km = super().create_kernel_manager()
        if hasattr(km, "allowed_inputs"):
            km.allowed_inputs = self.allowed_inputs
        return km

    def _cell_times_path(self, resources):
        """The assignment's cell_times.json (None outside an nbgrader run)."""
        source_dir = self._source_dir(resources)
        return None if source_dir is None else source_dir / self.limits_file

    def _run_kernel_from(self, start, completed, resources):
        """Run cells from ``start`` in a fresh kernel; return where to go on."""
        self._ceiling_noted = False  # each kernel has a ceiling of its own
        with self.setup_kernel():
            if hasattr(self.km, "seal"):
                self.km.seal()  # ready: from now on the kernel can write nowhere on the host
            self._run_quietly(self._reserve_code(take=True))
            info = self.wait_for_reply(self.kc.kernel_info())
            self.nb.metadata["language_info"] = info["content"]["language_info"]
            if start > 0 and not self._replay(completed):
                return start
            for index in range(start, len(self.nb.cells)):
                cell = self.nb.cells[index]
                if self._remaining() <= 0:
                    self._skip_rest(index, self._budget_reason())
                    self._collect_files(index)
                    return len(self.nb.cells)
                try:
                    self._run_cell(cell, index, resources)
                except (CellTimeoutError, DeadKernelError, RuntimeError) as error:
                    if isinstance(error, CellTimeoutError) and self._remaining() <= 1:
                        # Not this cell's own limit: the notebook's budget ran out while it ran.
                        self._skip_rest(index, self._budget_reason())
                        self._collect_files(index)
                        return len(self.nb.cells)
                    self._stopped(cell, index, error)
                    return index + 1
                if cell.cell_type == "code":
                    completed.append(index)
            self._collect_files(len(self.nb.cells) - 1)
        return len(self.nb.cells)

    def _collect_files(self, index):
        """Bring back the declared files from the sandbox; report what else the student left there."""
        if not hasattr(self.km, "collect_files"):
            return
        kept, left = self.km.collect_files(self.keep_files, self.workdir, int(self.keep_file_max_mb * 1e6))
        if left:
            self._incident(index, "left in its working folder and not kept by the grader: " + ", ".join(left[:20])
                           + (f" and {len(left) - 20} more" if len(left) > 20 else ""))

    async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index):
        # nbclient's loop, with two changes. It yields after every message, so a
        # kernel flooding its output cannot starve the time limit and the liveness
        # check. And it reads the channel of the kernel it started with: nbclient
        # leaves this task running when a cell times out, and it must not then
        # take the messages of the next kernel's cells.
        channel = self.kc.iopub_channel
        task = asyncio.current_task()
        self._output_tasks.add(task)
        try:
            while True:
                msg = await ensure_async(channel.get_msg(timeout=None))
                if msg["parent_header"].get("msg_id") == parent_msg_id:
                    try:
                        self.process_message(msg, cell, cell_index)
                    except CellExecutionComplete:
                        return
                await asyncio.sleep(0)
        except (AssertionError, zmq.ZMQError):
            return  # the channel was closed: this kernel is gone
        finally:
            self._output_tasks.discard(task)

    def process_message(self, msg, cell, cell_index):
        if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
            self._outputs.complete = True
        return super().process_message(msg, cell, cell_index)

    def output(self, outs, msg, display_id, cell_index):
        """Record an output message within the cell's and the notebook's output budget."""
        if self.clear_before_next_output:  # a clear_output(wait=True) takes effect now
            outs[:] = []
            self.clear_display_id_mapping(cell_index)
            self.clear_before_next_output = False
            self._outputs.cleared()
        msg = self._outputs.admit(msg)
        if msg is None:
            return None
        return super().output(outs, msg, display_id, cell_index)

    def clear_output(self, outs, msg, cell_index):
        super().clear_output(outs, msg, cell_index)
        if not msg["content"].get("wait"):
            self._outputs.cleared()

    async def _async_poll_kernel_alive(self):
        # nbclient looks every second; a kernel killed by os._exit or a limit would
        # leave the grader waiting for up to that long, with the core idle.
        while True:
            await asyncio.sleep(self.kernel_alive_interval)
            try:
                await self._async_check_alive()
            except DeadKernelError:
                self.task_poll_for_reply.cancel()
                return

    def _run_cell(self, cell, index, resources):
        self.timeout = max(1, int(min(self.limits.for_cell(cell, self._cell_timeout), self._remaining())))
        is_test = cell.cell_type == "code" and utils.is_grade(cell)
        if is_test:
            seed = self._seed_code(utils.to_bytes(cell.metadata.nbgrader.get("grade_id", str(index)))) \
                if self.seed_tests else ""
            self._run_quietly(self._reserve_code(take=False) + seed)  # one request for both; the seed last
            if self._last_stop:
                self._note_after_restart(cell)
        kernel_source, checker_source, tests = _split(cell)
        original = cell.source
        if tests:
            cell.source = kernel_source  # the checker tests run in the checker, never in the kernel
        self._outputs.start_cell()
        try:
            self.preprocess_cell(cell, resources, index)
        except BaseException:
            self._finish_outputs(cell, index, finished=False)
            raise
        finally:
            cell.source = original
        self._finish_outputs(cell, index, finished=True)
        if is_test:
            self._run_quietly(self._reserve_code(take=True))
        if not self._ceiling_noted and getattr(self.km, "ceiling_kills", lambda: False)():
            # A process this cell started (a fork, a joblib worker) was stopped at the whole sandbox's memory
            # limit; the kernel lived on. The cell is charged; the cells after it run as usual.
            self._ceiling_noted = True
            self._incident(index, f"a process went over the memory limit ({Sandbox(parent=self).memory_limit_mb} MB "
                                  "for all of the notebook's processes together) and was stopped")
        if tests and not any(output.get("output_type") == "error" for output in cell.outputs):
            judge_cell(self, cell, checker_source, tests, self.checker)


    def _finish_outputs(self, cell, index, finished):
        """Merge the cell's streams and note what the output budget dropped.

        ``finished``: the cell ran to its end (not stopped by a limit); if its
        output then did not all arrive, IOPub is connected anew.
        """
        if cell.cell_type != "code":
            return
        if self.merge_streams:
            cell.outputs = merge_streams(cell.get("outputs", []))
        if not finished:
            self._outputs.complete = True  # what is missing is explained by the stop itself
        elif not self._outputs.complete:
            self._reconnect_iopub()
        note = self._outputs.end_cell()
        if note:
            cell.outputs.append(new_output("stream", name="stdout", text=f"{GRADER_NOTE} {note}\n"))
            self._incident(index, note)

    def _reconnect_iopub(self):
        """Connect IOPub anew after ZeroMQ dropped the connection over an oversized message.

        Without it, no later output of the notebook would arrive. Waits until a
        status message shows that the new connection receives.
        """
        old = self.kc._iopub_channel  # jupyter_client makes the channel on first use
        if old is not None:
            old.close()
        self.kc._iopub_channel = None
        channel = self.kc.iopub_channel
        for _ in range(20):
            self.kc.kernel_info()
            try:
                run_sync(channel.get_msg)(timeout=0.25)
                break
            except Empty:
                continue
        while True:  # what the probes left queued is not this notebook's output
            try:
                run_sync(channel.get_msg)(timeout=0)
            except Empty:
                break

    def _replay(self, completed):
        """Re-run the completed cells in the fresh kernel; their outputs stay as first recorded."""
        for index in completed:
            if self._remaining() <= 0:
                return False
            self.timeout = max(1, int(min(self.limits.for_cell(self.nb.cells[index], self._cell_timeout), self._remaining())))
            self._outputs.start_cell()
            original = self.nb.cells[index]
            # nbclient stores the cell it ran back into the notebook: run a copy, keep the original. A test
            # cell runs without its checker tests, as it first ran: they never enter the student's kernel.
            replayed = copy.deepcopy(original)
            replayed.source = _split(original)[0]
            try:
                self.execute_cell(replayed, index, store_history=False)
            except (CellTimeoutError, DeadKernelError, RuntimeError) as error:
                completed.remove(index)
                self._incident(index, "could not be re-run after a restart", error)
                return False
            finally:
                self.nb.cells[index] = original
                self._outputs.end_cell(count=False)
        return True

    # -- bookkeeping -----------------------------------------------------------
    def _remaining(self):
        return self._deadline - monotonic()

    def _budget_reason(self):
        return f"not run: the notebook's time limit of {self.budget:.0f} s was used up"

    def _seed_code(self, key):
        """Code that seeds ``random`` and ``numpy.random`` from ``key`` (a test cell's grade id)."""
        seed = zlib.crc32(key) % (2**32 - 1)
        return f"import random as _r, numpy as _n\n_r.seed({seed})\n_n.random.seed({seed})\ndel _r, _n\n"

    def _reserve_code(self, take):
        """Code that takes (or releases) the space held back for test cells in the sandbox's tmpfs (:attr:`test_cell_reserve_mb`).

        Empty outside the sandbox, whose /tmp is the kernel's own tmpfs.
        """
        if not hasattr(self.km, "seal") or self.test_cell_reserve_mb <= 0:
            return ""
        path = "/tmp/.coursekit-reserve"
        if take:
            return (f"try:\n    with open({path!r}, 'wb') as _f:\n        _f.write(bytes({int(self.test_cell_reserve_mb * 1e6)}))\n"
                    "except OSError:\n    pass\nfinally:\n    _f = None\n    del _f\n")
        return f"try:\n    __import__('os').remove({path!r})\nexcept Exception:\n    pass\n"

    def _run_quietly(self, code):
        """Have the kernel run ``code`` (if any) before whatever is sent next, silently and without waiting.

        The kernel runs requests in order, so it has run before the next
        cell; nbclient skips replies to other requests.
        """
        if code:
            self.kc.execute(code, silent=True, store_history=False)

    def _incident(self, index, what, error=None):
        cell = self.nb.cells[index]
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        detail = f"{type(error).__name__}: {error}".strip() if error is not None else ""
        self.incidents.append({"cell": index, "grade_id": grade_id, "what": what, "detail": detail[:300]})

    def _stopped(self, cell, index, error):
        for task in list(self._output_tasks):  # nbclient leaves the stopped cell's reader running
            task.cancel()
        cell.metadata.pop("coursekit_after_restart", None)
        if isinstance(error, CellTimeoutError):
            what = f"stopped: ran past the time limit of {self.timeout} s"
        elif getattr(self.km, "ceiling_kills", lambda: False)() and not self._ceiling_noted:
            what = (f"stopped: the notebook's processes went over the memory limit "
                    f"({Sandbox(parent=self).memory_limit_mb} MB for all of them together)")
        elif isinstance(error, DeadKernelError) or "died" in str(error).lower():
            what = "stopped: the kernel died (os._exit, a crash, or the memory/CPU limit)"
        else:
            what = f"stopped: {error}"
        self._incident(index, what, error)
        self._last_stop = self.incidents[-1]
        cell.outputs = [o for o in cell.get("outputs", []) if o.get("output_type") != "error"]
        cell.outputs.append(new_output(
            "error", ename="GradingStopped", evalue=f"{what}; a fresh kernel ran the rest of the notebook",
            traceback=[f"GradingStopped: {what}; a fresh kernel ran the rest of the notebook"],
        ))

    def _skip_rest(self, start, reason):
        for index in range(start, len(self.nb.cells)):
            cell = self.nb.cells[index]
            if cell.cell_type == "code" and cell.source.strip():
                cell.outputs = [new_output("error", ename="GradingStopped", evalue=reason, traceback=[f"GradingStopped: {reason}"])]
        self._incident(start, reason)

    def _note_after_restart(self, cell):
        last = self._last_stop
        where = f"cell {last['cell']}" + (f" ({last['grade_id']})" if last["grade_id"] else "")
        cell.metadata["coursekit_after_restart"] = f"{GRADER_NOTE} this test ran after {where} was {last['what']}"

    def on_cell_executed(self, **kwargs):
        super().on_cell_executed(**kwargs)
        cell = kwargs["cell"]
        # nbgrader's hook (above) adds the reply's error when the cell's error output
        # is missing (cleared by a thread, or dropped): its size is the student's choice.
        for output in cell.outputs:
            if output.get("output_type") == "error":
                output.update(bounded_error(output))
        note = cell.metadata.pop("coursekit_after_restart", None)
        if note and any(o.get("output_type") == "error" for o in cell.outputs):
            cell.outputs.insert(0, new_output("stream", name="stdout", text=f"{note}; it may have failed because of that.\n"))


class ValidateWithChecker(GuardedExecute):
    """The execution step of ``nbgrader validate`` and JupyterLab's Validate button: hidden tests judged as grading judges them.

    nbgrader's validator runs a notebook with its own ``Execute``, in which a
    checker test (:mod:`coursekit.grading.checker`) is only defined, never
    run: the guard line that ends each such cell then fails, and validating
    the master reported every hidden test as failed. ``nbgrader_config.py``
    puts this class in the validator's place. On a notebook with checker
    tests (the master) it runs as grading does, in the sandbox, each test cell
    judged by the checker; the helper and data come from the notebook's own
    folder (the validator runs in it), and nothing is written there. On any
    other notebook (a student's release) it is nbgrader's ``Execute``, as
    before.
    """

    def preprocess(self, nb, resources=None, km=None):
        if not any(cell.cell_type == "code" and CHECKER_GUARD in cell.source for cell in nb.cells):
            return Execute(parent=self.parent).preprocess(nb, resources)
        self._folder = Path.cwd()  # nbgrader's validator runs in the notebook's folder
        with tempfile.TemporaryDirectory(prefix="coursekit-validate-") as scratch:
            self.incidents_file = os.path.join(scratch, INCIDENTS_FILE)  # not beside the master
            nb, resources = super().preprocess(nb, {**(resources or {}), "metadata": {"path": str(self._folder)}}, km)
        for incident in self.incidents:
            self.log.warning("%s", incident["what"])
        return nb, resources

    def _source_dir(self, resources):
        """The notebook's own folder: the checker imports the helper from it, and its cell times set the limits."""
        return self._folder

    def _allowed_inputs(self, source_dir, resources):
        """The kernel gets the course's files (the helper and the data), not what earlier runs left in the folder."""
        return {name for name in course_files() if (source_dir / name).is_file()}


class StderrIsNotFailure(NbGraderPreprocessor):
    """Keep stderr text of test cells as ordinary output, so warnings do not cost points."""

    prefix = Unicode("(written to stderr) ", help="Prefix of each converted stderr block").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and utils.is_grade(cell):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "stream" and output.get("name") == "stderr":
                    output["name"] = "stdout"
                    output["text"] = self.prefix + output.get("text", "")
        return cell, resources


def read_incidents(autograded_dir):
    """The incidents GuardedExecute recorded for a graded notebook ([] if none)."""
    path = Path(autograded_dir) / INCIDENTS_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return []

