"""The ``videoblip2 SUBCOMMAND`` dispatcher (videoblip2.commands), the one version, the dependency ranges against the
lock (requirements/constraints.txt), and the documented ``python -m`` commands of a clone."""

import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

import videoblip2
from videoblip2 import commands

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _python(code: str, tmp_path: Path, *, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd or tmp_path,
                          timeout=300)


def _fake_command(tmp_path: Path, body: str) -> None:
    """A module ``fakecmd`` that records how it was run (into run.json), then does ``body``."""
    (tmp_path / "fakecmd.py").write_text(
        "import json, sys\n"
        "json.dump({'name': __name__, 'argv': sys.argv[1:],\n"
        "           'heavy': [m for m in ('torch', 'transformers', 'numpy') if m in sys.modules]},\n"
        f"          open({str(tmp_path / 'run.json')!r}, 'w'))\n" + body)


def _dispatch(args: list[str]) -> str:
    return ("import sys\nfrom videoblip2 import commands\n"
            "commands.COMMANDS['fake'] = commands.Command('fakecmd', 'a fake command')\n"
            f"sys.exit(commands.main({args!r}))\n")


def test_subcommand_runs_its_module_as_python_m_with_its_arguments_and_exit_status(tmp_path):
    _fake_command(tmp_path, "sys.exit(3)\n")
    run = _python(_dispatch(["fake", "--flag", "value", "--help"]), tmp_path)
    assert run.returncode == 3, run.stderr
    record = json.loads((tmp_path / "run.json").read_text())
    # run as __main__ with the arguments after the subcommand, and nothing heavy imported before the module's own code
    assert record == {"name": "__main__", "argv": ["--flag", "value", "--help"], "heavy": []}


def test_missing_optional_dependency_is_one_line_naming_the_extra(tmp_path):
    _fake_command(tmp_path, "raise ModuleNotFoundError(\"No module named 'gradio'\", name='gradio')\n")
    run = _python(_dispatch(["fake"]), tmp_path)
    assert run.returncode == 2
    assert run.stderr.strip() == ("error: videoblip2 fake needs the 'app' extra (no module named 'gradio'): "
                                  "pip install \"videoblip2[app]\"")


def test_a_missing_module_that_no_extra_installs_keeps_its_traceback(tmp_path):
    _fake_command(tmp_path, "import no_such_module_anywhere\n")
    run = _python(_dispatch(["fake"]), tmp_path)
    assert run.returncode == 1 and "Traceback" in run.stderr and "no_such_module_anywhere" in run.stderr


def test_unknown_subcommand_and_absent_module_are_one_line_exit_2(tmp_path):
    run = _python("import sys\nfrom videoblip2 import commands\n"
                  "commands.COMMANDS['gone'] = commands.Command('videoblip2.no_such_module', 'x')\n"
                  "print(commands.main(['gone']), commands.main(['trian-ce']), commands.main(['features', 'vidoe']))",
                  tmp_path)
    assert run.stdout.split() == ["2", "2", "2"]
    lines = run.stderr.strip().split("\n")
    assert lines[0] == "error: videoblip2 gone: this installation has no module videoblip2.no_such_module"
    assert lines[1].startswith("error: videoblip2: unknown subcommand 'trian-ce'; one of: features video, ")
    assert lines[2].startswith("error: videoblip2: unknown subcommand 'features vidoe'; one of: ")


def test_top_level_help_lists_every_subcommand_without_importing_torch(tmp_path):
    run = _python("import json, sys\nfrom videoblip2.commands import main\nmain(['--help'])\n"
                  "print(json.dumps([m for m in ('torch', 'transformers', 'numpy') if m in sys.modules]))", tmp_path)
    *help_lines, heavy = run.stdout.strip().split("\n")
    assert json.loads(heavy) == []
    listed = [line.strip() for line in help_lines if line.startswith("  ")]
    for name, command in commands.COMMANDS.items():
        assert any(line.startswith(name + " ") and line.endswith(command.summary) for line in listed), name


