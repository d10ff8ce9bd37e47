"""Similar submissions: pairs of students whose answers share long passages, as leads for a person.

What is compared is what the students wrote, and only that: the answer cells
(code and written answers) of each graded student's notebook, less the
release's template for that cell (signature, docstring, the ``raise
NotImplementedError`` stub, "YOUR ANSWER HERE"). Code and written answers are
compared separately. From a written answer, the template's lines are removed;
from code, the template's fingerprints (step 3): removing lines would break a
docstring the student edited, and turn the rest of the cell into a string.

How (Schleimer, Wilkerson and Aiken's winnowing, as MOSS does it, through the
``copydetect`` library):

1. Code is tokenised by copydetect's :func:`copydetect.utils.filter_code`
   (Pygments): every name becomes ``V``, function names ``F``, strings ``S``;
   comments and white space go. Renamed variables, new comments or another
   layout change nothing. Written answers keep their letters and digits, in
   lower case.
2. Every ``k``-gram of what is left is hashed (with BLAKE2b, so that the same
   text gives the same fingerprint in every run; copydetect's own hashing uses
   Python's ``hash``, which changes from process to process), and
   copydetect's :func:`copydetect.utils.winnow` keeps the smallest hash of
   each window of ``window`` k-grams: any shared passage of ``k + window - 1``
   characters or more shares a fingerprint. Reordered functions keep their
   fingerprints.
3. Fingerprints of the template, and those found in more than
   ``common_share`` of a class of at least ``MIN_CLASS_FOR_COMMON``
   documents (the idioms everyone writes), are dropped.
4. For each pair sharing fingerprints (and whose share of shared
   fingerprints is at least ``PRESCREEN`` times the threshold), copydetect's
   :func:`copydetect.detector.compare_files` gives the share of each
   document's fingerprinted tokens that lies in passages found in the other;
   the pair's score is the larger share (a copy of part of a longer answer
   still shows), counted only when both documents have at least
   ``min_tokens`` fingerprinted tokens (a nearly blank notebook is not
   "similar" to everyone).

Pairs with a score of at least ``threshold`` in code or in written answers
are reported, highest first. A score says how much text two students share
after this normalisation; it is a lead for a person to read both answers (the
side-by-side page), never a verdict: short exercises have few ways to be
written, and students may legitimately share ideas.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from dataclasses import dataclass, field

import numpy as np
# copydetect is imported by the functions that use it, on first use: its package imports matplotlib.pyplot
# (0.35 s), which every command would pay for (the CLI reads DEFAULT_THRESHOLD from here) and only the report needs.
from markupsafe import Markup, escape
from nbgrader.preprocessors import ClearSolutions
from scipy import sparse

from coursekit.common import notebooks
from coursekit.common.files import UnsafeFile
from coursekit.common.preprocessors import NameUnfinishedExercises

log = logging.getLogger(__name__)

#: Default score from which a pair is reported. On the synthetic class of bench/similarity_class.py
#: (README), independent solutions reach at most 0.63 and disguised copies at least 0.99.
DEFAULT_THRESHOLD = 0.8
#: Length of the k-grams (characters of normalised text) and the winnowing window.
CODE_K, TEXT_K, WINDOW = 20, 25, 6
#: Fewest fingerprinted tokens a document needs to be scored at all.
MIN_CODE_TOKENS, MIN_TEXT_TOKENS = 80, 80
#: Fingerprints in more than this share of a class's documents are everyone's, not a pair's.
COMMON_SHARE = 0.5
MIN_CLASS_FOR_COMMON = 10
#: Pairs whose estimated score (shared fingerprints over the smaller document's) is below this share
#: of the threshold are not scored: most of a class, at a fraction of the time (measured in the README).
PRESCREEN = 0.6
#: Longest answer cell compared (characters): a student's cell may hold anything.
MAX_CELL_CHARS = 20_000
#: Between two answer cells of a document: normalised to one backtick (not Python, not a letter),
#: and no fingerprint spans it, so the seam of two cells is never a shared passage.
SEAM, SEAM_MARK = "\n`\n", "`"
CODE, WRITTEN = "code", "written"


@dataclass
class Document:
    """One student's answers of one kind, fingerprinted.

    It has the attributes :func:`copydetect.detector.compare_files` reads
    (``k``, ``hashes``, ``hash_idx``, ``filtered_code``, ``offsets``,
    ``token_coverage``), as copydetect's ``CodeFingerprint`` does.
    """

    student: str
    kind: str
    segments: list  # [(grade_id, text)], the answer cells in notebook order
    raw: str  # the segments' texts joined with SEAM
    k: int
    filtered_code: str = ""
    offsets: np.ndarray = field(default_factory=lambda: np.array([]))
    hashes: set = field(default_factory=set)
    hash_idx: dict = field(default_factory=dict)
    token_coverage: float = 0.0


@dataclass(frozen=True)
class SimilarPair:
    """Two students whose answers share passages; scores are shares in 0..1."""

    first: str
    second: str
    code_score: float
    written_score: float
    code: tuple = ()  # the two code Documents
    written: tuple = ()  # the two written Documents
    code_slices: tuple = ()  # (slices in first, slices in second): 2 x n arrays of raw offsets
    written_slices: tuple = ()

    @property
    def score(self):
        return max(self.code_score, self.written_score)


# --- What a student wrote -------------------------------------------------------------


def template_lines(source):
    """The non-blank lines of a template cell, stripped: what a student's cell shares with everyone's."""
    return {line.strip() for line in source.splitlines() if line.strip()}


def written_part(source, template):
    """The lines of ``source`` that are not lines of the template (blank lines dropped)."""
    source = source[:MAX_CELL_CHARS]
    return "\n".join(line for line in source.splitlines() if line.strip() and line.strip() not in template)


def released_answer_cells(master, config=None):
    """{grade_id: source} of the master's answer cells as the release has them (nbgrader's stubs).

    Made as ``make build`` makes the release: nbgrader's ``ClearSolutions``,
    then :class:`coursekit.common.preprocessors.NameUnfinishedExercises`.
    """
    nb, resources = ClearSolutions(config=config).preprocess(copy.deepcopy(master), {})
    nb, _ = NameUnfinishedExercises(config=config).preprocess(nb, resources)
    return {notebooks.grade_id(c): c.source for c in nb.cells if notebooks.is_solution_cell(c)}


def templates_from(master, config=None):
    """{grade_id: (kind, template)} of the answer cells: what every student's cell starts as.

    The template of a code cell is its released source; of a written answer,
    the set of its lines.
    """
    kinds = {notebooks.grade_id(c): CODE if c.cell_type == "code" else WRITTEN for c in master.cells}
    return {grade_id: (kinds[grade_id], source if kinds[grade_id] == CODE else template_lines(source))
            for grade_id, source in released_answer_cells(master, config).items()}


def answers_of(nb, templates):
    """{kind: [(grade_id, the student's cell)]} from a student's notebook, in the master's cell order.

    A written answer loses its template lines here; code keeps them (its
    template's fingerprints are dropped instead, see the module docstring).
    """
    found = {}
    for cell in nb.cells:
        grade_id = notebooks.grade_id(cell)
        if grade_id in templates and grade_id not in found and isinstance(cell.get("source"), str):
            kind, template = templates[grade_id]
            found[grade_id] = written_part(cell.source, template) if kind == WRITTEN else cell.source[:MAX_CELL_CHARS]
    answers = {CODE: [], WRITTEN: []}
    for grade_id, (kind, _) in templates.items():
        answers[kind].append((grade_id, found.get(grade_id, "")))
    return answers


# --- Fingerprints -------------------------------------------------------------------------


def filter_text(text):
    """Letters and digits of ``text`` in lower case, and offsets in copydetect's format (see ``filter_code``)."""
    kept, offsets, removed = [], [[0, 0]], 0
    for char in text:
        if char.isalnum() or char == SEAM_MARK:
            kept.append(char.lower())
        else:
            offsets.append([len(kept) - 1, removed])
            removed += 1
    return "".join(kept), np.array(offsets)


def kgram_hashes(text, k):
    """A 63-bit BLAKE2b hash of every k-gram of ``text`` (the same in every process, unlike ``hash``)."""
    data = text.encode("utf-32-le")  # 4 bytes per character: k-grams are byte slices
    return np.array([int.from_bytes(hashlib.blake2b(data[4 * i:4 * (i + k)], digest_size=8).digest(), "little") >> 1
                     for i in range(len(text) - k + 1)], dtype=np.int64)


def fingerprint(document, window=WINDOW, boilerplate=()):
    """Fill in ``document``'s normalised text, fingerprints and coverage (in place); return it."""
    from copydetect.utils import filter_code, get_token_coverage, winnow

    if document.kind == CODE:
        filtered, offsets = filter_code(document.raw, "answers.py", language="python")
    else:
        filtered, offsets = filter_text(document.raw)
    document.filtered_code, document.offsets = filtered, offsets
    hashes = kgram_hashes(filtered, document.k)
    if len(hashes):
        hashes, index = winnow(hashes, window, remove_duplicates=False)
    else:
        index = np.array([], dtype=np.int64)
    seams = np.flatnonzero(np.frombuffer(filtered.encode("utf-32-le"), dtype="<u4") == ord(SEAM_MARK))
    spanning = np.isin(index, (seams[:, None] - np.arange(document.k)[None, :]).ravel())
    keep = ~np.isin(hashes, np.fromiter(boilerplate, dtype=np.int64)) & ~spanning
    document.hash_idx = {}
    for value, position in zip(hashes[keep].tolist(), index[keep].tolist()):
        document.hash_idx.setdefault(value, []).append(position)
    document.hashes = set(document.hash_idx)
    document.token_coverage = get_token_coverage(document.hash_idx, document.k, len(filtered))
    return document


def template_fingerprints(templates, kind, k, window=WINDOW):
    """The fingerprints of the template cells of ``kind`` (as one document), to drop as boilerplate."""
    hashes = set()
    for cell_kind, template in templates.values():
        if cell_kind == kind:
            raw = template if kind == CODE else "\n".join(sorted(template))
            hashes |= fingerprint(Document("", kind, [], raw, k), window=1).hashes
    return hashes


def drop_common(documents, common_share=COMMON_SHARE):
    """Remove from every document the fingerprints found in more than ``common_share`` of them."""
    from copydetect.utils import get_token_coverage

    if len(documents) < MIN_CLASS_FOR_COMMON:
        return set()
    counts = {}
    for document in documents:
        for value in document.hashes:
            counts[value] = counts.get(value, 0) + 1
    common = {value for value, count in counts.items() if count > common_share * len(documents)}
    for document in documents:
        for value in common & document.hashes:
            del document.hash_idx[value]
        document.hashes -= common
        document.token_coverage = get_token_coverage(document.hash_idx, document.k, len(document.filtered_code))
    return common


# --- Pairs -----------------------------------------------------------------------------------


def candidate_pairs(documents, min_estimate=0.0):
    """Index pairs (i < j) of documents worth scoring, from a sparse product (not a loop over pairs).

    A pair is a candidate when it shares a fingerprint and its estimated
    score, shared fingerprints over the smaller document's fingerprints, is at
    least ``min_estimate``.
    """
    vocabulary = {}
    rows, cols = [], []
    for row, document in enumerate(documents):
        for value in document.hashes:
            rows.append(row)
            cols.append(vocabulary.setdefault(value, len(vocabulary)))
    if not rows:
        return []
    incidence = sparse.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, cols)),
                                  shape=(len(documents), len(vocabulary)))
    shared = sparse.triu(incidence @ incidence.T, k=1).tocoo()
    sizes = np.array([max(len(d.hashes), 1) for d in documents])
    estimate = shared.data / np.minimum(sizes[shared.row], sizes[shared.col])
    keep = estimate >= min_estimate
    return sorted(zip(shared.row[keep].tolist(), shared.col[keep].tolist()))


def pair_scores(documents, min_tokens, min_estimate=0.0):
    """{(i, j): (score, (slices_i, slices_j))} for the candidate pairs of ``documents`` (see candidate_pairs)."""
    from copydetect.detector import compare_files

    scores = {}
    for i, j in candidate_pairs(documents, min_estimate):
        first, second = documents[i], documents[j]
        if min(first.token_coverage, second.token_coverage) < min_tokens:
            continue
        _, (share_first, share_second), slices = compare_files(first, second)
        scores[(i, j)] = (float(max(share_first, share_second)), slices)
    return scores


def fingerprinted_class(answers, templates, kind, common_share=COMMON_SHARE):
    """Documents of ``kind`` for {student: answers}, template and common fingerprints dropped."""
    k = CODE_K if kind == CODE else TEXT_K
    boilerplate = template_fingerprints(templates, kind, k)
    documents = []
    for student in sorted(answers):
        segments = answers[student][kind]
        raw = SEAM.join(text for _, text in segments)
        documents.append(fingerprint(Document(student, kind, segments, raw, k), boilerplate=boilerplate))
    drop_common(documents, common_share)
    return documents


def similar_pairs(answers, templates, threshold=DEFAULT_THRESHOLD, common_share=COMMON_SHARE):
    """The pairs of students scoring at least ``threshold`` in code or written answers, highest first.

    Parameters
    ----------
    answers : dict
        {student: {"code": [(grade_id, text)], "written": [...]}}, from :func:`answers_of`.
    templates : dict
        From :func:`templates_from`.
    threshold : float
        Score (0..1) from which a pair is reported.
    common_share : float
        Fingerprints in more than this share of the documents are dropped (classes of 10 or more).

    Returns
    -------
    list of SimilarPair
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"the similarity threshold must be in (0, 1]; got {threshold}")
    by_kind = {kind: fingerprinted_class(answers, templates, kind, common_share) for kind in (CODE, WRITTEN)}
    screen = PRESCREEN * threshold
    scored = {CODE: pair_scores(by_kind[CODE], MIN_CODE_TOKENS, screen),
              WRITTEN: pair_scores(by_kind[WRITTEN], MIN_TEXT_TOKENS, screen)}
    pairs = []
    for i, j in sorted(set(scored[CODE]) | set(scored[WRITTEN])):
        code_score, code_slices = scored[CODE].get((i, j), (0.0, ()))
        written_score, written_slices = scored[WRITTEN].get((i, j), (0.0, ()))
        if max(code_score, written_score) >= threshold:
            pairs.append(SimilarPair(
                by_kind[CODE][i].student, by_kind[CODE][j].student, code_score, written_score,
                (by_kind[CODE][i], by_kind[CODE][j]), (by_kind[WRITTEN][i], by_kind[WRITTEN][j]),
                tuple(code_slices), tuple(written_slices)))
    return sorted(pairs, key=lambda p: (-p.score, p.first, p.second))


# --- Reading a class -----------------------------------------------------------------------


def read_class_answers(course_root, assignment, students, templates):
    """{student: answers} from the graded notebooks of ``students``; unreadable ones are left out with a warning."""
    answers = {}
    for student in students:
        try:
            nb = notebooks.read_graded_notebook(course_root, assignment, student)
        except (OSError, UnsafeFile, ValueError) as error:
            log.warning(f"{student}: left out of the similarity check: {error}")
            continue
        answers[student] = answers_of(nb, templates)
    return answers


# --- The side-by-side page ---------------------------------------------------------------------


def highlighted_segments(document, slices, templates):
    """[(grade_id, Markup)]: each answer cell's text, escaped, shared passages in ``<mark>``.

    Lines of the cell's template are shown dimmed (``<span class="template">``)
    and never marked: they do not count, even where a shared passage runs
    across them.
    """
    slices = np.asarray(slices, dtype=np.int64).reshape(2, -1) if np.size(slices) else np.zeros((2, 0), np.int64)
    shown, start = [], 0
    for grade_id, text in document.segments:
        template = templates.get(grade_id, (CODE, ""))[1]
        template = template_lines(template) if isinstance(template, str) else template
        lines, position = [], start
        for line in text.splitlines(keepends=True):
            if line.strip() and line.strip() in template:
                lines.append(Markup('<span class="template">') + escape(line) + Markup("</span>"))
            else:
                lines.append(_marked(document.raw, position, position + len(line), slices))
            position += len(line)
        shown.append((grade_id, Markup("").join(lines)))
        start += len(text) + len(SEAM)
    return shown


def _marked(raw, start, end, slices):
    """``raw[start:end]``, escaped, with its parts inside ``slices`` in ``<mark>``."""
    parts, position = [], start
    for left, right in zip(slices[0], slices[1]):
        left, right = max(int(left), position), min(int(right), end)
        if left >= right:
            continue
        parts += [escape(raw[position:left]), Markup("<mark>") + escape(raw[left:right]) + Markup("</mark>")]
        position = right
    parts.append(escape(raw[position:end]))
    return Markup("").join(parts)
