"""Command-line interface: ``python -m coursekit <step> ...``.

Each sub-command is a thin wrapper around one pipeline module; the modules do
the work and raise exceptions with messages meant for people, which are
printed here without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import build, data
from .paths import DATA_DIR, ROOT


def _data_build(args):
    data.build_all(args.data_dir)
    data.verify_data(args.data_dir)


def _data_verify(args):
    sums = data.verify_data(args.data_dir)
    for name in data.DATA_FILES:
        print(f"ok  {sums[name]}  {name}")


def _data_download_mnist(args):
    dest = data.download_full_mnist(args.dest, url=args.url, sha256=args.sha256, progress=not args.quiet)
    (x_train, _), (x_test, _) = data.load_mnist_npz(dest)
    print(f"saved {dest}: {len(x_train):,} training and {len(x_test):,} test images, sha256 verified")


def _build(args):
    build.build(args.root)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m coursekit", description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)

    data_parser = steps.add_parser("data", help="build, verify or download the data files in data/")
    data_steps = data_parser.add_subparsers(dest="action", required=True)
    build = data_steps.add_parser("build", help="rebuild every shipped data file offline and write SHA256SUMS")
    build.add_argument("--data-dir", type=Path, default=DATA_DIR)
    build.set_defaults(run=_data_build)
    verify = data_steps.add_parser("verify", help="check the data files against SHA256SUMS")
    verify.add_argument("--data-dir", type=Path, default=DATA_DIR)
    verify.set_defaults(run=_data_verify)
    download = data_steps.add_parser("download-mnist", help="download the full MNIST (needs a network)")
    download.add_argument("--dest", type=Path, default=DATA_DIR / data.FULL_MNIST_NAME)
    download.add_argument("--url", default=data.KERAS_MNIST_URL)
    download.add_argument("--sha256", default=data.KERAS_MNIST_SHA256, help="expected sha256 (default: the one keras publishes)")
    download.add_argument("--quiet", action="store_true", help="no progress bar")
    download.set_defaults(run=_data_download_mnist)
    build_step = steps.add_parser("build", help="validate the master, generate release/ and notebooks/, prove no leak")
    build_step.add_argument("--root", type=Path, default=ROOT, help="the course repository (default: this one)")
    build_step.set_defaults(run=_build)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (data.DataError, build.BuildError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
