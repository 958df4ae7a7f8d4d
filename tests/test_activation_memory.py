"""bench/activation_memory.py: the saved-tensor accounting counts exactly what autograd keeps, per component."""

import torch
from torch import nn

from bench import activation_memory as am


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.video_qformer = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
        self.proj_video = nn.Linear(16, 4, bias=False)

    def forward(self, x):
        return (self.proj_video(self.video_qformer(x)) ** 2).sum()


def test_accounting_counts_each_saved_storage_once_and_skips_parameters():
    model = Toy()
    x = torch.randn(5, 8)
    with am.saved_tensor_accounting(model) as (totals, by_dtype):
        loss = model(x)
    loss.backward()
    # video_qformer: Linear saves its input x (5x8 fp32), ReLU its output (5x16); its weight is a parameter.
    # proj_video: its input is ReLU's output, already counted. The square saves proj_video's output (5x4),
    # outside any named component.
    assert dict(totals) == {"video_qformer": 5 * 8 * 4 + 5 * 16 * 4, "loss_and_glue": 5 * 4 * 4}
    assert dict(by_dtype) == {"video_qformer/float32": 5 * 8 * 4 + 5 * 16 * 4, "loss_and_glue/float32": 5 * 4 * 4}


def test_component_names():
    assert am.component_of("video_qformer.encoder.layer.0.attention") == "video_qformer"
    assert am.component_of("t5.base_model.model.encoder.block.3.layer.0") == "t5_encoder"
    assert am.component_of("t5.base_model.model.decoder.block.0.layer.1") == "t5_decoder"
    assert am.component_of("t5.base_model.model.lm_head") == "lm_head"
    assert am.component_of("audio_upscaler") == "inputs_and_projections"
    assert am.component_of("t5.base_model.model") == am.component_of("") == "loss_and_glue"


def test_tiny_run_per_sample_memory_and_the_bf16_frozen_t5(tmp_path):
    result = am.main(["--size", "tiny", "--batch-size", "2", "--target-batch", "64",
                      "--out", str(tmp_path / "m.json")])
    for impl in ("reference", "ours"):
        per_sample = result[impl]["per_sample_mb"]
        assert all(per_sample[c] > 0 for c in ("video_qformer", "audio_qformer", "t5_encoder", "t5_decoder"))
        by_dtype = result[impl]["per_sample_mb_by_dtype"]
        assert abs(sum(by_dtype.values()) - result[impl]["per_sample_mb_total"]) < 1e-9
        assert by_dtype["t5_encoder/bfloat16"] > 0  # autocast's matmul outputs
    # same architecture, same activations; ours stores its frozen T5 linears in bf16, the reference casts
    # them on every call (copies saved for backward: a fixed cost per step)
    assert abs(result["ours"]["per_sample_mb_total"] - result["reference"]["per_sample_mb_total"]) < 0.05
    assert result["ours"]["static_gb"]["frozen_weights"] < 0.75 * result["reference"]["static_gb"]["frozen_weights"]
    assert sum(result["ours"]["fixed_gb"].values()) < sum(result["reference"]["fixed_gb"].values())


def test_checkpointed_t5_encoder_keeps_only_layer_inputs_and_adds_one_layer_of_recompute():
    result = am.main(["--size", "tiny", "--batch-size", "2", "--impl", "ours_checkpointed", "--out", ""])
    plain, checkpointed = result["ours"], result["ours_checkpointed"]
    assert plain["checkpointed_layers"] == {} and checkpointed["checkpointed_layers"] == {"t5_encoder": 2}
    assert 0 < checkpointed["per_sample_mb"]["t5_encoder"] < 0.15 * plain["per_sample_mb"]["t5_encoder"]
    # the layer inputs are the only saves inside the encoder blocks: everything else is unchanged
    assert all(abs(checkpointed["per_sample_mb"][c] - plain["per_sample_mb"][c]) < 1e-12
               for c in am.COMPONENTS if c != "t5_encoder")
    assert abs(checkpointed["recompute_transient_mb_per_sample"] - plain["per_sample_mb"]["t5_encoder"] / 2) < 1e-12
    assert checkpointed["predicted_peak_at_target_gb"] < plain["predicted_peak_at_target_gb"]
