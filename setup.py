"""Shim for tools that still call ``setup.py``: the metadata, dependency ranges, extras and the ``videoblip2``
console script are in pyproject.toml (PEP 621); the exact tested set is requirements/constraints.txt."""

from setuptools import setup

setup()
