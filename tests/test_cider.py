"""eval.cider.CiderD against pycocoevalcap's CiderScorer (CIDEr-D) on the same inputs and document frequencies."""

from __future__ import annotations

import math
import random
from collections import defaultdict

import numpy as np
import pytest
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.cider.cider_scorer import CiderScorer

from videoblip2.eval.cider import CiderD, tokenize

WORDS = ("a man woman dog cat is are the in on kitchen street playing cooking running talking "
         "music car red blue and with to of video shows").split()
UNSEEN = ["zebra", "xylophone", "quokka", "nebula"]


class _CorpusSizedList(list):
    """pycocoevalcap sets ``ref_len = log(len(crefs))``; this list reports the corpus size instead."""

    def __init__(self, items, size):
        super().__init__(items)
        self._size = size

    def __len__(self):
        return self._size


def reference_scores(candidates, refs, df=None, num_documents=None):
    """pycocoevalcap's CiderScorer on normalised captions; df/num_documents injected when given."""
    scorer = CiderScorer(n=4, sigma=6.0)
    for cand, ref in zip(candidates, refs):
        scorer += (" ".join(tokenize(cand)), [" ".join(tokenize(r)) for r in ref])
    if df is None:
        scorer.compute_doc_freq()
    else:
        scorer.document_frequency = defaultdict(float, df)
        scorer.crefs = _CorpusSizedList(scorer.crefs, num_documents)
    return np.array(scorer.compute_cider())


def random_caption(rng: random.Random, length: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(length))


def make_corpus(rng: random.Random, num_videos: int = 40) -> dict[str, list[str]]:
    corpus = {}
    for v in range(num_videos):
        base = random_caption(rng, rng.randint(3, 9))
        refs = []
        for _ in range(rng.randint(1, 12)):
            words = base.split()
            if rng.random() < 0.7:  # a variation of the video's base caption, like human captions
                i = rng.randrange(len(words))
                words[i] = rng.choice(WORDS)
                if rng.random() < 0.3:
                    words += random_caption(rng, rng.randint(1, 4)).split()
                refs.append(" ".join(words))
            else:
                refs.append(random_caption(rng, rng.randint(1, 12)))
        if v % 7 == 0:
            refs[0] = refs[0].upper() + "."  # normalisation: case and trailing period
        corpus[f"video{v}"] = refs
    return corpus


def varied_candidates(rng: random.Random, corpus: dict[str, list[str]], count: int) -> tuple[list[str], list[str]]:
    """Exact refs, perturbed refs, random, empty, repeated words, long, unseen words."""
    video_ids, candidates = [], []
    ids = list(corpus)
    for i in range(count):
        video_id = rng.choice(ids)
        ref = rng.choice(corpus[video_id])
        kind = i % 8
        if kind == 0:
            cand = ref
        elif kind == 1:
            words = ref.split()
            words[rng.randrange(len(words))] = rng.choice(WORDS + UNSEEN)
            cand = " ".join(words)
        elif kind == 2:
            cand = random_caption(rng, rng.randint(1, 10))
        elif kind == 3:
            cand = rng.choice(["", "   ", "."])
        elif kind == 4:
            cand = " ".join([rng.choice(WORDS)] * rng.randint(2, 9))
        elif kind == 5:
            cand = " ".join([ref] * rng.randint(2, 4)) + " " + random_caption(rng, 6)  # longer than the refs
        elif kind == 6:
            cand = " ".join(rng.choice(UNSEEN) for _ in range(rng.randint(1, 5))) + " " + ref
        else:
            cand = ref.split()[0] + "  " + ref.upper() + " ."
        video_ids.append(video_id)
        candidates.append(cand)
    return candidates, video_ids


@pytest.fixture(scope="module")
def data():
    rng = random.Random(1234)
    corpus = make_corpus(rng)
    candidates, video_ids = varied_candidates(rng, corpus, 320)
    return corpus, candidates, video_ids, CiderD(corpus)


