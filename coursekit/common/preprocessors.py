"""nbgrader preprocessors of the course, each doing one small thing.

They are switched on in ``nbgrader_config.py``:

- :class:`ClearStudentInfo` (``GenerateAssignment.preprocessors``) blanks the
  ``NAME`` and ``STUDENT_ID`` that the master notebook fills in so that its
  own tests pass.
- :class:`NameUnfinishedExercises` (``GenerateAssignment.preprocessors``, after
  nbgrader's ``ClearSolutions``) makes each ``raise NotImplementedError()``
  stub of the release say which exercise is not done yet.
- :class:`RestoreLockedCells` (``Autograde.sanitize_preprocessors``, in place of
  nbgrader's ``OverwriteCells``) restores locked cells from the gradebook like
  ``OverwriteCells``, without the false "checksum has changed" warning for test
  cells with hidden tests (jupyter/nbgrader#1961).
- :class:`FlagUnansweredForGrading` (``Autograde.autograde_preprocessors``, in
  place of nbgrader's ``SaveAutoGrades``) saves the autograder's scores like
  ``SaveAutoGrades``, and leaves an answer graded by hand that the student
  never changed for the grader to confirm instead of a silent 0.
- :class:`HideHiddenTests` (``GenerateFeedback.preprocessors``) removes hidden
  tests, and the traceback lines that quote them, from feedback.
- :class:`SummarizeExercises` (``GenerateFeedback.preprocessors``, after
  nbgrader's ``GetGrades``) lists each exercise of the feedback page by its
  title, with its points and the first message of a failed test.
- :class:`CheckCellMetadataOnce` (``Autograde.sanitize_preprocessors`` and
  ``autograde_preprocessors``, in place of nbgrader's ``CheckCellMetadata``)
  makes the same checks with the metadata schema compiled once.
"""

from __future__ import annotations

import json
import re

from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for
from nbformat.v4 import new_code_cell
from nbgrader import utils
from nbgrader.api import Comment, Grade, Gradebook, MissingEntry
from nbgrader.nbgraderformat import MetadataValidator, ValidationError
from nbgrader.nbgraderformat.common import BaseMetadataValidator, SchemaTooNewError, SchemaTooOldError
from nbgrader.preprocessors import CheckCellMetadata, NbGraderPreprocessor, OverwriteCells, SaveAutoGrades
from nbgrader.preprocessors.clearhiddentests import ClearHiddenTests
from sqlalchemy.orm import joinedload
from traitlets import Int, List, Unicode
from traitlets.config import Config

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)
_POINTS_NOTE = re.compile(r"\s*\[[^\]]*\]\s*$")
_BARE_STUB = re.compile(r"\braise NotImplementedError(?:\(\))?(?=\s*$)", re.MULTILINE)


class ClearStudentInfo(NbGraderPreprocessor):
    """Reset ``NAME = "..."`` style assignments to empty strings in the release.

    The master notebook carries a name and an ID so that its Part 0 test passes
    when the build runs it; students must start from empty strings.
    """

    variables = List(
        Unicode(), default_value=["NAME", "STUDENT_ID"], help="Variables whose string value is blanked"
    ).tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and not utils.is_grade(cell):
            for name in self.variables:
                cell.source = re.sub(
                    rf'^(\s*{re.escape(name)}\s*=\s*)(["\']).*?\2(.*)$', r'\1""\3', cell.source, flags=re.MULTILINE
                )
        return cell, resources


def under_headings(cells, levels):
    """Each cell with the title of the exercise heading it falls under: ``(cell, title, heading)``.

    An exercise heading is a Markdown heading of one of ``levels`` ("## Exercise 1.3: the clustering
    objective [1 point]" gives the title "Exercise 1.3: the clustering objective"); a higher heading ends it
    (title None). ``heading`` is True for a cell that holds such a heading; the title it yields is then the
    cell's own last one.
    """
    title = None
    for cell in cells:
        heading = False
        if cell.cell_type == "markdown":
            for hashes, text in _HEADING.findall(cell.source):
                if len(hashes) in levels:
                    title, heading = _POINTS_NOTE.sub("", text), True
                elif len(hashes) < min(levels):
                    title, heading = None, True
        yield cell, title, heading


