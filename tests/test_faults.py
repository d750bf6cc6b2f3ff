"""Fault injection: a damaged cache, failed and killed cache builds, runs whose process died or was
stopped by a signal, and a dead `mlflow run` launcher. Afterwards nothing is RUNNING (once the next
project command has started), no temporary file is left, nothing half-written is read as whole, and
the next run works. Stage points are found by waiting for a marker (a file, an MLflow metric), never
by a fixed sleep. The sweep's own kill -9 recovery is tests/test_sweep.py's
test_killed_worker_trial_fails_by_heartbeat_and_resume_meets_the_budget; here the next plain
command must close that sweep's runs too."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from conftest import PROJECT_ROOT, search_runs, tiny_overrides, wait_for
from gz_experiments.tracking import experiment, processes
from gz_experiments.tracking import runs as tracking
from gz_experiments.cli import main
from gz_experiments.data import cache
from gz_experiments.data.cache import cache_root, load_or_build
from gz_experiments.data.images import preprocess
from gz_experiments.data.source import ImageStore, TRAIN_IMAGES, read_labels

SIZE = 32


def store_and_ids(root: Path, k: int = 40):
    labels, _ = read_labels(root)
    return ImageStore(root, TRAIN_IMAGES), labels.index.to_numpy()[:k]


def temporaries() -> list[str]:
    return sorted(p.name for p in cache_root().iterdir() if ".partial-" in p.name or ".tmp" in p.name)


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


# ---- the cache ---------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncate", "garbage header", "no sidecar", "bad sidecar", "no array"])
def test_a_damaged_cache_entry_is_rebuilt_with_a_warning_naming_it(synthetic_dir, damage):
    store, ids = store_and_ids(synthetic_dir)
    first = load_or_build(store, ids, SIZE, None, progress=False)
    expected = np.array(first.images)
    del first
    array, sidecar = next(cache_root().glob("*.npy")), next(cache_root().glob("*.json"))
    if damage == "truncate":   # main gave "ValueError: mmap length is greater than file size", forever
        os.truncate(array, array.stat().st_size // 2)
    elif damage == "garbage header":
        array.write_bytes(b"not an npy file" * 10)
    elif damage == "no sidecar":
        sidecar.unlink()
    elif damage == "bad sidecar":
        sidecar.write_text("{")
    else:
        array.unlink()
    with pytest.warns(UserWarning, match=rf"image cache entry {array}.* is damaged"):
        again = load_or_build(store, ids, SIZE, None, progress=False)
    assert again.built
    np.testing.assert_array_equal(np.asarray(again.images), expected)
    assert not load_or_build(store, ids, SIZE, None, progress=False).built   # whole again: reused
    assert temporaries() == []


@pytest.mark.parametrize("error", [RuntimeError("disk on fire"), KeyboardInterrupt(), processes.Killed(15)])
def test_a_failed_build_removes_its_temporary_file(synthetic_dir, monkeypatch, error):
    store, ids = store_and_ids(synthetic_dir)
    seen = []

    def failing(*args):
        seen.extend(temporaries())
        raise error

    monkeypatch.setattr(cache, "preprocess", failing)
    with pytest.raises(type(error)):
        load_or_build(store, ids, SIZE, None, progress=False)
    assert seen and all(f"partial-{processes.HOST}-{os.getpid()}" in name for name in seen)
    assert temporaries() == [] and not list(cache_root().glob("*.npy"))
    monkeypatch.undo()
    built = load_or_build(store, ids, SIZE, None, progress=False)   # nothing half-written was kept
    np.testing.assert_array_equal(built.images[0], preprocess(store.read(ids[0]), SIZE, None))


def test_the_next_build_removes_temporaries_of_dead_builders_only(synthetic_dir):
    store, ids = store_and_ids(synthetic_dir)
    cache_root().mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {"dead": f"{'a' * 24}.partial-{processes.HOST}-{dead_pid()}.npy",
                 "dead_sidecar": f"{'b' * 24}.partial-{processes.HOST}-{dead_pid()}.json",
                 "dead_old_style": f"{'c' * 24}.tmp{dead_pid()}.npy",   # named by main's builds
                 "live": f"{'d' * 24}.partial-{processes.HOST}-{sleeper.pid}.npy",
                 "other_host": f"{'e' * 24}.partial-elsewhere.example-{dead_pid()}.npy"}
        for name in names.values():
            (cache_root() / name).write_bytes(b"\0" * 1000)
        load_or_build(store, ids, SIZE, None, progress=False)
        assert temporaries() == sorted([names["live"], names["other_host"]])
    finally:
        sleeper.kill()
        sleeper.wait()


# ---- runs: tags, orphans, signals, adoption ----------------------------------------------------

def started_run(**tags) -> str:
    with mlflow.start_run() as run:
        mlflow.set_tags(tags)
    MlflowClient().update_run(run.info.run_id, status="RUNNING")
    return run.info.run_id


def test_runs_of_dead_processes_on_this_host_are_closed_and_no_other(tmp_path):
    me = processes.identity()
    tag = tracking.PROCESS_TAGS
    dead = started_run(**{tag["host"]: me["host"], tag["pid"]: str(dead_pid()), tag["start"]: ""})
    reused = started_run(**{tag["host"]: me["host"], tag["pid"]: me["pid"], tag["start"]: "other-boot:1"})
    alive = started_run(**{tag["host"]: me["host"], tag["pid"]: me["pid"], tag["start"]: me["start"]})
    elsewhere = started_run(**{tag["host"]: "elsewhere.example", tag["pid"]: str(dead_pid()), tag["start"]: ""})
    untagged = started_run()

    assert sorted(tracking.close_orphaned_runs()) == sorted([dead, reused])
    client = MlflowClient()
    for run_id in (dead, reused):
        run = client.get_run(run_id)
        assert run.info.status == "FAILED"
        assert "ended without closing this run" in run.data.tags["error"]
        assert "Closed as FAILED" in run.data.tags[tracking.NOTE]
    assert {client.get_run(r).info.status for r in (alive, elsewhere, untagged)} == {"RUNNING"}


def test_no_tracking_store_is_created_just_to_look_for_orphans(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'none.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'none.db'}")
    assert tracking.close_orphaned_runs() == [] and not (tmp_path / "none.db").exists()


RACER = """
import sys, time
from gz_experiments.tracking import experiment
while time.time() < float(sys.argv[1]):   # all start together, as sweep workers launched at once do
    time.sleep(0.001)