def test_every_subcommand_module_exists():
    for name, command in commands.COMMANDS.items():
        assert importlib.util.find_spec(command.module) is not None, name
    assert set(commands.COMMANDS) >= {"features video", "features audio", "train-ce", "make-top5", "train-scst",
                                      "evaluate", "ablation", "predict", "caption", "publish", "recipe", "app"}


def test_one_version_in_the_package_the_metadata_and_the_cli(tmp_path):
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "videoblip2._version.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", videoblip2.__version__)
    run = subprocess.run([sys.executable, "-m", "videoblip2", "--version"], capture_output=True, text=True, cwd=REPO)
    assert run.stdout.strip() == f"videoblip2 {videoblip2.__version__}"
    assert (REPO / "videoblip2" / "py.typed").is_file()


def _requirements() -> list[Requirement]:
    groups = [PYPROJECT["project"]["dependencies"], *PYPROJECT["project"]["optional-dependencies"].values()]
    return [Requirement(r) for group in groups for r in group if not r.startswith("videoblip2[")]


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_requirements_are_ranges_with_an_upper_bound_and_the_lock_is_inside_them():
    lock = _lock()
    assert "videoblip2" not in lock
    for req in _requirements():
        specs = {s.operator for s in req.specifier}
        assert ">=" in specs and "==" not in specs, req  # a floor, no pin: pins belong in the lock
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in lock, f"{req.name} is not in requirements/constraints.txt"
        assert req.specifier.contains(lock[name], prereleases=True), f"lock {req.name}=={lock[name]} outside {req}"
    # the main stack: from the oldest measured set (README "Install") to below the next major
    ranges = {Requirement(r).name: str(Requirement(r).specifier) for r in PYPROJECT["project"]["dependencies"]}
    assert ranges["torch"] == "<3,>=2.13" and ranges["transformers"] == "<6,>=5.16.1"
    assert ranges["peft"] == "<1,>=0.18.1"


def test_every_extra_is_in_all_and_install_sh_uses_the_lock():
    extras = PYPROJECT["project"]["optional-dependencies"]
    everything = Requirement(extras["all"][0])
    assert len(extras["all"]) == 1 and everything.name == "videoblip2"
    assert everything.extras == set(extras) - {"all"}
    install = (REPO / "scripts" / "install.sh").read_text()
    assert '-c requirements/constraints.txt -e ".[all]"' in install


def test_documented_python_m_commands_exist_in_a_clone():
    texts = [REPO / "README.md", REPO / "BENCHMARKS.md", *REPO.glob("docs/**/*.md"), *REPO.glob("scripts/*.sh")]
    documented = {m for path in texts if path.is_file()
                  for m in re.findall(r"(?:python|\$PY) -m ([A-Za-z_][\w.]*)", path.read_text())}
    documented |= {m for path in texts if path.is_file()
                   for m in re.findall(r"torchrun [^\n]*?-m ([A-Za-z_][\w.]*)", path.read_text())}
    ours = {m for m in documented if m.split(".")[0] in ("videoblip2", "features", "train", "eval")}
    assert {"features.video", "features.audio", "train.train_ce", "train.make_top5", "train.train_scst",
            "eval.evaluate", "eval.ablation"} <= ours
    for module in ours:
        assert importlib.util.find_spec(module) is not None, module


def test_old_top_level_places_forward_to_the_moved_modules():
    """features/, train/, eval/ hold thin forwards only: `python -m train.train_ce` runs videoblip2.train.train_ce,
    `import train.train_ce` is that module."""
    forwards = [p for pkg in ("features", "train", "eval") for p in (REPO / pkg).glob("*.py")
                if p.name != "__init__.py"]
    assert {f"{p.parent.name}.{p.stem}" for p in forwards} >= {
        "features.video", "features.audio", "train.train_ce", "train.make_top5", "train.train_scst", "train.recipe",
        "eval.evaluate", "eval.ablation"}
    for path in forwards:
        text = path.read_text()
        target = re.search(r"(?:run_module\(|from )\"?(videoblip2\.[\w.]+)", text).group(1)
        assert importlib.util.find_spec(target) is not None, path
        assert len(text.splitlines()) <= 12, f"{path} is more than a forward"
    import train.train_ce
    import videoblip2.train.train_ce

    assert train.train_ce is videoblip2.train.train_ce
