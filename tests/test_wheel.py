"""A plain (non-editable) install holds every subpackage: the wheel `pip wheel .` builds lists each
package under gz_experiments/ and experiments/, and `report --help` and `ensemble --help` run from
its unpacked contents alone (not from this checkout)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

from conftest import PROJECT_ROOT

SOURCES = ("pyproject.toml", "README.md", "gz_experiments", "experiments")


def packages() -> set[str]:
    return {str(init.parent.relative_to(PROJECT_ROOT)) for top in ("gz_experiments", "experiments")
            for init in (PROJECT_ROOT / top).rglob("__init__.py")}


def test_the_wheel_holds_every_subpackage_and_its_commands_run(tmp_path):
    source = tmp_path / "source"   # a copy: building writes build/ and *.egg-info beside the sources
    source.mkdir()
    for name in SOURCES:
        if (PROJECT_ROOT / name).is_dir():
            shutil.copytree(PROJECT_ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(PROJECT_ROOT / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(tmp_path / "wheel")], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    [wheel] = (tmp_path / "wheel").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(p for p in packages() if f"{p}/__init__.py" not in names)
    assert not missing and len(packages()) >= 10, missing
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    for command in ("report", "ensemble"):
        done = subprocess.run([sys.executable, "-m", "gz_experiments", command, "--help"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert command in done.stdout
        imported = subprocess.run([sys.executable, "-c", "import gz_experiments; print(gz_experiments.__file__)"],
                                  cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert imported.stdout.startswith(str(site)), imported.stdout   # the wheel's copy, not the checkout
