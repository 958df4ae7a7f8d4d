"""Statistics over training seeds for the learning benches (bench/learning.py, bench/qa_learning.py,
bench/recipe_table.py): mean and sample standard deviation of every numeric metric, and whether two rows are
separated.

A row of one seed is a dict of metrics (numbers, nested dicts of numbers, or anything else, which is kept
from the first seed, e.g. an example caption). ``summarize`` maps a list of such rows (one per seed) to the
same structure with ``{"mean", "std", "n", "values"}`` at every numeric leaf; ``std`` is the sample standard
deviation (ddof 1; 0.0 for one seed).

Separated: ``|mean_a - mean_b| > 2 * max(std_a, std_b)`` with at least two seeds on each side (the issue-23
rule "difference larger than twice the seed spread").
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean / std / n / values at every numeric leaf of ``rows`` (one dict per seed, same keys)."""
    if not rows:
        return {}
    out: dict[str, Any] = {}
    for key, first in rows[0].items():
        present = [row[key] for row in rows if key in row]
        if isinstance(first, Mapping):
            out[key] = summarize([v for v in present if isinstance(v, Mapping)])
        elif is_number(first):
            values = [float(v) for v in present if is_number(v) and not math.isnan(float(v))]
            out[key] = stats(values)
        else:
            out[key] = first
    return out


def stats(values: Sequence[float]) -> dict[str, Any]:
    n = len(values)
    if n == 0:
        return {"mean": float("nan"), "std": float("nan"), "n": 0, "values": []}
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n, "values": list(values)}


def separation(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Compare two ``stats`` leaves: ``{"difference": mean_b - mean_a, "spread": max std, "separated": bool,
    "verdict": "b > a" | "b < a" | "not separated" | "one seed: no verdict"}``."""
    difference = b["mean"] - a["mean"]
    spread = max(a["std"], b["std"])
    if min(a["n"], b["n"]) < 2:
        return {"difference": difference, "spread": spread, "separated": False, "verdict": "one seed: no verdict"}
    separated = abs(difference) > 2 * spread
    verdict = ("higher" if difference > 0 else "lower") if separated else "not separated"
    return {"difference": difference, "spread": spread, "separated": separated, "verdict": verdict}


def fmt(leaf: Mapping[str, Any] | None, digits: int = 3) -> str:
    """``mean ± std`` of a ``stats`` leaf ("mean" alone for one seed; "" for none)."""
    if not leaf or not leaf.get("n"):
        return ""
    if leaf["n"] == 1:
        return f"{leaf['mean']:.{digits}f}"
    return f"{leaf['mean']:.{digits}f} ± {leaf['std']:.{digits}f}"
