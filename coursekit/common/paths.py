"""Where things live in the course repository."""

from pathlib import Path

#: The repository root (the folder holding README.md and nbgrader_config.py).
ROOT = Path(__file__).resolve().parents[2]

#: The data files every notebook reads; the single source of truth for data.
DATA_DIR = ROOT / "data"
