"""Offline feature extractors, run from a clone as documented: thin forwards to ``videoblip2.features``, where the code
is (installed: the ``videoblip2`` console script).

    python -m features.audio
    python -m features.video
"""
