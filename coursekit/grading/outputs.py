"""What a graded notebook records of its outputs: bounded as it arrives, merged in linear time.

A student's code decides how much it prints. The grader records at most a
fixed amount per cell and per notebook (:class:`OutputBudget`), deciding for
each message as it arrives, so neither the grader's memory nor its time grows
with what the kernel sends; the rest is counted and replaced by one note.
Error outputs are always kept (nbgrader fails a test by them), with their
traceback cut to a bounded size.

:func:`merge_streams` joins the stream outputs of a cell, as nbclient's
``coalesce_streams`` does, and applies carriage returns and backspaces the
way a terminal shows them, in time linear in the text (nbclient's regular
expression is quadratic on long lines without a newline).
"""

from __future__ import annotations

import copy
import json

#: Longest text of an error's message, and of one traceback frame, that is kept.
MAX_ERROR_TEXT = 4000
#: Frames of a traceback kept from its start and from its end.
HEAD_FRAMES, TAIL_FRAMES = 3, 12


def _text_size(data):
    """Characters of a display message's data (every MIME type together)."""
    size = 0
    for value in (data or {}).values():
        size += len(value) if isinstance(value, str) else len(json.dumps(value))
    return size


def _head(text, chars, lines):
    """The start of ``text``: at most ``chars`` characters and ``lines`` newlines."""
    head = text[:chars]
    parts = head.split("\n", lines)
    if len(parts) > lines:
        head = "\n".join(parts[:lines]) + "\n"
    return head


def _cut(text, limit=MAX_ERROR_TEXT):
    text = str(text)
    return text if len(text) <= limit else text[:limit] + " ... (cut by the grader)"


def bounded_error(content):
    """An error message's content with its message and traceback of bounded size."""
    content = dict(content)
    content["ename"] = _cut(content.get("ename", "Error"), 200)
    content["evalue"] = _cut(content.get("evalue", ""))
    frames = [_cut(frame) for frame in content.get("traceback") or []]
    if len(frames) > HEAD_FRAMES + TAIL_FRAMES:
        skipped = len(frames) - HEAD_FRAMES - TAIL_FRAMES
        frames = frames[:HEAD_FRAMES] + [f"... ({skipped} frames not shown by the grader) ..."] + frames[-TAIL_FRAMES:]
    content["traceback"] = frames
    return content


class OutputBudget:
    """How much output the current cell and the notebook may still record.

    Parameters
    ----------
    cell_chars : int
        Characters of output recorded per cell (streams, and the data of
        display messages, all MIME types counted).
    cell_lines : int
        Newlines of stream text recorded per cell.
    notebook_chars : int
        Characters recorded for the whole notebook.

    Notes
    -----
    Call :meth:`start_cell` before a cell runs, :meth:`admit` for each output
    message, :meth:`cleared` when the cell's output is cleared, and
    :meth:`end_cell` afterwards: it returns the note to show when something
    was dropped.
    """

    def __init__(self, cell_chars, cell_lines, notebook_chars):
        self.cell_chars, self.cell_lines, self.notebook_chars = cell_chars, cell_lines, notebook_chars
        self.notebook_used = 0
        self.start_cell()

    def start_cell(self):
        self.chars = self.lines = 0
        self.full = False
        self.dropped_chars = self.dropped_messages = 0
        self.complete = False  # set when the kernel's "idle" for the cell arrived

    def cleared(self):
        """The cell's recorded output was cleared (``clear_output``): its room is free again."""
        self.chars = self.lines = 0
        self.full = False

    def admit(self, msg):
        """Return ``msg`` (or a shortened copy) to record it, or None to drop it."""
        kind, content = msg["msg_type"], msg["content"]
        if kind == "error":
            return {**msg, "content": bounded_error(content)}
        if kind == "stream":
            text = content.get("text", "")
            size, lines = len(text), text.count("\n")
        else:
            size, lines = _text_size(content.get("data")), 0
        room = min(self.cell_chars - self.chars, self.notebook_chars - self.notebook_used - self.chars)
        room_lines = self.cell_lines - self.lines
        if not self.full and size <= room and lines <= room_lines:
            self.chars += size
            self.lines += lines
            return msg
        admitted = None
        if not self.full and kind == "stream" and room > 0 and room_lines > 0:
            head = _head(text, room, room_lines)
            admitted = copy.copy(msg)
            admitted["content"] = {**content, "text": head}
            self.chars += len(head)
            size -= len(head)
        self.full = True
        self.dropped_chars += size
        self.dropped_messages += 1
        return admitted

    def end_cell(self, count=True):
        """Close the cell; return a note on what was dropped ("" if nothing).

        ``count=False`` for a cell whose outputs are not kept (a re-run after
        a restart): it does not use up the notebook's room.
        """
        if count:
            self.notebook_used += self.chars
        if not self.complete:
            return ("output truncated by the grader: part of this cell's output did not arrive (more output, or "
                    "larger messages, than the grader takes in)")
        if not self.dropped_messages:
            return ""
        return (
            f"output truncated by the grader: this cell's output passed the limit of {self.cell_chars:,} characters "
            f"or {self.cell_lines:,} lines per cell ({self.notebook_chars:,} per notebook); "
            f"{self.dropped_chars:,} more characters were not recorded"
        )


def render_terminal_text(text):
    """Apply backspaces and carriage returns as a terminal would, in linear time.

    Same result as nbclient's stream coalescing: a character followed by a
    backspace is removed, and on each line everything up to the last carriage
    return that is followed by more text is overwritten.
    """
    if "\r" not in text and "\b" not in text:
        return text
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if "\b" in line:
            kept = []
            for char in line:
                if char == "\b" and kept and kept[-1] != "\b":
                    kept.pop()
                else:
                    kept.append(char)
            line = "".join(kept)
        cut = line.rfind("\r", 0, len(line) - 1)
        if cut >= 0:
            line = line[cut + 1:]
        lines[index] = line
    return "\n".join(lines)


def merge_streams(outputs):
    """Merge each stream's outputs into its first one and render its text.

    How a kernel splits printed text into messages depends on timing; merged,
    the same code always gives the same outputs. stdout is put before stderr
    when they are adjacent (their relative order is not reliable either).
    """
    merged, parts, first = [], {}, {}
    for output in outputs:
        if output.get("output_type") != "stream":
            merged.append(output)
            continue
        name = output.get("name")
        if name in parts:
            parts[name].append(output.get("text", ""))
            continue
        parts[name], first[name] = [output.get("text", "")], output
        merged.append(output)
    for name, texts in parts.items():
        first[name]["text"] = render_terminal_text("".join(texts))
    for index in range(len(merged) - 1):
        this, after = merged[index], merged[index + 1]
        if (this.get("output_type") == "stream" and this.get("name") == "stderr"
                and after.get("output_type") == "stream" and after.get("name") == "stdout"):
            merged[index], merged[index + 1] = after, this
    return merged
