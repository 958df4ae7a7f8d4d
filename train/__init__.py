"""Training entry points, run from the repository root.

    python -m train.train_ce     cross-entropy training (from pretrained sources, a model directory or --tiny)
    python -m train.make_top5    the 5 consensus captions per training video (SCST references)
    python -m train.train_scst   self-critical sequence training with a CIDEr-D reward

``train.common`` holds what both trainers share (arguments, model construction, optimiser, atomic checkpoints,
resume state, logging, validation, distributed setup); ``train.scst`` the pure SCST advantage and loss.
"""
