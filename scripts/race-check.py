"""How often do commands started together on a brand-new sqlite store all succeed?

Each round makes a fresh folder and store, then starts two `train`s and two `sweep`s (different
study names) on one instant (each waits for a start time after its imports), tiny epochs and
images, and counts the rounds where all four exit 0 with every MLflow run FINISHED.

    python scripts/race-check.py DATA_DIR [ROUNDS=10]
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RACER = """
import sys, time
from gz_experiments.cli import main
start = float(sys.argv[1])
while time.time() < start:
    time.sleep(0.001)
sys.exit(main(sys.argv[2:]))
"""
TINY = ["n_train=64", "n_val=32", "n_test=32", "epochs=1", "batch_size=32", "image_size=48"]


def one_round(data_dir: str, folder: Path) -> tuple[bool, str]:
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}, "MLFLOW_TRACKING_URI": uri,
           "PYTHONPATH": str(ROOT), "GZ_CACHE_DIR": str(folder / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    data = f"data_dir={data_dir}"
    commands = [["train", "cnn_cropped", data, *TINY], ["train", "cnn_cropped", data, "seed=2", *TINY],
                *[["sweep", "approach=cnn_cropped", "n_trials=1", f"study_name=s{i}", data, *TINY] for i in (1, 2)]]
    start = time.time() + 8
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(start), *c], cwd=folder, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for c in commands]
    outputs = [r.communicate(timeout=900)[0] for r in racers]
    failed = [out[-1500:] for r, out in zip(racers, outputs) if r.returncode != 0]
    if failed:
        return False, "\n---\n".join(failed)
    from mlflow import MlflowClient
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    statuses = sorted({r.info.status for r in runs})
    return statuses == ["FINISHED"], f"{len(runs)} runs, statuses {statuses}"


def main() -> int:
    data_dir, rounds = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10
    passed = 0
    for i in range(rounds):
        with tempfile.TemporaryDirectory(prefix="gz-race-") as folder:
            began = time.monotonic()
            ok, detail = one_round(data_dir, Path(folder))
            passed += ok
            print(f"round {i + 1}: {'ok' if ok else 'FAILED'} in {time.monotonic() - began:.0f} s; {detail}", flush=True)
    print(f"{passed} of {rounds} rounds: all four commands succeeded")
    return 0 if passed == rounds else 1


if __name__ == "__main__":
    sys.exit(main())
