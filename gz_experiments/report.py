"""The report's results table in one command: every approach on one seeded split, each a nested
MLflow run under one parent run, which holds the table, its figures and `test_rmse/<approach>`.

Resumable: an approach already FINISHED on the same data (fingerprint of the split's labels and
images) and the same configuration (hash of its parameters, tracking-only ones left out) is reused,
not retrained — after a crash, or when a rerun lists more approaches. `from=<parent run id>`
rebuilds the table and figures from a report's finished runs without training.
"""
from __future__ import annotations

import gc
import hashlib
import json
import os
import sys
from dataclasses import dataclass

from gz_experiments import config as config_module
from gz_experiments.config import ConfigError, TrainConfig, flat_params, override
from gz_experiments.report_runs import CONFIG_HASH_TAG, DATA_TAG, RUN_TAG, ReportError
from gz_experiments.seeds import parse_seeds

BASELINE = "baseline"
DEFAULT_APPROACHES = (BASELINE, "cnn_full", "cnn_cropped", "cnn_slim_head", "resnet")
OPTION_NAMES = ("approaches", "seeds", "from")
LABEL_TAG = "report_label"
# Where a run is recorded changes nothing about what it trained (config.TRACKING_FIELDS once merged);
# the data's content is compared by fingerprint, so a moved folder still matches. XLA (jit_compile)
# changes how fast a run trained, not what: runs from before the setting existed still match.
NOT_HASHED = frozenset(getattr(config_module, "TRACKING_FIELDS", ())) | {"data_dir", "jit_compile"}
BASELINE_FIELDS = ("n_train", "n_val", "n_test", "split_seed", "skip_bad_images")


@dataclass(frozen=True)
class ReportOptions:
    approaches: tuple[str, ...] = DEFAULT_APPROACHES
    seeds: tuple[int, ...] = ()      # (): each approach's own seed
    from_run: str | None = None      # rebuild the artifacts of this report's runs, train nothing


