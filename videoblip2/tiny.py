"""Tiny, offline VideoBLIP2 models for tests and the CPU demo.

Everything here is built in code: a T5-style Unigram tokenizer and a BERT-style WordPiece tokenizer trained
with the `tokenizers` library on a caption list, a few-layer T5 and Q-Formers with random weights. The model
goes through exactly the same classes as the real one; only the sizes differ.
"""

from __future__ import annotations

from collections import Counter

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from .config import LoRAConfig, QFormerConfig, T5Config, VideoBLIP2Config

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
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"])
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