experiment.use("race")
"""


def test_commands_starting_together_on_a_new_database_all_get_it(tmp_path):
    """MLflow creates a sqlite store's tables unlocked: on main 11 of 12 such racers died with
    "table … already exists" (4 processes, 3 rounds)."""
    start = time.time() + 8   # after every racer has imported MLflow
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(start)], cwd=tmp_path, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(4)]
    outputs = [racer.communicate(timeout=120)[0] for racer in racers]
    assert [racer.returncode for racer in racers] == [0] * 4, outputs
    assert [e.name for e in MlflowClient().search_experiments()] == ["race", "Default"]


def test_a_lock_file_that_cannot_be_made_does_not_stop_the_command(tmp_path, monkeypatch):
    database = tmp_path / "store" / "mlflow.db"
    (tmp_path / "store" / "mlflow.db.lock").mkdir(parents=True)   # opening it fails, as a read-only folder would
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{database}")
    mlflow.set_tracking_uri(f"sqlite:///{database}")
    assert experiment.use("unlocked") is not None and database.exists()


def test_sigterm_ends_the_run_killed_with_a_note():
    with pytest.raises(processes.Killed) as stopped:
        with tracking.run(run_name="victim") as run:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)   # the handler raises at the next bytecode; never reached
    assert stopped.value.code == 128 + signal.SIGTERM
    finished = MlflowClient().get_run(run.info.run_id)
    assert finished.info.status == "KILLED"
    assert "killed by SIGTERM" in finished.data.tags["killed_by"]
    assert "SIGTERM" in finished.data.tags[tracking.NOTE] and "SIGTERM" in finished.data.tags["error"]
    assert finished.data.tags[tracking.PROCESS_TAGS["pid"]] == str(os.getpid())
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL   # handler restored


def test_someone_elses_active_run_is_never_written_into():
    with mlflow.start_run() as theirs:
        with tracking.run(run_name="ours") as ours:
            mlflow.log_metric("x", 1.0)
    assert ours.info.run_id != theirs.info.run_id
    child = MlflowClient().get_run(ours.info.run_id)
    assert child.data.tags["mlflow.parentRunId"] == theirs.info.run_id and child.info.status == "FINISHED"
    assert "x" not in MlflowClient().get_run(theirs.info.run_id).data.metrics


def test_a_trial_is_an_explicit_child_and_training_inside_adopts_it():
    with tracking.run(run_name="sweep") as parent:
        with tracking.run(run_name="trial", nested=True) as trial:
            with tracking.run(run_name="train") as inner:   # what train() does inside a trial
                mlflow.log_metric("val_rmse", 0.2)
    assert inner.info.run_id == trial.info.run_id != parent.info.run_id
    run = MlflowClient().get_run(trial.info.run_id)
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id and run.data.metrics["val_rmse"] == 0.2


def test_the_run_mlflow_run_created_is_adopted(monkeypatch):
    created = MlflowClient().create_run("0").info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", created)
    with tracking.run(run_name="train") as run:
        pass
    assert run.info.run_id == created and MlflowClient().get_run(created).info.status == "FINISHED"


# ---- processes killed at each stage (slow) -----------------------------------------------------

@pytest.fixture(autouse=True)
def this_checkout_in_subprocesses(monkeypatch):
    """Subprocesses started outside the project folder import this checkout, not an installed copy."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])))


