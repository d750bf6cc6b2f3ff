"""Shared fixtures: a tiny synthetic data set, an isolated MLflow store and cache per test, a
throwaway PostgreSQL server (sweeps, the tracking server), and the real Galaxy Zoo sample when
GZ_REAL_DATA_DIR points at it (skipped cleanly otherwise)."""
from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Subprocesses (mlflow run, mlflow models serve → uvicorn) must find this interpreter's tools even
# when pytest was started as `.venv/bin/python -m pytest` without activating the venv.
_BIN = str(Path(sys.executable).parent)
if os.environ.get("PATH", "").split(os.pathsep)[0] != _BIN:
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA_ENV = "GZ_REAL_DATA_DIR"
_OUTER_ENV = dict(os.environ)


def pytest_configure(config):
    """The suite's own temporary folder, removed when it ends: MLflow and TensorFlow write into
    $TMPDIR when tests call them in-process (model copies, autograph sources), and the commands
    the tests start inherit it — nothing of a test session stays in the user's $TMPDIR. Each
    xdist worker makes its own. Others may traverse it (not list it): as root, the throwaway
    PostgreSQL server runs as user `postgres` inside it."""
    private = tempfile.mkdtemp(prefix="gz-tests-")
    os.chmod(private, 0o711)
    config._gz_tmpdir = private
    os.environ["TMPDIR"] = tempfile.tempdir = private


def pytest_unconfigure(config):
    private = getattr(config, "_gz_tmpdir", None)
    if private:
        shutil.rmtree(private, ignore_errors=True)


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    """160 synthetic galaxies (424² JPEGs, competition layout), made once per test session."""
    from gz_experiments.synthetic import generate
    return generate(tmp_path_factory.mktemp("synthetic") / "gz", 160, seed=3, n_test=8, progress=False)


@pytest.fixture
def data_copy(synthetic_dir, tmp_path) -> Path:
    """A writable copy of the synthetic set, for tests that damage it."""
    return Path(shutil.copytree(synthetic_dir, tmp_path / "data"))


