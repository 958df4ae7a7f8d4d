"""The one VideoBLIP2 version: ``videoblip2.__version__`` and the wheel's metadata (pyproject.toml reads it)."""

__version__ = "0.1.0"
