"""Question-answering accuracy: answer normalisation, exact match overall / per modality / per question type,
and the majority-answer baselines on the same questions.

Normalisation (:func:`normalize_answer`, applied to predictions and references alike):

1. lowercase; 2. apostrophes deleted (``"don't"`` -> ``"dont"``), every other punctuation character
(``string.punctuation``, so also ``_`` and ``-``) becomes a space; 3. the articles ``a``, ``an``, ``the``
are dropped; 4. number words become digits (``zero`` .. ``nineteen``, the tens, and ``twenty one`` ->
``21``); 5. whitespace is collapsed. So ``"Two."`` == ``"2"``, ``"The Acoustic_Guitar"`` ==
``"acoustic guitar"``, ``"A man"`` == ``"man"``. This is the VQA evaluation's normalisation (punctuation,
articles, number words; Antol et al. 2015) without its contraction list and multi-annotator scoring:
MUSIC-AVQA, MSRVTT-QA and MSVD-QA have one answer per question and are scored by exact match (their
published numbers compare the answer class, which normalisation leaves untouched).

Majority baselines (answers counted after normalisation, on the scored questions themselves, i.e. an
oracle prior that upper-bounds a prior learnt on the training answers):

* ``majority_baseline``: every question answered with the single most frequent answer (VQA's "prior");
* ``majority_baseline_per_type``: every question answered with the most frequent answer of its question
  type (VQA's "per Q-type prior"); ``per_type[T]["majority_baseline"]`` is that number within type T and
  ``per_modality[M]["majority_baseline"]`` within modality M.

* ``question_prior``: every question answered with the most frequent answer of the questions with the same
  text (normalised): the best a model reading only the question can do on these questions. Per type and
  overall. It is the floor to quote for two-choice types, where one majority answer per type falls below
  chance (MUSIC-AVQA's "open or close?" type mixes questions whose two choices differ);
* ``chance``: for a type whose every question offers two choices ("... X or Y?"), 1/2; else None.

Per-type majority is the stronger of the first two and the one to beat for a model that only reads the
question type; the question-only prior bounds what reading the question's words alone can give.
"""

from __future__ import annotations

import re
import string
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

from videoblip2.annotations import NUMBER_WORDS, AnnotationError, QAItem, normalize_answer  # noqa: F401

__all__ = ["format_qa_table", "majority_accuracy", "normalize_answer", "qa_scores"]

_PUNCTUATION = re.compile("[" + re.escape(string.punctuation.replace("'", "")) + "]")
# "... open or close?", "is the drum on the left or the right": two named choices
_TWO_CHOICES = re.compile(r"\w\s+or\s+(the\s+)?\w", re.IGNORECASE)


def _question_key(question: str) -> str:
    return " ".join(_PUNCTUATION.sub(" ", question.lower()).split())


def majority_accuracy(answers: Sequence[str]) -> tuple[float, str]:
    """Accuracy of answering every question with the most frequent of ``answers`` (normalised), and that
    answer (ties: the alphabetically first)."""
    if not answers:
        return 0.0, ""
    counts = Counter(answers)
    top = max(counts.values())
    return top / len(answers), min(a for a, c in counts.items() if c == top)


def _check_coverage(predictions: Mapping[str, str], items: Sequence[QAItem], source: str) -> None:
    known = {item.question_id for item in items}
    missing = [item.question_id for item in items if item.question_id not in predictions]
    unknown = [qid for qid in predictions if qid not in known]
    problems = []
    if missing:
        problems.append(f"{len(missing)} of {len(items)} questions have no prediction (e.g. {', '.join(missing[:5])})")
    if unknown:
        problems.append(f"{len(unknown)} predicted questions are not in the annotations "
                        f"(e.g. {', '.join(unknown[:5])})")
    if problems:
        raise AnnotationError(f"{source}{'; '.join(problems)}")


