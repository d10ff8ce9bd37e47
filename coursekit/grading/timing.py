"""Time limits calibrated from the solution's own run.

``make build`` runs the master notebook and records how long each of its cells
took (:func:`cell_seconds`) in ``source/<assignment>/cell_times.json``
(:func:`write_cell_times`). While grading, :class:`TimeLimits` gives each cell
of a submission a multiple of its solution's time, never less than a floor and
never more than ``c.Execute.timeout``, and the notebook a budget from the
solution's total. A loop in one function then costs seconds, not minutes, and
the rest of the notebook still runs.

Cells are recognised by their nbgrader ``grade_id``, and by their source as
the release shows it (so a copy a student pasted elsewhere is recognised too);
a cell the master does not have (a student's own) gets ``c.TimeLimits.other_cells``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from pathlib import Path

from traitlets import Float
from traitlets.config import LoggingConfigurable

from coursekit.common import notebooks
from coursekit.common.files import sha256_file, write_atomically

log = logging.getLogger(__name__)

CELL_TIMES = "cell_times.json"


def source_key(source):
    """A cell's key by its source (whitespace-insensitive)."""
    return "src:" + hashlib.sha1(" ".join(source.split()).encode()).hexdigest()[:16]


def cell_keys(cell):
    """How a cell is recognised in the table: its grade_id (if any), then its source."""
    gid = notebooks.grade_id(cell)
    return ([f"id:{gid}"] if gid else []) + [source_key(cell.get("source", ""))]


def _seconds(execution):
    try:
        start = datetime.fromisoformat(execution["iopub.execute_input"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(execution["shell.execute_reply"].replace("Z", "+00:00"))
    except (KeyError, TypeError, ValueError):
        return None
    return max(0.0, (end - start).total_seconds())


def cell_seconds(executed, released_source=None):
    """{cell key: seconds} of a notebook run with nbclient's ``record_timing``.

    Each cell is entered under its grade_id and under its source; with
    ``released_source`` (a function of the master cell), under the source the
    release shows (a test cell without its hidden tests) too.
    """
    table = {}
    for cell in executed.cells:
        if cell.cell_type == "code":
            seconds = _seconds(cell.get("metadata", {}).get("execution", {}))
            if seconds is None:
                continue
            keys = cell_keys(cell)
            if released_source is not None and not notebooks.is_solution_cell(cell):
                keys.append(source_key(released_source(cell)))
            for key in keys:
                table[key] = max(table.get(key, 0.0), round(seconds, 3))
    return table


def master_digest(master_path):
    return sha256_file(master_path)


def write_cell_times(path, master_path, seconds):
    """Write the table for the master at ``master_path`` (atomically); return it."""
    path = Path(path)
    table = {
        "master_sha256": master_digest(master_path),
        "total_seconds": round(sum(v for k, v in seconds.items() if k.startswith("id:")), 3),
        "cells": dict(sorted(seconds.items())),
    }
    write_atomically(path, json.dumps(table, indent=1) + "\n")
    return table


def cell_times_current(path, master_path):
    """True when ``path`` holds the times of the master as it is now."""
    try:
        return json.loads(Path(path).read_text())["master_sha256"] == master_digest(master_path)
    except (OSError, ValueError, KeyError, TypeError):
        return False


class TimeLimits(LoggingConfigurable):
    """Per-cell time limits and the notebook budget (``c.TimeLimits.*``).

    A cell may run ``max(floor, factor x its solution time)`` seconds, and the
    notebook ``max(notebook_floor, notebook_factor x the solution's total)``,
    each capped by the hard limits of ``c.Execute.timeout`` and
    ``c.GuardedExecute.notebook_timeout``. Without a table, the hard limits apply.
    """

    factor = Float(20.0, help="A cell may run this many times as long as in the solution").tag(config=True)
    floor = Float(10.0, help="Seconds any cell may run, however fast the solution's").tag(config=True)
    other_cells = Float(30.0, help="Seconds a cell the master does not have (a student's own) may run").tag(config=True)
    notebook_factor = Float(6.0, help="The notebook may run this many times as long as the solution").tag(config=True)
    notebook_floor = Float(180.0, help="Seconds any notebook may run").tag(config=True)

    def __init__(self, table=None, **kwargs):
        super().__init__(**kwargs)
        self.table = table

    @classmethod
    def for_assignment(cls, path, **kwargs):
        """Limits from the table at ``path`` (hard limits only if there is none)."""
        table = None
        if path is not None:
            try:
                table = json.loads(Path(path).read_text())
                table["cells"] = {str(k): float(v) for k, v in table["cells"].items()}
            except FileNotFoundError:
                log.warning("%s is missing: run `make build` to calibrate time limits; using c.Execute.timeout", path)
                table = None
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
                log.warning("%s is unreadable (%s); using c.Execute.timeout", path, error)
                table = None
        return cls(table, **kwargs)

    def for_cell(self, cell, cap):
        """Seconds ``cell`` may run; ``cap`` is the hard per-cell limit."""
        if not self.table:
            return cap
        known = [self.table["cells"][key] for key in cell_keys(cell) if key in self.table["cells"]]
        limit = max(self.floor, self.factor * known[0]) if known else self.other_cells
        return min(cap, limit) if cap else limit

    def notebook_budget(self, cap):
        """Seconds the whole notebook may run; ``cap`` is the hard limit."""
        if not self.table:
            return cap
        return min(cap, max(self.notebook_floor, self.notebook_factor * float(self.table.get("total_seconds", 0.0))))
