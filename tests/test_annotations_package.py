"""videoblip2.annotations is a package: one module per format family and a registry that dispatches; every
public name is still importable from videoblip2.annotations."""

import importlib

import videoblip2.annotations as annotations

FAMILIES = ("msrvtt", "msvd", "vatex", "valor", "table", "qa")


def test_every_public_name_is_importable_from_the_package():
    assert len(annotations.__all__) == len(set(annotations.__all__)) >= 19
    for name in annotations.__all__:
        assert getattr(annotations, name) is getattr(importlib.import_module("videoblip2.annotations"), name)


def test_one_module_per_format_family_and_a_registry():
    for family in FAMILIES:
        importlib.import_module(f"videoblip2.annotations.{family}")
    assert annotations.load_annotations.__module__ == "videoblip2.annotations.registry"
    assert annotations.load_qa_annotations.__module__ == "videoblip2.annotations.registry"
    assert annotations.detect_format.__module__ == "videoblip2.annotations.registry"
    assert annotations.QAItem.__module__ == "videoblip2.annotations.qa"
    assert annotations.MSVD_SPLITS is importlib.import_module("videoblip2.annotations.msvd").MSVD_SPLITS


def test_the_registry_dispatches_each_format_to_its_module(tmp_path, monkeypatch):
    """Each format's reader is its family module's: replacing it there changes what load_annotations returns."""
    registry = importlib.import_module("videoblip2.annotations.registry")
    calls = []
    for family, reader in (("vatex", "_load_vatex"), ("valor", "_load_valor"), ("table", "_load_table")):
        original = getattr(importlib.import_module(f"videoblip2.annotations.{family}"), reader)
        assert getattr(registry, reader) is original

        def spy(*args, _family=family, _original=original):
            calls.append(_family)
            return _original(*args)

        monkeypatch.setattr(registry, reader, spy)
    (tmp_path / "vatex_training_v1.0.json").write_text('[{"videoID": "a_000001_000011", "enCap": ["A cat."]}]')
    (tmp_path / "desc_test.json").write_text('[{"video_id": "b", "desc": "A dog barks."}]')
    (tmp_path / "own.csv").write_text("v1,a man cooks\n")
    assert annotations.load_annotations(tmp_path / "vatex_training_v1.0.json") == {"a_000001_000011": ["a cat"]}
    assert annotations.load_annotations(tmp_path / "desc_test.json") == {"b": ["a dog barks"]}
    assert annotations.load_annotations(tmp_path / "own.csv") == {"v1": ["a man cooks"]}
    assert calls == ["vatex", "valor", "table"]
