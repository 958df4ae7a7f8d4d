"""Load report of a real-shape LAVIS BLIP-2 checkpoint + BERT-base into a BERT-base-size Q-Former.

Generates, with random values and no download:
  * `blip2_pretrained_flant5xl.pth` in LAVIS's format (`{"model": state_dict}`) with LAVIS's key names and
    shapes (lavis/models/blip2_models/blip2.py, Qformer.py, blip2_t5.py, eva_vit.py): the stage-2 Q-Former
    (BERT-base, 12 layers, cross-attention every 2nd layer reading 1408-wide EVA ViT-g features, query
    feed-forward only: blip2_t5 drops word/position embeddings and the text feed-forward), `query_tokens`
    (1, 32, 768), `t5_proj` (2048, 768), `ln_vision` (1408) and the 39-block EVA ViT-g `visual_encoder.*`.
    The ViT tensors have their real shapes but a one-element storage (an expanded view), so the file stays
    ~0.4 GB instead of ~2.4 GB; the Q-Former tensors are real random float32 values.
  * `bert-base-uncased/pytorch_model.bin` in the layout of the original hub file (BertForPreTraining:
    `LayerNorm.gamma/beta` names, pooler, MLM and NSP heads), random float32.
Then initialises an `InstructBlipQFormerModel` (BERT-base, encoder width 1408) + 32 query tokens with
`videoblip2.blip2_init.init_qformer`, checks every loaded tensor by value, and prints the report.

    python bench/blip2_load_report.py [--out bench_blip2_load.json] [--report-out blip2_load_report.txt]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `python bench/...` from anywhere

from videoblip2.blip2_init import init_qformer, read_state_dict  # noqa: E402
from videoblip2.fileio import atomic_write_json

HIDDEN, LAYERS, FFN, VOCAB, POSITIONS, QUERIES = 768, 12, 3072, 30522, 512, 32
VIT_WIDTH, VIT_DEPTH, VIT_MLP, VIT_PATCH, VIT_TOKENS = 1408, 39, 6144, 14, 257  # EVA ViT-g/14 at 224 px
T5_XL_WIDTH = 2048


def _linear(prefix: str, out_dim: int, in_dim: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (out_dim, in_dim), f"{prefix}.bias": (out_dim,)}


def _layer_norm(prefix: str, dim: int, old_names: bool = False) -> dict[str, tuple[int, ...]]:
    weight, bias = ("gamma", "beta") if old_names else ("weight", "bias")
    return {f"{prefix}.{weight}": (dim,), f"{prefix}.{bias}": (dim,)}


def _bert_layer(prefix: str, cross_width: int | None, text_ffn: bool, query_ffn: bool,
                old_names: bool = False) -> dict[str, tuple[int, ...]]:
    """One LAVIS / BERT `BertLayer`: `attention.self.*`, optional `crossattention`, text and query FFNs."""
    shapes: dict[str, tuple[int, ...]] = {}
    attentions = [("attention", HIDDEN)] + ([("crossattention", cross_width)] if cross_width else [])
    for name, kv_width in attentions:
        shapes |= _linear(f"{prefix}.{name}.self.query", HIDDEN, HIDDEN)
        shapes |= _linear(f"{prefix}.{name}.self.key", HIDDEN, kv_width)
        shapes |= _linear(f"{prefix}.{name}.self.value", HIDDEN, kv_width)
        shapes |= _linear(f"{prefix}.{name}.output.dense", HIDDEN, HIDDEN)
        shapes |= _layer_norm(f"{prefix}.{name}.output.LayerNorm", HIDDEN, old_names)
    for suffix, present in (("", text_ffn), ("_query", query_ffn)):
        if present:
            shapes |= _linear(f"{prefix}.intermediate{suffix}.dense", FFN, HIDDEN)
            shapes |= _linear(f"{prefix}.output{suffix}.dense", HIDDEN, FFN)
            shapes |= _layer_norm(f"{prefix}.output{suffix}.LayerNorm", HIDDEN, old_names)
    return shapes


def lavis_blip2_t5_shapes() -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """(Q-Former side, vision side) key -> shape of LAVIS `blip2_t5` (pretrain_flant5xl) after stage 2."""
    qformer = {"query_tokens": (1, QUERIES, HIDDEN)}
    qformer |= _layer_norm("Qformer.bert.embeddings.LayerNorm", HIDDEN)
    for n in range(LAYERS):
        qformer |= _bert_layer(f"Qformer.bert.encoder.layer.{n}", VIT_WIDTH if n % 2 == 0 else None,
                               text_ffn=False, query_ffn=True)
    qformer |= _linear("t5_proj", T5_XL_WIDTH, HIDDEN)
    qformer |= _layer_norm("ln_vision", VIT_WIDTH)

    vision = {"visual_encoder.cls_token": (1, 1, VIT_WIDTH), "visual_encoder.pos_embed": (1, VIT_TOKENS, VIT_WIDTH),
              "visual_encoder.patch_embed.proj.weight": (VIT_WIDTH, 3, VIT_PATCH, VIT_PATCH),
              "visual_encoder.patch_embed.proj.bias": (VIT_WIDTH,)}
    for n in range(VIT_DEPTH):
        block = f"visual_encoder.blocks.{n}"
        vision |= _layer_norm(f"{block}.norm1", VIT_WIDTH)
        vision |= {f"{block}.attn.q_bias": (VIT_WIDTH,), f"{block}.attn.v_bias": (VIT_WIDTH,),
                   f"{block}.attn.qkv.weight": (3 * VIT_WIDTH, VIT_WIDTH)}
        vision |= _linear(f"{block}.attn.proj", VIT_WIDTH, VIT_WIDTH)
        vision |= _layer_norm(f"{block}.norm2", VIT_WIDTH)
        vision |= _linear(f"{block}.mlp.fc1", VIT_MLP, VIT_WIDTH)
        vision |= _linear(f"{block}.mlp.fc2", VIT_WIDTH, VIT_MLP)
    return qformer, vision


def bert_base_shapes() -> dict[str, tuple[int, ...]]:
    """The original `bert-base-uncased` pytorch_model.bin (BertForPreTraining, TF-era LayerNorm names)."""
    shapes = {"bert.embeddings.word_embeddings.weight": (VOCAB, HIDDEN),
              "bert.embeddings.position_embeddings.weight": (POSITIONS, HIDDEN),
              "bert.embeddings.token_type_embeddings.weight": (2, HIDDEN)}
    shapes |= _layer_norm("bert.embeddings.LayerNorm", HIDDEN, old_names=True)
    for n in range(LAYERS):
        shapes |= _bert_layer(f"bert.encoder.layer.{n}", None, text_ffn=True, query_ffn=False, old_names=True)
    shapes |= _linear("bert.pooler.dense", HIDDEN, HIDDEN)
    shapes |= {"cls.predictions.bias": (VOCAB,), "cls.predictions.decoder.weight": (VOCAB, HIDDEN)}
    shapes |= _linear("cls.predictions.transform.dense", HIDDEN, HIDDEN)
    shapes |= _layer_norm("cls.predictions.transform.LayerNorm", HIDDEN, old_names=True)
    shapes |= _linear("cls.seq_relationship", 2, HIDDEN)
    return shapes


def random_state_dict(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(*s, generator=g) * 0.02 for k, s in shapes.items()}


def write_checkpoints(folder: str, seed: int) -> tuple[str, str]:
    qformer_shapes, vision_shapes = lavis_blip2_t5_shapes()
    blip2 = random_state_dict(qformer_shapes, seed)
    blip2["Qformer.bert.embeddings.position_ids"] = torch.arange(POSITIONS).expand(1, -1)  # persistent in LAVIS
    placeholder = torch.zeros(1, dtype=torch.float16)
    for key, shape in vision_shapes.items():  # real names and shapes, one element of storage each
        blip2[key] = placeholder.expand(shape)
    blip2_path = os.path.join(folder, "blip2_pretrained_flant5xl.pth")
    torch.save({"model": blip2}, blip2_path)

    bert_dir = os.path.join(folder, "bert-base-uncased")
    os.makedirs(bert_dir)
    torch.save(random_state_dict(bert_base_shapes(), seed + 1), os.path.join(bert_dir, "pytorch_model.bin"))
    return bert_dir, blip2_path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench_blip2_load.json", help="JSON: counts by reason, every key")
    parser.add_argument("--report-out", default="blip2_load_report.txt", help="the full per-key report")
    parser.add_argument("--workdir", default=None, help="where to write the checkpoints (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated checkpoints")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    from transformers import InstructBlipQFormerConfig, InstructBlipQFormerModel

    workdir = args.workdir or tempfile.mkdtemp(prefix="blip2_bench_")
    os.makedirs(workdir, exist_ok=True)
    try:
        t0 = time.perf_counter()
        bert_dir, blip2_path = write_checkpoints(workdir, args.seed)
        t_write = time.perf_counter() - t0
        sizes = {"blip2_pth_MB": os.path.getsize(blip2_path) / 2**20,
                 "bert_bin_MB": os.path.getsize(os.path.join(bert_dir, "pytorch_model.bin")) / 2**20}

        torch.manual_seed(args.seed)
        qformer = InstructBlipQFormerModel(InstructBlipQFormerConfig(encoder_hidden_size=VIT_WIDTH))
        query_tokens = torch.nn.Parameter(torch.zeros(1, QUERIES, HIDDEN))

        t0 = time.perf_counter()
        report = init_qformer(qformer, query_tokens, bert=bert_dir, blip2=blip2_path)
        t_load = time.perf_counter() - t0

        # Every loaded tensor, by value: BLIP-2's where it has one, BERT's otherwise.
        loaded = dict(qformer.named_parameters(), query_tokens=query_tokens)
        checked = 0
        for source, path in (("bert", bert_dir), ("blip2", blip2_path)):
            state = read_state_dict(path)
            for entry in report.loaded(source):
                for target in entry.targets:
                    if report.final_source[target] == source:
                        assert torch.equal(loaded[target][: state[entry.key].shape[0]], state[entry.key]), target
                        checked += 1
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    summary = report.summary()
    print(summary)
    print(f"\nchecked by value: {checked} Q-Former tensors")
    rows = [("checkpoint write (BERT .bin + LAVIS .pth)", f"{t_write:.1f} s"),
            ("init_qformer (read + map + check + copy)", f"{t_load:.1f} s"),
            ("LAVIS .pth size", f"{sizes['blip2_pth_MB']:.0f} MB"),
            ("BERT .bin size", f"{sizes['bert_bin_MB']:.0f} MB"),
            ("peak RSS", f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MB")]
    print("\n| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")

    result = {
        "device": f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "seconds": {"write": t_write, "init_qformer": t_load},
        "sizes_MB": sizes,
        "qformer_parameters": sum(p.numel() for p in qformer.parameters()) + query_tokens.numel(),
        "checked_by_value": checked,
        "report": report.to_dict(),
    }
    atomic_write_json(args.out, result, indent=2)
    with open(args.report_out, "w") as f:
        f.write(str(report) + "\n")
    print(f"\nwrote {args.out} and {args.report_out}")
    return result


if __name__ == "__main__":
    main()