def qa_scores(predictions: Mapping[str, str], items: Sequence[QAItem], source: str = "") -> dict:
    """Exact-match accuracy after :func:`normalize_answer`, with the majority baselines on the same questions.

    Args:
        predictions: ``{question_id: answer}`` (``load_qa_predictions``), exactly one per item.
        items: the annotated questions (``load_qa_annotations``), all with answers.
        source: prefix for error messages, e.g. ``"preds.json vs avqa-test.json: "``.

    Returns:
        ``{"accuracy", "num_questions", "majority_baseline", "majority_answer", "majority_baseline_per_type",
        "per_type": {T: {"accuracy", "count", "majority_baseline", "majority_answer"}},
        "per_modality": {M: {"accuracy", "count", "majority_baseline"}}}``; fractions in [0, 1]; types and
        modalities sorted; ``per_modality`` is empty when the file has no modalities.

    Raises:
        AnnotationError: no questions, questions without answers, or predictions that miss questions or name
            unknown ones (the message says which).
    """
    if not items:
        raise AnnotationError(f"{source}no questions to score")
    unanswered = [item.question_id for item in items if item.answer is None]
    if unanswered:
        raise AnnotationError(f"{source}{len(unanswered)} annotated questions have no reference answer "
                              f"(e.g. {', '.join(unanswered[:5])}): a question-only file cannot be scored")
    _check_coverage(predictions, items, source)

    references = [normalize_answer(item.answer) for item in items]
    correct = [normalize_answer(predictions[item.question_id]) == ref for item, ref in zip(items, references)]
    by_type: dict[str, list[int]] = defaultdict(list)
    by_modality: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        by_type[item.qtype].append(i)
        if item.modality is not None:
            by_modality[item.modality].append(i)

    per_type: dict[str, dict] = {}
    type_majority_hits = 0.0
    for qtype in sorted(by_type):
        rows = by_type[qtype]
        baseline, answer = majority_accuracy([references[i] for i in rows])
        type_majority_hits += baseline * len(rows)
        per_type[qtype] = {"accuracy": sum(correct[i] for i in rows) / len(rows), "count": len(rows),
                           "majority_baseline": baseline, "majority_answer": answer}
    per_modality: dict[str, dict] = {}
    for modality in sorted(by_modality):
        rows = by_modality[modality]
        per_modality[modality] = {
            "accuracy": sum(correct[i] for i in rows) / len(rows), "count": len(rows),
            "majority_baseline": sum(per_type[items[i].qtype]["majority_answer"] == references[i]
                                     for i in rows) / len(rows)}
    by_text: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        by_text[_question_key(item.question)].append(i)
    prior_hit = [0.0] * len(items)
    for rows in by_text.values():
        accuracy, _ = majority_accuracy([references[i] for i in rows])
        for i in rows:
            prior_hit[i] = accuracy
    for qtype, rows in by_type.items():
        per_type[qtype]["question_prior"] = sum(prior_hit[i] for i in rows) / len(rows)
        per_type[qtype]["chance"] = 0.5 if all(_TWO_CHOICES.search(items[i].question) for i in rows) else None
    for modality, rows in by_modality.items():
        per_modality[modality]["question_prior"] = sum(prior_hit[i] for i in rows) / len(rows)
    baseline, answer = majority_accuracy(references)
    return {
        "accuracy": sum(correct) / len(items),
        "num_questions": len(items),
        "majority_baseline": baseline,
        "majority_answer": answer,
        "majority_baseline_per_type": type_majority_hits / len(items),
        "question_prior": sum(prior_hit) / len(items),
        "per_type": per_type,
        "per_modality": per_modality,
    }


def format_qa_table(scores: Mapping) -> str:
    """Plain-text table: every group (all, modalities, types) with its count, accuracy, majority baseline,
    question-only prior and, for two-choice types, chance (%)."""
    rows = [("all", scores["num_questions"], scores["accuracy"], scores["majority_baseline_per_type"],
             scores.get("question_prior"), None)]
    rows += [(f"modality {m}", s["count"], s["accuracy"], s["majority_baseline"], s.get("question_prior"), None)
             for m, s in scores["per_modality"].items()]
    rows += [(t or "(no type)", s["count"], s["accuracy"], s["majority_baseline"], s.get("question_prior"),
              s.get("chance")) for t, s in scores["per_type"].items()]
    width = max(len("group"), *(len(r[0]) for r in rows))

    def pct(value, size):
        return f"{value * 100:>{size}.2f}" if value is not None else f"{'':>{size}}"

    lines = [f"{'group':<{width}}  {'count':>6}  {'acc %':>6}  {'majority %':>10}  {'q-only %':>8}  {'chance %':>8}",
             f"{'-' * width}  {'-' * 6}  {'-' * 6}  {'-' * 10}  {'-' * 8}  {'-' * 8}"]
    lines += [f"{name:<{width}}  {count:>6}  {acc * 100:>6.2f}  {pct(maj, 10)}  {pct(prior, 8)}  {pct(chance, 8)}"
              for name, count, acc, maj, prior, chance in rows]
    lines.append(f"majority baseline: per type {scores['majority_baseline_per_type'] * 100:.2f}%, "
                 f"one answer for all ({scores['majority_answer']!r}) {scores['majority_baseline'] * 100:.2f}%")
    return "\n".join(lines)
