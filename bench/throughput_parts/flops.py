"""FLOP count of bench/throughput.py: the analytic count per sample, torch's count as a check, the matmul rate."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.throughput_parts.models import model_inputs
from videoblip2.config import VideoBLIP2Config

def flops_per_sample(config: VideoBLIP2Config, t5_arch: dict[str, Any], frames: int, audio_windows: int,
                     qformer_prompt_len: int, t5_prompt_len: int, caption_len: int) -> dict[str, float]:
    """Matrix-multiply FLOPs (2 m n k each) of one sample's forward pass, by component, and the training total.

    Counted: every linear layer (input projections, Q-Former self/cross attention and both feed-forwards, the
    projections to T5, T5 encoder and decoder attention and gated feed-forward, LoRA on q and v, lm_head over
    the vocabulary) and the attention score / value products (full L x L for the causal decoder, what SDPA
    computes). Not counted: norms, softmax, GELU, embeddings, the loss. Training = 3 x forward for the trained
    Q-Formers (input gradients + weight gradients) + 2 x forward for the frozen T5 (input gradients only; the
    Q-Formers below it need them) + 3 x forward for LoRA; the issue's rough count of these sizes is ~88 GFLOP.
    """
    q = config.qformer
    h, inter, w, n_q = q.hidden_size, q.intermediate_size, q.encoder_width, q.num_query_tokens
    s = n_q + qformer_prompt_len  # Q-Former self-attention over [queries, prompt]

    def qformer_forward(input_dim: int, t: int) -> float:
        total = 2 * t * input_dim * w  # input projection to the encoder width
        for layer in range(q.num_hidden_layers):
            total += 2 * s * h * h * 4 + 2 * 2 * s * s * h  # q, k, v, o + scores, values
            if layer % q.cross_attention_frequency == 0:  # queries read the features
                total += 2 * n_q * h * h * 2 + 2 * t * w * h * 2 + 2 * 2 * n_q * t * h
            total += 2 * s * h * inter * 2  # query feed-forward (queries) + text feed-forward (prompt)
        return total + 2 * n_q * h * t5_arch["d_model"]  # projection to T5

    d, inner, d_ff = t5_arch["d_model"], t5_arch["num_heads"] * t5_arch["d_kv"], t5_arch["d_ff"]
    gated = 3 if str(t5_arch.get("feed_forward_proj", "relu")).startswith("gated") else 2
    enc_len, dec_len = 2 * n_q + t5_prompt_len, caption_len
    encoder = t5_arch["num_layers"] * (2 * enc_len * d * inner * 4 + 2 * 2 * enc_len * enc_len * inner
                                       + 2 * enc_len * d * d_ff * gated)
    decoder = t5_arch["num_decoder_layers"] * (
        2 * dec_len * d * inner * 4 + 2 * 2 * dec_len * dec_len * inner  # self-attention
        + 2 * dec_len * d * inner * 2 + 2 * enc_len * d * inner * 2 + 2 * 2 * dec_len * enc_len * inner  # cross
        + 2 * dec_len * d * d_ff * gated)
    lm_head = 2 * dec_len * d * t5_arch["vocab_size"]
    # LoRA (d -> r -> inner) on each target projection, over the tokens that projection sees: q and o see the
    # queries' side (decoder length in both decoder attentions), k and v the keys' side (encoder length in cross)
    r = config.lora.r
    tokens = {"q": dec_len, "o": dec_len, "k": enc_len, "v": enc_len}  # decoder cross-attention
    lora = sum(2 * (d * r + r * inner) * (t5_arch["num_layers"] * enc_len
                                          + t5_arch["num_decoder_layers"] * (dec_len + tokens.get(name, 0)))
               for name in config.lora.target_modules)
    video_qformer = qformer_forward(config.video_dim, frames)
    audio_qformer = qformer_forward(config.audio_dim, audio_windows)
    t5 = encoder + decoder + lm_head
    return {
        "video_qformer_forward": video_qformer,
        "audio_qformer_forward": audio_qformer,
        "t5_encoder_forward": encoder,
        "t5_decoder_forward": decoder,
        "t5_lm_head_forward": lm_head,
        "lora_forward": lora,
        "forward": video_qformer + audio_qformer + t5 + lora,
        "train": 3 * (video_qformer + audio_qformer) + 2 * t5 + 3 * lora,
    }


def counted_flops(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[float, float]:
    """(forward, forward + backward) FLOPs per sample as torch.utils.flop_counter counts them: a check of the above."""
    from torch.utils.flop_counter import FlopCounterMode

    model.train()
    counts = []
    for backward in (False, True):
        counter = FlopCounterMode(display=False)
        with counter, torch.set_grad_enabled(backward):
            loss = model(**model_inputs(batch), labels=batch["labels"]).loss
            if backward:
                loss.backward()
        counts.append(counter.get_total_flops() / batch["video"].shape[0])
    model.zero_grad(set_to_none=True)
    return counts[0], counts[1]


def matmul_rate(device: torch.device) -> tuple[float, str]:
    """Measured matmul FLOP/s: bf16 8192^3 on CUDA (median of 20, CUDA events), fp32 1024^3 on CPU."""
    if device.type == "cuda":
        n, dtype, reps = 8192, torch.bfloat16, 20
    else:
        n, dtype, reps = 1024, torch.float32, 5
    gen = torch.Generator(device=device).manual_seed(0)
    inputs = [(torch.randn(n, n, device=device, dtype=dtype, generator=gen),
               torch.randn(n, n, device=device, dtype=dtype, generator=gen)) for _ in range(2)]
    for a, b in inputs:
        a @ b
    times = []
    for i in range(reps):
        a, b = inputs[i % 2]
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            a @ b
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000)
        else:
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / float(np.median(times)), str(dtype).replace("torch.", "")
