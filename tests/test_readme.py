"""The README's examples run, so the documentation cannot rot: every ```python block (but those marked as
needing real checkpoints) and every ```bash block marked ``# offline:``, as written, in a folder holding a few
video files in ``videos/`` (what the examples say the user has)."""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SKIP_MARK = "# not run by the tests:"  # first line of examples that need real checkpoints or GPUs
SHELL_MARK = "# offline:"  # first line of the shell examples the tests run
TEXT = README.read_text()
BLOCKS = [b for b in re.findall(r"```python\n(.*?)```", TEXT, flags=re.S) if not b.startswith(SKIP_MARK)]
SHELL_BLOCKS = [b for b in re.findall(r"```bash\n(.*?)```", TEXT, flags=re.S) if b.startswith(SHELL_MARK)]


def _videos(folder: Path) -> None:
    from media import write_video

    (folder / "videos").mkdir()
    write_video(folder / "videos" / "tone.mp4", num_frames=20, fps=8)  # 2.5 s with a 440 Hz tone
    write_video(folder / "videos" / "mute.mp4", num_frames=10, fps=5, audio=None)


def test_readme_has_runnable_examples():
    assert len(BLOCKS) >= 4 and len(SHELL_BLOCKS) >= 1


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the examples' mkdtemp() folders go with tmp_path
    if "videos" in BLOCKS[index]:
        _videos(tmp_path)
    exec(compile(BLOCKS[index], f"README.md python block {index}", "exec"), {"__name__": "__readme__"})


@pytest.mark.parametrize("index", range(len(SHELL_BLOCKS)))
def test_readme_shell_example_runs(index, tmp_path):
    """Run as written by bash: ``python`` is this interpreter, the repository's modules are importable."""
    _videos(tmp_path)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", SHELL_BLOCKS[index]], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr and "Warning" not in run.stderr, run.stderr[-3000:]
    if "videoblip2.caption" in SHELL_BLOCKS[index]:  # one caption line per video: path<TAB>caption
        lines = [line.split("\t") for line in run.stdout.splitlines() if "\t" in line]
        assert sorted(Path(path).name for path, _ in lines) == ["mute.mp4", "tone.mp4"]
        assert all(caption.strip() and not caption.startswith("ERROR") for _, caption in lines)
    if "features.video" in SHELL_BLOCKS[index]:
        assert sorted(p.name for p in (tmp_path / "features" / "video").glob("*.npy")) == ["mute.npy", "tone.npy"]
    if "features.audio" in SHELL_BLOCKS[index]:
        assert (tmp_path / "features" / "audio" / "tone.npy").is_file()
        assert (tmp_path / "features" / "audio" / "mute.noaudio.json").is_file()