def test_document_frequency_and_ref_len_match_pycocoevalcap(data):
    corpus, _, _, cider = data
    scorer = CiderScorer(n=4, sigma=6.0)
    for refs in corpus.values():
        scorer += (None, [" ".join(tokenize(r)) for r in refs])
    scorer.compute_doc_freq()
    assert cider.document_frequency() == dict(scorer.document_frequency)
    assert cider.ref_len == pytest.approx(math.log(len(corpus)), abs=0)


def test_score_equals_pycocoevalcap_with_corpus_df(data):
    corpus, candidates, video_ids, cider = data
    ours = cider.score(candidates, video_ids)
    expected = reference_scores(candidates, [corpus[v] for v in video_ids], cider.document_frequency(),
                                cider.num_documents)
    assert ours.shape == (len(candidates),)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9)
    assert (expected > 0).sum() > len(candidates) // 2 and (expected == 0).any()  # the test covers both


def test_score_refs_equals_pycocoevalcap_with_corpus_df_on_new_refs(data):
    _, candidates, _, cider = data
    rng = random.Random(99)
    refs = [[random_caption(rng, rng.randint(1, 8)) + (f" {rng.choice(UNSEEN)}" if rng.random() < 0.3 else "")
             for _ in range(rng.randint(1, 6))] for _ in candidates]
    refs[3] = [""]  # an empty reference scores 0 but still counts as a reference
    refs[5] = ["", candidates[5]]
    ours = cider.score_refs(candidates, refs)
    expected = reference_scores(candidates, refs, cider.document_frequency(), cider.num_documents)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9)
    assert ours[5] > 0


def test_score_refs_with_corpus_refs_equals_score(data):
    corpus, candidates, video_ids, cider = data
    np.testing.assert_allclose(cider.score_refs(candidates, [corpus[v] for v in video_ids]),
                               cider.score(candidates, video_ids), rtol=0, atol=1e-12)


def test_equals_pycocoevalcap_cider_when_corpus_is_the_refs(data):
    corpus, _, _, _ = data
    rng = random.Random(7)
    refs = {v: [" ".join(tokenize(r)) for r in rs] for v, rs in corpus.items()}
    preds = {v: " ".join(tokenize(c)) for v, c in zip(corpus, varied_candidates(rng, corpus, len(corpus))[0])}
    mean, per_video = Cider().compute_score(refs, {v: [p] for v, p in preds.items()})
    ours = CiderD(list(refs.values())).score(list(preds.values()), list(range(len(refs))))
    np.testing.assert_allclose(ours, per_video, rtol=0, atol=1e-9)
    assert ours.mean() == pytest.approx(mean, abs=1e-9)


def test_hand_computed_value():
    # Two documents; "a" occurs in both (idf = log 2 - log 2 = 0), "cat" and "a cat" are unseen (idf = log 2).
    # Candidate == its only reference: cosine 1 for orders 1 and 2, no 3-/4-grams -> mean 0.5 -> x10 = 5.
    cider = CiderD({"v0": ["a man is cooking"], "v1": ["a dog runs"]})
    assert cider.score_refs(["a cat"], [["a cat"]]).tolist() == pytest.approx([5.0], abs=1e-12)
    # Identical 4+-word caption and single reference: every order has cosine 1 -> 10.
    assert cider.score(["A man is cooking."], ["v0"]).tolist() == pytest.approx([10.0], abs=1e-12)
    # 3 words: orders 1-3 have cosine 1, no 4-gram on either side; an empty candidate scores 0.
    got = cider.score(["a dog runs", ""], ["v1", "v1"])
    assert got.tolist() == pytest.approx([10.0 * 3 / 4, 0.0], abs=1e-12)
    # "a dog runs fast" vs "a dog runs" (L = log 2 for every n-gram but "a"): orders 1 and 2 have cosine
    # 2L^2 / (sqrt(3)L sqrt(2)L), order 3 1/sqrt(2), order 4 0 (no reference 4-gram); one bigram longer ->
    # Gaussian penalty exp(-1 / (2 * 6^2)).
    expected = 10.0 * math.exp(-1 / 72) * (2 * 2 / math.sqrt(6) + 1 / math.sqrt(2)) / 4
    assert cider.score(["a dog runs fast"], ["v1"]).tolist() == pytest.approx([expected], abs=1e-12)


