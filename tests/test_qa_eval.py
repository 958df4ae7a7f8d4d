"""eval.qa: answer normalisation, accuracy per type / modality, majority baselines; eval.evaluate on QA files."""

from __future__ import annotations

import json
import re

import pytest

from eval.evaluate import cli, main
from eval.qa import majority_accuracy, normalize_answer, qa_scores
from videoblip2.annotations import AnnotationError, QAItem, save_qa_predictions


@pytest.mark.parametrize("raw, expected", [
    ("Two.", "2"),
    ("2", "2"),
    ("  TWO  ", "2"),
    ("twenty-one", "21"),
    ("Twenty one", "21"),
    ("ten", "10"),
    ("The Acoustic_Guitar", "acoustic guitar"),
    ("a man", "man"),
    ("An apple!", "apple"),
    ("don't", "dont"),
    ("Yes.", "yes"),
    ("left, right", "left right"),
    ("", ""),
    ("the", ""),
])
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


def test_majority_accuracy_ties_and_empty():
    assert majority_accuracy(["yes", "no", "yes", "2"]) == (0.5, "yes")
    assert majority_accuracy(["no", "yes"]) == (0.5, "no")  # tie: alphabetically first
    assert majority_accuracy([]) == (0.0, "")


def items():
    # 4 Audio/Counting (answers two, two, three, one), 2 Visual/Location (left, left), 2 Audio-Visual/Temporal
    spec = [("Audio", "Counting", "Two"), ("Audio", "Counting", "2"), ("Audio", "Counting", "three"),
            ("Audio", "Counting", "one"), ("Visual", "Location", "left"), ("Visual", "Location", "Left."),
            ("Audio-Visual", "Temporal", "yes"), ("Audio-Visual", "Temporal", "no")]
    return [QAItem(str(i), f"v{i}", f"q{i}?", answer, f"{m}/{t}", m) for i, (m, t, answer) in enumerate(spec)]


def test_qa_scores_hand_computed():
    predictions = {"0": "two", "1": "Two.", "2": "2", "3": "one", "4": "left", "5": "right", "6": "yes", "7": "yes"}
    scores = qa_scores(predictions, items())
    assert scores["num_questions"] == 8
    assert scores["accuracy"] == pytest.approx(5 / 8)  # 0, 1, 3, 4, 6
    old_keys = ("accuracy", "count", "majority_baseline", "majority_answer")
    assert {t: {k: v[k] for k in old_keys if k in v} for t, v in scores["per_type"].items()} == {
        "Audio-Visual/Temporal": {"accuracy": 0.5, "count": 2, "majority_baseline": 0.5, "majority_answer": "no"},
        "Audio/Counting": {"accuracy": 0.75, "count": 4, "majority_baseline": 0.5, "majority_answer": "2"},
        "Visual/Location": {"accuracy": 0.5, "count": 2, "majority_baseline": 1.0, "majority_answer": "left"},
    }
    assert {k: scores["per_modality"]["Audio"][k] for k in old_keys[:3]} == {"accuracy": 0.75, "count": 4,
                                                                             "majority_baseline": 0.5}
    assert scores["per_modality"]["Visual"]["majority_baseline"] == 1.0
    # overall majority: "2" and "left" both 2 of 8 -> 0.25; per type: (1 + 2 + 2) / 8
    assert (scores["majority_baseline"], scores["majority_answer"]) == (0.25, "2")
    assert scores["majority_baseline_per_type"] == pytest.approx(5 / 8)
    # the reference answers themselves score 1.0
    assert qa_scores({i.question_id: i.answer for i in items()}, items())["accuracy"] == 1.0


def test_qa_scores_coverage_errors_say_which():
    full = {i.question_id: "x" for i in items()}
    with pytest.raises(AnnotationError, match=r"P vs A: 2 of 8 questions have no prediction \(e.g. 3, 7\)"):
        qa_scores({k: v for k, v in full.items() if k not in ("3", "7")}, items(), source="P vs A: ")
    with pytest.raises(AnnotationError, match=r"1 predicted questions are not in the annotations \(e.g. 99\)"):
        qa_scores({**full, "99": "x"}, items())
    unanswered = [QAItem("0", "v", "q?", None, "", None)]
    with pytest.raises(AnnotationError, match="no reference answer"):
        qa_scores({"0": "x"}, unanswered)


