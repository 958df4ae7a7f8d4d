"""Training entry points, run from the repository root.

    python -m train.train_ce     cross-entropy training (from pretrained sources, a model directory or --tiny)
    python -m train.make_top5    the 5 consensus captions per training video (SCST references)
    python -m train.train_scst   self-critical sequence training with a CIDEr-D reward

What the trainers share, one job per module (the layout of open_clip's ``training/``):

    params.py       command-line flag groups            distributed.py  torchrun setup and collectives
    model_setup.py  the model a run starts from         data.py         annotation splits, feature stores
    optim.py        AdamW groups, warm-up + cosine      precision.py    fp32 / bf16 autocast
    rng.py          seeds and resumable random states   file_utils.py   atomic directory and JSON writes
    run_dir.py      the output directory, resume state  logger.py       log.jsonl, log.png, printing
    validation.py   validation loss and CIDEr-D         tasks.py        the Task interface and its tasks
    trainer.py      the training loop                   launch.py       process start/end, one-line errors
    errors.py       TrainingError                       scst.py         the pure SCST advantage and loss
    scst_task.py    the SCST task (samples, rewards)
"""
