"""Evaluation commands, run from a clone as documented: thin forwards to ``videoblip2.eval``, where the code
is (installed: the ``videoblip2`` console script).

    python -m eval.ablation
    python -m eval.evaluate
"""