@pytest.fixture
def avqa_file(tmp_path):
    records = [{"video_id": i.video_id, "question_id": int(i.question_id),
                "type": json.dumps(i.qtype.split("/")), "question_content": i.question, "templ_values": "[]",
                "question_deleted": 0, "anser": i.answer} for i in items()]
    path = tmp_path / "avqa-test.json"
    path.write_text(json.dumps(records))
    return path


def test_evaluate_recognises_qa_file(tmp_path, avqa_file, capsys):
    preds = tmp_path / "answers.json"
    answers = ["two", "Two.", "2", "one", "left", "right", "yes", "yes"]
    save_qa_predictions([{"question_id": i, "answer": a} for i, a in enumerate(answers)], preds)
    out = tmp_path / "qa_metrics.json"
    result = main(["--predictions", str(preds), "--ann", str(avqa_file), "--out", str(out)])
    table = capsys.readouterr().out
    assert "Audio/Counting" in table and "modality Visual" in table and "62.50" in table
    written = json.loads(out.read_text())
    assert written["accuracy"] == result["accuracy"] == pytest.approx(5 / 8)
    assert written["per_type"]["Visual/Location"] == {"accuracy": 0.5, "count": 2, "majority_baseline": 1.0,
                                                      "majority_answer": "left", "question_prior": 1.0,
                                                      "chance": None}
    assert written["majority_baseline"] == 0.25 and written["num_questions"] == 8


@pytest.mark.parametrize("records, message", [
    ([{"question_id": i, "answer": "x"} for i in range(7)], r"1 of 8 questions have no prediction \(e.g. 7\)"),
    ([{"question_id": i, "answer": "x"} for i in range(9)], r"1 predicted questions are not in the annotations"),
    ([{"question_id": i % 8, "answer": "x"} for i in range(9)], r"record 8 \(question_id '0'\): question answered twice"),
])
def test_evaluate_cli_one_line_error_exit_2(tmp_path, avqa_file, capsys, records, message):
    preds = tmp_path / "answers.json"
    preds.write_text(json.dumps(records))
    out = tmp_path / "qa_metrics.json"
    with pytest.raises(SystemExit) as exit_info:
        cli(["--predictions", str(preds), "--ann", str(avqa_file), "--out", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "answers.json" in err
    assert re.search(message, err)
    assert not out.exists()


def test_two_choice_types_print_chance_and_the_question_only_prior():
    """A type mixing two-choice questions ("open or closed?", "up or down?") has a per-type majority below
    chance; the table prints the question-only prior and chance beside it (issue 19)."""
    from eval.qa import format_qa_table, qa_scores
    from videoblip2.annotations import QAItem

    rows = [("Is the door open or closed?", "open"), ("Is the door open or closed?", "closed"),
            ("Is the door open or closed?", "open"), ("Is the lid up or down?", "up"),
            ("Is the lid up or down?", "up"), ("Is the box left or right?", "left"),
            ("Is the box left or right?", "right"), ("what is it?", "dog")]
    items = [QAItem(str(i), "v", q, a, "choice" if " or " in q else "what", None) for i, (q, a) in enumerate(rows)]
    scores = qa_scores({i.question_id: "x" for i in items}, items)
    choice = scores["per_type"]["choice"]
    assert choice["majority_baseline"] == pytest.approx(2 / 7)  # "open" or "up": 2 of 7, below chance
    assert choice["chance"] == 0.5 and scores["per_type"]["what"]["chance"] is None
    assert choice["question_prior"] == pytest.approx((2 + 2 + 1) / 7)  # per question text: open 2/3, up 2/2, 1/2
    assert scores["question_prior"] == pytest.approx(6 / 8)
    table = format_qa_table(scores)
    assert "q-only %" in table and "chance %" in table
    line = next(l for l in table.splitlines() if l.startswith("choice"))
    assert line.split()[-3:] == ["28.57", "71.43", "50.00"]
