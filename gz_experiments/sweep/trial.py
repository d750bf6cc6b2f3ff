"""One trial: its parameters drawn from the search space, trained in a nested MLflow run linked to
the Optuna trial both ways, pruned on per-epoch `val_rmse`, and failed — never scored — when
training diverges."""
from __future__ import annotations

import math
import os
import re
import socket
from pathlib import Path

from gz_experiments.config import override
from gz_experiments.sweep.options import SweepError

WORKER = f"{socket.gethostname()}:{os.getpid()}"   # recorded on each trial: who runs it


def _pid_space() -> str:
    """Where a pid names one process: this boot of this machine and this pid namespace (two
    containers may share a host name, never both of these). Off Linux, the host name is all there is."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return socket.gethostname()


PID_SPACE = _pid_space()   # recorded beside WORKER, so a worker's pid is only checked where it means it


class PruningHook:
    """train's epoch hook: report val_rmse to the trial (step = epoch), stop when Optuna prunes,
    and at once when val_rmse is NaN or infinite (the loss diverged: no later epoch can recover).
    A trial's time budget is training's own (`budget_minutes`, which `trial_minutes` sets)."""

    def __init__(self, trial):
        self.trial, self.pruned_at, self.diverged_at, self.val_rmse = trial, None, None, None

    def __call__(self, epoch: int, val_rmse: float) -> bool:
        if not math.isfinite(val_rmse):
            self.diverged_at, self.val_rmse = epoch, val_rmse
            return True
        self.trial.report(val_rmse, epoch)
        if self.trial.should_prune():
            self.pruned_at, self.val_rmse = epoch, val_rmse
            return True
        return False


def param_key(name: str) -> str:
    """`filters[1]` → `filters_1`: MLflow keys allow no brackets."""
    return re.sub(r"\[(\d+)\]", r"_\1", name)


def make_objective(config, space: dict, study_name: str, parent_run_id: str | None = None):
    def objective(trial) -> float:
        import optuna

        from gz_experiments.tracking.recorder import recording
        from gz_experiments.tracking.runs import record_failure
        from gz_experiments.train import train
        with recording(f"trial-{trial.number}", nested=parent_run_id is None, parent_run_id=parent_run_id) as rec:
            hook = PruningHook(trial)
            try:
                tag_trial(rec, trial, study_name)
                params = {key: distribution.suggest(trial, key) for key, distribution in space.items()}
                rec.params({f"trial_{param_key(k)}": v for k, v in params.items()})
                metrics = train(override(config, params), epoch_hook=hook, evaluate_test=False, progress=False)
                check_converged(hook, metrics["best_val_rmse"])
            except BaseException as error:
                record_failure(error)
                rec.tags({"trial_state": "failed"})
                trial.set_user_attr("error", f"{type(error).__name__}: {error}"[:500])
                raise
            rec.tags({"trial_state": "pruned" if hook.pruned_at else "finished"})
        if hook.pruned_at:
            raise optuna.TrialPruned(f"val_rmse {hook.val_rmse:.4f} at epoch {hook.pruned_at} is worse than "
                                     f"the median of earlier trials")
        return metrics["best_val_rmse"]
    return objective


def check_converged(hook: PruningHook, best_val_rmse: float) -> None:
    """A diverged trial fails (Optuna FAIL): an infinite value would otherwise count as complete,
    and could even be the study's best when nothing else completed."""
    if hook.diverged_at is None and math.isfinite(best_val_rmse):
        return
    where = f"val_rmse {hook.val_rmse} at epoch {hook.diverged_at}" if hook.diverged_at else \
        f"best_val_rmse {best_val_rmse}"
    raise SweepError(f"training diverged ({where}: the loss became NaN or infinite); lower the "
                     f"learning_rate range or its fixed value")


def tag_trial(rec, trial, study_name: str) -> None:
    """Link the Optuna trial and its MLflow run both ways (a retry also names the dead trial). The
    run's trial number also names the model it logs (`trial-<number>`)."""
    from gz_experiments.tracking.logged_models import TRIAL_TAG
    trial.set_user_attr("mlflow_run_id", rec.run_id)
    trial.set_user_attr("mlflow_parent_run_id", rec.parent_run_id)
    trial.set_user_attr("worker", WORKER)
    trial.set_user_attr("worker_pid_space", PID_SPACE)
    frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    retry_of = frozen.system_attrs.get("failed_trial")
    rec.tags({TRIAL_TAG: trial.number, "study_name": study_name, "trial_state": "running",
              "worker": WORKER, **({"retry_of_trial": retry_of} if retry_of is not None else {})})
