"""The model card (Hub ``README.md``) of a trained VideoBLIP2, written from the run that made it, never by hand.

`collect_run` reads what a training run left on disk (the saved model, each training stage's flags from its
``log.jsonl``, the features' ``meta.json``, the test metrics, the ablation table); `model_card` turns that
into YAML front matter (``huggingface_hub.ModelCardData``: library, pipeline tag, base models, data sets,
license, a ``model-index`` whose values are the metrics files' numbers, unrounded) and a body: usage, recipe,
feature extractors, decoding, results, ablation, limitations. Same run, same card: nothing in it depends on
the time or the machine it is written on.

Files a run folder may hold (all optional but the model; the recipe, ``python -m videoblip2.recipe``, writes
them all)::

    RUN/best/ or RUN/last/      the model (save_pretrained), with trainer_info.json
    RUN/log.jsonl               the "start" record holds the stage's flags; --model names the stage before it
    RUN/test_metrics.json       python -m eval.evaluate on the test captions ("metrics": {"CIDEr": ...})
    RUN/test_qa_metrics.json    python -m eval.evaluate on the test questions ("accuracy", "per_type")
    RUN/ablation.json           python -m eval.ablation (metrics per condition)
    RUN/test_predictions.meta.json   the decoding settings of the test predictions
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .modeling import CONFIG_NAME, CheckpointError

TEST_METRICS = "test_metrics.json"
TEST_QA_METRICS = "test_qa_metrics.json"
ABLATION = "ablation.json"
PREDICTIONS_META = "test_predictions.meta.json"
LOG = "log.jsonl"
INFO = "trainer_info.json"
RECIPE = "recipe.json"

PIPELINE_TAG = "video-text-to-text"
LIBRARY_NAME = "videoblip2"
# eval.coco's metric keys -> (model-index metric type, display name)
CAPTION_METRICS = {"BLEU-1": ("bleu", "BLEU-1"), "BLEU-2": ("bleu", "BLEU-2"), "BLEU-3": ("bleu", "BLEU-3"),
                   "BLEU-4": ("bleu", "BLEU-4"), "METEOR": ("meteor", "METEOR"), "ROUGE_L": ("rouge", "ROUGE-L"),
                   "CIDEr": ("cider", "CIDEr"), "SPICE": ("spice", "SPICE")}
# eval.ablation's conditions as its table names them
ABLATION_LABELS = {"full": "full", "audio": "no audio", "frame-order": "shuffled frames", "video": "no video"}
# flags shown in the recipe table, in this order (the full flag set is in each run's log.jsonl)
RECIPE_FLAGS = ("tiny", "t5", "bert", "blip2", "qformer_tokenizer", "ann", "qa_ann", "epochs", "max_steps",
                "batch_size", "grad_accum", "lr", "qformer_lr", "weight_decay", "warmup_steps", "warmup_ratio",
                "dropout", "seed", "num_samples", "temperature", "baseline", "refs", "eos_reward", "max_sample_len",
                "num_beams", "block_bad_endings")


@dataclass
class Stage:
    """One training run: its name (train_ce / train_scst), output folder, flags and best/last save's info."""

    name: str
    folder: Path
    args: dict[str, Any]
    info: dict[str, Any]


@dataclass
class RunInfo:
    """Everything the card says, read from disk by `collect_run`."""

    model_dir: Path
    config: dict[str, Any]
    stages: list[Stage] = field(default_factory=list)
    features: dict[str, Any] | None = None
    caption_metrics: dict[str, Any] | None = None
    qa_metrics: dict[str, Any] | None = None
    ablation: dict[str, Any] | None = None
    decoding: dict[str, Any] | None = None
    recipe: dict[str, Any] | None = None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot read it ({type(error).__name__}: {error})") from None


def find_model(path: str | os.PathLike) -> tuple[Path, Path | None]:
    """(model folder, training run folder or None) of a recipe run, a training run or a model folder."""
    path = Path(path)
    recipe = _read_json(path / RECIPE) if path.is_dir() else None
    if recipe and recipe.get("model_run"):
        path = path / recipe["model_run"]
    if (path / CONFIG_NAME).is_file():
        run = path.parent if (path.parent / LOG).is_file() else None
        return path, run
    for name in ("best", "last"):
        if (path / name / CONFIG_NAME).is_file():
            return path / name, path
    raise CheckpointError(f"{path}: not a VideoBLIP2 model folder (no {CONFIG_NAME}), a training run folder (no best/ "
                          f"or last/) or a recipe run folder (no {RECIPE})")


