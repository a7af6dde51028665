"""Running steps on this machine: up to `--workers` at once, each with its own GPUs from `--gpus`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import XtremeError
from .process import Lock, StepProcess, free_port, stop_all
from .steps import Step, with_port


@dataclass
class Handle:
    """A step the pool is running: what the records and the status table show about it (`info`, `where`)."""
    step: Step
    info: dict = field(default_factory=dict)
    where: str = ""
    process: StepProcess | None = None
    devices: list = field(default_factory=list)
    job: object = None


class LocalPool:
    """`workers` steps at a time (default: one per GPU of `gpus`, else one); a step gets `step.processes` GPUs
    (CUDA_VISIBLE_DEVICES) and, under accelerate/torchrun, a rendezvous port no other running step uses."""

    poll_seconds = 0.2
    keeps_running_on_interrupt = False

    def __init__(self, workers: int | None = None, gpus: list[str] | None = None):
        self.gpus = gpus
        self.free = list(gpus) if gpus else None
        self.slots = workers or (len(gpus) if gpus else 1)
        self.active: dict[str, Handle] = {}
        self.ports: set[int] = set()

    def describe(self) -> str:
        gpus = f" on GPUs {','.join(self.gpus)}" if self.gpus else ""
        return f"{self.slots} at a time{gpus}" if self.slots > 1 or self.gpus else "one at a time"

    def check(self, steps: list[Step]) -> None:
        too_big = next((s for s in steps if self.gpus and s.processes > len(self.gpus)), None)
        if too_big is not None:
            raise XtremeError(f"{too_big.label}: needs {too_big.processes} GPUs (num_processes) but --gpus gives "
                              f"{len(self.gpus)}")

    def full(self) -> bool:
        return len(self.active) >= self.slots or self.free == []

    def fits(self, step: Step) -> bool:
        return len(self.active) < self.slots and (self.free is None or len(self.free) >= step.processes)

    def attach(self, step: Step, record: dict) -> Handle | None:
        return None  # a step's process left by an earlier driver holds the step's lock: the driver waits for it

    def start(self, step: Step, lock: Lock) -> Handle:
        env, devices = None, []
        if self.free is not None:
            devices, self.free = self.free[:step.processes], self.free[step.processes:]
            env = {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(devices)}
        port = free_port(self.ports) if step.launcher != "python" else None
        argv = with_port(step.argv, step.launcher, port)
        process = StepProcess(argv, step.log, env, pass_fds=(lock.fd,))
        info = {"launched": argv, "host": os.uname().nodename, "pid": process.pid}
        if devices:
            info["devices"] = devices
        if argv != step.argv:
            self.ports.add(port)
            info["port"] = port
        handle = Handle(step, info, f"GPU {','.join(devices)}" if devices else "", process, devices)
        self.active[step.id] = handle
        return handle

    def poll(self, handle: Handle) -> tuple[int, str] | None:
        return handle.process.result()

    def release(self, handle: Handle) -> None:
        self.active.pop(handle.step.id, None)
        self.ports.discard(handle.info.get("port"))
        if self.free is not None:
            self.free = sorted(self.free + handle.devices, key=self.gpus.index)

    def stop(self, handles: list[Handle]) -> None:
        stop_all([h.process for h in handles])
