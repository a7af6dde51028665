"""The paper's experiment grid from one plan file (`python -m utils.grid PLAN`, see `cli.py` for the commands).

The three scripts stay the unit of work: every step is one `run_intermediate.py`, `run_target.py` or
`run_xtreme_eval.py` process (optionally under `accelerate launch` / `torchrun`), with its output and a log in its
own directory:

    {output_dir}/grid_state.json                        every step: status, command, wall time, devices or job
    {output_dir}/{backbone}/{intermediate}/seed{s}/
        phase1/{step.json,log.txt,model/}               run_intermediate.py (absent for `none`)
        {target}/phase2/{step.json,log.txt,model/}      run_target.py on phase1/model (or the backbone)
        {target}/phase3/{step.json,log.txt,results/{task}.{split}.json,predictions/}   run_xtreme_eval.py
        bucc2018/phase3/ ...                            retrieval: evaluated on phase1/model, no phase 2

A step is skipped when its outputs are complete (phases 1-2: `model/xtreme_inter_run.json` says
`"finished": true`; phase 3: the results file holds every requested language of the planned split) and the
outputs of the steps it depends on are the ones it was run on. `step.json` records, for each input step, the id
of the grid run that produced it and a hash of its completion file; an input that was produced again (by the grid
or by hand) makes the step stale: its old outputs are removed and it runs again. So deleting one step's outputs
re-runs exactly that step and what depends on it. A failed step is reported and the rest of the grid goes on;
the steps that need its output are skipped with the reason. An interrupted training step resumes from its last
checkpoint on the next invocation (the scripts do that), an interrupted evaluation keeps the languages already
done (`--resume`). A step's process holds a lock on its dir while it runs, so no two processes ever write one.

Modules: `plan` (the plan file), `steps` (steps and their commands), `runner` (the driver), `local` and `slurm`
(where steps run), `process` (step processes and locks), `records` (step.json, grid_state.json), `progress`
(progress lines, ETA), `overview` (--dry-run, --status), `checks` (paths), `cli`.
"""

from .cli import main
from .plan import Plan, load_plan
from .steps import Step, build_steps, select_steps, to_flags

__all__ = ["Plan", "Step", "build_steps", "load_plan", "main", "select_steps", "to_flags"]
