"""Steps as Slurm jobs, through submitit (`--launcher slurm`, settings under the plan's `slurm:`).

The driver submits a step when the steps it needs are done; the job runs the same command the local runner runs
(`StepJob`), holding the step dir's lock, its output in the step's log. Job ids go into the step records, so a
driver started again after an interruption re-attaches to the jobs still queued or running instead of submitting
them again. A job that Slurm preempts or that reaches its time limit gets submitit's signal (USR2, 90 s before
the limit): the step is stopped and the job requeued; the step then resumes from its last checkpoint, as the
scripts do. `cluster: local` runs the same jobs with submitit's local executor, without Slurm.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from pathlib import Path

import submitit
from submitit.helpers import Checkpointable, DelayedSubmission
from submitit.local.local import LocalJob

from .local import Handle
from .process import STEP_LOCK, StepProcess, free_port, honour_sigint, pid_alive, step_lock, stop_all
from .steps import LOG_FILE, ROOT, Step, with_port

DEFAULT_TIME_MIN = 24 * 60
# Slurm signals 90 s before the time limit (submitit's default): stop the step well within that.
PREEMPTED_STOP = ((2, 40), (15, 20), (9, 5))


class StepJob(Checkpointable):
    """What a Slurm job runs: the step's command, as the local runner runs it. Requeued when preempted."""

    def __init__(self, argv: list[str], launcher: str, step_dir: str):
        self.argv, self.launcher, self.step_dir = list(argv), launcher, str(step_dir)
        self.process = None

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "process"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.process = None

    def __call__(self) -> tuple[int, str]:
        honour_sigint()
        directory = Path(self.step_dir)
        lock = step_lock(directory)
        if not lock.acquire():
            return 75, f"error: another process writes {directory} (its {STEP_LOCK} is held)"
        try:
            argv = with_port(self.argv, self.launcher, free_port())
            self.process = StepProcess(argv, directory / LOG_FILE, pass_fds=(lock.fd,))
            while (result := self.process.result()) is None:
                time.sleep(1)
            return result
        except BaseException:  # cancelled, or preempted (the checkpoint below already stopped the step)
            stop_all([self.process] if self.process else [])
            raise
        finally:
            lock.release()

    def checkpoint(self) -> DelayedSubmission:
        """Preempted or about to time out: stop the step and requeue the job; the step resumes from its last
        checkpoint when the job runs again."""
        if self.process is not None:
            stop_all([self.process], PREEMPTED_STOP)
            with open(Path(self.step_dir) / LOG_FILE, "a", encoding="utf-8") as log:
                log.write("\n=== preempted or out of time: step stopped, job requeued (the step resumes from its "
                          "last checkpoint)\n")
        return DelayedSubmission(StepJob(self.argv, self.launcher, self.step_dir))


def job_of(step_dir: Path, job_id: str, cluster: str | None):
    folder = Path(step_dir) / "submitit"
    return LocalJob(folder, job_id) if cluster == "local" else submitit.SlurmJob(folder, job_id)


def job_alive(job) -> bool:
    """Queued or running (a local job: its controller process runs and no result is written yet)."""
    if isinstance(job, LocalJob):
        return not job.paths.result_pickle.exists() and pid_alive(int(job.job_id))
    return not job.done()


def job_status(step_dir: Path, record: dict) -> tuple[bool, str]:
    """(alive, "job ID STATE") of the job a step record names."""
    job = job_of(step_dir, str(record["job_id"]), record.get("cluster"))
    alive = job_alive(job)
    state = ("RUNNING" if alive else "ENDED") if isinstance(job, LocalJob) else job.state
    return alive, f"job {record['job_id']} {state}"


class SlurmPool:
    keeps_running_on_interrupt = True

    def __init__(self, plan):
        self.settings = plan.slurm
        self.cluster = plan.slurm.settings.get("cluster", "slurm")
        self.slots = plan.slurm.settings.get("max_jobs")
        self.poll_seconds = 0.5 if self.cluster == "local" else 10.0
        self.active: dict[str, Handle] = {}
        path = os.environ.get("PYTHONPATH")
        if str(ROOT) not in (path or "").split(os.pathsep):  # jobs unpickle StepJob: they import this project
            os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *([path] if path else [])])

    def describe(self) -> str:
        what = "as Slurm jobs" if self.cluster == "slurm" else "as jobs of submitit's local executor"
        return what + (f", at most {self.slots} at once" if self.slots else "")

    def check(self, steps: list[Step]) -> None:
        pass

    def full(self) -> bool:
        return self.slots is not None and len(self.active) >= self.slots

    def fits(self, step: Step) -> bool:
        return not self.full()

    def executor(self, step: Step):
        s = self.settings.for_phase(step.phase)
        timeouts = {f"{self.cluster}_max_num_timeout": s["max_timeouts"]} if "max_timeouts" in s else {}
        executor = submitit.AutoExecutor(folder=step.dir / "submitit", cluster=self.cluster, **timeouts)
        setup = [f"export PYTHONPATH={shlex.quote(str(ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}", *s.get("setup", [])]
        params = {"name": re.sub(r"[^\w.+-]", "_", step.id), "timeout_min": s.get("time_min", DEFAULT_TIME_MIN),
                  "nodes": 1, "tasks_per_node": 1, "cpus_per_task": s.get("cpus_per_step"), "mem_gb": s.get("mem_gb"),
                  "gpus_per_node": s.get("gpus_per_step", step.processes if self.cluster == "slurm" else None),
                  "slurm_partition": s.get("partition"), "slurm_account": s.get("account"),
                  "slurm_qos": s.get("qos"), "slurm_additional_parameters": s.get("sbatch"), "slurm_setup": setup}
        executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
        return executor

    def attach(self, step: Step, record: dict) -> Handle | None:
        if record.get("status") != "running" or not record.get("job_id"):
            return None
        job = job_of(step.dir, str(record["job_id"]), record.get("cluster"))
        if not job_alive(job):
            return None
        return self._follow(step, job, record.get("cluster"))

    def start(self, step: Step, lock) -> Handle:
        lock.release()  # the job takes the step's lock itself, where it runs
        job = self.executor(step).submit(StepJob(step.argv, step.launcher, str(step.dir)))
        return self._follow(step, job, self.cluster)

    def _follow(self, step: Step, job, cluster: str) -> Handle:
        handle = Handle(step, {"job_id": str(job.job_id), "cluster": cluster}, f"job {job.job_id}", job=job)
        self.active[step.id] = handle
        return handle

    def poll(self, handle: Handle) -> tuple[int, str] | None:
        if job_alive(handle.job):
            return None
        try:
            code, error = handle.job.result()
            return code, error
        except Exception as err:  # the job ended without a result: cancelled, out of memory, node failure, ...
            return 1, f"job {handle.job.job_id} ended without a result: {str(err).splitlines()[0]}"

    def release(self, handle: Handle) -> None:
        self.active.pop(handle.step.id, None)

    def stop(self, handles: list[Handle]) -> None:
        pass  # jobs keep running: the next driver re-attaches to them
