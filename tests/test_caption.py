"""videoblip2.caption: raw video files -> features -> VideoBLIP2.generate, as a function and as a command."""

import json

import numpy as np
import pytest
import torch

from videoblip2.caption import caption_videos, main
from videoblip2.extract import ExtractionError, ExtractorModelError, load_clap, load_clip


@pytest.fixture(scope="module")
def encoders(tiny_files):
    return (load_clip(tiny_files["clip_config"], tiny_files["clip_ckpt"], device="cpu"),
            load_clap(tiny_files["clap_config"], tiny_files["clap_ckpt"], device="cpu"))


def test_caption_videos_feeds_the_extracted_features(tiny_model, encoders, media, monkeypatch):
    clip, clap = encoders
    config = tiny_model.config  # max_frames=16, max_audio_windows=8
    seen = {}

    def fake_generate(video, video_mask, audio, audio_mask, **kwargs):
        seen.update(video=video, video_mask=video_mask, audio=audio, audio_mask=audio_mask, **kwargs)
        return [f"caption {i}" for i in range(len(video))]

    monkeypatch.setattr(tiny_model, "generate", fake_generate)
    paths = [media["tone"], media["mute"]]
    results = caption_videos(paths, tiny_model, clip=clip, clap=clap, window_s=1.0, hop_s=0.5, num_beams=2)

    assert [r["caption"] for r in results] == ["caption 0", "caption 1"]
    assert [(r["video_id"], r["frames"]) for r in results] == [("tone", 16), ("mute", 10)]
    expected_windows = len(clap.encode_video(media["tone"], 1.0, 0.5, config.max_audio_windows))
    assert [r["audio_windows"] for r in results] == [expected_windows, 0]
    assert seen["video"].shape == (2, 16, 768) and seen["audio"].shape == (2, 8, 512)
    assert seen["video_mask"].sum(dim=1).tolist() == [16, 10]
    assert seen["audio_mask"].sum(dim=1).tolist() == [expected_windows, 0]  # no audio stream: all False
    np.testing.assert_allclose(seen["video"][0].numpy(), clip.encode_video(media["tone"], 16).astype(np.float32))
    np.testing.assert_allclose(seen["video"][1, :10].numpy(), clip.encode_video(media["mute"], 16).astype(np.float32))
    assert not seen["video"][1, 10:].any() and not seen["audio"][1].any()
    np.testing.assert_allclose(seen["audio"][0, :expected_windows].numpy(),
                               clap.encode_video(media["tone"], 1.0, 0.5, 8).astype(np.float32))
    assert seen["num_beams"] == 2

    with pytest.raises(ExtractionError, match="broken.mp4"):
        caption_videos([media["broken"]], tiny_model, clip=clip, clap=clap)
    recorded = caption_videos([media["broken"]], tiny_model, clip=clip, on_error="record")
    assert recorded[0]["caption"] is None and "cannot open" in recorded[0]["error"]


def test_caption_rejects_mismatched_encoders(tiny_model_factory, encoders, media):
    model = tiny_model_factory(seed=0, max_frames=16)
    model.config.video_dim = 512  # pretend the model was trained on 512-d frame features
    with pytest.raises(ExtractorModelError, match="video_dim=512"):
        caption_videos([media["tone"]], model, clip=encoders[0])


def test_caption_command_line(tiny_model, tiny_files, encoders, media, tmp_path, capsys):
    tiny_model.save_pretrained(tmp_path / "model")
    argv = [str(media["tone"]), str(media["silent"]), str(media["broken"]), "--model", str(tmp_path / "model"),
            "--clip-model", tiny_files["clip_config"], "--clip-pretrained", tiny_files["clip_ckpt"],
            "--clap-pretrained", tiny_files["clap_ckpt"], "--clap-model", tiny_files["clap_config"],
            "--window", "1", "--hop", "0.5", "--device", "cpu", "--max-new-tokens", "6"]
    assert main(argv + ["--json"]) == 1  # the broken file is reported, the others are captioned
    results = json.loads(capsys.readouterr().out)
    assert [r["video_id"] for r in results] == ["tone", "silent", "broken"]
    assert "cannot open" in results[2]["error"] and results[1]["audio_windows"] == 0
    # same captions as the Python call with the in-memory model and the command's default decoding (beam 5)
    torch.manual_seed(0)
    direct = caption_videos([media["tone"], media["silent"]], tiny_model, clip=encoders[0], clap=encoders[1],
                            window_s=1.0, hop_s=0.5, num_beams=5, max_new_tokens=6)
    assert [r["caption"] for r in results[:2]] == [r["caption"] for r in direct]
    assert all(isinstance(r["caption"], str) for r in direct)

    # plain output, one "path<TAB>caption" line per video; without --clap every video is silent
    plain = [str(media["tone"]), "--model", str(tmp_path / "model"), "--clip-model", tiny_files["clip_config"],
             "--clip-pretrained", tiny_files["clip_ckpt"], "--device", "cpu", "--max-new-tokens", "6"]
    assert main(plain) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.split("\t")[0] == str(media["tone"])
