"""The steps of a plan: one run of `run_intermediate.py`, `run_target.py` or `run_xtreme_eval.py` each, with its
command, its directory, the steps it depends on, and what makes it complete."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import XtremeError
from ..files import peek_json
from ..results import RUN_INFO, results_path
from .plan import PHASE_SECTION, Backbone, Intermediate, Plan, Target

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPTS = {1: "run_intermediate.py", 2: "run_target.py", 3: "run_xtreme_eval.py"}
STEP_FILE, LOG_FILE = "step.json", "log.txt"
# The flag that gives a multi-process launcher its rendezvous port.
PORT_FLAGS = {"accelerate": "--main_process_port", "torchrun": "--master_port"}
ONLY_KEYS = ("backbone", "intermediate", "target", "seed", "phase")




@dataclass
class Step:
    id: str
    phase: int
    label: str
    backbone: Backbone
    intermediate: Intermediate
    seed: int
    target: Target | None
    dir: Path  # step.json and log.txt
    output_dir: Path  # what the script writes (model/ for training, the step dir for evaluation)
    model: str
    deps: list  # of Step
    argv: list
    task: str | None = None
    languages: list | None = None  # phase 3: the languages that must be in the results file
    split: str = "test"
    args: dict | None = None  # the merged script arguments (flags without --)
    launcher: str = "python"
    processes: int = 1  # processes a multi-process launcher starts: the devices the step needs
    file_refs: dict | None = None  # files the task flags name (mlm_files, task_spec)
    status: str = "pending"  # pending | running | done | failed | incomplete | blocked | interrupted
    outcome: str = ""

    @property
    def trains(self) -> bool:
        return self.phase in (1, 2)

    @property
    def completion_file(self) -> Path:
        return self.output_dir / RUN_INFO if self.trains else results_path(self.output_dir, self.task, self.split)

    @property
    def log(self) -> Path:
        return self.dir / LOG_FILE

    def missing_languages(self) -> list[str] | None:
        """Phase 3: requested languages not in the results file (None: no usable results file)."""
        data = peek_json(self.completion_file)
        if not isinstance(data, dict) or not isinstance(data.get("languages"), dict):
            return None
        if data.get("split") != self.split:
            return None
        expected = self.languages if self.languages is not None else sorted(
            set(data["languages"]) | set(data.get("skipped") or {}))
        return [lang for lang in expected if lang not in data["languages"]]

    def complete(self) -> bool:
        if self.trains:
            info = peek_json(self.completion_file)
            return bool(isinstance(info, dict) and info.get("finished"))
        return self.missing_languages() == []

    def fingerprint(self) -> str | None:
        path = self.completion_file
        return hashlib.sha1(path.read_bytes()).hexdigest()[:16] if path.is_file() else None

    def record(self) -> dict | None:
        return peek_json(self.dir / STEP_FILE)

    def token(self) -> str | None:
        """What a dependent records of this step: the id of the grid run that made its outputs (a new one each
        time the grid runs it) and a hash of its completion file (changed by a run outside the grid too)."""
        fingerprint = self.fingerprint()
        if fingerprint is None:
            return None
        return f"{(self.record() or {}).get('run_id')}:{fingerprint}"

    def dep_fingerprints(self) -> dict:
        return {d.id: d.token() for d in self.deps}

    def stale(self, record: dict | None) -> bool:
        """Whether an input was produced again since this step ran."""
        return record is not None and record.get("deps") != self.dep_fingerprints()

    def files(self) -> list[tuple[str, str]]:
        """(argument, path) for every local file or dir its command names (patterns expanded per language)."""
        args = {**(self.args or {}), **{k: v for k, v in (self.file_refs or {}).items() if v}}
        refs = []
        for key in ("train_file", "validation_file", "eval_file", "labels_file", "deepspeed", "data_dir",
                    "task_spec", "mlm_files"):
            for value in _as_list(args.get(key)):
                if value is None:
                    continue
                value = str(value)
                languages = (self.languages or []) if "{lang}" in value else [None]
                refs += [(key, value.format(lang=lang) if lang else value) for lang in languages]
        return refs


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def with_port(argv: list[str], launcher: str, port: int) -> list[str]:
    """`argv` with its own rendezvous port for a multi-process launcher (unless the plan gave one)."""
    flag = PORT_FLAGS.get(launcher)
    if flag is None or any(a == flag or a.startswith(flag + "=") for a in argv):
        return list(argv)
    at = 2 if launcher == "accelerate" else 1  # after `accelerate launch` / `torchrun`
    return [*argv[:at], flag, str(port), *argv[at:]]


def _merge(plan: Plan, backbone: Backbone, phase: int, tasks: list[str], entry: dict) -> dict:
    """Later wins: args.all, args.{phase}, backbone.args (same order), tasks.{task} (same order), the entry's."""
    section = PHASE_SECTION[phase]
    merged = {}
    for layer in [plan.args, backbone.args] + [plan.tasks.get(t, {}) for t in tasks]:
        merged.update(layer.get("all", {}))
        merged.update(layer.get(section, {}))
    merged.update(entry)
    return merged


