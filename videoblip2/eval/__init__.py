"""Caption evaluation: COCO metrics through pycocoevalcap (``eval.coco``), a fast corpus-df CIDEr-D for SCST
rewards (``eval.cider``), and the ``python -m eval.evaluate`` command line."""

from .cider import CiderD
from .coco import JavaNotFoundError, compute_metrics

__all__ = ["CiderD", "JavaNotFoundError", "compute_metrics"]
