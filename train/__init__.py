"""Training commands, run from a clone as documented: thin forwards to ``videoblip2.train``, where the code
is (installed: the ``videoblip2`` console script).

    python -m train.make_top5
    python -m train.recipe
    python -m train.train_ce
    python -m train.train_scst
"""
