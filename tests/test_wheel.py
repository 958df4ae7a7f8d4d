"""The built sdist and wheel, as a user gets them: the wheel holds ``videoblip2/`` only (no top-level ``train``,
``features``, ``eval``), carries the version, the ranges and the console script, and once installed into a fresh
environment every command's ``--help`` runs from an empty folder outside the checkout.

The fresh environment is a new venv whose site-packages has a .pth to this interpreter's site-packages: the heavy
dependencies are reused as installed (no download), the checkout and its editable install are not on its path."""

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from email.parser import Parser
from pathlib import Path

import pytest

import videoblip2
from videoblip2.commands import COMMANDS

REPO = Path(__file__).resolve().parents[1]
VERSION = videoblip2.__version__


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """``python -m build`` (sdist, then the wheel from the sdist) of a copy of the package's sources."""
    pytest.importorskip("build", reason="the dev extra installs build")
    tmp = tmp_path_factory.mktemp("build")
    src = tmp / "src"  # a copy, so that build/ and *.egg-info stay out of the checkout
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "videoblip2", src / "videoblip2", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    built = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp / "dist"), str(src)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return tmp / "dist"


def _wheel(dist: Path) -> Path:
    (wheel,) = dist.glob("videoblip2-*.whl")
    return wheel


def test_wheel_holds_only_the_videoblip2_package_with_every_command(dist):
    assert sorted(p.name for p in dist.iterdir()) == [f"videoblip2-{VERSION}-py3-none-any.whl",
                                                      f"videoblip2-{VERSION}.tar.gz"]
    names = zipfile.ZipFile(_wheel(dist)).namelist()
    assert {n.split("/")[0] for n in names} == {"videoblip2", f"videoblip2-{VERSION}.dist-info"}
    for module in ["py.typed", "_version.py", "commands.py", "__main__.py", "features/video.py", "features/audio.py",
                   "train/train_ce.py", "train/make_top5.py", "train/train_scst.py", "eval/evaluate.py",
                   "eval/ablation.py", "predict.py", "caption.py", "publish.py", "recipe.py", "app.py"]:
        assert f"videoblip2/{module}" in names, module
    # every .py of the package is in the wheel (nothing left behind by the package discovery)
    sources = {p.relative_to(REPO).as_posix() for p in (REPO / "videoblip2").rglob("*.py")}
    assert sources <= set(names)


def test_wheel_metadata_has_the_version_ranges_and_the_console_script(dist):
    wheel = zipfile.ZipFile(_wheel(dist))
    meta = Parser().parsestr(wheel.read(f"videoblip2-{VERSION}.dist-info/METADATA").decode())
    assert meta["Name"] == "videoblip2" and meta["Version"] == VERSION
    requires = meta.get_all("Requires-Dist")
    assert "torch<3,>=2.13" in requires and "transformers<6,>=5.16.1" in requires
    assert not [r for r in requires if "==" in r.split(";")[0]], "pins belong in requirements/constraints.txt"
    entry_points = wheel.read(f"videoblip2-{VERSION}.dist-info/entry_points.txt").decode()
    assert "videoblip2 = videoblip2.commands:main" in entry_points
    sdist = tarfile.open(dist / f"videoblip2-{VERSION}.tar.gz")
    sdist_names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert {"pyproject.toml", "setup.py", "README.md", "PKG-INFO", "videoblip2/commands.py"} <= sdist_names
    pytest.importorskip("twine", reason="the dev extra installs twine")
    check = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())],
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr  # the README renders as the long description


@pytest.fixture(scope="module")
def installed(dist, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed (no dependencies: they come through a .pth); its folder."""
    env = tmp_path_factory.mktemp("env") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=300)
    site = Path(subprocess.run([str(env / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip())
    (site / "_videoblip2_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-index",
                          "--no-cache-dir", "--disable-pip-version-check", str(_wheel(dist))],
                         capture_output=True, text=True, timeout=300, env=_env())
    assert pip.returncode == 0, pip.stderr
    return env


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, "HF_HUB_OFFLINE": "1"}


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=_env(), timeout=600)


def test_installed_wheel_runs_every_commands_help_outside_the_checkout(installed, tmp_path):
    python, script = str(installed / "bin" / "python"), str(installed / "bin" / "videoblip2")
    where = _run([python, "-c", "import importlib.util as u, videoblip2; print(videoblip2.__file__); "
                  "print([n for n in ('train', 'features', 'eval') if u.find_spec(n)])"], tmp_path)
    file, importable = where.stdout.strip().split("\n")
    assert Path(file).is_relative_to(installed) and importable == "[]", where.stdout + where.stderr
    assert _run([script, "--version"], tmp_path).stdout.strip() == f"videoblip2 {VERSION}"
    # every subcommand through the console script, and `python -m` of an installed module that moved in
    runs = [[script, *name.split(), "--help"] for name in COMMANDS]
    runs.append([python, "-m", "videoblip2.train.train_ce", "--help"])
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda args: _run(args, tmp_path), runs))
    for args, result in zip(runs, results):
        assert result.returncode == 0 and result.stdout.startswith("usage: "), (args, result.stderr[-2000:])
    assert list(tmp_path.iterdir()) == []  # --help writes nothing