class NameUnfinishedExercises(NbGraderPreprocessor):
    """Give each code stub of the release the name of its exercise.

    nbgrader's ``ClearSolutions`` leaves ``raise NotImplementedError()`` where
    a solution was; a student running the untouched release then sees a
    bare ``NotImplementedError`` in every cell that calls the function,
    including demonstration cells far below the exercise. This turns the
    stub into ``raise NotImplementedError("Exercise 1.1 is not done yet")``,
    the label being the start of the last Markdown heading of one of
    ``heading_levels`` before the cell, up to its colon ("## Exercise 1.1:
    the partition step [2 points]" gives "Exercise 1.1"). A stub under no
    such heading keeps nbgrader's bare form.
    """

    heading_levels = List(Int(), default_value=[2, 3], help="Markdown heading levels that name an exercise").tag(
        config=True)
    template = Unicode("{label} is not done yet", help="The stub's message; {label} is the exercise").tag(
        config=True)

    def preprocess(self, nb, resources):
        for cell, title, _ in under_headings(nb.cells, self.heading_levels):
            label = title.split(":")[0].replace("$", "").strip() if title else ""
            if label and cell.cell_type == "code" and utils.is_solution(cell):
                message = json.dumps(self.template.format(label=label), ensure_ascii=False)
                cell.source = _BARE_STUB.sub(f"raise NotImplementedError({message})", cell.source)
        return nb, resources


def without_hidden_tests(source, config=None):
    """Return ``source`` with its hidden-test regions removed, as the release shows it.

    Only ``config``'s ``ClearHiddenTests`` section (its delimiters) reaches nbgrader's
    preprocessor: an exporter's whole config carries settings it has no trait for,
    and traitlets would warn about each one for every cell.
    """
    cell = new_code_cell(source)
    own = Config({"ClearHiddenTests": config.ClearHiddenTests}) if config is not None else None
    ClearHiddenTests(config=own)._remove_hidden_test_region(cell)
    return cell.source


class FeedbackPreprocessor(NbGraderPreprocessor):
    """Base of the course's feedback steps.

    The page's exporter configures ``NbConvertBase.display_data_priority`` for
    every preprocessor it runs; nbgrader's base class has the trait but not as
    configurable, so traitlets warned "Config option `display_data_priority`
    not recognized" for every notebook. nbgrader made it configurable on its own
    ``GetGrades`` (jupyter/nbgrader#683); this does the same for the course's.
    """

    display_data_priority = List(NbGraderPreprocessor.display_data_priority.default_value).tag(config=True)


class MasterCellsRead:
    """A gradebook whose lookups of one master notebook's cells are answered from memory.

    nbgrader's ``OverwriteCells`` looks each cell of a submission up in the
    gradebook with a query of its own, twice for a graded cell (about 150
    queries a submission). Grading never changes the master's cells: here
    they are read with three queries, once per notebook, and every other
    attribute is the gradebook's own.
    """

    def __init__(self, gradebook, notebook, assignment):
        self._gradebook, self._key = gradebook, (notebook, assignment)
        master = gradebook.find_notebook(notebook, assignment)
        self._source = {cell.name: cell for cell in master.source_cells}
        # find_graded_cell: a grade cell of that name, else a task cell
        self._graded = {cell.name: cell for cell in [*master.task_cells, *master.grade_cells]}

    def find_source_cell(self, name, notebook, assignment):
        return self._find(self._source, "find_source_cell", name, notebook, assignment)

    def find_graded_cell(self, name, notebook, assignment):
        return self._find(self._graded, "find_graded_cell", name, notebook, assignment)

    def _find(self, cells, lookup, name, notebook, assignment):
        """``cells[name]`` for this notebook (MissingEntry, as nbgrader, if there is none); the gradebook's ``lookup`` for another."""
        if (notebook, assignment) != self._key:
            return getattr(self._gradebook, lookup)(name, notebook, assignment)
        try:
            return cells[name]
        except KeyError:
            raise MissingEntry(f"No such cell: {assignment}/{notebook}/{name}") from None

    def __getattr__(self, name):
        return getattr(self._gradebook, name)


class RestoreLockedCells(OverwriteCells):
    """nbgrader's OverwriteCells, minus the false alarm of jupyter/nbgrader#1961.

    ``generate_assignment`` stores a test cell's checksum in the gradebook
    *before* it removes the hidden tests, so every untouched release test cell
    looks "changed" at autograde time and nbgrader logs a warning for it. A
    submitted locked cell whose source equals the master's minus its hidden
    tests is exactly what the student was given: put the master's source back
    first, so only real edits are reported (and restored, as before). The
    master's cells are read once per notebook (:class:`MasterCellsRead`).
    """

    def preprocess_cell(self, cell, resources, cell_index):
        if not isinstance(self.gradebook, MasterCellsRead):  # nbgrader opened it for this notebook
            self.gradebook = MasterCellsRead(self.gradebook, self.notebook_id, self.assignment_id)
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id is not None and utils.is_locked(cell):
            try:
                source_cell = self.gradebook.find_source_cell(grade_id, self.notebook_id, self.assignment_id)
            except MissingEntry:
                source_cell = None
            if source_cell is not None and source_cell.source != cell.source:
                if cell.source == without_hidden_tests(source_cell.source, self.config):
                    cell.source = source_cell.source
        return super().preprocess_cell(cell, resources, cell_index)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _frame_cell_count(frame):
    """The execution count of the notebook cell a traceback frame is in, or None."""
    match = re.search(r"(?:Cell In|Input In) ?\[(\d+)\]", _ANSI.sub("", frame))
    return int(match.group(1)) if match else None