def to_flags(args: dict) -> list[str]:
    """`{bf16: true, train_file: [a, b], lr_scheduler_kwargs: {...}}` -> `--bf16 true --train_file a b ... '{..}'`."""
    out = []
    for key, value in args.items():
        if value is None:
            continue
        flag = f"--{key}"
        if isinstance(value, bool):  # explicit: `--flag` alone fails for Optional[bool] fields (disable_tqdm)
            out += [flag, "true" if value else "false"]
        elif isinstance(value, (list, tuple)):
            out += [flag, *(str(v) for v in value)]
        elif isinstance(value, dict):
            out += [flag, json.dumps(value)]
        else:
            out += [flag, str(value)]
    return out


def _script(name: str) -> str:
    try:
        return name if Path.cwd().resolve() == ROOT else str(ROOT / name)
    except OSError:
        return str(ROOT / name)


def _prefix(plan: Plan, phase: int) -> list[str]:
    n = plan.processes(phase)
    if plan.launcher == "accelerate":
        return ["accelerate", "launch", *(["--num_processes", str(n)] if n else []), *plan.launcher_args]
    if plan.launcher == "torchrun":
        return ["torchrun", *(["--nproc_per_node", str(n)] if n else []), *plan.launcher_args]
    return list(plan.python)


def _eval_languages(target: Target, split: str) -> list[str]:
    """The languages phase 3 must evaluate: the target's, each checked against the split (`all`: the split's)."""
    if target.languages == "all":
        return list(target.registered.languages_in(split))
    try:
        target.registered.check_languages(target.languages, split)
    except XtremeError as err:
        raise XtremeError(f"target {target.name}: {err}") from None
    return list(target.languages)


@dataclass
class _Setting:
    """One (backbone, intermediate setting, seed): the unit phase 2 and 3 steps hang off."""
    plan: Plan
    backbone: Backbone
    intermediate: Intermediate
    seed: int

    @property
    def base(self) -> Path:
        return self.plan.output_dir / self.backbone.name / self.intermediate.name / f"seed{self.seed}"

    @property
    def tag(self) -> str:
        return f"[{self.backbone.name}] " if len(self.plan.backbones) > 1 else ""

    def step(self, phase: int, name: str, target: Target | None, directory: Path, output_dir: Path, model: str,
             deps: list, script_args: list, args: dict, **fields) -> Step:
        plan = self.plan
        argv = [*_prefix(plan, phase), _script(SCRIPTS[phase]), "--model_name_or_path", model, *script_args,
                *to_flags(args)]
        if phase < 3 and plan.deepspeed and "deepspeed" not in args:
            argv += ["--deepspeed", str(plan.deepspeed)]
            args = {**args, "deepspeed": plan.deepspeed}
        suffix = f"/{target.name}" if target else ""
        return Step(f"phase{phase}:{self.backbone.name}/{self.intermediate.name}/seed{self.seed}{suffix}", phase,
                    f"phase{phase} {self.tag}{name} seed {self.seed}", self.backbone, self.intermediate, self.seed,
                    target, directory, output_dir, model, deps, argv, args=args, launcher=plan.launcher,
                    processes=(plan.processes(phase) or 1) if plan.launcher != "python" else 1, **fields)


def _phase1(s: _Setting) -> Step | None:
    inter = s.intermediate
    if inter.is_none:
        return None
    d = s.base / "phase1"
    task_args = ["--tasks", ",".join(inter.task_names)] if inter.tasks is not None else (
        ["--task_spec", inter.task_spec] if inter.task_spec else ["--task", inter.task])
    if inter.mlm_files:
        task_args += ["--mlm_files", ",".join(str(f) for f in inter.mlm_files)]
    args = _merge(s.plan, s.backbone, 1, [] if inter.tasks is not None else inter.task_names, inter.args)
    refs = {"mlm_files": inter.mlm_files, "task_spec": inter.task_spec}
    return s.step(1, inter.name, None, d, d / "model", s.backbone.path, [],
                  [*task_args, "--output_dir", str(d / "model"), "--do_train", "--seed", str(s.seed)], args,
                  task=",".join(inter.task_names) or inter.task_spec, file_refs=refs)


