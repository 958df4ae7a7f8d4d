"""videoblip2.predict on a tiny saved model and synthetic features."""

import json

from videoblip2 import predict
from videoblip2.data import FeatureStore, VideoDataset
from videoblip2.decoding import DecodingOptions
from videoblip2.synth import main as synth_main


def test_predict_writes_one_caption_per_test_video(tiny_model, tmp_path):
    synth_main(["--out", str(tmp_path / "data"), "--num-videos", "20"])
    tiny_model.save_pretrained(tmp_path / "model")
    ann = tmp_path / "data" / "test_videodatainfo.json"
    test_ids = [v["video_id"] for v in json.loads(ann.read_text())["videos"] if v["split"] == "test"]
    out = tmp_path / "preds.json"
    captions = predict.main(["--model", str(tmp_path / "model"), "--features", str(tmp_path / "data"),
                             "--ann", str(ann), "--split", "test", "--out", str(out), "--batch-size", "3"])
    records = json.loads(out.read_text())
    assert [r["video_id"] for r in records] == test_ids and len(test_ids) > 0
    assert {r["video_id"]: r["caption"] for r in records} == captions
    # the default decoding is LAVIS' beam search of 5, recorded next to the predictions
    meta = json.loads((tmp_path / "preds.meta.json").read_text())
    assert meta["decoding"] == DecodingOptions(num_beams=5, block_bad_endings=False).to_dict() and meta["num_videos"] == len(test_ids)
    assert meta["model"] == str(tmp_path / "model") and meta["split"] == "test"
    # the same model in memory gives the same captions with the same decoding, and greedy ones differ
    store = FeatureStore(tmp_path / "data", test_ids, max_frames=16, max_audio_windows=8)
    dataset = VideoDataset(store)
    assert predict.predict_captions(tiny_model, dataset, batch_size=5, progress=False,
                                    decoding=DecodingOptions(num_beams=5)) == captions
    greedy = predict.predict_captions(tiny_model, dataset, batch_size=5, progress=False)
    assert greedy != captions

    # every decoding flag reaches generation and the sidecar
    flags = ["--num-beams", "2", "--length-penalty", "0.5", "--no-repeat-ngram-size", "2", "--repetition-penalty",
             "1.3", "--min-new-tokens", "3", "--max-new-tokens", "9", "--block-bad-endings"]
    out2 = tmp_path / "preds2.json"
    captions2 = predict.main(["--model", str(tmp_path / "model"), "--features", str(tmp_path / "data"),
                              "--ann", str(ann), "--split", "test", "--out", str(out2), *flags])
    options = DecodingOptions(num_beams=2, length_penalty=0.5, no_repeat_ngram_size=2, repetition_penalty=1.3,
                              min_new_tokens=3, max_new_tokens=9, block_bad_endings=True)
    assert json.loads((tmp_path / "preds2.meta.json").read_text())["decoding"] == options.to_dict()
    assert predict.predict_captions(tiny_model, dataset, batch_size=5, progress=False, decoding=options) == captions2
    for caption in captions2.values():
        words = caption.split()
        assert len(set(zip(words, words[1:]))) == len(words) - 1  # no repeated word bigram
