"""The training scripts' error type."""


class TrainingError(RuntimeError):
    """A training run that cannot start or continue as asked; the message says why and what to do."""
