# The two commands of the README:   make demo   (the main job)   make test   (the tests)
# Every target first makes sure .venv matches requirements.txt (tools/ensure_venv.sh).

PY := .venv/bin/python
PYTEST_ARGS ?=
CANVAS_EXPORT ?=
SUBMISSIONS ?=
COURSE ?=
FORCE ?=
# File names reach the commands through the environment, expanded by the shell in
# double quotes: an LMS download's name ("LA101-Clustering lab-4242.zip") may hold
# spaces, quotes or dollar signs, which make would otherwise split or expand.
# COURSE=<folder> runs a step on a course folder of its own (one per term, made by
# `make course COURSE=<folder>`); without it, on this repository.
export SUBMISSIONS CANVAS_EXPORT COURSE
CANVAS_OPTION = $${CANVAS_EXPORT:+--canvas-export "$$CANVAS_EXPORT"}
SUBMISSIONS_ARG = $${SUBMISSIONS:+"$$SUBMISSIONS"}
ROOT_OPTION = $${COURSE:+--root "$$COURSE"}
SIMILARITY_THRESHOLD ?=
REPORT_OPTIONS = $(CANVAS_OPTION) $(if $(SIMILARITY_THRESHOLD),--similarity-threshold $(SIMILARITY_THRESHOLD))

.PHONY: venv docs demo course build grade-all collect grade feedback report formgrader test test-fast data data-verify mnist-full bench bench-notebook bench-grading bench-similarity bench-shards bench-feedback bench-modes lock clean

venv:
	@tools/ensure_venv.sh
	@tools/ensure_system_packages.sh

## demo: the main job on a bundled demo class: build, collect an LMS zip, grade, feedback, report
demo: venv
	$(PY) -m coursekit data verify
	$(PY) -m coursekit demo

## course: a course folder of its own for one term or section (COURSE=<folder>), with a copy of today's master
course: venv
	@[ -n "$$COURSE" ] || { echo "usage: make course COURSE=<new folder>" >&2; exit 2; }
	$(PY) -m coursekit new-course "$$COURSE"

## grade-all: the whole job on the real course; SUBMISSIONS=<folder or LMS zip> to collect first
grade-all: venv
	$(PY) -m coursekit all $(ROOT_OPTION) $(SUBMISSIONS_ARG) $(REPORT_OPTIONS)

collect: venv
	$(PY) -m coursekit collect $(ROOT_OPTION) $(SUBMISSIONS_ARG)

## grade: autograde what was collected; FORCE=1 regrades everyone, unchanged submissions included
grade: venv
	$(PY) -m coursekit grade $(ROOT_OPTION) $(if $(FORCE),--force)

feedback: venv
	$(PY) -m coursekit feedback $(ROOT_OPTION)

## report: grades.csv, the class report (with failures and similar pairs) and the LMS files;
## CANVAS_EXPORT=<gradebook export.csv> fills a Canvas export; SIMILARITY_THRESHOLD=0.5 lists more pairs
report: venv
	$(PY) -m coursekit report $(ROOT_OPTION) $(REPORT_OPTIONS)

## formgrader: JupyterLab with nbgrader's formgrader, for grading written answers by hand
## (as root, with --allow-root: Jupyter refuses root otherwise; an ordinary account can grade and serve it too)
formgrader: venv
	course="$${COURSE:-$${COURSEKIT_COURSE_ROOT:-.}}"; \
	PATH="$(CURDIR)/.venv/bin:$$PATH" COURSEKIT_COURSE_ROOT="$$course" .venv/bin/jupyter lab --no-browser \
		--ServerApp.root_dir="$$(cd "$$course" && pwd)" $$([ "$$(id -u)" = 0 ] && echo --allow-root)

## docs: the manual (Sphinx, MyST Markdown) into docs/_build/html, offline; warnings and broken references are errors
docs: venv
	@tools/ensure_system_packages.sh --docs
	$(PY) -m sphinx -W -n --keep-going -q -b html docs docs/_build/html
	@echo "the manual: docs/_build/html/index.html"

## build: validate the master notebook, regenerate release/ and notebooks/, prove no leak
build: venv
	$(PY) -m coursekit build