def redact_traceback(traceback, cell_count):
    """Drop the frames of the test cell itself: they quote hidden-test lines.

    Frames in the student's own cells and in libraries stay, so the student
    still sees where their code failed; the header and the final
    ``Error: message`` line stay too.
    """
    if not traceback:
        return traceback
    kept, hidden = [traceback[0]], False
    for frame in traceback[1:-1]:
        if _frame_cell_count(frame) == cell_count:
            hidden = True
            continue
        kept.append(frame)
    if hidden:
        kept.append("(the lines of the test cell are not shown: it holds hidden tests)")
    kept.append(traceback[-1])
    return kept


class FlagUnansweredForGrading(SaveAutoGrades):
    """nbgrader's ``SaveAutoGrades``, with unanswered written answers left for the grader to confirm.

    An answer cell graded by hand (a written answer) that the student left as
    released gets 0 points from nbgrader, marked as graded: formgrader never
    lists it under "needs manual grade", and nobody looks at it. Here it keeps
    the 0 as its score until then, and the "No response." comment, but is
    marked as needing manual grading, so the grader sees it with the others
    (and the report calls the total provisional until it is confirmed).

    nbgrader finds each grade and comment with a query of its own and commits
    after each; here the submission's grades and comments are read with two
    queries and everything is committed once, at the end of the notebook.
    What is stored is the same.
    """

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        self.notebook_id, self.assignment_id = info["notebook"], info["assignment"]
        self.student_id, self.db_url = info["student"], info["db_url"]
        self.gradebook = Gradebook(self.db_url)
        with self.gradebook:
            submission = self.gradebook.find_submission_notebook(self.notebook_id, self.assignment_id,
                                                                 self.student_id)
            session = self.gradebook.db
            self._grades = {grade.cell.name: grade for grade in session.query(Grade).options(joinedload(Grade.cell))
                            .filter(Grade.notebook_id == submission.id)}
            self._comments = {comment.cell.name: comment for comment in session.query(Comment)
                              .options(joinedload(Comment.cell)).filter(Comment.notebook_id == submission.id)}
            nb, resources = NbGraderPreprocessor.preprocess(self, nb, resources)  # cell by cell
            self.gradebook.db.commit()
        return nb, resources

    def _find(self, found, cell):
        name = cell.metadata.nbgrader["grade_id"]
        try:
            return found[name]
        except KeyError:
            raise MissingEntry(f"nothing stored for cell {name} of {self.student_id}'s submission") from None

    def _add_score(self, cell, resources):
        grade = self._find(self._grades, cell)
        grade.auto_score, _ = utils.determine_grade(cell, self.log)
        # As nbgrader: a grader's score, or no automatic one, needs a look.
        grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
        unchanged = cell.metadata.nbgrader.get("checksum") == utils.compute_checksum(cell)
        if utils.is_solution(cell) and unchanged:
            grade.needs_manual_grade = True

    def _add_comment(self, cell, resources):
        comment = self._find(self._comments, cell)
        unchanged = cell.metadata.nbgrader.get("checksum", None) == utils.compute_checksum(cell)
        comment.auto_comment = "No response." if unchanged and not utils.is_task(cell) else None


class HideHiddenTests(FeedbackPreprocessor):
    """For feedback: remove hidden-test code and tracebacks that quote it, keep results.

    nbgrader's feedback shows a test cell as it was graded, hidden tests
    included (jupyter/nbgrader#917, #1363), and ``ClearHiddenTests`` alone
    still leaves the hidden lines in tracebacks. Here each cell with hidden
    tests (a test cell, or a copy of one pasted elsewhere) shows its visible
    part, a note that hidden tests ran, its points (nbgrader's template), and
    any error as the error type and message with the cell's own frames removed.
    """

    note = Unicode(
        "# Hidden tests ran here when your notebook was graded; their code is not shown.",
        help="Line that replaces the hidden tests in feedback",
    ).tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or "BEGIN HIDDEN TESTS" not in cell.source:
            return cell, resources
        cell.source = without_hidden_tests(cell.source, self.config).rstrip() + "\n\n" + self.note
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["traceback"] = redact_traceback(output.get("traceback", []), cell.get("execution_count"))
        return cell, resources




