"""A one-node Slurm cluster on this machine, for the tests of ``deploy/grade.slurm``.

Debian's ``slurmctld``, ``slurmd`` and ``munge``, started as the current
user (root) in a folder of their own: a fresh MUNGE key and socket, a
``slurm.conf`` for ``localhost`` on two free ports, no cgroups (process
tracking by ``proctrack/linuxproc``, no task plugin, no accounting), and a
node that claims six CPUs whatever the machine has, so that three array tasks
of two CPUs each run at the same time, as on three nodes.
Nothing outside the folder is touched: clients find the cluster through
``SLURM_CONF`` in :attr:`LocalSlurm.env`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

#: The programs the cluster needs (Debian: slurmctld, slurmd, slurm-client, munge).
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel")

SLURM_CONF = """\
ClusterName=coursekit
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser={user}
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={folder}/munge/munge.socket
CredType=cred/munge
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
MinJobAge=3600
KillWait=10
NodeName=localhost NodeAddr=127.0.0.1 CPUs=6 RealMemory=32768 State=UNKNOWN
PartitionName=grading Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


class SlurmUnavailable(RuntimeError):
    """The cluster could not be started here; the message says why."""


def missing_programs():
    """The programs of :data:`PROGRAMS` not installed (sbin included)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return [name for name in PROGRAMS if not shutil.which(name, path=path)]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalSlurm:
    """Start with :meth:`start`, end with :meth:`stop`; :attr:`env` is the environment for sbatch and friends."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.conf = self.folder / "slurm.conf"
        path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
        self.env = dict(os.environ, SLURM_CONF=str(self.conf), PATH=path)
        self._processes = []

    def start(self, timeout=60):
        missing = missing_programs()
        if missing:
            raise SlurmUnavailable(f"not installed: {', '.join(missing)} (Debian: slurmctld slurmd slurm-client munge)")
        for sub in ("munge", "state", "spool"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        munge = self.folder / "munge"
        munge.chmod(0o700)
        key = munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self._spawn("munged", ["munged", "--foreground", "--force", f"--key-file={key}",
                               f"--socket={munge / 'munge.socket'}", f"--pid-file={munge / 'munged.pid'}",
                               f"--log-file={munge / 'munged.log'}", f"--seed-file={munge / 'munged.seed'}"])
        self._wait(lambda: (munge / "munge.socket").exists(), timeout, "munged did not create its socket")
        self.conf.write_text(SLURM_CONF.format(folder=self.folder, ctld_port=_free_port(), slurmd_port=_free_port(),
                                               user=os.environ.get("USER") or "root"))
        self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf), "-N", "localhost"])
        self._wait(lambda: self.node_state() in ("IDLE", "MIXED", "ALLOCATED"), timeout,
                   "the node did not become idle")
        return self

    def _spawn(self, name, command):
        log = open(self.folder / f"{name}.out", "w")
        self._processes.append((name, subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                                       start_new_session=True)))

    def _wait(self, ready, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self._processes:
                if process.poll() is not None:
                    raise SlurmUnavailable(f"{name} exited ({process.returncode}): {self.log_tail(name)}")
            if ready():
                return
            time.sleep(0.2)
        raise SlurmUnavailable(f"{what} within {timeout} s: {self.log_tail('slurmctld')} {self.log_tail('slurmd')}")

    def log_tail(self, name, lines=15):
        """The last lines of a daemon's own log and of its output."""
        text = ""
        for path in (self.folder / f"{name}.log", self.folder / f"{name}.out"):
            if path.is_file():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text.strip()

    def run(self, *command, cwd=None, check=True):
        """Run a Slurm client command against this cluster; its stdout."""
        result = subprocess.run(command, env=self.env, cwd=cwd, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def node_state(self):
        out = subprocess.run(["scontrol", "-o", "show", "node", "localhost"], env=self.env, capture_output=True,
                             text=True).stdout
        for field in out.split():
            if field.startswith("State="):
                return field.split("=", 1)[1].split("+")[0]
        return None

    def jobs(self, job_id):
        """{job id (array tasks as "123_2"): (state, exit code)} of a job and its array tasks, from scontrol."""
        out = self.run("scontrol", "-o", "show", "job", str(job_id))
        jobs = {}
        for line in out.splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            task = fields.get("ArrayTaskId")
            name = f"{fields['ArrayJobId']}_{task}" if task and fields.get("ArrayJobId") else fields["JobId"]
            jobs[name] = (fields.get("JobState"), fields.get("ExitCode"))
        return jobs

    def wait_for(self, job_id, timeout=600):
        """Wait until the job (every task of an array) has ended; its :meth:`jobs`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = self.jobs(job_id)
            if jobs and all(state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED")
                            for state, _ in jobs.values()):
                return jobs
            time.sleep(0.5)
        raise TimeoutError(f"job {job_id} still running after {timeout} s: {self.jobs(job_id)}")

    def stop(self):
        for _, process in reversed(self._processes):
            if process.poll() is None:
                process.terminate()
        for _, process in reversed(self._processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()
