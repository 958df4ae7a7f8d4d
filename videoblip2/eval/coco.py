"""COCO caption metrics through ``pycocoevalcap``: BLEU-1..4, METEOR, ROUGE-L, CIDEr (SPICE optional).

Both predictions and references go through pycocoevalcap's PTB tokenizer (Stanford CoreNLP, a Java
program) exactly as in the COCO caption evaluation, so the numbers are comparable with published ones.
METEOR is a Java program too and costs seconds per call: evaluate a whole split in one call.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence

__all__ = ["DEFAULT_METRICS", "METRIC_NAMES", "JavaNotFoundError", "check_java", "compute_metrics", "ptb_tokenize"]

DEFAULT_METRICS = ("BLEU", "METEOR", "ROUGE_L", "CIDEr")
# What each requested metric adds to the result (keys of the returned dict, in this order).
METRIC_NAMES = {
    "BLEU": ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4"),
    "METEOR": ("METEOR",),
    "ROUGE_L": ("ROUGE_L",),
    "CIDEr": ("CIDEr",),
    "SPICE": ("SPICE",),
}
_CANONICAL = {name.upper(): name for name in METRIC_NAMES} | {"ROUGE": "ROUGE_L", "ROUGE-L": "ROUGE_L"}
_WHITESPACE = re.compile(r"\s+")

_JAVA_HELP = (
    "pycocoevalcap's PTB tokenizer and METEOR (and SPICE) run on Java, and no working `java` was found on "
    "PATH. Install a Java runtime (Debian/Ubuntu: `apt-get install -y default-jre-headless`; conda: "
    "`conda install -c conda-forge openjdk`), or compute CIDEr-D without Java with eval.cider.CiderD."
)


class JavaNotFoundError(RuntimeError):
    """No working Java runtime: the PTB tokenizer, METEOR and SPICE cannot run."""


@functools.lru_cache(maxsize=1)
def check_java() -> str:
    """Return the path of the ``java`` executable, or raise :class:`JavaNotFoundError`."""
    java = shutil.which("java")
    if java is None:
        raise JavaNotFoundError(_JAVA_HELP)
    try:
        subprocess.run([java, "-version"], capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        raise JavaNotFoundError(f"`{java} -version` failed ({e}). {_JAVA_HELP}") from None
    return java


def ptb_tokenize(captions: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """PTB-tokenize ``{video_id: [caption, ...]}`` (lowercased, punctuation removed), one Java call.

    Whitespace runs (newlines included) are collapsed first: pycocoevalcap writes one caption per line and
    a stray line break would shift every following caption onto the wrong video.
    """
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    check_java()
    cleaned = {
        video_id: [{"caption": _WHITESPACE.sub(" ", c).strip()} for c in caps] for video_id, caps in captions.items()
    }
    tokenized = PTBTokenizer().tokenize(cleaned)
    for video_id, caps in captions.items():
        if len(tokenized.get(video_id, ())) != len(caps):
            raise RuntimeError(f"PTB tokenizer returned a different number of captions for video {video_id!r}")
    return tokenized


def _canonical_metrics(metrics: Sequence[str], spice: bool) -> list[str]:
    names = []
    for metric in metrics:
        name = _CANONICAL.get(metric.upper())
        if name is None:
            raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRIC_NAMES)}")
        if name not in names:
            names.append(name)
    if spice and "SPICE" not in names:
        names.append("SPICE")
    return names


def compute_metrics(
    predictions: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    metrics: Sequence[str] = DEFAULT_METRICS,
    spice: bool = False,
) -> dict[str, float]:
    """Corpus-level COCO caption metrics of one caption per video against its references.

    Args:
        predictions: ``{video_id: caption}``.
        references: ``{video_id: [caption, ...]}``, the same video ids as ``predictions``.
        metrics: any of ``"BLEU"`` (gives BLEU-1..4), ``"METEOR"``, ``"ROUGE_L"``, ``"CIDEr"``, ``"SPICE"``.
        spice: also compute SPICE (needs Stanford CoreNLP models, which pycocoevalcap downloads: off by
            default, and impossible offline).

    Returns:
        ``{"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE_L", "CIDEr"[, "SPICE"]: float}`` for the
        requested metrics, as pycocoevalcap reports them (fractions, CIDEr unscaled: x100 for papers' tables).
        "CIDEr" is pycocoevalcap's Cider, i.e. CIDEr-D with document frequencies over these references.

    Raises:
        ValueError: unknown metric, no videos, or prediction and reference video ids differ.
        JavaNotFoundError: no Java runtime (the PTB tokenizer always needs it).
    """
    names = _canonical_metrics(metrics, spice)
    missing = [v for v in references if v not in predictions]
    extra = [v for v in predictions if v not in references]
    if missing or extra:
        raise ValueError(
            f"predictions and references cover different videos: {len(missing)} without prediction "
            f"(e.g. {missing[:3]}), {len(extra)} without references (e.g. {extra[:3]})"
        )
    if not references:
        raise ValueError("no videos to evaluate")
    for video_id, refs in references.items():
        if isinstance(refs, str) or len(refs) == 0:
            raise ValueError(f"video {video_id!r}: references must be a non-empty list of captions")

    check_java()
    # String keys keep PTB tokenizer output aligned with any id type; order follows the references.
    keys = {str(v): v for v in references}
    gts = ptb_tokenize({k: list(references[v]) for k, v in keys.items()})
    res = ptb_tokenize({k: [predictions[v]] for k, v in keys.items()})

    results: dict[str, float] = {}
    for name in names:
        if name == "BLEU":
            from pycocoevalcap.bleu.bleu import Bleu

            scores, _ = Bleu(4).compute_score(gts, res, verbose=0)
            results.update({f"BLEU-{i + 1}": float(s) for i, s in enumerate(scores)})
        elif name == "METEOR":
            from pycocoevalcap.meteor.meteor import Meteor

            meteor = Meteor()
            try:
                results["METEOR"] = float(meteor.compute_score(gts, res)[0])
            finally:
                del meteor  # stops the Java process now
        elif name == "ROUGE_L":
            from pycocoevalcap.rouge.rouge import Rouge

            results["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
        elif name == "CIDEr":
            from pycocoevalcap.cider.cider import Cider

            results["CIDEr"] = float(Cider().compute_score(gts, res)[0])
        elif name == "SPICE":
            from pycocoevalcap.spice.spice import Spice

            results["SPICE"] = float(Spice().compute_score(gts, res)[0])
    return results
