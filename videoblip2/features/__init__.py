"""Offline feature extractors, run from the repository root: ``python -m features.video`` (CLIP frames)
and ``python -m features.audio`` (CLAP audio windows). The reusable core lives in ``videoblip2.extract``."""
