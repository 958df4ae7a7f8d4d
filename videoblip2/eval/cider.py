"""Fast, vectorised CIDEr-D for SCST rewards, with corpus-level document frequencies.

The formula is pycocoevalcap's ``CiderScorer`` (its "Cider" is in fact CIDEr-D), reproduced exactly:

- n-grams of orders 1..n; a caption is a vector of tf-idf weights ``tf * (log(N) - log(max(1, df)))``
  per order, where ``df`` counts the documents (videos) whose references contain the n-gram and ``N`` is
  the number of documents (pycocoevalcap's ``ref_len``);
- per order: clipped cosine ``sum(min(w_cand, w_ref) * w_ref) / (|w_cand| |w_ref|)`` (the division is
  skipped when a norm is zero), times the Gaussian length penalty ``exp(-(l_cand - l_ref)^2 / (2 sigma^2))``;
  the length ``l`` is pycocoevalcap's: the number of *bigrams* of the caption (words - 1), a quirk kept on
  purpose for equality;
- averaged over the orders, averaged over the references, times 10.

What differs from pycocoevalcap is *where the document frequencies come from*: they are computed ONCE from
the training corpus given to :class:`CiderD` (as in the original SCST code), not from whatever batch is being
scored; a batch-level df would make the reward of a caption depend on the rest of the batch.

Tokenisation (candidates and references alike): :func:`videoblip2.annotations.normalize_caption` (lowercase,
collapse whitespace, strip, drop trailing periods) then split on whitespace. No PTB tokenizer, no Java: feed
captions as the model decodes them.

End of sentence as a word (``CiderD(..., eos=True)``, the SCST reward's default): as in self-critical.pytorch
(``array_to_str`` keeps the end token, ``prepro_ngrams.py`` appends ``<eos>`` to every reference before counting
document frequencies), the word :data:`EOS_WORD` is appended to every reference and to every candidate that
ended (``ended``: a sample cut at the length limit has no end token). Then "a man is playing with a <eos>"
shares no "a <eos>" n-gram with any reference, so a caption that stops on "a", "the" or "with" scores lower
than the same words completed. Scores are those of pycocoevalcap on the same strings with " <eos>" appended.

Implementation: words map to integer ids, and an n-gram of order k gets an id from the pair
(id of its (k-1)-gram prefix, id of its last word), so every step after the word lookup is numpy on flat
arrays. Reference tf-idf vectors, norms and lengths of the whole corpus are precomputed; scoring a batch is a
sorted-key lookup of the candidates' n-grams in the references of their video, then ``np.bincount``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from videoblip2.annotations import normalize_caption

__all__ = ["EOS_WORD", "CiderD", "tokenize"]

EOS_WORD = "<eos>"  # the end of sentence as a word (eos=True); normalize_caption never produces it from text

_PACK = np.int64(1 << 31)  # an n-gram key is prefix_id * 2**31 + word_id


def tokenize(caption: str) -> list[str]:
    """The tokens CIDEr-D scores: ``normalize_caption(caption).split()``."""
    return normalize_caption(caption).split()


@dataclass
class _Encoded:
    """Distinct n-grams of a list of sentences: one row per (sentence, n-gram)."""

    sentence: np.ndarray  # (P,) int64 sentence index
    order: np.ndarray  # (P,) int64 n-gram order - 1, in [0, n)
    ngram: np.ndarray  # (P,) int64 id within its order; >= the corpus size of that order for unseen n-grams
    tf: np.ndarray  # (P,) float64 count of the n-gram in the sentence
    num_words: np.ndarray  # (S,) int64
    sizes: list[int]  # per order: corpus n-grams + n-grams first seen in this call (the id range)


@dataclass
class _RefTable:
    """tf-idf vectors of the references of D documents, sorted by key = document * num_ids + global n-gram id."""

    keys: np.ndarray  # (K,) int64 sorted distinct keys
    starts: np.ndarray  # (K + 1,) entries of keys[i] are starts[i]:starts[i + 1]
    slot: np.ndarray  # (E,) int64 which reference of the document, in [0, R)
    weight: np.ndarray  # (E,) float64
    num_ids: int
    norms: np.ndarray  # (D, R, n) float64, zero for missing references
    lengths: np.ndarray  # (D, R) int64 (bigram counts)
    num_refs: np.ndarray  # (D,) int64


class CiderD:
    """CIDEr-D with document frequencies computed once over a reference corpus (the training captions).

    Args:
        corpus_refs: ``{video_id: [caption, ...]}``, or a list of reference lists whose positions are the
            video ids. Every video is one document for the document frequencies, and its references are
            precomputed for :meth:`score`.
        n: largest n-gram order.
        sigma: standard deviation of the Gaussian length penalty.
        eos: score the end of sentence as a word (:data:`EOS_WORD` appended to references and to the
            candidates that ended), as self-critical.pytorch's SCST reward does.

    Example:
        >>> cider = CiderD({"v0": ["a man is cooking", "a man cooks"], "v1": ["a dog runs"]})
        >>> cider.score(["a man is cooking", "a cat"], ["v0", "v1"]).round(3).tolist()
        [6.007, 0.0]
    """

    def __init__(self, corpus_refs: Mapping[Hashable, Sequence[str]] | Sequence[Sequence[str]], n: int = 4,
                 sigma: float = 6.0, eos: bool = False):
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n = int(n)
        self.sigma = float(sigma)
        self.eos = bool(eos)
        if isinstance(corpus_refs, Mapping):
            video_ids, documents = list(corpus_refs.keys()), list(corpus_refs.values())
        else:
            documents = list(corpus_refs)
            video_ids = list(range(len(documents)))
        if not documents:
            raise ValueError("CiderD needs a non-empty reference corpus")
        for video_id, refs in zip(video_ids, documents):
            if isinstance(refs, str) or len(refs) == 0:
                raise ValueError(f"video {video_id!r}: references must be a non-empty list of captions")
        self.video_ids = video_ids
        self._video_index = {v: i for i, v in enumerate(video_ids)}

        # 1. vocabulary: words, then n-gram tables (sorted keys; the id of an n-gram is its position)
        self._words: dict[str, int] = {}
        self._tables: list[np.ndarray] = [np.empty(0, np.int64) for _ in range(self.n)]
        sentences = [ref for refs in documents for ref in refs]
        doc_of_sentence = np.repeat(np.arange(len(documents)), [len(refs) for refs in documents])
        slot_of_sentence = np.concatenate([np.arange(len(refs)) for refs in documents])
        encoded = self._encode(sentences, extend=True)
        self._corpus_sizes = list(encoded.sizes)
        self._offsets = np.concatenate([[0], np.cumsum(self._corpus_sizes)]).astype(np.int64)

        # 2. document frequencies (in how many documents each n-gram occurs, pycocoevalcap's compute_doc_freq)
        #    and the reference vectors of every document, for score()
        self.ref_len = float(np.log(float(len(documents))))
        gid = self._offsets[encoded.order] + encoded.ngram
        self._table = self._ref_table(encoded, gid, doc_of_sentence, slot_of_sentence, len(documents),
                                      int(self._offsets[-1]), count_df=True)

    # ------------------------------------------------------------------ public API
    @property
    def num_documents(self) -> int:
        """Documents (videos) the document frequencies were counted over."""
        return len(self.video_ids)

    def score(self, candidates: Sequence[str], video_ids: Sequence[Hashable],
              ended: Sequence[bool] | None = None) -> np.ndarray:
        """CIDEr-D of each candidate against the corpus references of its video (the fast path).

        Args:
            candidates: C captions (any number per video, e.g. several samples and a greedy baseline).
            video_ids: C video ids of the corpus, aligned with ``candidates``.
            ended: with ``eos``, which candidates ended with the end token (default: all); ignored otherwise.

        Returns:
            (C,) float64 scores.
        """
        if len(candidates) != len(video_ids):
            raise ValueError(f"{len(candidates)} candidates but {len(video_ids)} video ids")
        try:
            docs = np.fromiter((self._video_index[v] for v in video_ids), np.int64, len(video_ids))
        except KeyError as e:
            raise KeyError(f"video {e.args[0]!r} is not in the CiderD reference corpus") from None
        encoded = self._encode(candidates, extend=False, ended=self._ended(ended, len(candidates)))
        in_corpus = encoded.ngram < np.asarray(self._corpus_sizes, np.int64)[encoded.order]
        gid = np.where(in_corpus, self._offsets[encoded.order] + encoded.ngram, -1)
        return self._score(encoded, gid, docs, self._table)

    def score_refs(self, candidates: Sequence[str], refs: Sequence[Sequence[str]],
                   ended: Sequence[bool] | None = None) -> np.ndarray:
        """CIDEr-D of each candidate against its own references, with the corpus document frequencies.

        Args:
            candidates: C captions.
            refs: C non-empty lists of reference captions (need not be in the corpus; their n-grams do
                not change the document frequencies, and those unseen in the corpus have df 0).
            ended: with ``eos``, which candidates ended with the end token (default: all); ignored otherwise.

        Returns:
            (C,) float64 scores.
        """
        if len(candidates) != len(refs):
            raise ValueError(f"{len(candidates)} candidates but {len(refs)} reference lists")
        for i, r in enumerate(refs):
            if isinstance(r, str) or len(r) == 0:
                raise ValueError(f"candidate {i}: references must be a non-empty list of captions")
        ref_sentences = [ref for r in refs for ref in r]
        # One encoding call so that an n-gram unseen in the corpus gets the same id in candidates and refs.
        flags = self._ended(ended, len(candidates))
        encoded = self._encode(list(candidates) + ref_sentences, extend=False,
                               ended=None if flags is None else list(flags) + [True] * len(ref_sentences))
        offsets = np.concatenate([[0], np.cumsum(encoded.sizes)]).astype(np.int64)
        gid_all = offsets[encoded.order] + encoded.ngram
        num_cand = len(candidates)
        is_cand = encoded.sentence < num_cand
        cand = _select(encoded, 0, num_cand)
        ref = _select(encoded, num_cand, num_cand + len(ref_sentences))
        doc_of_sentence = np.repeat(np.arange(num_cand), [len(r) for r in refs])
        slot_of_sentence = np.concatenate([np.arange(len(r)) for r in refs]) if refs else np.empty(0, np.int64)
        table = self._ref_table(ref, gid_all[~is_cand], doc_of_sentence, slot_of_sentence, num_cand,
                                int(offsets[-1]))
        return self._score(cand, gid_all[is_cand], np.arange(num_cand), table)

    def document_frequency(self) -> dict[tuple[str, ...], float]:
        """The corpus document frequencies as pycocoevalcap stores them: ``{ngram tuple: count}``."""
        words = np.array(list(self._words), dtype=object)
        ngrams: list[tuple[str, ...]] = [(w,) for w in words]
        names = [ngrams]
        for k in range(1, self.n):
            keys = self._tables[k]
            prefix, last = keys // _PACK, keys % _PACK
            names.append([names[k - 1][p] + (words[w],) for p, w in zip(prefix.tolist(), last.tolist())])
        flat = [ngram for order in names for ngram in order]
        return dict(zip(flat, self._df.tolist()))

    # ------------------------------------------------------------------ internals
    def _ended(self, ended: Sequence[bool] | None, count: int) -> Sequence[bool] | None:
        if ended is None or not self.eos:
            return None
        if len(ended) != count:
            raise ValueError(f"{count} candidates but {len(ended)} ended flags")
        return ended

    def _encode(self, sentences: Sequence[str], extend: bool, ended: Sequence[bool] | None = None) -> _Encoded:
        """Tokenise and give every n-gram an id; ``extend`` adds new n-grams to the corpus tables.

        With ``eos``, :data:`EOS_WORD` ends every sentence whose ``ended`` flag is set (default: all).
        """
        tokens = list(map(tokenize, sentences))
        if self.eos:
            tokens = [t + [EOS_WORD] if ended is None or ended[i] else t for i, t in enumerate(tokens)]
        num_words = np.fromiter(map(len, tokens), np.int64, len(tokens))
        flat = [w for t in tokens for w in t]
        # word -> id over the distinct words only; the per-token lookup is a C-level map
        distinct = dict.fromkeys(flat)
        if extend:
            self._words.update((w, i) for i, w in enumerate((w for w in distinct if w not in self._words),
                                                              start=len(self._words)))
            lookup, local_words = self._words, 0
        else:
            known, base = self._words, len(self._words)
            unseen = [w for w in distinct if w not in known]
            lookup = {w: known[w] for w in distinct if w in known}
            lookup.update(zip(unseen, range(base, base + len(unseen))))
            local_words = len(unseen)
        word_ids = np.fromiter(map(lookup.__getitem__, flat), np.int64, len(flat))

        sentence_of_token = np.repeat(np.arange(len(tokens), dtype=np.int64), num_words)
        position = np.arange(len(flat), dtype=np.int64) - np.repeat(np.cumsum(num_words) - num_words, num_words)
        words_after = num_words[sentence_of_token] - position  # words from this token to the end, itself included

        rows_sentence, rows_order, rows_ngram, rows_tf, sizes = [], [], [], [], []
        ngram_ids = word_ids  # id of the k-gram starting at each token (valid where words_after >= k)
        for k in range(self.n):
            start = np.flatnonzero(words_after >= k + 1)
            if k == 0:
                ids = word_ids
                size = len(self._words) + local_words
            else:
                packed = ngram_ids[start] * _PACK + word_ids[start + k]
                ids, size = self._ngram_ids(k, packed, extend)
                full = np.full(len(flat), -1, np.int64)
                full[start] = ids
                ngram_ids = full
            sizes.append(size)
            keys, counts = np.unique(sentence_of_token[start] * np.int64(max(size, 1)) + ids, return_counts=True)
            rows_sentence.append(keys // max(size, 1))
            rows_ngram.append(keys % max(size, 1))
            rows_order.append(np.full(len(keys), k, np.int64))
            rows_tf.append(counts.astype(np.float64))
        return _Encoded(np.concatenate(rows_sentence), np.concatenate(rows_order), np.concatenate(rows_ngram),
                        np.concatenate(rows_tf), num_words, sizes)

    def _ngram_ids(self, k: int, packed: np.ndarray, extend: bool) -> tuple[np.ndarray, int]:
        """Ids of order-k n-grams given as packed (prefix id, last word) keys, and the id range size."""
        table = self._tables[k]
        if extend:
            assert len(table) == 0, "the corpus is encoded once"
            table, ids = np.unique(packed, return_inverse=True)
            self._tables[k] = table
            return ids.reshape(-1).astype(np.int64), len(table)
        where = np.searchsorted(table, packed)
        found = np.zeros(len(packed), bool)
        inside = where < len(table)
        found[inside] = table[where[inside]] == packed[inside]
        ids = where.astype(np.int64)
        new, new_ids = np.unique(packed[~found], return_inverse=True)
        ids[~found] = len(table) + new_ids.reshape(-1)
        return ids, len(table) + len(new)

    def _idf(self, gid: np.ndarray) -> np.ndarray:
        """``ref_len - log(max(1, df))`` for global n-gram ids; ``gid < 0`` (unseen in the corpus): df = 0."""
        df = np.zeros(len(gid))
        seen = (gid >= 0) & (gid < len(self._df))
        df[seen] = self._df[gid[seen]]
        return self.ref_len - np.log(np.maximum(1.0, df))

    def _weights(self, encoded: _Encoded) -> np.ndarray:
        """tf-idf weight of each row; ids beyond the corpus id range are unseen (df = 0)."""
        in_corpus = encoded.ngram < np.asarray(self._corpus_sizes, np.int64)[encoded.order]
        corpus_gid = np.where(in_corpus, self._offsets[encoded.order] + encoded.ngram, -1)
        return encoded.tf * self._idf(corpus_gid)

    def _lengths(self, num_words: np.ndarray) -> np.ndarray:
        # pycocoevalcap counts the term frequencies of 2-grams as the "length" of a caption
        return np.maximum(num_words - 1, 0) if self.n >= 2 else np.zeros_like(num_words)

    def _ref_table(self, encoded: _Encoded, gid: np.ndarray, doc_of_sentence: np.ndarray,
                   slot_of_sentence: np.ndarray, num_docs: int, num_ids: int, count_df: bool = False) -> _RefTable:
        """Reference vectors; ``count_df``: first set the corpus document frequencies from these rows."""
        num_refs = np.bincount(doc_of_sentence, minlength=num_docs).astype(np.int64)
        max_refs = int(num_refs.max()) if num_docs else 0
        row_doc = doc_of_sentence[encoded.sentence]
        row_slot = slot_of_sentence[encoded.sentence]
        keys = row_doc * np.int64(num_ids) + gid
        order = np.argsort(keys)
        keys = keys[order]
        first = np.ones(len(keys), bool)  # first row of each distinct (document, n-gram) key
        first[1:] = keys[1:] != keys[:-1]
        unique_keys = keys[first]
        if count_df:
            self._df = np.bincount(unique_keys % num_ids, minlength=num_ids).astype(np.float64)
        weight = self._weights(encoded)
        norms_sq = np.bincount((row_doc * max_refs + row_slot) * self.n + encoded.order, weights=weight ** 2,
                               minlength=num_docs * max_refs * self.n)
        lengths = np.zeros((num_docs, max_refs), np.int64)
        lengths[doc_of_sentence, slot_of_sentence] = self._lengths(encoded.num_words)
        starts = np.append(np.flatnonzero(first), len(keys))
        return _RefTable(unique_keys, starts, row_slot[order], weight[order], num_ids,
                         np.sqrt(norms_sq).reshape(num_docs, max_refs, self.n), lengths, num_refs)

    def _score(self, cand: _Encoded, gid: np.ndarray, docs: np.ndarray, table: _RefTable) -> np.ndarray:
        """Scores of candidates (rows of ``cand``) against the table's references of ``docs``; gid < 0: no match."""
        n, num_cand = self.n, len(docs)
        max_refs = table.norms.shape[1]
        weight = self._weights(cand)  # (P,)
        norm_cand = np.sqrt(np.bincount(cand.sentence * n + cand.order, weights=weight ** 2,
                                        minlength=num_cand * n)).reshape(num_cand, n)

        # 1. every (candidate n-gram, reference containing it) pair of the candidate's document
        query = np.flatnonzero(gid >= 0)
        keys = docs[cand.sentence[query]] * np.int64(table.num_ids) + gid[query]
        if len(table.keys) == 0:  # every reference empty
            query, keys = query[:0], keys[:0]
        where = np.minimum(np.searchsorted(table.keys, keys), len(table.keys) - 1)
        lo = table.starts[where]
        matches = np.where(table.keys[where] == keys, table.starts[where + 1] - lo, 0)
        row = np.repeat(query, matches)
        entry = np.repeat(lo - np.cumsum(matches) + matches, matches) + np.arange(int(matches.sum()))

        # 2. clipped dot products per (candidate, reference, order)
        h, r = weight[row], table.weight[entry]
        dots = np.bincount((cand.sentence[row] * max_refs + table.slot[entry]) * n + cand.order[row],
                           weights=np.minimum(h, r) * r, minlength=num_cand * max_refs * n)
        dots = dots.astype(np.float64, copy=False).reshape(num_cand, max_refs, n)  # int64 when nothing matched

        # 3. cosine (no division where a norm is 0, as pycocoevalcap), length penalty, means, x10
        denom = norm_cand[:, None, :] * table.norms[docs]  # (C, R, n)
        val = np.divide(dots, denom, out=dots.copy(), where=denom != 0)
        delta = (self._lengths(cand.num_words)[:, None] - table.lengths[docs]).astype(np.float64)  # (C, R)
        val *= np.exp(-(delta ** 2) / (2 * self.sigma ** 2))[:, :, None]
        return val.sum(axis=1).mean(axis=1) / table.num_refs[docs] * 10.0


def _select(encoded: _Encoded, start: int, stop: int) -> _Encoded:
    """Rows of sentences ``start <= s < stop`` of ``encoded``, renumbered from 0."""
    mask = (encoded.sentence >= start) & (encoded.sentence < stop)
    return _Encoded(encoded.sentence[mask] - start, encoded.order[mask], encoded.ngram[mask], encoded.tf[mask],
                    encoded.num_words[start:stop], encoded.sizes)
