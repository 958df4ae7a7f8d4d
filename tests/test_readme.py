"""The examples of README.md and of the documentation site (docs/) run, so the documentation cannot rot.

Every ```python block runs (except those marked `# not run by the tests: why`); every `python -m ...`,
`torchrun -m ...` and `python bench/*.py ...` command of a ```bash block goes through its module's `parse_args`,
so the documented flags, choices and types are those the commands take (tests/doc_blocks.py).
"""

import contextlib
import importlib
import io
import re
import tempfile

import pytest

from doc_blocks import ROOT, blocks, commands, python_blocks

PYTHON = python_blocks()
COMMANDS = [c for b in blocks("bash") for c in commands(b)]


def test_docs_have_runnable_examples():
    assert len(PYTHON) >= 3 and len(COMMANDS) >= 20
    assert any("docs" in b.path.relative_to(ROOT).parts for b in PYTHON), "the docs/ pages' examples are collected"
    assert any(c.block.path.name == "README.md" for c in COMMANDS), "README.md's commands are checked"


@pytest.mark.parametrize("block", PYTHON, ids=lambda b: b.name)
def test_python_example_runs(block, tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the examples' mkdtemp() folders go with tmp_path
    exec(compile(block.code, f"{block.name} python block", "exec"), {"__name__": "__readme__"})


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
    from doc_blocks import Block, Command

    block = Block(ROOT / "README.md", 0, "bash", "python -m videoblip2.predict --model m --no-such-flag\n", {})
    [command] = commands(block)
    assert command.module == "videoblip2.predict" and command.argv == ["--model", "m", "--no-such-flag"]
    with pytest.raises(pytest.fail.Exception, match="no-such-flag"):
        test_documented_command_parses(command, monkeypatch)
    shell = Block(ROOT / "README.md", 0, "bash", 'M="--a 1 \\\n --b"\nX=$M\npython -m m $X --c && bash y\n', {})
    assert [c.argv for c in commands(shell)] == [["--a", "1", "--b", "--c"]]