def _phase2(s: _Setting, target: Target, encoder: str, deps: list) -> Step:
    d = s.base / target.name / "phase2"
    args = _merge(s.plan, s.backbone, 2, [target.task], target.args)
    return s.step(2, f"{s.intermediate.name}->{target.name}", target, d, d / "model", encoder, deps,
                  [*_task_flags(target), "--output_dir", str(d / "model"), "--do_train", "--seed", str(s.seed)],
                  args, task=target.task, file_refs={"task_spec": target.task_spec})


def _phase3(s: _Setting, target: Target, model: str, deps: list) -> Step:
    d = s.base / target.name / "phase3"
    args = _merge(s.plan, s.backbone, 3, [target.task], target.eval_args)
    split = str(args.get("split", "test"))
    languages = "all" if target.languages == "all" else ",".join(target.languages)
    return s.step(3, f"{s.intermediate.name}->{target.name}", target, d, d, model, deps,
                  [*_task_flags(target), "--languages", languages, "--output_dir", str(d), "--resume"], args,
                  task=target.task, languages=_eval_languages(target, split), split=split,
                  file_refs={"task_spec": target.task_spec})


def _task_flags(target: Target) -> list[str]:
    return ["--task_spec", target.task_spec] if target.task_spec else ["--task", target.task]


def _setting_steps(s: _Setting) -> list[Step]:
    """Phase 1, then per target phase 2 and its phase 3 (retrieval targets: phase 3 on the phase-1 model)."""
    phase1 = _phase1(s)
    steps = [phase1] if phase1 else []
    encoder = str(phase1.output_dir) if phase1 else s.backbone.path
    trained: dict[str, Step] = {}
    for target in s.plan.targets:
        if target.retrieval and s.intermediate.is_none and s.seed != s.plan.seeds[0]:
            continue  # the pretrained model does not depend on the seed: evaluated once
        deps, model = [phase1] if phase1 else [], encoder
        if target.train_with:
            phase2 = trained[target.train_with]
            deps, model = [phase2], str(phase2.output_dir)
        elif not target.retrieval:
            phase2 = _phase2(s, target, encoder, deps)
            steps.append(phase2)
            trained[target.name] = phase2
            deps, model = [phase2], str(phase2.output_dir)
        steps.append(_phase3(s, target, model, deps))
    return steps


def build_steps(plan: Plan) -> list[Step]:
    """Every step of the plan in run order: per backbone, per intermediate setting, per seed."""
    return [step for bb in plan.backbones for inter in plan.intermediates for seed in plan.seeds
            for step in _setting_steps(_Setting(plan, bb, inter, seed))]


def _only_filters(plan: Plan, only: list[str]) -> dict:
    known = {"backbone": {b.name for b in plan.backbones}, "intermediate": {x.name for x in plan.intermediates},
             "target": {t.name for t in plan.targets}, "seed": {str(s) for s in plan.seeds}, "phase": {"1", "2", "3"}}
    filters = {}
    for item in only:
        key, _, values = item.partition("=")
        if key not in ONLY_KEYS or not values:
            raise XtremeError(f"--only {item}: expected KEY=VALUE[,VALUE] with KEY one of {', '.join(ONLY_KEYS)}")
        wanted = {v.strip() for v in values.split(",") if v.strip()}
        unknown = sorted(wanted - known[key])
        if unknown:
            raise XtremeError(f"--only {item}: no {key} {', '.join(unknown)} in the plan "
                              f"(it has {', '.join(sorted(known[key]))})")
        filters.setdefault(key, set()).update(wanted)
    return filters


def _attribute(step: Step, key: str):
    return {"backbone": step.backbone.name, "intermediate": step.intermediate.name, "seed": str(step.seed),
            "phase": str(step.phase), "target": step.target.name if step.target else None}[key]


def select_steps(plan: Plan, steps: list[Step], only: list[str]) -> list[Step]:
    """`--only key=v1,v2 ...` (keys: backbone, intermediate, target, seed, phase): the steps matching every filter,
    plus the steps they depend on (skipped when complete)."""
    if not only:
        return steps
    filters = _only_filters(plan, only)
    chosen = set()

    def add(step: Step):
        if step.id not in chosen:
            chosen.add(step.id)
            for dep in step.deps:
                add(dep)

    for step in steps:
        if all(_attribute(step, k) in v for k, v in filters.items()):
            add(step)
    return [s for s in steps if s.id in chosen]
