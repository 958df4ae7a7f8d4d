"""The code blocks of README.md and docs/: which Python blocks run, and which shell commands parse.

Python blocks (```python) are executed, except those whose first line is SKIP_MARK (they need real checkpoints
or GPUs; say why after the colon). Shell blocks (```bash) are split into commands; every `python -m MODULE ...`,
`torchrun ... -m MODULE ...` and `python bench/X.py ...` command line is handed to that module's
`parse_args(argv)`, so a renamed or removed flag, a bad choice or a wrong type in the documentation fails a test.
Variables assigned in the block (`MODEL="..."`) and in earlier blocks of the same page are expanded first.
Flags written as optional (`[--num-beams 1]`) are checked as if given; a literal `...` (flags shown elsewhere)
is left out. Commands of other programs (bash scripts,
pip, torchrun's own flags, export) are not run.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP_MARK = "# not run by the tests:"  # first line of examples that need real checkpoints or GPUs
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", flags=re.S | re.M)


def doc_files() -> list[Path]:
    """README.md and every Markdown page of the documentation site."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@dataclass
class Block:
    path: Path
    index: int  # the n-th block of its language in the file
    language: str
    code: str
    env: dict[str, str]  # variables assigned in the file's shell blocks up to this one

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.language}{self.index}"


def blocks(language: str) -> list[Block]:
    found = []
    for path in doc_files():
        env: dict[str, str] = {}
        counts: dict[str, int] = {}
        for match in FENCE.finditer(path.read_text()):
            lang, code = match.group(1), match.group(2)
            if lang == "bash":
                env = {**env, **assignments(code, env)}
            if lang == language:
                found.append(Block(path, counts.get(lang, 0), lang, code, dict(env)))
            counts[lang] = counts.get(lang, 0) + 1
    return found


def python_blocks() -> list[Block]:
    return [b for b in blocks("python") if not b.code.startswith(SKIP_MARK)]


def shell_lines(code: str) -> list[str]:
    """Logical command lines: continuations joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n", " ", code)
    lines = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def expand(text: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), m.group(0)), text)


def assignments(code: str, env: dict[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in shell_lines(code):
        match = re.fullmatch(r"(?:export\s+)?([A-Za-z_]\w*)=(.*)", line)
        if match:
            # the value as the shell stores it (quotes removed); `$NAME` unquoted then splits it into words
            found[match.group(1)] = " ".join(shlex.split(expand(match.group(2), {**env, **found}), comments=True))
    return found


@dataclass
class Command:
    block: Block
    line: str
    module: str  # "train.train_ce", "bench.throughput"
    argv: list[str]


def commands(block: Block) -> list[Command]:
    """The `python -m` / `torchrun -m` / `python bench/*.py` command lines of a shell block."""
    found = []
    env = {**block.env}
    for line in shell_lines(block.code):
        if re.fullmatch(r"(?:export\s+)?[A-Za-z_]\w*=.*", line):
            env.update(assignments(line, env))
            continue
        for part in re.split(r"\s*(?:&&|;|\|\|)\s*", line):
            # `[--flag VALUE]`: an optional flag, checked as if given
            words = shlex.split(re.sub(r"\[(--[^\[\]]*)\]", r"\1", expand(part, env)), comments=True)
            module = None
            if words[:1] == ["torchrun"]:
                if "-m" in words:
                    i = words.index("-m")
                    module, argv = words[i + 1], words[i + 2:]
            elif words[:1] in (["python"], ["python3"]) or (words and words[0].endswith("/python")):
                if words[1:2] == ["-m"]:
                    module, argv = words[2], words[3:]
                elif len(words) > 1 and words[1].endswith(".py"):
                    module, argv = words[1][:-3].replace("/", "."), words[2:]
            if module:  # a literal `...` stands for flags shown elsewhere
                found.append(Command(block, part, module, [w for w in argv if w != "..."]))
    return found
