"""bench/checkpointing_cost.py at tiny size on the CPU: its check holds, and it reports every configuration.

Speed is never asserted; the times are only checked to be there and positive.
"""

import json

import pytest
import torch.utils.checkpoint

from bench import checkpointing_cost
from bench.throughput import BenchmarkError


def test_reports_each_configuration_with_the_same_loss_and_gradients(tmp_path):
    out = tmp_path / "ckpt.json"
    result = checkpointing_cost.main(["--size", "tiny", "--batch-size", "2", "--steps", "1", "--rounds", "2",
                                      "--warmup", "0", "--threads", "1", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    # tiny: Q-Formers 2 x 2 layers, T5 2 + 2 layers
    assert result["checkpointed_layers"] == {"off": 0, "t5_encoder": 2, "all": 8}
    checks = result["checks"]
    assert checks["rel_tol"] == 0.0
    assert checks["t5_encoder"] == checks["all"] == checks["off"]
    assert checks["off"]["grad_norm"] > 0
    for name in ("off", "t5_encoder", "all"):
        assert len(result["step_s_all"][name]) == 2
        assert all(t > 0 for t in result["step_s_all"][name])
    assert result["time_ratio_to_off"]["off"] == 1.0


def test_a_checkpointing_that_changed_the_gradients_stops_the_bench(monkeypatch):
    """The check can fail: break the RNG restore, so the recompute draws other dropout masks."""
    real = torch.utils.checkpoint.checkpoint

    def no_rng_restore(*args, **kwargs):
        return real(*args, **{**kwargs, "preserve_rng_state": False})

    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", no_rng_restore)
    with pytest.raises(BenchmarkError, match="changes the step"):
        checkpointing_cost.main(["--size", "tiny", "--batch-size", "2", "--steps", "1", "--rounds", "1",
                                 "--warmup", "0", "--threads", "1", "--configs", "t5_encoder", "--out", ""])