def _stage(folder: Path, model_dir: Path | None = None) -> Stage | None:
    starts = [r for r in _log_records(folder / LOG) if r.get("type") == "start"]
    if not starts:
        return None
    args = starts[-1].get("args") or {}
    info = _read_json((model_dir or folder / "best") / INFO) or _read_json(folder / "last" / INFO) or {}
    return Stage(name=info.get("task") or starts[-1].get("task") or "train", folder=folder, args=args, info=info)


def _log_records(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a kill
    return records


def collect_run(path: str | os.PathLike) -> RunInfo:
    """Read a recipe run, training run or model folder (see the module docstring for what is looked for)."""
    model_dir, run = find_model(path)
    config = _read_json(model_dir / CONFIG_NAME)
    info = RunInfo(model_dir=model_dir, config=config)
    recipe_dir = Path(path) if (Path(path) / RECIPE).is_file() else None
    info.recipe = _read_json(recipe_dir / RECIPE) if recipe_dir else None
    if run is None:
        return info
    # the stages, last first: each one's --model is the run it started from (train_scst after train_ce)
    stage, seen = _stage(run, model_dir), set()
    while stage is not None and stage.folder.resolve() not in seen:
        seen.add(stage.folder.resolve())
        info.stages.insert(0, stage)
        previous = stage.args.get("model")
        if not previous or not Path(previous).is_dir():
            break
        previous = Path(previous)
        stage = _stage(previous.parent if (previous / CONFIG_NAME).is_file() else previous)
    features = next((s.args.get("features") for s in reversed(info.stages) if s.args.get("features")), None)
    if features:
        info.features = _read_json(Path(features) / "meta.json")
    info.caption_metrics = _read_json(run / TEST_METRICS)
    info.qa_metrics = _read_json(run / TEST_QA_METRICS)
    info.ablation = _read_json(run / ABLATION)
    meta = _read_json(run / PREDICTIONS_META)
    info.decoding = meta.get("decoding") if meta else None
    return info


# ---------------------------------------------------------------------------------------------------- metadata
def _is_hub_id(name: Any) -> bool:
    from .hub import is_local

    return isinstance(name, str) and not is_local(name)


def base_models(info: RunInfo) -> list[str]:
    """The Hub models the weights started from: the T5 (unless randomly initialised), BERT and BLIP-2 if named."""
    bases = []
    t5 = info.config.get("t5") or {}
    if t5.get("architecture") is None and _is_hub_id(t5.get("name_or_path")):
        bases.append(t5["name_or_path"])
    for stage in info.stages:
        for flag in ("blip2", "bert"):
            if _is_hub_id(stage.args.get(flag)) and stage.args[flag] not in bases:
                bases.append(stage.args[flag])
    return bases


def eval_results(info: RunInfo, dataset: str) -> list:
    """huggingface_hub EvalResults: every test caption metric and the QA accuracies, values as in the files."""
    from huggingface_hub import EvalResult

    results = []
    if info.caption_metrics:
        for key, value in (info.caption_metrics.get("metrics") or {}).items():
            metric_type, name = CAPTION_METRICS.get(key, (key.lower(), key))
            results.append(EvalResult(task_type=PIPELINE_TAG, task_name="Video captioning", dataset_type=dataset,
                                      dataset_name=dataset, dataset_split="test", metric_type=metric_type,
                                      metric_name=name, metric_value=value))
    if info.qa_metrics:
        qa = info.qa_metrics
        rows = [("accuracy", qa["accuracy"])] + [(f"accuracy ({qtype})", scores["accuracy"])
                                                 for qtype, scores in (qa.get("per_type") or {}).items()]
        for name, value in rows:
            results.append(EvalResult(task_type="visual-question-answering", task_name="Video question answering",
                                      dataset_type=dataset, dataset_name=dataset, dataset_split="test",
                                      metric_type="accuracy", metric_name=name, metric_value=value))
    return results


def card_data(info: RunInfo, repo_id: str, *, datasets: list[str], license: str):
    """The YAML front matter as huggingface_hub.ModelCardData."""
    from huggingface_hub import ModelCardData

    results = eval_results(info, datasets[0] if datasets else "custom")
    return ModelCardData(
        library_name=LIBRARY_NAME, pipeline_tag=PIPELINE_TAG, license=license, base_model=base_models(info) or None,
        datasets=datasets or None, tags=["video-captioning", "audio-visual", "blip-2", "flan-t5", "lora"],
        model_name=repo_id.split("/")[-1] if results else None, eval_results=results or None)


# ---------------------------------------------------------------------------------------------------- body
def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return " ".join(_fmt(v) for v in value)
    return "" if value is None else str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _extractor_flags(features: dict[str, Any] | None) -> tuple[str, str]:
    """The caption command's extractor flags and a Python hint for the same CLIP/CLAP (from meta.json)."""
    video = (features or {}).get("video") or {}
    audio = (features or {}).get("audio") or {}
    flags = []
    if video:
        flags += [f"--clip-model {video.get('model')}", f"--clip-pretrained {video.get('pretrained')}"]
        if video.get("quick_gelu"):
            flags.append("--quick-gelu")
    if audio:
        flags += [f"--clap-model {audio.get('model')}", f"--clap-pretrained {audio.get('ckpt') or 'CLAP.pt'}"]
    return " ".join(flags), ", ".join(f"{k}={v}" for k, v in (("frames", video.get("num_frames")),
                                                              ("window_s", audio.get("window_s")),
                                                              ("hop_s", audio.get("hop_s"))) if v is not None)


def _usage(repo_id: str, info: RunInfo) -> str:
    flags, _ = _extractor_flags(info.features)
    return f"""## Use it

```python
from videoblip2 import VideoBLIP2, caption_videos
model = VideoBLIP2.from_pretrained("{repo_id}")
print(caption_videos(["video.mp4"], model))
```

`caption_videos` extracts the features itself; give it the CLIP/CLAP this model was trained with (section
"Feature extractors": `clip=videoblip2.extract.load_clip(...)`, `clap=videoblip2.extract.load_clap(...)`), or
use the command line with the same weights:

```bash
python -m videoblip2.caption video.mp4 --model {repo_id} {flags}
```

Install: `pip install -e ".[features]"` from the VideoBLIP2 repository. Offline (`HF_HUB_OFFLINE=1`) the copy
in the Hugging Face cache is used.
"""


def _recipe(info: RunInfo) -> str:
    parts = ["## Training recipe"]
    if info.recipe and info.recipe.get("command"):
        parts.append("Trained with one command (`python -m videoblip2.recipe`):\n\n"
                     f"```bash\n{info.recipe['command']}\n```")
    if not info.stages:
        parts.append("No training log was published with this model (it was published from a model folder).")
        return "\n\n".join(parts)
    header = ["flag"] + [s.name for s in info.stages]
    rows = [[f"--{flag.replace('_', '-')}"] + [s.args.get(flag) for s in info.stages] for flag in RECIPE_FLAGS
            if any(s.args.get(flag) not in (None, False) for s in info.stages)]
    parts.append(_table(header, rows))
    saves = []
    for stage in info.stages:
        val = {k: v for k, v in (stage.info.get("validation") or {}).items() if isinstance(v, (int, float))}
        shown = ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(val.items()))
        saves.append(f"- {stage.name}: the model it handed on was saved at step {stage.info.get('step')} (epoch "
                     f"{stage.info.get('epoch')})" + (f"; validation {shown}" if shown else ""))
    parts.append("\n".join(saves))
    scst = next((s for s in info.stages if s.name == "train_scst"), None)
    if scst is not None:
        parts.append(f"SCST reward: CIDEr-D against the {scst.args.get('refs')} references, baseline "
                     f"{scst.args.get('baseline')}, {scst.args.get('num_samples')} samples per video, end of "
                     f"sentence {'scored' if scst.args.get('eos_reward') else 'not scored'} as a word.")
    return "\n\n".join(parts)