def first_line(text, limit):
    """The first non-blank line of ``text``, cut to ``limit`` characters (with an ellipsis)."""
    line = next((line.strip() for line in str(text).splitlines() if line.strip()), "")
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "\u2026"


class SummarizeExercises(FeedbackPreprocessor):
    """For feedback: each exercise by its title, its points, and why a test failed.

    Graded cells are grouped under the Markdown heading before them, of one
    of ``heading_levels`` ("## Exercise 1.3: the clustering objective [1 point]"
    gives "Exercise 1.3: the clustering objective"); a higher heading ends
    the group, and graded cells under no such heading are named after their
    ``grade_id``. Needs nbgrader's ``GetGrades`` before it (it puts each
    graded cell's score and points into its metadata).

    The list goes to ``resources["exercise_summary"]`` for the feedback
    template: one dict per exercise with ``title`` (Markdown text, may hold
    ``$...$``), ``anchor`` (the ``grade_id`` of its first graded cell),
    ``score`` (None while a hand-graded answer is not graded yet),
    ``points``, ``graded_by_hand`` and ``message`` (the error of the first
    failed test, first line only, or ""). An answer graded by hand counts as
    not graded yet (score None) while the gradebook says it needs a manual
    grade (nbgrader scores it 0 until then); one left as released scores 0
    and gets the message "not answered" (:class:`FlagUnansweredForGrading`
    leaves that 0 for a grader to confirm).
    """

    heading_levels = List(Int(), default_value=[2, 3], help="Markdown heading levels that name an exercise").tag(
        config=True)
    max_message_chars = Int(240, help="Longest failure message shown in the summary").tag(config=True)

    def preprocess(self, nb, resources):
        self._by_hand = self._manual_grading_states(nb, resources)
        exercises, current = [], None
        for cell, title, heading in under_headings(nb.cells, self.heading_levels):
            if heading:
                current = None
            if not utils.is_grade(cell):
                continue
            meta = cell.metadata.nbgrader
            if current is None:
                name = title or meta["grade_id"].removesuffix("_test").replace("_", " ").capitalize()
                current = dict(title=name, anchor=meta["grade_id"], score=0.0, points=0.0,
                               graded_by_hand=False, message="")
                exercises.append(current)
            self._add(current, cell, meta)
        resources["exercise_summary"] = exercises
        return nb, resources

    @staticmethod
    def _manual_grading_states(nb, resources):
        """{grade_id: "pending" or "unanswered"} for the answers graded by hand, from the gradebook."""
        info = resources.get("nbgrader", {})
        manual = [cell.metadata.nbgrader["grade_id"] for cell in nb.cells
                  if utils.is_grade(cell) and utils.is_solution(cell)]
        states = {}
        if not manual or "db_url" not in info:
            return states
        with Gradebook(info["db_url"]) as gradebook:
            for grade_id in manual:
                try:
                    grade = gradebook.find_grade(grade_id, info["notebook"], info["assignment"], info["student"])
                except MissingEntry:
                    continue
                if grade.manual_score is None and grade.auto_score is not None and not grade.auto_score:
                    states[grade_id] = "unanswered"  # the 0 of an answer left as released (a grader may confirm it)
                elif grade.needs_manual_grade:
                    states[grade_id] = "pending"
        return states

    def _add(self, exercise, cell, meta):
        exercise["points"] += float(meta.get("points") or 0)
        state = self._by_hand.get(meta["grade_id"])
        score = None if state == "pending" else meta.get("score")
        if score is None or exercise["score"] is None:
            exercise["score"] = None
        else:
            exercise["score"] += float(score)
        if utils.is_solution(cell):  # an answer graded by hand (a test cell is never a solution)
            exercise["graded_by_hand"] = True
            if state == "unanswered" and not exercise["message"]:
                exercise["message"] = "not answered"
        elif score is not None and float(score) < float(meta.get("points") or 0) and not exercise["message"]:
            exercise["message"] = self._failure(cell)

    def _failure(self, cell):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error" and output.get("ename") == "NotImplementedError":
                # The stub's own sentence ("Exercise 2.1 is not done yet", NameUnfinishedExercises), when it has one.
                sentence = first_line(output.get("evalue", ""), self.max_message_chars)
                return f"not answered yet: {sentence}" if sentence else "not answered yet"
            if output.get("output_type") == "error":
                evalue = first_line(output.get("evalue", ""), self.max_message_chars)
                return f"{output.get('ename', 'Error')}: {evalue}" if evalue else output.get("ename", "Error")
        return "this test did not pass"


