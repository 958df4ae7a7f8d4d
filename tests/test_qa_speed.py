"""bench/qa_speed.py at tiny size on the CPU: its checks hold and it reports both ratios.

Speed is never asserted; the times are only checked to be there and positive.
"""

import json

import pytest

from bench import qa_speed
from bench.throughput import BenchmarkError
from videoblip2.modeling import VideoBLIP2


def test_reports_both_ratios_after_its_checks(tmp_path):
    out = tmp_path / "qa.json"
    result = qa_speed.main(["--size", "tiny", "--batch-size", "4", "--score-videos", "3", "--answers", "10",
                            "--steps", "1", "--rounds", "1", "--warmup", "0", "--threads", "1", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    checks = result["checks"]
    assert checks["loss_fixed"] == pytest.approx(checks["loss_per_sample_rows_of_the_fixed_prompt"], rel=1e-6)
    assert checks["score_max_abs_diff"] < 1e-4
    assert len(set(result["config"]["answer_tokens"])) == 2  # one- and two-word answers
    for name in ("ce_step_s_all", "score_s_all"):
        assert all(len(times) == 1 and times[0] > 0 for times in result[name].values())
    assert result["score_speedup"] > 0 and result["ce_per_sample_over_fixed_samples_per_s"] > 0


def test_a_scorer_that_differs_stops_the_bench(monkeypatch):
    """The check can fail: a scorer that drops the EOS token's log-prob."""
    real = VideoBLIP2.score_candidates

    def without_eos(self, *args, candidates=(), **kwargs):
        return real(self, *args, candidates=[c[:-1] for c in candidates], **kwargs)

    monkeypatch.setattr(VideoBLIP2, "score_candidates", without_eos)
    with pytest.raises(BenchmarkError, match="differs from the naive loop"):
        qa_speed.main(["--size", "tiny", "--batch-size", "2", "--score-videos", "2", "--answers", "4", "--steps", "1",
                       "--rounds", "1", "--warmup", "0", "--threads", "1"])