TRAINER = """
import faulthandler, signal, sys, time
from pathlib import Path
faulthandler.register(signal.SIGUSR1, all_threads=True)   # a process that won't stop shows where it is
# Ctrl-C as in a terminal's foreground: started from a background job (`pytest … &`), the process
# would inherit SIGINT ignored, and Python keeps it ignored
signal.signal(signal.SIGINT, signal.default_int_handler)
stage, marker = sys.argv[1], Path(sys.argv[2])
if stage == "cache":      # slow decoding, so the kill lands mid-build
    import gz_experiments.data.cache as cache
    real = cache.preprocess
    cache.preprocess = lambda *a: (time.sleep(0.05), real(*a))[1]
if stage == "model":      # the model is saved; marker, then stall before it is logged
    import gz_experiments.served.serving as serving
    real_save = serving.save
    def save(*a):
        real_save(*a)
        marker.touch()
        time.sleep(600)
    serving.save = save
from gz_experiments.cli import main
sys.exit(main(["train", "cnn_cropped", *sys.argv[3:]]))
"""


def start_training(data_dir, tmp_path: Path, stage: str, epochs: int) -> tuple[subprocess.Popen, Path]:
    args = [f"{k}={v}" for k, v in tiny_overrides(data_dir, crop=250, epochs=epochs).items()]
    log = tmp_path / f"{stage}.log"
    process = subprocess.Popen([sys.executable, "-c", TRAINER, stage, str(tmp_path / f"{stage}.marker"), *args],
                               stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=tmp_path)
    return process, log