@dataclass(frozen=True)
class Job:
    """One run of the table: an approach (with one seed when seeds=… is given)."""
    approach: str
    label: str
    config: TrainConfig
    params: dict          # what identifies the result: hashed into CONFIG_HASH_TAG

    @property
    def config_hash(self) -> str:
        text = json.dumps({k: str(v) for k, v in self.params.items()}, sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def parse_options(tokens: dict[str, str]) -> tuple[ReportOptions, dict[str, str]]:
    """Split `key=value` tokens into report options and overrides: `field=value` for every approach,
    `<approach>.field=value` for one (e.g. resnet.weights=none)."""
    import experiments
    fixed = {k: v for k, v in tokens.items() if k not in OPTION_NAMES}
    approaches = tuple(a.strip() for a in tokens.get("approaches", ",".join(DEFAULT_APPROACHES)).split(",") if a.strip())
    known = (BASELINE, *experiments.APPROACHES)
    unknown = [a for a in approaches if a not in known]
    if not approaches or unknown or len(set(approaches)) != len(approaches):
        raise ConfigError(f"parameter 'approaches' takes distinct names from {', '.join(known)}, comma-separated; "
                          f"got {tokens.get('approaches')!r}")
    for key in fixed:
        scope = key.split(".", 1)[0] if "." in key else None
        if scope is not None and scope not in approaches:
            raise ConfigError(f"parameter {key!r} is for approach {scope!r}, which this report doesn't run "
                              f"(approaches: {', '.join(approaches)})")
    if "seeds" in tokens and "seed" in fixed:
        raise ConfigError("give either seed=N or seeds=N,M,… to a report, not both")
    seeds = parse_seeds(tokens["seeds"]) if "seeds" in tokens else ()
    from_run = tokens.get("from", "").strip() or None
    if from_run and set(tokens) - {"from"}:
        raise ConfigError(f"report from=RUN_ID rebuilds that report as it was; drop {sorted(set(tokens) - {'from'})}")
    return ReportOptions(approaches, seeds, from_run), fixed


def overrides_for(approach: str, fixed: dict[str, str]) -> dict[str, str]:
    shared = {k: v for k, v in fixed.items() if "." not in k}
    own = {k.split(".", 1)[1]: v for k, v in fixed.items() if k.startswith(f"{approach}.")}
    return {**shared, **own}


def plan(options: ReportOptions, fixed: dict[str, str]) -> list[Job]:
    """Every run of the report, each configuration validated before anything trains."""
    import experiments
    jobs = []
    for approach in options.approaches:
        base = experiments.load("cnn_cropped" if approach == BASELINE else approach).CONFIG
        try:
            config = override(base, overrides_for(approach, fixed))
        except ConfigError as error:
            raise ConfigError(f"{approach}: {error}") from None
        if approach == BASELINE:   # the mean prediction depends on the split only: one run, whatever the seeds
            flat = flat_params(config)
            jobs.append(Job(BASELINE, BASELINE, config, {"approach": BASELINE, **{k: flat[k] for k in BASELINE_FIELDS}}))
            continue
        for seed in options.seeds or (None,):
            seeded = config if seed is None else override(config, seed=seed)
            params = {k: v for k, v in flat_params(seeded).items() if k not in NOT_HASHED}
            jobs.append(Job(approach, approach if seed is None else f"{approach}-seed{seed}", seeded, params))
    return jobs


def check_weights(jobs: list[Job]) -> None:
    """ResNet's pretrained weights are fetched before the first approach trains: an offline
    machine fails in seconds, not after hours of the other approaches."""
    from gz_experiments import models
    for job in jobs:
        models.prepare_weights(job.config.model)


def data_fingerprint(config: TrainConfig, known: dict) -> str:
    """Labels file + content of every image of the split: equal ⇒ the same galaxies and labels."""
    from gz_experiments.data.dataset import resolve_data_dir
    from gz_experiments.data.source import open_source
    from gz_experiments.data.split import SPLITS, split_ids
    data = config.data
    key = (data.data_dir, data.n_train, data.n_val, data.n_test, data.split_seed)
    if key not in known:
        source = open_source(resolve_data_dir(data))
        ids = split_ids(source.labels.index, data.n_train, data.n_val, data.n_test, data.split_seed, str(source.root))
        order = [int(i) for name in SPLITS for i in ids[name]]
        text = f"{source.labels_hash}:{source.images.fingerprint(order)}"
        known[key] = hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
    return known[key]


def report(options: ReportOptions, fixed: dict[str, str]) -> dict:
    """Train (or reuse) every approach, then log the table and figures on the parent run."""
    import mlflow

    from gz_experiments import experiment, report_runs, tracking
    if options.from_run:
        return report_runs.rebuild(options.from_run)
    jobs = plan(options, fixed)
    fingerprints = {}
    for job in jobs:   # a bad data_dir or split fails here, before anything trains
        data_fingerprint(job.config, fingerprints)
    check_weights(jobs)
    with tracking.run(run_name="report", tags={"approach": "report"},
                      experiment_id=experiment.use(fixed.get("experiment"))) as parent:
        os.environ.pop("MLFLOW_RUN_ID", None)   # mlflow issue 15713: nested runs must not resume the parent
        tracking.log_params({"approaches": ",".join(options.approaches),
                             "seeds": ",".join(map(str, options.seeds)) or "none",
                             **{f"set.{k}": v for k, v in fixed.items()}})
        failed = {}
        for job in jobs:
            fingerprint = data_fingerprint(job.config, fingerprints)
            run_id = report_runs.find_finished(job.config_hash, fingerprint)
            if run_id:
                print(f"report: {job.label}: reusing finished run {run_id} (same data, split and configuration)")
            else:
                run_id, error = run_job(job, fingerprint)
                if error is not None:
                    failed[job.label] = error
                    continue
            mlflow.set_tag(f"{RUN_TAG}{job.label}", run_id)
        summary = report_runs.publish(mlflow.MlflowClient().get_run(parent.info.run_id).data.tags)
        if failed:
            errors = "; ".join(f"{label}: {type(e).__name__}: {e}" for label, e in failed.items())
            raise ReportError(f"{len(failed)} of {len(jobs)} approaches failed ({errors}); the table holds the "
                              f"others. Fix the cause and run the same command again: finished approaches "
                              f"are reused, not retrained")
        return summary


def run_job(job: Job, fingerprint: str) -> tuple[str, Exception | None]:
    """Train one job in a nested run tagged with what identifies its result; an error ends that run
    FAILED (with error.txt) and the report goes on with the next approach."""
    from gz_experiments import tracking
    tags = {CONFIG_HASH_TAG: job.config_hash, DATA_TAG: fingerprint, LABEL_TAG: job.label}
    print(f"report: {job.label}: training")
    try:
        with tracking.run(run_name=job.label, tags=tags, nested=True) as run:   # in the parent's experiment
            if job.approach == BASELINE:
                from gz_experiments.baseline import baseline
                baseline(job.config)
            else:
                from gz_experiments.train import train
                train(job.config, progress=False)
        return run.info.run_id, None
    except Exception as error:   # KeyboardInterrupt and kills stop the whole report
        print(f"report: {job.label} failed: {type(error).__name__}: {error}", file=sys.stderr)
        return "", error
    finally:
        release_memory()


def release_memory() -> None:
    gc.collect()
    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()
