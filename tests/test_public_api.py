"""`from videoblip2 import VideoBLIP2, ...` works, and `import videoblip2` stays light (lazy names, PEP 562)."""

import importlib
import json
import subprocess
import sys

import pytest

import videoblip2


def test_import_videoblip2_imports_neither_torch_nor_transformers():
    code = ("import sys, json, videoblip2; "
            "print(json.dumps({m: m in sys.modules for m in ('torch', 'transformers', 'peft', 'numpy')}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "torch": False, "transformers": False, "peft": False, "numpy": False}


def test_public_names_resolve_to_the_submodules_objects():
    expected = {
        "VideoBLIP2": "modeling", "VideoBLIP2Config": "config", "FeatureStore": "data", "CaptionDataset": "data",
        "VideoDataset": "data", "ablate_features": "data", "load_annotations": "annotations",
        "save_predictions": "annotations", "load_predictions": "annotations", "predict_captions": "predict",
        "caption_videos": "caption", "build_tiny_model": "tiny", "init_qformer": "blip2_init",
    }
    assert set(videoblip2.__all__) == set(videoblip2._LAZY) and len(videoblip2.__all__) == len(videoblip2._LAZY)
    assert set(expected) <= set(videoblip2.__all__) <= set(dir(videoblip2))
    for name in videoblip2.__all__:
        module = importlib.import_module(f"videoblip2.{videoblip2._LAZY[name]}")
        assert getattr(videoblip2, name) is getattr(module, name), name
    for name, module in expected.items():
        assert videoblip2._LAZY[name] == module
    from videoblip2 import (  # noqa: F401  (the README's spelling)
        VideoBLIP2,
        VideoBLIP2Config,
        synth,  # submodules still import as before
    )

    assert synth.generate is importlib.import_module("videoblip2.synth").generate
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchThing'"):
        videoblip2.NoSuchThing  # noqa: B018
    with pytest.raises(ImportError):
        from videoblip2 import NoSuchThing  # noqa: F401
