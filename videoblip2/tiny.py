"""Tiny, offline VideoBLIP2 models and feature extractors for tests, the CPU demo and the README's examples.

Everything here is built in code: a T5-style Unigram tokenizer and a BERT-style WordPiece tokenizer trained
with the `tokenizers` library on a caption list, a few-layer T5 and Q-Formers with random weights. The model
goes through exactly the same classes as the real one; only the sizes differ. Likewise a tiny CLIP and a tiny
CLAP (random weights, real open_clip / laion_clap classes, the real feature widths 768 and 512):

    python -m videoblip2.tiny --extractors tiny            # tiny/tiny_clip.json, .pt, tiny/tiny_clap.json, .pt
    python -m videoblip2.tiny --model tiny/model           # a random tiny VideoBLIP2 (save_pretrained folder)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from .config import LoRAConfig, QFormerConfig, T5Config, VideoBLIP2Config

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

DEFAULT_CORPUS = [
    "a man is talking about a car in a garage",
    "a woman is cooking food in a kitchen while music plays",
    "a dog is running on the grass and barking",
    "people are dancing on a stage to loud music",
    "a person opens a door in a small room",
    "a child closes a box on the table",
    "a cartoon character is walking in the street",
    "a crowd applauds a singer at a concert",
    "someone is driving a car on the road with the engine running",
    "two men are playing basketball outside",
]


def t5_style_tokenizer(corpus: list[str], vocab_size: int = 1000) -> PreTrainedTokenizerFast:
    """SentencePiece-style (Metaspace) BPE with T5's special ids: <pad>=0, </s>=1, <unk>=2; appends </s>.

    BPE rather than T5's Unigram: on small caption corpora the `tokenizers` Unigram trainer stops near
    character level, which makes tiny-model captions 3x longer for no benefit.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"],
                                  show_progress=False)
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def bert_style_tokenizer(corpus: list[str], vocab_size: int = 1000) -> PreTrainedTokenizerFast:
    """Uncased WordPiece tokenizer with BERT's special tokens; wraps text as [CLS] ... [SEP].

    The vocabulary is built here rather than by the `tokenizers` WordPiece trainer, whose result changes from
    run to run on ties: every character (and its ## continuation), then whole words by falling frequency.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in corpus:
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for word in counts for c in word})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + [f"##{c}" for c in chars]
    words = [w for w, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])) if len(w) > 1]
    vocab += words[: max(0, vocab_size - len(vocab))]
    tok = Tokenizer(models.WordPiece({token: i for i, token in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def tiny_config(
    t5_vocab_size: int,
    qformer_vocab_size: int,
    hidden: int = 64,
    layers: int = 2,
    num_query_tokens: int = 4,
    max_frames: int = 16,
    max_audio_windows: int = 8,
    train_t5: bool = True,
) -> VideoBLIP2Config:
    """A VideoBLIP2Config a 2-core CPU trains in minutes: same architecture, small widths.

    The tiny T5 is random, so by default it is trained whole (`t5.train_base`): frozen random weights carry
    no language to preserve, and with LoRA alone a tiny model stays below the most-common-caption baseline
    after 10 CPU minutes on the synthetic benchmark. `train_t5=False` gives the real recipe (frozen + LoRA).
    """
    return VideoBLIP2Config(
        max_frames=max_frames,
        max_audio_windows=max_audio_windows,
        qformer=QFormerConfig(
            hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=2 * hidden,
            cross_attention_frequency=1, encoder_width=hidden, num_query_tokens=num_query_tokens,
            vocab_size=qformer_vocab_size, max_position_embeddings=64,
        ),
        t5=T5Config(
            name_or_path="tiny-t5",
            train_base=train_t5,
            architecture=dict(
                vocab_size=t5_vocab_size, d_model=hidden, d_kv=hidden // 4, d_ff=2 * hidden, num_layers=layers,
                num_decoder_layers=layers, num_heads=4, feed_forward_proj="gated-gelu", dropout_rate=0.1,
                tie_word_embeddings=False, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
            ),
        ),
        lora=LoRAConfig(r=8, alpha=16),
        qformer_tokenizer="tiny-bert",
        max_caption_len=24,
    )


def build_tiny_model(corpus: list[str] | None = None, seed: int = 0, **config_overrides):
    """A randomly initialised tiny VideoBLIP2 with tokenizers trained on `corpus` (offline, deterministic)."""
    import torch

    from .modeling import VideoBLIP2

    corpus = list(corpus) if corpus else DEFAULT_CORPUS
    corpus = corpus + ["a short description of the video:"]
    t5_tok = t5_style_tokenizer(corpus)
    bert_tok = bert_style_tokenizer(corpus)
    config = tiny_config(len(t5_tok), len(bert_tok), **config_overrides)
    torch.manual_seed(seed)
    return VideoBLIP2(config, t5_tokenizer=t5_tok, qformer_tokenizer=bert_tok)


# ----------------------------------------------------------------------------------------------
# tiny feature extractors (random weights, offline)

TINY_CLIP_CONFIG = {  # a 2-layer ViT on 224 px with CLIP ViT-L-14's 768-d image embedding
    "embed_dim": 768,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "patch_size": 32, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
}

# An HTSAT with 8-wide, 1-block stages; 512-d output like CLAP. Its input is CLAP's 10 s (480000 samples at
# 48 kHz), so the extractors' default 5 s windows fit it as they fit the real one; HTSAT stretches every
# spectrogram to the same 1024 frames, so a longer input costs only the (cheap) STFT.
TINY_CLAP_CONFIG = {
    "embed_dim": 64,
    "audio_cfg": {"audio_length": 1024, "clip_samples": 480000, "mel_bins": 64, "sample_rate": 48000,
                  "window_size": 1024, "hop_size": 480, "fmin": 50, "fmax": 14000, "class_num": 8,
                  "model_type": "HTSAT", "model_name": "tiny"},
    "text_cfg": {"context_length": 77, "vocab_size": 8, "width": 8, "heads": 1, "layers": 1},
    "htsat": {"embed_dim": 8, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 1, 1], "window_size": 8},
}

EXTRACTOR_FILES = {"clip_config": "tiny_clip.json", "clip_ckpt": "tiny_clip.pt",
                   "clap_config": "tiny_clap.json", "clap_ckpt": "tiny_clap.pt"}


def make_tiny_extractors(folder: str | Path, seed: int = 0) -> dict[str, str]:
    """Model-config JSONs + random-weight checkpoints of a tiny CLIP and a tiny CLAP in ``folder``.

    Returns ``{"clip_config", "clip_ckpt", "clap_config", "clap_ckpt"}`` -> path: the values of
    ``--clip-model``, ``--clip-pretrained``, ``--clap-model`` and ``--clap-pretrained``. Files already there
    are kept (built once per folder; the same ``seed`` gives the same weights). The CLAP checkpoint has
    LAION's layout: ``{"state_dict": {"module.audio_branch...": ...}}``. Needs the ``features`` extra.
    """
    import torch

    from .extract import load_clap, load_clip
    from .fileio import atomic_open, atomic_write_text

    folder = Path(folder)
    files = {name: folder / file for name, file in EXTRACTOR_FILES.items()}
    if all(path.exists() for path in files.values()):
        return {name: str(path) for name, path in files.items()}
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(files["clip_config"], json.dumps(TINY_CLIP_CONFIG, indent=1))
    atomic_write_text(files["clap_config"], json.dumps(TINY_CLAP_CONFIG, indent=1))
    torch.manual_seed(seed)
    logging.disable(logging.WARNING)  # "RANDOM weights" (ours and open_clip's) is the point here
    try:
        clip = load_clip(str(files["clip_config"]), None, device="cpu")
        clap = load_clap(str(files["clap_config"]), None, device="cpu")
    finally:
        logging.disable(logging.NOTSET)
    with atomic_open(files["clip_ckpt"], "wb") as f:
        torch.save(clip.model.state_dict(), f)
    state = {f"module.{k}": v for k, v in clap.model.state_dict().items() if k.startswith("audio_")}
    with atomic_open(files["clap_ckpt"], "wb") as f:
        torch.save({"state_dict": state, "epoch": 1}, f)
    return {name: str(path) for name, path in files.items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from .cli import ArgumentParser

    parser = ArgumentParser(prog="python -m videoblip2.tiny", description=__doc__.split("\n\n")[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("--extractors", metavar="DIR",
                        help="write a tiny random CLIP and CLAP (config .json + checkpoint .pt) into DIR")
    parser.add_argument("--model", metavar="DIR", help="write a tiny random VideoBLIP2 (save_pretrained) into DIR")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the weights (default 0)")
    args = parser.parse_args(argv)
    if not args.extractors and not args.model:
        parser.error("nothing to do: give --extractors DIR and/or --model DIR")
    return args


def main(argv: list[str] | None = None) -> int:
    from .cli import check_out_dir, cli

    args = parse_args(argv)

    def run() -> None:
        if args.extractors:
            check_out_dir(args.extractors, "--extractors")
            files = make_tiny_extractors(args.extractors, seed=args.seed)
            print(f"--clip-model {files['clip_config']} --clip-pretrained {files['clip_ckpt']}")
            print(f"--clap-model {files['clap_config']} --clap-pretrained {files['clap_ckpt']}")
        if args.model:
            check_out_dir(args.model, "--model")
            build_tiny_model(seed=args.seed).save_pretrained(args.model)
            print(f"--model {args.model}")

    cli(run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
