"""Parameter counts of the real-size VideoBLIP2 (flan-t5-base + two BERT-base Q-Formers), random weights.

    python bench/param_count.py [--out param_count.json]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from videoblip2.config import FLAN_T5_BASE_ARCHITECTURE, T5Config, VideoBLIP2Config  # noqa: E402
from videoblip2.modeling import VideoBLIP2  # noqa: E402
from videoblip2.tiny import DEFAULT_CORPUS, bert_style_tokenizer, t5_style_tokenizer  # noqa: E402
from videoblip2.fileio import atomic_write_json


def real_size_model() -> VideoBLIP2:
    """Default config with flan-t5-base's architecture; tiny tokenizers (vocab sizes come from the config)."""
    config = VideoBLIP2Config(t5=T5Config(architecture=dict(FLAN_T5_BASE_ARCHITECTURE)))
    return VideoBLIP2(config, t5_tokenizer=t5_style_tokenizer(DEFAULT_CORPUS),
                      qformer_tokenizer=bert_style_tokenizer(DEFAULT_CORPUS))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="write the counts as JSON here")
    args = parser.parse_args(argv)
    model = real_size_model()
    groups: Counter = Counter()
    trainable: Counter = Counter()
    for name, p in model.named_parameters():
        group = "t5 (LoRA)" if "lora_" in name else name.split(".")[0]
        groups[group] += p.numel()
        trainable[group] += p.numel() if p.requires_grad else 0
    result = {
        "total": model.num_parameters(),
        "trainable": model.num_parameters(trainable_only=True),
        "by_module": {g: {"total": groups[g], "trainable": trainable[g]} for g in sorted(groups)},
    }
    print(f"{'module':<24}{'total':>14}{'trainable':>14}")
    for g in sorted(groups):
        print(f"{g:<24}{groups[g]:>14,}{trainable[g]:>14,}")
    print(f"{'all':<24}{result['total']:>14,}{result['trainable']:>14,}")
    if args.out:
        atomic_write_json(args.out, result, indent=2)
    return result


if __name__ == "__main__":
    main()