@pytest.fixture(autouse=True)
def isolated_tracking(tmp_path, monkeypatch):
    """Every test gets its own sqlite MLflow store, artifact folder and image cache."""
    import mlflow
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("GZ_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)   # the default ./mlruns artifact root lands in tmp_path too
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()
    # mlflow.set_experiment (tests use it to seed runs) sets a process-wide experiment and env var
    mlflow.tracking.fluent._active_experiment_id = None
    for leaked in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        if leaked not in _OUTER_ENV:
            os.environ.pop(leaked, None)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    path = os.environ.get(REAL_DATA_ENV)
    if not path or not (Path(path) / "training_solutions_rev1.csv").is_file():
        pytest.skip(f"real Galaxy Zoo sample not available (set {REAL_DATA_ENV})")
    return Path(path)


TINY = {"n_train": "96", "n_val": "32", "n_test": "32", "epochs": "1", "batch_size": "32"}


def tiny_overrides(data_dir, **more) -> dict[str, str]:
    """A one-epoch run on a tiny split: what every end-to-end test starts from."""
    return {**TINY, "data_dir": str(data_dir), "image_size": "48", **{k: str(v) for k, v in more.items()}}


@contextlib.contextmanager
def module_store(root: Path):
    """One MLflow store (and image cache) for a module's tests, in `root`, which is also the working
    folder; the environment and folder are restored afterwards. Yields the tracking URI."""
    import mlflow
    uri = f"sqlite:///{root / 'mlflow.db'}"
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "GZ_CACHE_DIR")}
    os.environ.update(MLFLOW_TRACKING_URI=uri, GZ_CACHE_DIR=str(root / "cache"))
    cwd = os.getcwd()
    os.chdir(root)
    mlflow.set_tracking_uri(uri)
    try:
        yield uri
    finally:
        os.chdir(cwd)
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def one_error_line(capsys, argv) -> str:
    """A command that fails as a user error: exit 2 and exactly one `error:` line, no traceback."""
    from gz_experiments import cli
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err[-3000:]
    return lines[0]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, process: subprocess.Popen | None = None,
             log: Path | None = None, interval: float = 0.5):
    """Poll `predicate` every `interval` seconds until it returns something truthy (returned), failing
    the test after `timeout` seconds, or as soon as `process` exits (showing the end of its `log`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            output = log.read_text()[-3000:] if log is not None else ""
            pytest.fail(f"the process exited ({process.returncode}) before {what}: {output}")
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def postgres_bin() -> Path:
    """PostgreSQL's server binaries, which CI installs (.ci/test); elsewhere the test is skipped."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        reason = "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return Path(found[-1]).parent


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL server on 127.0.0.1 with a password, stopped afterwards. As root,
    the server runs as user `postgres` (it refuses root)."""
    binaries = postgres_bin()
    home = Path(tempfile.mkdtemp(prefix="gz-sweep-pg-"))
    as_owner = []
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    (home / "password").write_text("s3cret\n")
    port, data = free_port(), home / "data"

    def run(*command):
        subprocess.run([*as_owner, *command], check=True, capture_output=True, cwd=home)

    run(str(binaries / "initdb"), "-D", str(data), "-U", "gz", f"--pwfile={home / 'password'}",
        "--auth-local=trust", "--auth-host=scram-sha-256")
    run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(home / "server.log"), "-w", "-o",
        f"-c listen_addresses=127.0.0.1 -p {port} -k {home}", "start")
    try:
        run(str(binaries / "createdb"), "-h", str(home), "-p", str(port), "-U", "gz", "sweeps")
        yield f"postgresql+psycopg://gz:s3cret@127.0.0.1:{port}/sweeps"
    finally:
        run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(home, ignore_errors=True)


# ---- `mlflow run` as a user types it ------------------------------------------------------------

RUN_ID = re.compile(r"run with ID '([0-9a-f]{32})'")


def command_env(tracking_uri: str, cache_dir: Path) -> dict[str, str]:
    """The user's shell: this venv's bin first on PATH (`mlflow` and the `python` MLproject calls)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}   # never join a parent run
    env.update(MLFLOW_TRACKING_URI=tracking_uri, GZ_CACHE_DIR=str(cache_dir), TF_CPP_MIN_LOG_LEVEL="2",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    return env


def mlflow_run(entry: str, params: dict, env: dict, cwd: Path, root: Path = PROJECT_ROOT) -> subprocess.CompletedProcess:
    mlflow_exe = shutil.which("mlflow", path=env["PATH"])
    args = [mlflow_exe, "run", str(root), "-e", entry, "--env-manager", "local"]
    for key, value in params.items():
        args += ["-P", f"{key}={value}"]
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def run_id_of(done: subprocess.CompletedProcess) -> str:
    found = RUN_ID.search(done.stderr)
    assert found, f"no run id in mlflow's output:\n{done.stderr[-3000:]}"
    return found.group(1)


def search_runs(query: str, client=None) -> list:
    """Runs matching `query` in every experiment (runs go to galaxy-zoo, mlflow run's to Default)."""
    from mlflow import MlflowClient
    from gz_experiments.tracking import runs as tracking
    tracking.ready_store()   # a command starting beside this poll may be creating the same database
    client = client or MlflowClient()
    return client.search_runs([e.experiment_id for e in client.search_experiments()], query)


# ---- small disks ---------------------------------------------------------------------------------

@contextlib.contextmanager
def tmpfs(folder: Path, size: str = "3m"):
    """A tmpfs of `size` mounted at `folder` (made), unmounted afterwards; the test is skipped where
    mounting is not allowed (CI runs the tests as root)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@contextlib.contextmanager
def read_only_view(folder: Path, view: Path):
    """`folder` seen read-only at `view` (a read-only bind mount: root ignores file modes), or skip."""
    view.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "--bind", str(folder), str(view)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here ({done.stderr.strip() or done.returncode})")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True, capture_output=True)
        yield view
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)
