"""The examples of README.md and of the documentation site (docs/) run, so the documentation cannot rot.

Every ```python block runs (except those marked `# not run by the tests: why`); every ```bash block whose first
line is `# offline: ...` runs as written by bash, in a folder holding a few video files in `videos/` (what the
examples say the user has); every other `python -m ...`, `torchrun -m ...` and `python bench/*.py ...` command
of a ```bash block goes through its module's `parse_args`, so the documented flags, choices and types are those
the commands take (tests/doc_blocks.py).
"""

import contextlib
import importlib
import io
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from doc_blocks import ROOT, Block, blocks, commands, python_blocks

SHELL_MARK = "# offline:"  # first line of the shell examples the tests run
PYTHON = python_blocks()
SHELL = [b for b in blocks("bash") if b.code.startswith(SHELL_MARK)]
COMMANDS = [c for b in blocks("bash") if not b.code.startswith(SHELL_MARK) for c in commands(b)]


def _videos(folder: Path) -> None:
    from media import write_video

    (folder / "videos").mkdir()
    write_video(folder / "videos" / "tone.mp4", num_frames=20, fps=8)  # 2.5 s with a 440 Hz tone
    write_video(folder / "videos" / "mute.mp4", num_frames=10, fps=5, audio=None)


def test_docs_have_runnable_examples():
    assert len(PYTHON) >= 4 and len(SHELL) >= 1 and len(COMMANDS) >= 20
    assert any("docs" in b.path.relative_to(ROOT).parts for b in PYTHON), "the docs/ pages' examples are collected"
    assert any(c.block.path.name == "README.md" for c in COMMANDS), "README.md's commands are checked"


@pytest.mark.parametrize("block", PYTHON, ids=lambda b: b.name)
def test_python_example_runs(block, tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the examples' mkdtemp() folders go with tmp_path
    if "videos" in block.code:
        _videos(tmp_path)
    exec(compile(block.code, f"{block.name} python block", "exec"), {"__name__": "__readme__"})


@pytest.mark.parametrize("block", SHELL, ids=lambda b: b.name)
def test_shell_example_runs(block, tmp_path):
    """Run as written by bash: ``python`` is this interpreter, the repository's modules are importable."""
    _videos(tmp_path)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr and "Warning" not in run.stderr, run.stderr[-3000:]
    if "videoblip2.caption" in block.code:  # one caption line per video: path<TAB>caption
        lines = [line.split("\t") for line in run.stdout.splitlines() if "\t" in line]
        assert sorted(Path(path).name for path, _ in lines) == ["mute.mp4", "tone.mp4"]
        assert all(caption.strip() and not caption.startswith("ERROR") for _, caption in lines)
    if "features.video" in block.code:
        assert sorted(p.name for p in (tmp_path / "features" / "video").glob("*.npy")) == ["mute.npy", "tone.npy"]
    if "features.audio" in block.code:
        assert (tmp_path / "features" / "audio" / "tone.npy").is_file()
        assert (tmp_path / "features" / "audio" / "mute.noaudio.json").is_file()


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: f"{c.block.name}:{c.module}")
def test_documented_command_parses(command, monkeypatch):
    monkeypatch.chdir(ROOT)
    unexpanded = [word for word in command.argv if re.search(r"\$\{?\w", word)]
    assert not unexpanded, f"{command.block.name}: {command.line!r}: undefined shell variable in {unexpanded}"
    module = importlib.import_module(command.module)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            module.parse_args(command.argv)
    except SystemExit as exit:
        pytest.fail(f"{command.block.name}: {command.line!r} does not parse (exit {exit.code}): "
                    f"{stderr.getvalue().strip().splitlines()[-1:]}")


def test_a_renamed_flag_fails_the_check(monkeypatch):
    """The check can fail: a documented command with a flag the module does not take is caught."""
    block = Block(ROOT / "README.md", 0, "bash", "python -m videoblip2.predict --model m --no-such-flag\n", {})
    [command] = commands(block)
    assert command.module == "videoblip2.predict" and command.argv == ["--model", "m", "--no-such-flag"]
    with pytest.raises(pytest.fail.Exception, match="no-such-flag"):
        test_documented_command_parses(command, monkeypatch)
    shell = Block(ROOT / "README.md", 0, "bash", 'M="--a 1 \\\n --b"\nX=$M\npython -m m $X [--c] ... && bash y\n', {})
    assert [c.argv for c in commands(shell)] == [["--a", "1", "--b", "--c"]]
