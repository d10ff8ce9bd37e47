"""The job files of ``deploy/``, as users copy them (issue 17); fast checks.

The Slurm files run for real in ``tests/test_slurm.py``. The Kubernetes
manifest cannot run here (no cluster): it is validated against the
Kubernetes API's schema by ``kubernetes-validate``, which bundles the schemas
(offline), in strict mode (an unknown or misspelt field is an error).
"""

import copy
import os
import re
import subprocess

import kubernetes_validate
import pytest
import yaml

from coursekit.paths import ROOT

DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.33.0"  # the oldest release with the Job's backoffLimitPerIndex as stable


def _job():
    return yaml.safe_load((DEPLOY / "grade-job.yaml").read_text())


def test_the_kubernetes_job_is_valid_against_the_api_schema():
    kubernetes_validate.validate(_job(), K8S_VERSION, strict=True)
    kubernetes_validate.validate(_job(), kubernetes_validate.latest_version(), strict=True)


def test_a_misspelt_field_of_the_job_is_caught():
    job = _job()
    job["spec"]["template"]["spec"]["containers"][0]["workDir"] = job["spec"]["template"]["spec"]["containers"][0].pop("workingDir")
    with pytest.raises(kubernetes_validate.ValidationError, match="workDir"):
        kubernetes_validate.validate(job, K8S_VERSION, strict=True)
    wrong_type = copy.deepcopy(_job())
    wrong_type["spec"]["completions"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, K8S_VERSION, strict=True)


def test_the_job_grades_each_shard_once():
    """As many pods as shards, each index its own shard and gradebook (JOB_COMPLETION_INDEX is 0-based)."""
    spec = _job()["spec"]
    container = spec["template"]["spec"]["containers"][0]
    shards = {e["name"]: e["value"] for e in container["env"]}["SHARDS"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == int(shards)
    command = " ".join(container["command"] + container["args"])
    for index in range(int(shards)):
        rendered = subprocess.run(
            ["sh", "-c", 'echo ' + re.search(r'--shard ("[^"]+") --gradebook ("[^"]+")', command).group(0)],
            env=dict(os.environ, JOB_COMPLETION_INDEX=str(index), SHARDS=shards), capture_output=True, text=True,
        ).stdout.strip()
        assert rendered == f"--shard {index + 1}/{shards} --gradebook gradebook-shard-{index + 1}.db"


@pytest.mark.parametrize("name", ["grade.slurm", "merge.slurm", "submit-slurm.sh"])
def test_the_slurm_files_are_valid_bash(name):
    path = DEPLOY / name
    assert os.access(path, os.X_OK), f"{name} is not executable"
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0


def test_the_array_task_refuses_to_guess_the_number_of_shards(tmp_path):
    """Without SHARDS a rerun of one task would take SLURM_ARRAY_TASK_COUNT (1) for it."""
    env = {k: v for k, v in os.environ.items() if k != "SHARDS"}
    env.update(SLURM_ARRAY_TASK_ID="2", SLURM_ARRAY_TASK_COUNT="1", SLURM_SUBMIT_DIR=str(tmp_path))
    run = subprocess.run(["bash", str(DEPLOY / "grade.slurm")], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode != 0 and "set SHARDS to the number of shards" in run.stderr


def test_readme_points_at_the_job_files_instead_of_copying_them():
    readme = (ROOT / "README.md").read_text()
    for name in ("deploy/grade.slurm", "deploy/merge.slurm", "deploy/submit-slurm.sh", "deploy/grade-job.yaml"):
        assert name in readme, name
    copied = [line for line in readme.splitlines() if line.startswith(("#SBATCH", "apiVersion:", "kind: Job"))]
    assert not copied, f"README repeats a job file: {copied}"
