#!/bin/bash
# Grade the class on a Slurm cluster: N array tasks (one shard each), then the merge.
#
#   deploy/submit-slurm.sh N            grade all N shards, then merge
#   deploy/submit-slurm.sh N 2          rerun shard 2 of N only (after a failed task), then merge again
#
# Run it from the course repository, on a file system the compute nodes share,
# after `make venv` (done here once: array tasks must not build the venv at once).
# Extra sbatch options (a partition, an account) go in SBATCH_* variables,
# e.g. SBATCH_PARTITION=teaching. Prints the two job ids; the jobs' output goes to
# reports/slurm/ of the course folder.
set -euo pipefail
shards=${1:?usage: deploy/submit-slurm.sh N [TASKS], e.g. deploy/submit-slurm.sh 3}
tasks=${2:-1-$shards}
cd "$(dirname "$0")/.."
make --no-print-directory venv >/dev/null
logs="${COURSE:-.}/reports/slurm"   # the jobs' output; COURSE: see deploy/grade.slurm
mkdir -p "$logs"
grade=$(sbatch --parsable --array="$tasks" --export=ALL,SHARDS="$shards" --output="$logs/%x-%A_%a.out" deploy/grade.slurm)
merge=$(sbatch --parsable --dependency=afterany:"${grade%%;*}" --output="$logs/%x-%j.out" deploy/merge.slurm)
echo "grading: job $grade (array $tasks of $shards shards); merge: job $merge"
