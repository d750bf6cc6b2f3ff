"""Models and files fetched from MLflow land in one temporary folder per process, removed when the
command ends (`cli.main`) or the interpreter exits: `mlflow.artifacts.download_artifacts` without a
destination leaves a `tmp*/` copy in $TMPDIR for ever (a ResNet50 is ~100 MB a command)."""
from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import mlflow

_folder: list[Path] = []   # this process's download folder, once made


def download(artifact_uri: str | None = None, **where) -> Path:
    """`mlflow.artifacts.download_artifacts` into a new subfolder of this process's folder."""
    destination = Path(tempfile.mkdtemp(dir=_root()))
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=str(destination), **where))


def remove_all() -> None:
    """Remove every download of this process (later downloads make a new folder)."""
    while _folder:
        shutil.rmtree(_folder.pop(), ignore_errors=True)


def _root() -> Path:
    if not _folder:
        _folder.append(Path(tempfile.mkdtemp(prefix="gz-downloads-")))
        atexit.register(remove_all)
    return _folder[0]
