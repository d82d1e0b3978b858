"""A clean install (issue 14): the wheel carries the suite as one package, `repro` (the task adapters as
`repro.tasks`, the paper's tables, the evaluate modules), installs over the existing environment with --no-deps,
and `ptuning-repro` works from outside the checkout; nothing called `tasks` lands in site-packages."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args, **kwargs):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, timeout=600, **kwargs)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = _run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w", out],
                cwd=ROOT)
    assert done.returncode == 0, done.stderr
    (path,) = out.glob("*.whl")
    return path


def test_the_wheel_holds_one_package_with_every_module(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"repro"}
    (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["repro"]
    checkout = {p.relative_to(ROOT).as_posix() for p in (ROOT / "repro").rglob("*.py")}
    checkout |= {"repro/tasks/" + p.name for p in (ROOT / "tasks").glob("*.py")}
    assert checkout <= names, sorted(checkout - names)  # a new subpackage missing from pyproject's list
    assert "repro/report/paper_tables.csv" in names


def test_installed_command_runs_outside_the_checkout(wheel, tmp_path, tiny_dirs, shared_data):
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", "--without-pip", venv]).returncode == 0
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    # the existing environment's packages (torch, transformers, ...), not its editable install of this checkout
    (site / "existing_environment.pth").write_text(sysconfig.get_path("purelib") + "\n")
    done = _run([sys.executable, "-m", "pip", "--python", venv / "bin/python", "install", "--no-deps", "-q", wheel])
    assert done.returncode == 0, done.stderr
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = _run([venv / "bin/python", "-c", "import repro, repro.tasks.registry as r; print(repro.__file__); "
                  "print(r.__file__)"], cwd=outside)
    assert where.returncode == 0 and all(line.startswith(str(venv)) for line in where.stdout.split()), where
    assert _run([venv / "bin/python", "-c", "import tasks"], cwd=outside).returncode != 0
    helped = _run([venv / "bin/ptuning-repro", "--help"], cwd=outside)
    assert helped.returncode == 0 and "lama" in helped.stdout
    ran = _run([venv / "bin/ptuning-repro", "lama", "--backbone", tiny_dirs["gpt2"], "--method", "mp",
                "--relations", "P101", "--data-root", shared_data, "--results", tmp_path / "results", "--quiet"],
               cwd=outside)
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "results/lama").is_dir() and any((tmp_path / "results/lama").rglob("P101.json"))