class _SchemaCompiledOnce(BaseMetadataValidator):
    """nbgrader's per-cell schema check, with a validator built once per schema.

    nbgrader calls ``jsonschema.validate`` for every cell, which checks the
    schema itself and builds a validator each time.
    """

    _validators = {}

    def validate_cell(self, cell):
        if "nbgrader" not in cell.metadata:
            return
        version = cell.metadata["nbgrader"].get("schema_version", 0)
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValidationError(f"schema_version is not a whole number: {str(version)[:40]}")
        if version < self.schema_version:
            raise SchemaTooOldError(
                f"Outdated schema version: {version} (expected {self.schema_version})", version, self.schema_version
            )
        if version > self.schema_version:
            raise SchemaTooNewError(
                f"Schema version is too new: {version} (expected {self.schema_version})", version, self.schema_version
            )
        error = best_match(self._validator().iter_errors(cell.metadata["nbgrader"]))
        if error is not None:
            raise error

    def _validator(self):
        if self.schema_version not in self._validators:
            cls = validator_for(self.schema)
            cls.check_schema(self.schema)
            self._validators[self.schema_version] = cls(self.schema)
        return self._validators[self.schema_version]


class _QuickMetadataValidator(MetadataValidator, _SchemaCompiledOnce):
    """nbgrader's current MetadataValidator; its base check is the compiled one above."""


class CheckCellMetadataOnce(CheckCellMetadata):
    """nbgrader's CheckCellMetadata, with the metadata schema compiled once, and errors that say where.

    Same checks (each cell against the schema, then no ``grade_id`` twice);
    nbgrader's version re-checks the JSON schema for every cell, about 0.2 s
    of CPU for each submission graded. Every failure is raised as a
    ``ValidationError`` with a one-line message naming the cell, an outdated
    or empty schema version included: nbgrader raises ``SchemaTooOldError``
    for those, which its converter reports as "an old version of the nbgrader
    metadata format" (the metadata that ``DeduplicateIds`` empties on a
    duplicated cell, jupyter/nbgrader#1083). The message::

        Notebook failed to validate; the nbgrader metadata may be corrupted: cell <index> ('<grade_id>'): <what is wrong>
    """

    prefix = "Notebook failed to validate; the nbgrader metadata may be corrupted"

    def preprocess(self, nb, resources):
        found = self.first_problem(nb)
        if found is None:
            return nb, resources
        index, problem = found
        meta = nb.cells[index].metadata.get("nbgrader")
        gid = meta.get("grade_id") if isinstance(meta, dict) else None
        where = f"cell {index}" + (f" ({gid!r})" if isinstance(gid, str) else "")
        message = f"{self.prefix}: {where}: {' '.join(problem.split())}"
        self.log.error(message)
        raise ValidationError(message)

    def first_problem(self, nb):
        """(cell index, what is wrong) of the first invalid cell, in nbgrader's order of checks, or None."""
        validator, first = _QuickMetadataValidator(), {}
        for index, cell in enumerate(nb.cells):
            problem = self.cell_problem(validator, cell)
            if problem:
                return index, problem
        for index, cell in enumerate(nb.cells):
            problem = self.duplicate_problem(cell, index, first)
            if problem:
                return index, problem
        return None

    @staticmethod
    def cell_problem(validator, cell):
        """What nbgrader's schema check finds wrong with ``cell``, or None."""
        meta = cell.metadata.get("nbgrader")
        if meta is None:
            return None
        if not isinstance(meta, dict):
            return "its nbgrader metadata is not a JSON object"
        if not meta:
            return ("its nbgrader metadata is empty (nbgrader's DeduplicateIds empties it on every copy "
                    "of a duplicated grade_id but the last)")
        try:
            validator.validate_cell(cell)
        except ValidationError as error:
            path = "/".join(str(part) for part in getattr(error, "path", []))
            return (f"{path}: " if path else "") + (getattr(error, "message", None) or str(error))
        except (SchemaTooOldError, SchemaTooNewError) as error:
            return str(error)
        return None

    @staticmethod
    def duplicate_problem(cell, index, first):
        """What is wrong when a graded, answer or read-only cell repeats a ``grade_id`` seen before, or None."""
        meta = cell.metadata.get("nbgrader")
        if not meta or not (meta.get("grade") or meta.get("solution") or meta.get("locked")):
            return None
        gid = meta.get("grade_id")
        if gid in first:
            return f"grade_id {gid!r} is also used by cell {first[gid]}"
        first[gid] = index
        return None
