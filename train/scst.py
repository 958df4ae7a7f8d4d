"""Self-critical sequence training: the advantage and the policy-gradient loss, as pure functions.

For video b with K sampled captions of rewards r_b1..r_bK (CIDEr-D), the advantage of sample k is

    greedy baseline (Rennie et al. 2017, the original design):  A_bk = r_bk - r_greedy(b)
    mean baseline (the other samples, "SCST with K samples"):   A_bk = r_bk - (sum_j r_bj - r_bk) / (K - 1)

and the loss is  -(1/N) sum_bk A_bk * log p(sample_bk),  log p = the sum of the token log-probs up to and
including the first EOS (tokens after it are masked; EOS is an action like any other, so a sample that ends
badly, "... with a" + EOS, is penalised for ending there). The advantage is a constant: no gradient through it.
"""

from __future__ import annotations

import torch

from train.params import BASELINES, LOSS_NORMS  # noqa: F401  (re-exported)
from videoblip2.modeling import caption_token_mask


def scst_advantages(sample_rewards: torch.Tensor, baseline: str,
                    greedy_rewards: torch.Tensor | None = None) -> torch.Tensor:
    """Advantages of K samples per video.

    Args:
        sample_rewards: (B, K) reward of sample k of video b.
        baseline: "greedy" (needs `greedy_rewards`) or "mean" (needs K >= 2).
        greedy_rewards: (B,) reward of each video's greedy caption.

    Returns:
        (B, K) advantages, same dtype as `sample_rewards`.

    >>> scst_advantages(torch.tensor([[1., 2., 3.]]), "mean").tolist()
    [[-1.5, 0.0, 1.5]]
    """
    if sample_rewards.dim() != 2:
        raise ValueError(f"sample_rewards must be (B, K), got shape {tuple(sample_rewards.shape)}")
    if baseline == "greedy":
        if greedy_rewards is None:
            raise ValueError("the greedy baseline needs greedy_rewards (B,)")
        if greedy_rewards.shape != sample_rewards.shape[:1]:
            raise ValueError(f"greedy_rewards must be ({sample_rewards.shape[0]},), got {tuple(greedy_rewards.shape)}")
        return sample_rewards - greedy_rewards.to(sample_rewards.dtype).unsqueeze(1)
    if baseline == "mean":
        k = sample_rewards.shape[1]
        if k < 2:
            raise ValueError("the mean baseline needs at least 2 samples per video (--num-samples)")
        others = (sample_rewards.sum(dim=1, keepdim=True) - sample_rewards) / (k - 1)
        return sample_rewards - others
    raise ValueError(f"unknown baseline {baseline!r}; choose from {', '.join(BASELINES)}")


def sequence_logprobs(token_logprobs: torch.Tensor, sequences: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """Sum of token log-probs up to and including the first EOS.  (N, L), (N, L) -> (N,).

    Args:
        token_logprobs: (N, L) log p of each sampled token.
        sequences: (N, L) the sampled token ids (anything may follow the first EOS: it is masked).
        eos_token_id: the EOS id.
    """
    return (token_logprobs * caption_token_mask(sequences, eos_token_id).to(token_logprobs.dtype)).sum(dim=1)


def scst_loss(logprobs: torch.Tensor, advantages: torch.Tensor, normalizer: float | None = None) -> torch.Tensor:
    """Policy-gradient loss  -sum(advantages * logprobs) / normalizer  (default normaliser: N).

    Args:
        logprobs: (N,) summed token log-probs of each sample (with gradient).
        advantages: (N,) advantages (detached here).
        normalizer: what the sum is divided by; train_scst passes the sample count of the global batch.
    """
    if logprobs.shape != advantages.shape:
        raise ValueError(f"logprobs {tuple(logprobs.shape)} and advantages {tuple(advantages.shape)} differ")
    total = -(advantages.detach().to(logprobs.dtype) * logprobs).sum()
    return total / (logprobs.numel() if normalizer is None else normalizer)
