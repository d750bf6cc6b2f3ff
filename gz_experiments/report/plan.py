"""The report's jobs: one per approach (and seed), each configuration validated and hashed, and
the fingerprint of the data they train on: equal hash and fingerprint => the same result."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from gz_experiments.config import TRACKING_FIELDS, ConfigError, TrainConfig, flat_params, override
from gz_experiments.report.options import BASELINE, ReportOptions, overrides_for

# Where a run is recorded changes nothing about what it trained (TRACKING_FIELDS);
# the data's content is compared by fingerprint, so a moved folder still matches. XLA (jit_compile)
# changes how fast a run trained, not what: runs from before the setting existed still match.
NOT_HASHED = TRACKING_FIELDS | {"data_dir", "jit_compile"}
BASELINE_FIELDS = ("n_train", "n_val", "n_test", "split_seed", "skip_bad_images")


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
