"""scripts/tracking-server.sh: a `start` that fails leaves nothing running behind it: not the
PostgreSQL cluster it started, not a half-started server."""
from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT, free_port, postgres_bin

pytestmark = pytest.mark.slow

SCRIPT = PROJECT_ROOT / "scripts" / "tracking-server.sh"


def script(folder: Path, command: str, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), command, "--dir", str(folder), *options],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("failure", ["port taken", "server exits"])
def test_a_failed_start_leaves_no_postgresql_running(failure):
    postgres_bin()
    # Not under pytest's private tmp folders: PostgreSQL runs as user `postgres` when we are root.
    folder = Path(tempfile.mkdtemp(prefix="gz-tracking-"))
    port = free_port()
    squatter = socket.socket()   # listens, but answers no HTTP: only binding the port tells it is taken
    try:
        if failure == "port taken":
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
        extra = ["--", "--no-such-option"] if failure == "server exits" else []
        done = script(folder, "start", "--port", str(port), "--timeout", "60", *extra)
        assert done.returncode != 0, done.stdout + done.stderr
        status = script(folder, "status")
        assert status.returncode == 3 and "mlflow server not running" in status.stdout, status.stdout
        assert "PostgreSQL running" not in status.stdout, status.stdout
        assert not (folder / "postgres" / "data" / "postmaster.pid").exists()
        assert (f"port {port}" if failure == "port taken" else "mlflow server exited") in done.stderr, done.stderr
        assert script(folder, "stop").returncode == 0
        assert not socket_folder(folder).exists(), "stop left PostgreSQL's socket folder in /tmp"
    finally:
        squatter.close()
        script(folder, "stop")
        shutil.rmtree(folder, ignore_errors=True)


def socket_folder(folder: Path) -> Path:
    """Where the script puts PostgreSQL's socket: a short folder in /tmp named after `--dir`."""
    checksum = subprocess.run(["cksum"], input=str(folder.resolve()), capture_output=True, text=True, check=True)
    return Path(f"/tmp/gz-mlflow-pg-{checksum.stdout.split()[0]}")