# Test modules run TEST_WORKERS at a time (pytest-xdist; one module stays on one
# worker, so a module's fixtures are built once), the longest first (tests/conftest.py:
# MODULE_SECONDS; xdist would order them by their number of tests). TEST_WORKERS=0 runs them in turn.
# Three on two cores: many tests wait (for a time limit, a browser, Slurm's scheduler) and with two
# workers the cores sat idle 12% of the time (2%, and 24 s less in all, with three).
TEST_WORKERS ?= 3
XDIST = -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder
# Python may keep bytecode caches (__pycache__, ignored by git) during the tests, even where the
# environment says not to (PYTHONDONTWRITEBYTECODE=1 on CI's machines): every `python -m coursekit`
# the tests start compiled the package anew (0.2 s of CPU each), and pytest rewrote every test module.
TEST_PYTHON = env -u PYTHONDONTWRITEBYTECODE $(PY)

## test: the whole test suite; "no tests collected" (pytest exit 5) counts as a failure
test:
	@tools/ensure_test_environment.sh
	@$(TEST_PYTHON) -m pytest $(XDIST) $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

## test-fast: the unit tier only (no whole notebook graded; about 70 s): pytest -m "not slow"
test-fast: venv
	@tools/ensure_system_packages.sh --tests
	@$(TEST_PYTHON) -m pytest -m "not slow" $(XDIST) $(PYTEST_ARGS)

## data: rebuild data/ offline from installed packages (same bytes every time)
data: venv
	$(PY) -m coursekit data build

data-verify: venv
	$(PY) -m coursekit data verify

## mnist-full: download the full 70,000-digit MNIST to data/mnist_full.npz (needs a network)
mnist-full: venv
	$(PY) -m coursekit data download-mnist

## bench: every benchmark, one after the other (about 85 minutes); tables in bench/results/
bench: venv
	$(PY) -m bench.bench_helper --out bench/results/helper.md
	$(PY) -m bench.bench_notebook --out bench/results/notebook.md
	$(PY) -m bench.bench_grading --out bench/results/grading.md
	$(PY) -m bench.bench_hostile --out bench/results/hostile.md
	$(PY) -m bench.bench_similarity --out bench/results/similarity.md
	$(PY) -m bench.bench_shards --out bench/results/shards.md
	$(PY) -m bench.bench_feedback --out bench/results/feedback.md
	$(PY) -m bench.bench_modes --out bench/results/modes.md
	@cat bench/results/helper.md bench/results/notebook.md bench/results/grading.md bench/results/hostile.md bench/results/similarity.md bench/results/shards.md bench/results/feedback.md bench/results/modes.md

## bench-similarity: the class report's similarity check on 300 students, against copydetect's own (about 4 minutes)
bench-similarity: venv
	$(PY) -m bench.bench_similarity --out bench/results/similarity.md

bench-notebook: venv
	$(PY) -m bench.bench_notebook --out bench/results/notebook.md

bench-grading: venv
	$(PY) -m bench.bench_grading --out bench/results/grading.md

## bench-feedback: what making student content inert costs the feedback step, per student (about 2 minutes)
bench-feedback: venv
	$(PY) -m bench.bench_feedback --out bench/results/feedback.md

## bench-modes: grading time as root and as an ordinary user (the sandbox's two modes), on the same class (about 6 minutes; as root)
bench-modes: venv
	$(PY) -m bench.bench_modes --out bench/results/modes.md

## bench-shards: what one shard of a Slurm array costs (grading, feedback), and the merge of 300 and 3,000 students (about 20 minutes)
bench-shards: venv
	$(PY) -m bench.bench_shards --out bench/results/shards.md

## lock: re-pin requirements.txt from requirements.in (needs the package registry)
lock:
	rm -rf .venv-lock && python3 -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet -r requirements.in
	{ echo "# Exact pins for every package the course needs (runtime and tests), produced by"; \
	  echo "# \`make lock\` from requirements.in on Python 3.11. Do not edit by hand. Installed with"; \
	  echo "# --no-deps: the list is complete. Left out: rfc3987-syntax and its lark, which jsonschema's"; \
	  echo "# format-nongpl extra pulls in to check IRIs, a format no Jupyter schema uses; importing it builds"; \
	  echo "# about 35 parsers, 1.5 s of every command (python-jsonschema/jsonschema#1428)."; \
	  .venv-lock/bin/python -m pip freeze --exclude-editable | grep -v -E '^(rfc3987-syntax|lark)=='; } > requirements.txt
	rm -rf .venv-lock

clean:
	rm -rf .venv .pytest_cache
