"""The job files of ``deploy/``, as users copy them (issue 17); fast checks.

The Slurm files run for real in ``tests/test_slurm.py``. The Kubernetes
manifest cannot run here (no cluster): it is validated against the
Kubernetes API's schema by ``kubernetes-validate``, which bundles the schemas
(offline), in strict mode (an unknown or misspelt field is an error).
"""

import copy
import os
import subprocess

import kubernetes_validate
import pytest
import yaml

from coursekit.common.paths import ROOT

DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.33.0"  # the oldest release with the Job's backoffLimitPerIndex as stable


def _job(name="grade-job.yaml"):
    return yaml.safe_load((DEPLOY / name).read_text())


@pytest.mark.parametrize("name", ["grade-job.yaml", "grade-job-unprivileged.yaml"])
def test_the_kubernetes_job_is_valid_against_the_api_schema(name):
    kubernetes_validate.validate(_job(name), K8S_VERSION, strict=True)
    kubernetes_validate.validate(_job(name), kubernetes_validate.latest_version(), strict=True)


def test_the_unprivileged_job_is_the_same_job_as_an_ordinary_user_in_a_user_namespace():
    """It differs from grade-job.yaml only in its name and in the pod's security settings."""
    privileged, unprivileged = _job(), _job("grade-job-unprivileged.yaml")
    pod, container = unprivileged["spec"]["template"]["spec"], unprivileged["spec"]["template"]["spec"]["containers"][0]
    assert pod["hostUsers"] is False and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["runAsNonRoot"] and "privileged" not in container["securityContext"]
    assert container["securityContext"]["procMount"] == "Unmasked"  # bubblewrap mounts a new /proc per kernel
    for job in (privileged, unprivileged):
        job["metadata"].pop("name")
        job["spec"]["template"]["spec"].pop("securityContext", None)
        job["spec"]["template"]["spec"].pop("hostUsers", None)
        job["spec"]["template"]["spec"]["containers"][0].pop("securityContext")
    assert unprivileged == privileged


def test_a_misspelt_field_of_the_job_is_caught():
    job = _job()
    job["spec"]["template"]["spec"]["containers"][0]["workDir"] = job["spec"]["template"]["spec"]["containers"][0].pop("workingDir")
    with pytest.raises(kubernetes_validate.ValidationError, match="workDir"):
        kubernetes_validate.validate(job, K8S_VERSION, strict=True)
    wrong_type = copy.deepcopy(_job())
    wrong_type["spec"]["completions"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, K8S_VERSION, strict=True)


def _stub_venv(folder):
    """A ``.venv/bin/python`` in ``folder`` that only writes down how it was called (one line per call)."""
    python = folder / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text('#!/bin/sh\necho "$*" >> "$(dirname "$0")/calls"\n')
    python.chmod(0o755)
    return python.parent / "calls"


def test_the_job_grades_each_shard_once_then_writes_its_feedback(tmp_path):
    """As many pods as shards; pod i (JOB_COMPLETION_INDEX, 0-based) grades shard i+1 into its own gradebook,
    then writes its students' feedback. The container's command runs here with a stand-in for Python."""
    spec = _job()["spec"]
    container = spec["template"]["spec"]["containers"][0]
    shards = {e["name"]: e["value"] for e in container["env"]}["SHARDS"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == int(shards)
    calls = _stub_venv(tmp_path)
    for index in range(int(shards)):
        run = subprocess.run(container["command"] + container["args"], cwd=tmp_path, capture_output=True, text=True,
                             env=dict(os.environ, JOB_COMPLETION_INDEX=str(index), SHARDS=shards))
        assert run.returncode == 0, run.stderr
    assert calls.read_text().splitlines() == [
        f"-m coursekit grade --workers 2 --shard {i}/{shards} --gradebook gradebook-shard-{i}.db --feedback"
        for i in range(1, int(shards) + 1)
    ]


def test_the_array_task_grades_its_shard_then_writes_its_feedback(tmp_path):
    calls = _stub_venv(tmp_path)
    env = dict(os.environ, SHARDS="3", SLURM_ARRAY_TASK_ID="2", SLURM_CPUS_PER_TASK="2", SLURM_SUBMIT_DIR=str(tmp_path),
               COURSE="/srv/course")
    run = subprocess.run(["bash", str(DEPLOY / "grade.slurm")], env=env, capture_output=True, text=True, cwd="/")
    assert run.returncode == 0, run.stderr
    assert calls.read_text().splitlines() == [
        "-m coursekit grade --root /srv/course --workers 2 --shard 2/3 "
        "--gradebook /srv/course/gradebook-shard-2.db --feedback"
    ]


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


def test_the_manual_points_at_the_job_files_instead_of_copying_them():
    pages = (ROOT / "docs" / "operators" / "slurm.md").read_text() + (ROOT / "docs" / "operators" / "kubernetes.md").read_text()
    for name in ("deploy/grade.slurm", "deploy/merge.slurm", "deploy/submit-slurm.sh", "deploy/grade-job.yaml",
                 "deploy/grade-job-unprivileged.yaml"):
        assert name in pages, name
    copied = [line for line in pages.splitlines() if line.startswith(("#SBATCH", "apiVersion:", "kind: Job"))]
    assert not copied, f"the operators' pages repeat a job file: {copied}"