def _extractors(info: RunInfo) -> str:
    parts = ["## Feature extractors",
             "A model only understands features extracted the way its training features were. These settings come "
             "from the training features' `meta.json` (`python -m features.video` / `features.audio`):"]
    if not info.features:
        parts.append("(not recorded: the model was published without its training run)")
        return "\n\n".join(parts)
    for section, title in (("video", "Frames (CLIP)"), ("audio", "Audio (CLAP)")):
        entry = info.features.get(section)
        if not entry:
            parts.append(f"{title}: none")
            continue
        rows = [[key, value if not isinstance(value, list) or key != "no_audio" else f"{len(value)} videos"]
                for key, value in sorted(entry.items()) if not isinstance(value, dict)]
        parts.append(f"{title}:\n\n" + _table(["setting", "value"], rows))
    return "\n\n".join(parts)


def _decoding(info: RunInfo) -> str:
    from .decoding import PREDICT_NUM_BEAMS

    decoding = info.decoding or {"num_beams": PREDICT_NUM_BEAMS}
    rows = [[k, v] for k, v in sorted(decoding.items())]
    return ("## Decoding\n\nThe test captions were decoded with these settings (`videoblip2.predict`'s "
            "defaults unless the run changed them; `caption_videos(..., decoding=DecodingOptions(...))`):\n\n"
            + _table(["option", "value"], rows))


