"""videoblip2.predict on a tiny saved model and synthetic features."""

import json

from videoblip2 import predict
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
    # the same model in memory gives the same greedy captions
    from videoblip2.data import FeatureStore, VideoDataset

    store = FeatureStore(tmp_path / "data", test_ids, max_frames=16, max_audio_windows=8)
    assert predict.predict_captions(tiny_model, VideoDataset(store), batch_size=5, progress=False) == captions