def test_repeated_candidates_and_batch_independence(data):
    corpus, candidates, video_ids, cider = data
    full = cider.score(candidates, video_ids)
    alone = np.array([cider.score([c], [v])[0] for c, v in zip(candidates[:40], video_ids[:40])])
    np.testing.assert_allclose(alone, full[:40], rtol=0, atol=1e-12)  # df do not depend on the batch


def test_errors_and_empty_batch(data):
    _, _, _, cider = data
    with pytest.raises(KeyError, match="video999"):
        cider.score(["a man"], ["video999"])
    with pytest.raises(ValueError, match="candidates"):
        cider.score(["a man", "a dog"], ["video0"])
    with pytest.raises(ValueError, match="non-empty"):
        cider.score_refs(["a man"], [[]])
    with pytest.raises(ValueError, match="non-empty"):
        CiderD({"v": []})
    assert cider.score([], []).shape == (0,)
    assert cider.score_refs(["a man", ""], [[""], ["", " "]]).tolist() == [0.0, 0.0]  # only empty references


# ------------------------------------------------------------------ end of sentence as a word (SCST reward)


def _with_eos(caption: str, ended: bool = True) -> str:
    return " ".join(tokenize(caption) + (["<eos>"] if ended else []))


def test_eos_mode_df_and_scores_equal_pycocoevalcap_on_strings_with_eos(data):
    corpus, candidates, video_ids, _ = data
    cider = CiderD(corpus, eos=True)
    scorer = CiderScorer(n=4, sigma=6.0)
    for refs in corpus.values():
        scorer += (None, [_with_eos(r) for r in refs])
    scorer.compute_doc_freq()
    assert cider.document_frequency() == dict(scorer.document_frequency)
    assert cider.document_frequency()[("<eos>",)] == len(corpus)

    ended = [i % 5 != 0 for i in range(len(candidates))]  # every 5th sample was cut at the length limit
    ours = cider.score(candidates, video_ids, ended=ended)
    expected = reference_scores([_with_eos(c, e) for c, e in zip(candidates, ended)],
                                [[_with_eos(r) for r in corpus[v]] for v in video_ids],
                                cider.document_frequency(), cider.num_documents)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9)
    # ... and differs from the plain mode, so the test can tell the modes apart
    assert np.abs(ours - CiderD(corpus).score(candidates, video_ids)).max() > 0.1

    rng = random.Random(5)
    refs = [[random_caption(rng, rng.randint(1, 8)) for _ in range(rng.randint(1, 4))] for _ in candidates]
    ours = cider.score_refs(candidates, refs, ended=ended)
    expected = reference_scores([_with_eos(c, e) for c, e in zip(candidates, ended)],
                                [[_with_eos(r) for r in rs] for rs in refs],
                                cider.document_frequency(), cider.num_documents)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(cider.score(candidates, video_ids), cider.score(candidates, video_ids,
                                                                                ended=[True] * len(candidates)))
    with pytest.raises(ValueError, match="ended"):
        cider.score(candidates[:2], video_ids[:2], ended=[True])


def test_eos_mode_penalises_a_caption_that_stops_on_an_article():
    corpus = {"v0": ["a man is playing with a dog", "a man plays with a dog"], "v1": ["a woman is cooking"],
              "v2": ["a dog runs in a park"]}
    unfinished = "a man is playing with a"
    plain, eos = CiderD(corpus), CiderD(corpus, eos=True)
    # without the end token, the unfinished caption keeps 89% of the full caption's score (every n-gram it has
    # is in a reference); with it, "a <eos>", "with a <eos>", ... match nothing: it keeps 72%
    full = "a man is playing with a dog"
    loss_plain = 1 - plain.score([unfinished], ["v0"])[0] / plain.score([full], ["v0"])[0]
    loss_eos = 1 - eos.score([unfinished], ["v0"])[0] / eos.score([full], ["v0"])[0]
    assert loss_plain == pytest.approx(0.109, abs=1e-3) and loss_eos == pytest.approx(0.282, abs=1e-3)