def _results(info: RunInfo, datasets: list[str]) -> str:
    parts = ["## Results"]
    if info.caption_metrics:
        m = info.caption_metrics
        rows = [[CAPTION_METRICS.get(k, (k, k))[1], v, f"{v * 100:.2f}"] for k, v in (m.get("metrics") or {}).items()]
        parts.append(f"Test captions ({m.get('num_videos')} videos of {', '.join(datasets) or 'the test split'}):\n\n"
                     + _table(["metric", "value", "x100"], rows))
        if "bad_endings" in m:
            parts.append(f"Captions ending on an article/preposition: {m['bad_endings']:.3f}")
    if info.qa_metrics:
        qa = info.qa_metrics
        rows = [["all", qa.get("num_questions"), qa["accuracy"], qa.get("majority_baseline")]]
        rows += [[t, s.get("count"), s["accuracy"], s.get("majority_baseline")]
                 for t, s in (qa.get("per_type") or {}).items()]
        parts.append("Test questions:\n\n" + _table(["type", "questions", "accuracy", "majority answer"], rows))
    if len(parts) == 1:
        parts.append("No test metrics were published with this model.")
    return "\n\n".join(parts)


def _ablation(info: RunInfo) -> str:
    conditions = (info.ablation or {}).get("conditions") or {}
    if not conditions:
        return ""
    names = list(next(iter(conditions.values()))["metrics"])
    rows = [[CAPTION_METRICS.get(n, (n, n))[1]] + [f"{c['metrics'][n] * 100:.2f}" for c in conditions.values()]
            for n in names]
    return ("## Modality ablation\n\nThe same model and test videos with inputs removed (`python -m eval.ablation`): "
            "a model that uses a modality loses without it. Metrics x100.\n\n"
            + _table(["metric", *(ABLATION_LABELS.get(c, c) for c in conditions)], rows))


def _limitations(info: RunInfo) -> str:
    items = [
        "Captions are English and in the style of the training captions; the model has seen only the training "
        "data's domains.",
        "It sees at most {max_frames} frames and {max_audio_windows} audio windows per video: long videos are "
        "summarised coarsely.".format(**info.config),
        "Features extracted with other CLIP/CLAP weights or settings than the ones above give meaningless captions.",
        "Automatic metrics reward agreement with the references, not factual correctness; SCST-trained models can "
        "favour generic frequent phrasings.",
    ]
    if (info.config.get("t5") or {}).get("architecture") is not None:
        items.insert(0, "**This model's T5 was randomly initialised (a tiny or test configuration): it is not a "
                        "pretrained language model and is meant for demonstrations and tests.**")
    return "## Limitations\n\n" + "\n".join(f"- {item}" for item in items)


def model_card(info: RunInfo, repo_id: str, *, datasets: list[str] | None = None, license: str = "other") -> str:
    """README.md text (front matter + body) for `repo_id`, from `info` only."""
    datasets = list(datasets or [])
    data = card_data(info, repo_id, datasets=datasets, license=license)
    name = repo_id.split("/")[-1]
    t5 = info.config.get("t5") or {}
    intro = (f"# {name}\n\nA VideoBLIP2 audio-visual video captioning model: CLIP frame "
             "features and CLAP audio features go through two InstructBLIP-style Q-Formers into "
             f"{'a randomly initialised T5' if t5.get('architecture') else t5.get('name_or_path')} adapted with "
             f"LoRA (r={info.config['lora']['r']}). Trained on {', '.join(datasets) or 'the data named below'}; "
             "this card was written by `python -m videoblip2.publish` from the training run.")
    sections = [intro, _usage(repo_id, info), _results(info, datasets), _recipe(info), _extractors(info),
                _decoding(info), _ablation(info), _limitations(info)]
    body = "\n\n".join(s.strip() for s in sections if s)
    return f"---\n{data.to_yaml()}\n---\n\n{body}\n"