def exit_status(process: subprocess.Popen, log: Path, timeout: float = 120) -> int:
    """The process's exit status once it stops; if it doesn't, its threads' stacks and its log."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGUSR1)
        time.sleep(2)
        process.kill()
        process.wait()
        pytest.fail(f"still running {timeout} s after the signal; its stacks and log:\n{log.read_text()[-8000:]}")


def run_of(pid: int):
    """The run a process (by its gz.pid tag) is logging to, once it has one."""
    runs = search_runs(f"tags.`{tracking.PROCESS_TAGS['pid']}` = '{pid}'")
    return runs[0] if runs else None


def trained_an_epoch(pid: int):
    run = run_of(pid)
    return run if run is not None and "train_loss" in run.data.metrics else None


def assert_nothing_running():
    running = search_runs("attributes.status = 'RUNNING'")
    assert running == [], [(r.info.run_name, r.data.tags.get("error")) for r in running]


def next_run_works(data_dir) -> None:
    """The next project command closes what the dead process left and trains normally."""
    args = [f"{k}={v}" for k, v in tiny_overrides(data_dir, crop=250).items()]
    assert main(["train", "cnn_cropped", *args]) == 0
    assert mlflow.last_active_run().info.status == "FINISHED"


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["cache", "epoch", "model"])
def test_kill_9_at_each_stage_leaves_nothing_running_or_half_written(synthetic_dir, tmp_path, stage):
    process, log = start_training(synthetic_dir, tmp_path, stage, epochs=2 if stage == "model" else 500)
    if stage == "cache":
        wait_for(lambda: cache_root().is_dir() and temporaries(), 300, "the cache build to start", process, log, interval=0.05)
    elif stage == "epoch":
        wait_for(lambda: trained_an_epoch(process.pid), 300, "an epoch to end", process, log, interval=0.05)
    else:
        wait_for((tmp_path / "model.marker").exists, 300, "the model to be saved", process, log, interval=0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed = run_of(process.pid)
    assert killed.info.status == "RUNNING"   # what main left forever

    next_run_works(synthetic_dir)
    after = MlflowClient().get_run(killed.info.run_id)
    assert after.info.status == "FAILED" and f"process {process.pid} on" in after.data.tags["error"]
    pending = [m for m in MlflowClient().search_logged_models(experiment_ids=[killed.info.experiment_id],
                                                              filter_string=f"source_run_id = '{killed.info.run_id}'")
               if m.status.name == "PENDING"]
    assert pending == []   # main: the killed run's LoggedModel stayed PENDING for ever
    assert_nothing_running()
    assert temporaries() == []
    for array in cache_root().glob("*.npy"):   # every entry whole: its sidecar (written last) and all rows
        assert array.with_suffix(".json").exists() and np.load(array, mmap_mode="r").shape[1:] == (48, 48, 3)


@pytest.mark.slow
def test_sigterm_to_training_ends_its_run_killed_with_a_note(synthetic_dir, tmp_path):
    process, log = start_training(synthetic_dir, tmp_path, "sigterm", epochs=500)
    wait_for(lambda: trained_an_epoch(process.pid), 300, "an epoch to end", process, log, interval=0.05)
    process.send_signal(signal.SIGTERM)
    assert exit_status(process, log) == 128 + signal.SIGTERM, log.read_text()[-3000:]
    run = run_of(process.pid)
    assert run.info.status == "KILLED"   # main: RUNNING forever
    assert "killed by SIGTERM" in run.data.tags["killed_by"] and "SIGTERM" in run.data.tags[tracking.NOTE]
    assert_nothing_running()


@pytest.mark.slow
def test_ctrl_c_is_one_line_and_ends_the_run_killed(synthetic_dir, tmp_path):
    process, log = start_training(synthetic_dir, tmp_path, "sigint", epochs=500)
    wait_for(lambda: trained_an_epoch(process.pid), 300, "an epoch to end", process, log, interval=0.05)
    process.send_signal(signal.SIGINT)
    assert exit_status(process, log) == 130, log.read_text()[-3000:]
    output = log.read_text()
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-3000:]   # main: ~40 lines
    assert output.rstrip().splitlines()[-1] == "interrupted (Ctrl-C): train stopped"
    run = run_of(process.pid)
    assert run.info.status == "KILLED" and "SIGINT" in run.data.tags["killed_by"]
    assert_nothing_running()


@pytest.mark.slow
def test_the_next_command_closes_the_runs_of_a_sweep_worker_killed_mid_trial(synthetic_dir, tmp_path):
    from test_sweep import start_worker, sweep_args, wait_for as wait_for_worker
    args = sweep_args(synthetic_dir, f"sqlite:///{tmp_path / 'optuna.db'}", "killed", 2, pruner="none", epochs=500)
    worker = start_worker(args, tmp_path / "worker.log")
    trial_run = wait_for_worker(lambda: next((r for r in search_runs("tags.trial_number = '0'")
                                              if "train_loss" in r.data.metrics), None),
                                300, "a trial to train an epoch", worker, tmp_path / "worker.log")
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    assert main(["baseline", *(f"{k}={v}" for k, v in tiny_overrides(synthetic_dir).items())]) == 0
    client = MlflowClient()
    for run_id in (trial_run.info.run_id, trial_run.data.tags["mlflow.parentRunId"]):
        assert client.get_run(run_id).info.status == "FAILED"
        assert f"process {worker.pid} on" in client.get_run(run_id).data.tags["error"]
    assert_nothing_running()


@pytest.mark.slow
def test_when_the_mlflow_run_launcher_dies_its_training_child_stops(synthetic_dir, tmp_path):
    MlflowClient().search_experiments()   # create the store here, so artifacts land in tmp_path
    params = [p for k, v in tiny_overrides(synthetic_dir, epochs=500).items() for p in ("-P", f"{k}={v}")]
    log = tmp_path / "launcher.log"
    launcher = subprocess.Popen([sys.executable, "-m", "mlflow", "run", str(PROJECT_ROOT), "-e", "cnn_cropped",
                                 "--env-manager", "local", *params], stdout=log.open("w"), stderr=subprocess.STDOUT)

    def training():
        runs = search_runs("attributes.status = 'RUNNING'")
        return next((r for r in runs if "train_loss" in r.data.metrics and tracking.PROCESS_TAGS["pid"] in r.data.tags),
                    None)

    run = wait_for(training, 300, "the child to train an epoch", launcher, log, interval=0.05)
    child = int(run.data.tags[tracking.PROCESS_TAGS["pid"]])
    assert child != launcher.pid and processes.is_alive(child)
    launcher.send_signal(signal.SIGTERM)
    launcher.wait(timeout=60)
    wait_for(lambda: not processes.is_alive(child), 120, "the child to stop", interval=0.05)   # main: it trains on
    wait_for(lambda: MlflowClient().get_run(run.info.run_id).info.status != "RUNNING", 30, "the run to end", interval=0.05)
    ended = MlflowClient().get_run(run.info.run_id)
    assert ended.info.status == "KILLED" and "launcher" in ended.data.tags["killed_by"]
