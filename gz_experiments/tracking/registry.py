"""The model registry: `register=<name>` makes a run's logged model a new version of <name>, and the
alias `champion` follows the best version — moved only when the new one has a lower test RMSE on the
same test data (equal testing-dataset digest, see `datasets`), so `models:/<name>@champion` is always
the best model known for that data, also when runs finish together (a file lock beside a sqlite
store; compare-after-set through a server)."""
from __future__ import annotations

from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from gz_experiments.tracking import datasets, logged_models, races

CHAMPION = "champion"
TEST_RMSE_TAG, TEST_DATA_TAG = "test_rmse", "test_data_digest"


@dataclass(frozen=True)
class Standing:
    """What the champion decision needs of a version: its test RMSE and the data it was measured on."""
    version: str
    test_rmse: float | None
    test_data: str | None


def champion_decision(candidate: Standing, holder: Standing | None) -> tuple[bool, str]:
    """(move the alias to `candidate`?, why) — the sentence is what the user reads."""
    if holder is None:
        return True, f"version {candidate.version} is the first {CHAMPION}"
    if candidate.test_rmse is None or candidate.test_data is None:
        return False, (f"version {candidate.version} has no test RMSE on a logged test split; "
                       f"{CHAMPION} stays version {holder.version}")
    if holder.test_data != candidate.test_data or holder.test_rmse is None:
        return False, (f"version {candidate.version} was tested on other data than {CHAMPION} version "
                       f"{holder.version} (test split digest {candidate.test_data} vs {holder.test_data}): "
                       f"not comparable, alias left")
    if candidate.test_rmse < holder.test_rmse:
        return True, (f"version {candidate.version} (test RMSE {candidate.test_rmse:.4f}) beats "
                      f"version {holder.version} ({holder.test_rmse:.4f}) on the same test data")
    return False, (f"version {candidate.version} (test RMSE {candidate.test_rmse:.4f}) does not beat "
                   f"{CHAMPION} version {holder.version} ({holder.test_rmse:.4f}); alias left")


def register(name: str, run_id: str, test_rmse: float | None, model_id: str | None = None) -> tuple[str, bool, str]:
    """Register the run's logged model (or `model_id`) under `name`, then decide the champion;
    returns (version, moved, why), which is also printed and tagged on the run and the version."""
    client = MlflowClient()
    already = client.get_run(run_id).data.tags.get("registered_model", "")
    if already.startswith(f"{name}/"):   # another sweep worker, or a resumed study, registered it
        print(f"the model of run {run_id} is already {name} version {already.split('/')[-1]}")
        return already.split("/")[-1], False, "already registered"
    model_id = model_id or logged_models.one_model(run_id, client).model_id
    test_data = datasets.testing_digest(run_id)
    tags = {TEST_DATA_TAG: test_data or "none", "source_run_id": run_id,
            **({TEST_RMSE_TAG: f"{test_rmse:.6g}"} if test_rmse is not None else {})}
    version = mlflow.register_model(f"models:/{model_id}", name, tags=tags).version
    candidate = Standing(str(version), test_rmse, test_data)
    with races.store_lock(f"champion-{name}"):   # runs finishing together on one disk: one at a time
        moved, why = champion_decision(candidate, holder_of(client, name))
        if moved:
            # Through a server two setters may both insert the alias row: the loser sets it again
            # (now an update), and settling below hands it to the best whoever set last.
            races.retrying(lambda: client.set_registered_model_alias(name, CHAMPION, str(version)))
            settle_champion(client, name)
    client.set_model_version_tag(name, str(version), "champion_decision", why)
    describe(client, name, str(version), run_id, test_rmse, test_data, why)
    client.set_tag(run_id, "registered_model", f"{name}/{version}")
    print(f"registered {name} version {version}; {why}")
    return str(version), moved, why


MODEL_DESCRIPTION = ("Galaxy Zoo morphology models: base64 JPEG in, the 37 vote fractions out. The alias "
                     f"`{CHAMPION}` follows the version with the lowest test RMSE on the same test data; "
                     f"`models:/<name>@{CHAMPION}` loads it.")


def describe(client: MlflowClient, name: str, version: str, run_id: str, test_rmse: float | None,
             test_data: str | None, why: str) -> None:
    """The registered model's description (once) and the version's: where it came from and how it scored."""
    if not client.get_registered_model(name).description:
        client.update_registered_model(name, description=MODEL_DESCRIPTION)
    run = client.get_run(run_id)
    score = (f"test RMSE {test_rmse:.4f} on test data {test_data}" if test_rmse is not None and test_data
             else "no test RMSE on a logged test split")
    client.update_model_version(name, version, description=f"From run {run.info.run_name or run_id} "
                                                            f"({run.data.tags.get('approach', '?')}): {score}. {why}.")


def settle_champion(client: MlflowClient, name: str) -> None:
    """Compare after set: through a server, two runs finishing together may both have decided
    against the old holder, and the worse one set the alias last. Whoever set it looks again at
    every version tested on the holder's data, and hands the alias to the best one."""
    holder = holder_of(client, name)
    if holder is None or holder.test_rmse is None:
        return
    versions = [standing(v) for v in client.search_model_versions(f"name = '{name}'", max_results=10000)]
    comparable = [v for v in versions if v.test_data == holder.test_data and v.test_rmse is not None]
    best = min(comparable, key=lambda v: (v.test_rmse, int(v.version)), default=holder)
    if best.version != holder.version and best.test_rmse < holder.test_rmse:
        races.retrying(lambda: client.set_registered_model_alias(name, CHAMPION, best.version))


def standing(version) -> Standing:
    rmse = version.tags.get(TEST_RMSE_TAG)
    return Standing(str(version.version), float(rmse) if rmse else None, version.tags.get(TEST_DATA_TAG))


def holder_of(client: MlflowClient, name: str) -> Standing | None:
    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:   # no alias yet
        return None
    return standing(version)
