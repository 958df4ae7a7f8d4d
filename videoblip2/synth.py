"""``synth``: a deterministic synthetic stand-in for MSR-VTT that needs frames, frame order and sound.

Each video has four latent factors: a subject (who), a place (where), an action and a sound (or none).
Its features are written in exactly the real on-disk formats::

    OUT/train_val_videodatainfo.json   official MSR-VTT format, splits "train" + "validate", 20 captions/video
    OUT/test_videodatainfo.json        official MSR-VTT format, split "test"
    OUT/video/{video_id}.npy           float16 [num_frames, 768]    ("CLIP frame features")
    OUT/audio/{video_id}.npy           float16 [T_a, 512]           ("CLAP window features"; absent = no sound)
    OUT/meta.json                      the extractors' meta format (+ a "synth" entry)
    OUT/synth_latents.json             the true factors + the canonical caption of every video
    OUT/avqa-{train,val,test}.json     audio-visual questions on the same videos and splits (MUSIC-AVQA format)

How the factors are visible (so a caption is only right if the model uses everything):

* subject and place: fixed prototype vectors added to every frame, plus a shared offset, a per-video
  nuisance vector, a slow random-walk drift and per-frame noise;
* action: a trajectory between two "state" prototypes. Three pairs of actions are time reversals of each
  other ("opens"/"closes" a door, "stands up"/"sits down", "picks up"/"puts down" a box): "closes" is the
  frame sequence of "opens" played backwards, so the time-average of the frames is distributed identically
  and a model that ignores frame order cannot tell them apart. Two more actions ("dances", "waves")
  oscillate around their own prototype;
* sound (music, speech, engine, barking, applause): only in the audio windows. About 10% of the videos
  of each split have no audio file, and their captions mention no sound (all captions of the others do).

Captions come from several templates and synonyms (weighted; the first template and first synonym are the
most common). :func:`canonical_caption` renders the true factors with the most common template and
synonyms, the "upper reference" that ``bench/synth_reference.py`` scores.

Questions (:func:`qa_questions`; each tagged with a MUSIC-AVQA ``type`` [modality, question type]) can only be
answered from the right input:

* ``Audio/Identification`` "What sound can be heard?" (videos with a sound; 5 answers);
  ``Audio/Existential`` "Is there any sound?" (every silent video and as many sounding ones, so yes/no are
  balanced) and "Can you hear <Object>?" (the video's sound or another one, "yes" half of the time);
* ``Visual/Identification`` "Who is in the video?" and ``Visual/Location`` "Where is this?" (6 answers each);
* ``Audio-Visual/Temporal`` "Does the <Object> open or close the door?" (and the two other time-reversal
  pairs, for videos with a reversible action): the answer is in the frame order only; the question names
  the pair, so a question-only guess gets 50%. (Tagged Audio-Visual as MUSIC-AVQA tags its temporal questions.)

The questions are drawn from their own random stream (``[seed, 4, video number]``): the caption files and the
features are exactly those of a data set generated without them. :func:`answer_from_latents` answers a
question from the true factors (the factor reference of ``bench/synth_qa_reference.py``).

Run ``python -m videoblip2.synth --out data/synth`` (default: 600 / 100 / 200 videos, 16 frames,
8 audio windows on average).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .cli import ArgumentParser
from .fileio import atomic_open, atomic_write_json

FORMAT_VERSION = 1
VIDEO_DIM = 768
AUDIO_DIM = 512

# split sizes (train, validate, test)
SIZES: dict[str, tuple[int, int, int]] = {
    "small": (60, 10, 20),
    "default": (600, 100, 200),
    "large": (6513, 497, 2990),  # the MSR-VTT split sizes
    "recipe": (1800, 300, 300),  # the size the recipe level is calibrated for (bench/learning.py)
}
NO_AUDIO_FRACTION = 0.1
CAPTIONS_PER_VIDEO = 20

# ------------------------------------------------------------------------------------------------
# vocabulary: factor -> synonyms (first = most common)

SUBJECTS: dict[str, tuple[str, ...]] = {
    "man": ("a man", "a guy"),
    "woman": ("a woman", "a lady"),
    "boy": ("a boy", "a kid"),
    "girl": ("a girl", "a young girl"),
    "cat": ("a cat", "a kitten"),
    "robot": ("a robot", "a small robot"),
}
PLACES: dict[str, tuple[str, ...]] = {
    "kitchen": ("in the kitchen", "in a kitchen"),
    "park": ("in the park", "in a park"),
    "street": ("on the street", "on a street"),
    "beach": ("on the beach", "at the beach"),
    "office": ("in an office", "in the office"),
    "garden": ("in the garden", "in a garden"),
}
# action -> synonyms as (present tense, -ing form)
ACTIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "open": (("opens a door", "opening a door"), ("opens the door", "opening the door")),
    "close": (("closes a door", "closing a door"), ("shuts the door", "shutting the door")),
    "stand_up": (("stands up", "standing up"), ("gets up", "getting up")),
    "sit_down": (("sits down", "sitting down"), ("takes a seat", "taking a seat")),
    "pick_up": (("picks up a box", "picking up a box"), ("lifts a box", "lifting a box")),
    "put_down": (("puts down a box", "putting down a box"), ("sets a box down", "setting a box down")),
    "dance": (("dances", "dancing"), ("dances happily", "dancing happily")),
    "wave": (("waves", "waving"), ("waves a hand", "waving a hand")),
}
# (forward, reversed): the reversed action's frames are the forward action's frames in reverse order
REVERSE_PAIRS: tuple[tuple[str, str], ...] = (("open", "close"), ("stand_up", "sit_down"), ("pick_up", "put_down"))
OSCILLATING_ACTIONS: tuple[str, ...] = ("dance", "wave")
# sound -> (clauses for "while ..." / "as ...", noun phrases for "with ... in the background")
SOUNDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "music": (("music plays", "a song is playing"), ("music", "a song")),
    "speech": (("someone talks", "a person is speaking"), ("people talking", "someone speaking")),
    "engine": (("an engine roars", "a motor is running"), ("engine noise", "a motor running")),
    "barking": (("a dog barks", "a dog is barking"), ("a dog barking", "barking")),
    "applause": (("people clap", "a crowd applauds"), ("applause", "clapping")),
}
SYNONYM_WEIGHTS = (0.7, 0.3)

# templates: (format string, weight); the first is the most common
SOUND_TEMPLATES: tuple[tuple[str, float], ...] = (
    ("{subject} {verb} {place} while {clause}", 0.40),
    ("{subject} is {verbing} {place} with {noun} in the background", 0.20),
    ("{place} {subject} {verb} as {clause}", 0.15),
    ("{subject} is {verbing} {place} and {noun} can be heard", 0.15),
    ("there is {subject} {verbing} {place} while {clause}", 0.10),
)
SILENT_TEMPLATES: tuple[tuple[str, float], ...] = (
    ("{subject} {verb} {place}", 0.40),
    ("{subject} is {verbing} {place}", 0.35),
    ("{place} {subject} {verb}", 0.15),
    ("there is {subject} {verbing} {place}", 0.10),
)


def _words(phrases: Sequence[str]) -> set[str]:
    return {word for phrase in phrases for word in phrase.split()}


_NON_SOUND_WORDS = (
    _words([s for syn in SUBJECTS.values() for s in syn]) | _words([p for syn in PLACES.values() for p in syn])
    | _words([v for syn in ACTIONS.values() for pair in syn for v in pair])
    | _words([t.format(subject="", verb="", verbing="", place="") for t, _ in SILENT_TEMPLATES])
)
#: words that only ever appear in a caption because the video has a sound
SOUND_WORDS: frozenset[str] = frozenset(
    _words([p for clauses, nouns in SOUNDS.values() for p in clauses + nouns]) - _NON_SOUND_WORDS
)

# ------------------------------------------------------------------------------------------------
# feature scales (vectors are drawn with unit norm, then scaled)

COMMON_SCALE = 2.0       # offset shared by every frame / audio window (real CLIP/CLAP features have one)
FACTOR_SCALE = 1.0       # subject, place, action states, sound
NUISANCE_SCALE = 0.7     # one of NUM_NUISANCES per video, never mentioned in captions
NUM_NUISANCES = 8
DRIFT_SCALE = 0.12       # per-frame step of a random walk (norm)
FRAME_NOISE = 1.5        # per-frame i.i.d. noise (norm)
AUDIO_NOISE = 1.2        # per-window i.i.d. noise (norm)


@dataclass(frozen=True)
class Level:
    """One difficulty level: the factor tables, caption templates and feature scales ``generate`` uses.

    ``"default"`` is the module's tables and scales above; ``"hard"`` (``--difficulty hard``) has more of
    every factor, longer captions, weaker prototypes and more nuisance, and sounds that overlap.
    """

    name: str
    subjects: dict[str, tuple[str, ...]]
    places: dict[str, tuple[str, ...]]
    actions: dict[str, tuple[tuple[str, str], ...]]
    reverse_pairs: tuple[tuple[str, str], ...]
    oscillating_actions: tuple[str, ...]
    sounds: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]
    sound_templates: tuple[tuple[str, float], ...]
    silent_templates: tuple[tuple[str, float], ...]
    synonym_weights: tuple[float, ...]  # one weight per synonym; every phrase list has this many synonyms
    common_scale: float
    factor_scale: float
    nuisance_scale: float
    num_nuisances: int
    drift_scale: float
    frame_noise: float
    audio_noise: float
    # per-video visibility of the subject and the place: a factor in [min, 1] (1 = always fully visible)
    min_visibility: float = 1.0
    # chance that a second sound, quieter and never captioned, overlaps the captioned one
    overlap_probability: float = 0.0
    overlap_loudness: tuple[float, float] = (0.0, 0.0)  # its loudness, uniform in this range
    # scale of the action states (None: factor_scale); a strong action keeps frame order learnable
    action_scale: float | None = None
    # annotator noise: this share of each video's captions is a caption of another video of its split
    annotator_noise: float = 0.0
    # the optional tail "holding a <object>": a share of the videos hold one of held_objects (never visible
    # in the features), and that share of their captions (before the annotator noise) ends with the tail
    held_objects: tuple[str, ...] = ()
    held_probability: float = 0.0
    tail_probability: float = 0.0

    @property
    def reversible_actions(self) -> set[str]:
        return {action for pair in self.reverse_pairs for action in pair}


DEFAULT = Level(
    "default", SUBJECTS, PLACES, ACTIONS, REVERSE_PAIRS, OSCILLATING_ACTIONS, SOUNDS, SOUND_TEMPLATES,
    SILENT_TEMPLATES, SYNONYM_WEIGHTS, COMMON_SCALE, FACTOR_SCALE, NUISANCE_SCALE, NUM_NUISANCES, DRIFT_SCALE,
    FRAME_NOISE, AUDIO_NOISE,
)

HARD = Level(
    "hard",
    subjects={
        "man": ("a man", "a guy", "a young man"),
        "woman": ("a woman", "a lady", "a young woman"),
        "boy": ("a boy", "a kid", "a little boy"),
        "girl": ("a girl", "a young girl", "a little girl"),
        "old_man": ("an old man", "an elderly man", "a grandfather"),
        "old_woman": ("an old woman", "an elderly woman", "a grandmother"),
        "cat": ("a cat", "a kitten", "a small cat"),
        "robot": ("a robot", "a small robot", "a toy robot"),
        "chef": ("a chef", "a cook", "a chef in white"),
        "teenager": ("a teenager", "a teen", "a young teenager"),
    },
    places={
        "kitchen": ("in the kitchen", "in a kitchen", "inside a kitchen"),
        "park": ("in the park", "in a park", "at the park"),
        "street": ("on the street", "on a street", "in the street"),
        "beach": ("on the beach", "at the beach", "on a beach"),
        "office": ("in an office", "in the office", "at the office"),
        "garden": ("in the garden", "in a garden", "in a backyard garden"),
        "classroom": ("in a classroom", "in the classroom", "inside a classroom"),
        "forest": ("in the forest", "in a forest", "in the woods"),
        "stadium": ("in a stadium", "at the stadium", "in the stadium"),
        "garage": ("in the garage", "in a garage", "inside a garage"),
    },
    actions={
        "open": (("opens a door", "opening a door"), ("opens the door", "opening the door"),
                 ("pulls a door open", "pulling a door open")),
        "close": (("closes a door", "closing a door"), ("shuts the door", "shutting the door"),
                  ("closes the door", "closing the door")),
        "stand_up": (("stands up", "standing up"), ("gets up", "getting up"),
                     ("rises from a chair", "rising from a chair")),
        "sit_down": (("sits down", "sitting down"), ("takes a seat", "taking a seat"),
                     ("sits on a chair", "sitting on a chair")),
        "pick_up": (("picks up a box", "picking up a box"), ("lifts a box", "lifting a box"),
                    ("picks a box up", "picking a box up")),
        "put_down": (("puts down a box", "putting down a box"), ("sets a box down", "setting a box down"),
                     ("places a box on the floor", "placing a box on the floor")),
        "climb_up": (("climbs up a ladder", "climbing up a ladder"), ("goes up a ladder", "going up a ladder"),
                     ("climbs a ladder", "climbing a ladder")),
        "climb_down": (("climbs down a ladder", "climbing down a ladder"),
                       ("goes down a ladder", "going down a ladder"), ("descends a ladder", "descending a ladder")),
        "dance": (("dances", "dancing"), ("dances happily", "dancing happily"), ("dances around", "dancing around")),
        "wave": (("waves", "waving"), ("waves a hand", "waving a hand"), ("waves hello", "waving hello")),
        "jump": (("jumps", "jumping"), ("jumps up and down", "jumping up and down"), ("hops", "hopping")),
    },
    reverse_pairs=(("open", "close"), ("stand_up", "sit_down"), ("pick_up", "put_down"), ("climb_up", "climb_down")),
    oscillating_actions=("dance", "wave", "jump"),
    sounds={
        "music": (("music plays", "a song is playing", "music is playing"), ("music", "a song", "some music")),
        "speech": (("someone talks", "a person is speaking", "someone is talking"),
                   ("people talking", "someone speaking", "a conversation")),
        "engine": (("an engine roars", "a motor is running", "an engine is running"),
                   ("engine noise", "a motor running", "a running engine")),
        "barking": (("a dog barks", "a dog is barking", "a dog barks loudly"),
                    ("a dog barking", "barking", "a barking dog")),
        "applause": (("people clap", "a crowd applauds", "people are clapping"),
                     ("applause", "clapping", "a clapping crowd")),
        "rain": (("rain falls", "it is raining", "rain is pouring"), ("rain", "the sound of rain", "falling rain")),
        "birds": (("birds sing", "birds are chirping", "birds chirp"), ("birdsong", "birds chirping", "singing birds")),
        "siren": (("a siren wails", "a siren is sounding", "an alarm rings"),
                  ("a siren", "a wailing siren", "an alarm")),
    },
    sound_templates=(
        ("in this video {subject} {verb} {place} while {clause} in the background", 0.30),
        ("{subject} is {verbing} {place} with {noun} in the background", 0.20),
        ("a video of {subject} {verbing} {place} while {clause}", 0.15),
        ("we can see {subject} {verbing} {place} and hear {noun}", 0.15),
        ("{place} {subject} {verb} as {clause}", 0.10),
        ("there is {subject} {verbing} {place} while {clause} the whole time", 0.10),
    ),
    silent_templates=(
        ("in this video {subject} {verb} {place}", 0.30),
        ("{subject} is {verbing} {place}", 0.25),
        ("a video of {subject} {verbing} {place}", 0.20),
        ("{place} {subject} {verb}", 0.15),
        ("we can see {subject} {verbing} {place}", 0.10),
    ),
    synonym_weights=(0.5, 0.3, 0.2),
    common_scale=COMMON_SCALE,
    factor_scale=0.5,
    nuisance_scale=1.0,
    num_nuisances=32,
    drift_scale=0.25,
    frame_noise=3.5,
    audio_noise=4.5,
    min_visibility=0.4,
    overlap_probability=0.5,
    overlap_loudness=(0.2, 0.6),
)

# things held in the optional caption tail of the recipe level: "... holding a <object>" (never in the features)
HELD_OBJECTS: tuple[str, ...] = (
    "cup", "phone", "book", "bag", "ball", "camera", "bottle", "guitar", "flower", "hat", "key", "laptop",
    "pen", "plate", "towel", "basket", "newspaper", "spoon", "candle", "map", "leash", "pillow", "kite", "tray",
)

RECIPE = Level(
    "recipe", SUBJECTS, PLACES, ACTIONS, REVERSE_PAIRS, OSCILLATING_ACTIONS, SOUNDS, SOUND_TEMPLATES,
    SILENT_TEMPLATES, SYNONYM_WEIGHTS,
    common_scale=COMMON_SCALE,
    factor_scale=0.5,
    nuisance_scale=1.0,
    num_nuisances=32,
    drift_scale=0.25,
    frame_noise=3.5,
    audio_noise=4.0,
    min_visibility=0.25,
    overlap_probability=0.3,
    overlap_loudness=(0.2, 0.5),
    action_scale=2.0,
    annotator_noise=0.2,
    held_objects=HELD_OBJECTS,
    held_probability=0.5,
    tail_probability=0.6,
)

LEVELS: dict[str, Level] = {"default": DEFAULT, "hard": HARD, "recipe": RECIPE}


def get_level(difficulty: str | Level = "default") -> Level:
    """The :class:`Level` named ``difficulty`` ("default" | "hard"); a Level passes through."""
    if isinstance(difficulty, Level):
        return difficulty
    if difficulty not in LEVELS:
        raise ValueError(f"unknown difficulty {difficulty!r}; choose one of {', '.join(LEVELS)}")
    return LEVELS[difficulty]


@dataclass
class Latent:
    """The true factors of one synthetic video."""

    video_id: str
    split: str
    subject: str
    place: str
    action: str
    sound: str | None  # None: no audio file
    difficulty: str = "default"  # the Level whose tables the factor names come from
    held: str | None = None  # the object the captions' optional tail names (levels with held_objects only)

    @property
    def canonical(self) -> str:
        return canonical_caption(self)


@dataclass
class SynthSummary:
    """What :func:`generate` wrote."""

    out_dir: str
    seed: int
    splits: dict[str, int]
    num_frames: int
    num_audio_windows: int
    num_no_audio: int
    num_captions: int
    num_questions: int = 0
    seconds: float = 0.0
    files: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------
# captions


def _level_of(latent: Latent | Mapping[str, Any]) -> Level:
    if isinstance(latent, Mapping):
        return get_level(latent.get("difficulty", "default"))
    return get_level(latent.difficulty)


def render_caption(latent: Latent | Mapping[str, Any], template: int = 0, choices: Sequence[int] = (0, 0, 0, 0)) -> str:
    """Render one caption from the factors with template index ``template`` and synonym indices
    ``choices = (subject, place, action, sound)``; template 0 with choices 0 is the canonical caption."""
    get = latent.get if isinstance(latent, Mapping) else lambda key: getattr(latent, key)
    level = _level_of(latent)
    subject = level.subjects[get("subject")][choices[0]]
    place = level.places[get("place")][choices[1]]
    verb, verbing = level.actions[get("action")][choices[2]]
    sound = get("sound")
    if sound is None:
        text = level.silent_templates[template][0].format(subject=subject, verb=verb, verbing=verbing, place=place)
    else:
        clauses, nouns = level.sounds[sound]
        text = level.sound_templates[template][0].format(subject=subject, verb=verb, verbing=verbing, place=place,
                                                   clause=clauses[choices[3]], noun=nouns[choices[3]])
    return text


def canonical_caption(latent: Latent | Mapping[str, Any]) -> str:
    """The true factors with the most common template and the most common synonyms."""
    return render_caption(latent, 0, (0, 0, 0, 0))


def sample_captions(latent: Latent, rng: np.random.Generator, count: int = CAPTIONS_PER_VIDEO) -> list[str]:
    """``count`` captions of one video: template and synonyms drawn by their weights."""
    level = _level_of(latent)
    templates = level.silent_templates if latent.sound is None else level.sound_templates
    template_p = np.array([w for _, w in templates])
    template_p /= template_p.sum()
    template_index = rng.choice(len(templates), size=count, p=template_p).tolist()
    # synonym i with probability synonym_weights[i] (default (0.7, 0.3): index 1 iff the draw is >= 0.7)
    thresholds = np.cumsum(level.synonym_weights)[:-1]
    synonym_index = (rng.random((count, 4))[..., None] >= thresholds).sum(-1).tolist()
    captions = [render_caption(latent, t, c) for t, c in zip(template_index, synonym_index)]
    if latent.held is not None:  # drawn after the other draws, so levels without a tail stay as they were
        tails = rng.random(count) < level.tail_probability
        captions = [f"{c} holding a {latent.held}" if tail else c for c, tail in zip(captions, tails)]
    return captions


def add_annotator_noise(captions: Mapping[str, list[str]], latents: Sequence[Latent], seed: int,
                        share: float) -> dict[str, list[str]]:
    """Replace ``round(share * count)`` captions of every video by a caption of another video of the same
    split (drawn from the stream ``[seed, 5, video number]``; sources are the clean captions)."""
    by_split: dict[str, list[str]] = {}
    for latent in latents:
        by_split.setdefault(latent.split, []).append(latent.video_id)
    noisy = {video_id: list(caps) for video_id, caps in captions.items()}
    for latent in latents:
        others = [v for v in by_split[latent.split] if v != latent.video_id]
        count = len(captions[latent.video_id])
        replace = round(share * count)
        if not others or replace == 0:
            continue
        rng = np.random.default_rng([seed, 5, int(latent.video_id[len("video"):])])
        for position in rng.choice(count, size=replace, replace=False).tolist():
            source = others[int(rng.integers(len(others)))]
            noisy[latent.video_id][position] = captions[source][int(rng.integers(len(captions[source])))]
    return noisy


def _phrase_table(level: Level) -> dict[str, dict[str, list[str]]]:
    return {
        "subject": {k: list(v) for k, v in level.subjects.items()},
        "place": {k: list(v) for k, v in level.places.items()},
        "action": {k: [form for pair in v for form in pair] for k, v in level.actions.items()},
        "sound": {k: list(clauses + nouns) for k, (clauses, nouns) in level.sounds.items()},
    }


def parse_caption(caption: str, difficulty: str | Level = "default") -> dict[str, str | None]:
    """Read the factors back out of a caption (a model's prediction): ``{"subject", "place", "action",
    "sound"}``, each the one factor value whose phrases occur in the caption, ``None`` if none occurs
    (for "sound": a caption that mentions no sound), ``"?"`` if phrases of several values occur.
    ``difficulty`` names the level whose phrase tables are used."""
    text = f" {' '.join(caption.lower().split())} "
    out: dict[str, str | None] = {}
    for factor, values in _phrase_table(get_level(difficulty)).items():
        found = [value for value, phrases in values.items() if any(f" {p} " in text for p in phrases)]
        out[factor] = found[0] if len(found) == 1 else (None if not found else "?")
    return out


def factor_accuracy(predictions: Mapping[str, str], latents: Mapping[str, Latent]) -> dict[str, float]:
    """Fraction of predicted captions that name each true factor (:func:`parse_caption`).

    Keys: "subject", "place", "action", "action (reversible)" (videos whose action has a time-reversed
    partner, which only a model that uses frame order gets right), "sound" (None = correctly silent),
    "all" (every factor right).
    """
    hits: dict[str, list[bool]] = {k: [] for k in ("subject", "place", "action", "action (reversible)", "sound", "all")}
    for video_id, caption in predictions.items():
        latent = latents[video_id]
        level = get_level(latent.difficulty)
        reversible = level.reversible_actions
        parsed = parse_caption(caption, level)
        right = {factor: parsed[factor] == getattr(latent, factor)
                 for factor in ("subject", "place", "action", "sound")}
        for factor, ok in right.items():
            hits[factor].append(ok)
        if latent.action in reversible:
            hits["action (reversible)"].append(right["action"])
        hits["all"].append(all(right.values()))
    return {k: float(np.mean(v)) if v else float("nan") for k, v in hits.items()}


# ------------------------------------------------------------------------------------------------
# features


def _unit_vectors(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((count, dim))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@dataclass
class Prototypes:
    """The fixed vectors every video is built from (one set per seed)."""

    video_common: np.ndarray        # (768,)
    subject: dict[str, np.ndarray]  # name -> (768,)
    place: dict[str, np.ndarray]
    action_states: dict[str, tuple[np.ndarray, np.ndarray]]  # forward / oscillating action -> (a, b)
    nuisance: np.ndarray            # (NUM_NUISANCES, 768)
    audio_common: np.ndarray        # (512,)
    sound: dict[str, np.ndarray]    # name -> (512,)
    level: Level = DEFAULT          # the tables and scales they were made with


def make_prototypes(seed: int, difficulty: str | Level = "default") -> Prototypes:
    """Prototype vectors for ``seed`` (unit vectors scaled by the level's scales)."""
    level = get_level(difficulty)
    rng = np.random.default_rng([seed, 0])
    action_names = [forward for forward, _ in level.reverse_pairs] + list(level.oscillating_actions)
    n_video = 1 + len(level.subjects) + len(level.places) + 2 * len(action_names) + level.num_nuisances
    video = _unit_vectors(rng, n_video, VIDEO_DIM)
    audio = _unit_vectors(rng, 1 + len(level.sounds), AUDIO_DIM)
    rows = iter(range(n_video))
    scale = level.factor_scale
    common = video[next(rows)] * level.common_scale
    subject = {name: video[next(rows)] * scale for name in level.subjects}
    place = {name: video[next(rows)] * scale for name in level.places}
    action_scale = scale if level.action_scale is None else level.action_scale
    states = {name: (video[next(rows)] * action_scale, video[next(rows)] * action_scale) for name in action_names}
    nuisance = np.stack([video[next(rows)] * level.nuisance_scale for _ in range(level.num_nuisances)])
    sound = {name: audio[1 + i] * scale for i, name in enumerate(level.sounds)}
    return Prototypes(common, subject, place, states, nuisance, audio[0] * level.common_scale, sound, level)


def forward_action(action: str, difficulty: str | Level = "default") -> tuple[str, bool]:
    """``(trajectory name, reversed?)``: "close" -> ("open", True), "open" -> ("open", False)."""
    level = get_level(difficulty)
    for forward, backward in level.reverse_pairs:
        if action == forward:
            return forward, False
        if action == backward:
            return forward, True
    if action in level.oscillating_actions:
        return action, False
    raise KeyError(f"unknown action {action!r}")


def action_trajectory(action: str, num_frames: int, params: Mapping[str, float], prototypes: Prototypes) -> np.ndarray:
    """The action's part of the frame features, ``(num_frames, 768)``.

    A reversible action moves from state a to state b with a smoothstep between times ``params["t0"]``
    and ``params["t1"]`` (fractions of the clip); its reverse partner is exactly that array with the frame
    order reversed. An oscillating action is ``(a + b) / 2 + amplitude * sin(2 pi f t + phase) * (b - a) / 2``.
    """
    name, reverse = forward_action(action, prototypes.level)
    state_a, state_b = prototypes.action_states[name]
    t = np.linspace(0.0, 1.0, num_frames)[:, None]
    if name in prototypes.level.oscillating_actions:
        wave = params["amplitude"] * np.sin(2 * np.pi * params["frequency"] * t + params["phase"])
        return (state_a + state_b) / 2 + wave * (state_b - state_a) / 2
    x = np.clip((t - params["t0"]) / (params["t1"] - params["t0"]), 0.0, 1.0)
    progress = x * x * (3 - 2 * x)  # smoothstep
    trajectory = (1 - progress) * state_a + progress * state_b
    return trajectory[::-1].copy() if reverse else trajectory


def sample_action_params(rng: np.random.Generator) -> dict[str, float]:
    """Timing of one action; the distribution is symmetric under time reversal (t0 <-> 1 - t1)."""
    return {
        "t0": float(rng.uniform(0.1, 0.4)),
        "t1": float(rng.uniform(0.6, 0.9)),
        "amplitude": float(rng.uniform(0.8, 1.2)),
        "frequency": float(rng.uniform(1.0, 2.0)),
        "phase": float(rng.uniform(0.0, 2 * np.pi)),
    }


def video_features(latent: Latent, num_frames: int, prototypes: Prototypes, rng: np.random.Generator) -> np.ndarray:
    """Frame features ``(num_frames, 768)`` float16 of one video."""
    level = prototypes.level
    action = action_trajectory(latent.action, num_frames, sample_action_params(rng), prototypes)
    nuisance = prototypes.nuisance[rng.integers(level.num_nuisances)]
    drift = np.cumsum(rng.standard_normal((num_frames, VIDEO_DIM)), axis=0) * (level.drift_scale / np.sqrt(VIDEO_DIM))
    noise = rng.standard_normal((num_frames, VIDEO_DIM)) * (level.frame_noise / np.sqrt(VIDEO_DIM))
    subject, place = prototypes.subject[latent.subject], prototypes.place[latent.place]
    if level.min_visibility < 1.0:  # drawn after the default level's draws, which stay as they were
        subject_visibility, place_visibility = rng.uniform(level.min_visibility, 1.0, size=2)
        subject, place = subject * subject_visibility, place * place_visibility
    frames = prototypes.video_common + subject + place + nuisance + action + drift + noise
    return frames.astype(np.float16)


def audio_features(sound: str, num_windows: int, prototypes: Prototypes, rng: np.random.Generator) -> np.ndarray:
    """Audio window features ``(num_windows, 512)`` float16: common offset + loudness * sound + noise.

    On a level with ``overlap_probability > 0``, another (uncaptioned) sound is mixed in with that chance,
    quieter (``overlap_loudness``) and over a contiguous run of at least half of the windows.
    """
    level = prototypes.level
    loudness = rng.uniform(0.6, 1.2, size=(num_windows, 1))
    noise = rng.standard_normal((num_windows, AUDIO_DIM)) * (level.audio_noise / np.sqrt(AUDIO_DIM))
    windows = prototypes.audio_common + loudness * prototypes.sound[sound] + noise
    if level.overlap_probability > 0 and rng.random() < level.overlap_probability:
        others = [name for name in level.sounds if name != sound]
        other = prototypes.sound[others[rng.integers(len(others))]]
        length = int(rng.integers((num_windows + 1) // 2, num_windows + 1))
        start = int(rng.integers(0, num_windows - length + 1))
        windows[start : start + length] += rng.uniform(*level.overlap_loudness, size=(length, 1)) * other
    return windows.astype(np.float16)


# ------------------------------------------------------------------------------------------------
# audio-visual questions (MUSIC-AVQA format)

QA_FILES = {"train": "avqa-train.json", "validate": "avqa-val.json", "test": "avqa-test.json"}
# key -> (modality, question type, question_content with MUSIC-AVQA placeholders)
QA_TEMPLATES: dict[str, tuple[str, str, str]] = {
    "who": ("Visual", "Identification", "Who is in the video?"),
    "where": ("Visual", "Location", "Where is this?"),
    "what_sound": ("Audio", "Identification", "What sound can be heard?"),
    "any_sound": ("Audio", "Existential", "Is there any sound?"),
    "hear": ("Audio", "Existential", "Can you hear <Object>?"),
    "open": ("Audio-Visual", "Temporal", "Does the <Object> open or close the door?"),
    "stand_up": ("Audio-Visual", "Temporal", "Does the <Object> stand up or sit down?"),
    "pick_up": ("Audio-Visual", "Temporal", "Does the <Object> pick up or put down the box?"),
}


def _answer_text(value: str) -> str:
    return value.replace("_", " ")  # "stand_up" -> "stand up"


def answer_from_latents(question: str, latent: Latent | Mapping[str, Any]) -> str:
    """Answer a synthetic question (placeholders filled, as ``load_qa_annotations`` returns it) from the true
    factors: the factor reference. Raises ``KeyError`` for a question no template produces."""
    get = latent.get if isinstance(latent, Mapping) else lambda key: getattr(latent, key)
    sound = get("sound")
    level = _level_of(latent)
    for key, (_, _, template) in QA_TEMPLATES.items():
        pattern = "^" + re.escape(template).replace(re.escape("<Object>"), "(.+)") + "$"
        match = re.match(pattern, question)
        if match is None:
            continue
        if key == "who":
            return _answer_text(get("subject"))
        if key == "where":
            return _answer_text(get("place"))
        if key == "what_sound":
            return _answer_text(sound) if sound is not None else "none"
        if key == "any_sound":
            return "no" if sound is None else "yes"
        if key == "hear":
            return "yes" if sound is not None and level.sounds[sound][1][0] == match.group(1) else "no"
        forward, reverse = forward_action(get("action"), level)
        if forward != key:
            raise KeyError(f"{question!r} asks about {key!r}, but the video's action is {get('action')!r}")
        return _answer_text(dict(level.reverse_pairs)[forward] if reverse else forward)
    raise KeyError(f"not a synthetic question: {question!r}")


def qa_questions(latent: Latent, rng: np.random.Generator) -> list[tuple[str, list[str]]]:
    """The questions of one video as ``(template key, templ_values)``, in a fixed order (see the module
    docstring); ``rng`` decides which videos get "Is there any sound?" and what "Can you hear" asks about."""
    level = _level_of(latent)
    questions: list[tuple[str, list[str]]] = [("who", []), ("where", [])]
    if latent.sound is not None:
        questions.append(("what_sound", []))
    # every silent video (10%) and 1 in 9 sounding ones: yes and no equally often
    if rng.random() < (1.0 if latent.sound is None else NO_AUDIO_FRACTION / (1 - NO_AUDIO_FRACTION)):
        questions.append(("any_sound", []))
    # the true sound with probability 1/2 / (1 - 10%): yes half of the time over all videos
    others = [name for name in level.sounds if name != latent.sound]
    true_sound = latent.sound is not None and rng.random() < 0.5 / (1 - NO_AUDIO_FRACTION)
    asked = latent.sound if true_sound else others[rng.integers(len(others))]
    questions.append(("hear", [level.sounds[asked][1][0]]))
    forward, _ = forward_action(latent.action, level)
    if forward in QA_TEMPLATES:  # the hard level's climb_up / climb_down have no question
        questions.append((forward, [level.subjects[latent.subject][0].split()[-1]]))
    return questions


def qa_records(latents: Sequence[Latent], seed: int, first_question_id: int = 0) -> list[dict[str, Any]]:
    """MUSIC-AVQA records of ``latents``' questions, ``question_id`` counting from ``first_question_id``."""
    records = []
    question_id = first_question_id
    for latent in latents:
        rng = np.random.default_rng([seed, 4, int(latent.video_id[len("video"):])])
        for key, values in qa_questions(latent, rng):
            modality, qtype, template = QA_TEMPLATES[key]
            question = template
            for value in values:
                question = question.replace("<Object>", value, 1)
            records.append({
                "video_id": latent.video_id,
                "question_id": question_id,
                "type": json.dumps([modality, qtype]),
                "question_content": template,
                "templ_values": json.dumps(values),
                "question_deleted": 0,
                "anser": answer_from_latents(question, latent),
            })
            question_id += 1
    return records


def write_qa_files(out: Path, latents: Sequence[Latent], seed: int) -> dict[str, int]:
    """Write ``avqa-train.json`` / ``avqa-val.json`` / ``avqa-test.json``; returns the question count per file."""
    counts = {}
    first = 0
    for split, name in QA_FILES.items():
        records = qa_records([latent for latent in latents if latent.split == split], seed, first)
        _write_json(out / name, records, indent=1)
        counts[name] = len(records)
        first += len(records)
    return counts


# ------------------------------------------------------------------------------------------------
# the data set


def split_sizes(size: str | None = None, num_videos: int | None = None) -> tuple[int, int, int]:
    """(train, validate, test) sizes: a named size, or ``num_videos`` split 6:1:2 like the default."""
    if num_videos is not None:
        if num_videos < 9:
            raise ValueError(f"--num-videos must be at least 9, got {num_videos}")
        train, validate = round(num_videos * 6 / 9), round(num_videos / 9)
        return train, validate, num_videos - train - validate
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    return SIZES[size]


def _held_object(seed: int, index: int, level: Level) -> str | None:
    """The object video ``index`` holds (its own stream ``[seed, 6, index]``), None on levels without one."""
    if not level.held_objects:
        return None
    rng = np.random.default_rng([seed, 6, index])
    held = rng.random() < level.held_probability
    obj = level.held_objects[int(rng.integers(len(level.held_objects)))]
    return obj if held else None


def sample_latents(seed: int, sizes: tuple[int, int, int], difficulty: str | Level = "default") -> list[Latent]:
    """Factors of every video: ``video{i}``, splits in order train / validate / test, factors uniform;
    ``round(0.1 * n)`` videos of each split (at random) have no sound."""
    level = get_level(difficulty)
    latents = []
    index = 0
    for split, count in zip(("train", "validate", "test"), sizes):
        split_rng = np.random.default_rng([seed, 1, index])
        silent = set(split_rng.permutation(count)[: round(NO_AUDIO_FRACTION * count)].tolist())
        for position in range(count):
            rng = np.random.default_rng([seed, 2, index])
            latents.append(Latent(
                video_id=f"video{index}",
                split=split,
                subject=list(level.subjects)[rng.integers(len(level.subjects))],
                place=list(level.places)[rng.integers(len(level.places))],
                action=list(level.actions)[rng.integers(len(level.actions))],
                sound=None if position in silent else list(level.sounds)[rng.integers(len(level.sounds))],
                difficulty=level.name,
                held=_held_object(seed, index, level),
            ))
            index += 1
    return latents


def _official_json(latents: Sequence[Latent], captions: Mapping[str, list[str]], first_sen_id: int,
                   seed: int) -> dict[str, Any]:
    videos, sentences = [], []
    sen_id = first_sen_id
    place_names = list(get_level(latents[0].difficulty).places) if latents else []
    for latent in latents:
        number = int(latent.video_id[len("video"):])
        videos.append({
            "category": place_names.index(latent.place),
            "url": f"https://example.invalid/synth/{latent.video_id}",
            "video_id": latent.video_id,
            "start time": 0.0,
            "end time": 10.0 + number % 20,
            "split": latent.split,
            "id": number,
        })
        for caption in captions[latent.video_id]:
            sentences.append({"caption": caption, "video_id": latent.video_id, "sen_id": sen_id})
            sen_id += 1
    info = {"contributor": "videoblip2.synth", "data_created": "synthetic", "version": str(FORMAT_VERSION),
            "year": "2026", "description": f"VideoBLIP2 synthetic benchmark, seed {seed}"}
    return {"info": info, "videos": videos, "sentences": sentences}


def _write_json(path: Path, obj: Any, indent: int | None = None) -> None:
    atomic_write_json(path, obj, indent=indent)  # compact like the real files (and fast)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_open(path, "wb") as f:
        np.save(f, array)


def generate(
    out_dir: str | Path,
    *,
    seed: int = 0,
    size: str = "default",
    num_videos: int | None = None,
    num_frames: int = 16,
    num_audio_windows: int = 8,
    overwrite: bool = False,
    progress: bool = True,
    difficulty: str = "default",
    qa: bool = True,
) -> SynthSummary:
    """Write the synthetic data set to ``out_dir`` (see the module docstring); deterministic in ``seed``.

    Args:
        size: "small" | "default" | "large" (60/10/20, 600/100/200, 6513/497/2990 videos).
        num_videos: overrides ``size``: that many videos split 6:1:2.
        num_frames: rows per video file.
        num_audio_windows: typical rows per audio file; each video has between 3/4 and 5/4 of it
            (real audio feature counts vary with the clip length).
        overwrite: allow writing into a directory that already has ``video/`` files (old .npy files
            are removed first).
        difficulty: "default" or "hard" (:data:`HARD`: 10 subjects, 10 places, 11 actions, 8 sounds, three
            synonyms each, longer templates, weaker prototypes, more nuisance, overlapping sounds). The
            default level's files are byte-identical to those written before levels existed.
        qa: also write the question files ``avqa-{train,val,test}.json``.
    """
    start = time.perf_counter()
    level = get_level(difficulty)
    out = Path(out_dir)
    sizes = split_sizes(size, num_videos)
    video_dir, audio_dir = out / "video", out / "audio"
    if video_dir.is_dir() and any(video_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{video_dir} already has files; pass overwrite=True (--overwrite)")
        shutil.rmtree(video_dir)
        shutil.rmtree(audio_dir, ignore_errors=True)
    video_dir.mkdir(parents=True, exist_ok=True)
    audio_dir.mkdir(parents=True, exist_ok=True)

    prototypes = make_prototypes(seed, level)
    latents = sample_latents(seed, sizes, level)
    captions: dict[str, list[str]] = {}
    iterator: Any = latents
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(latents, desc=f"synth -> {out}", unit="video")
    low, high = max(1, num_audio_windows - num_audio_windows // 4), num_audio_windows + num_audio_windows // 4
    for latent in iterator:
        number = int(latent.video_id[len("video"):])
        rng = np.random.default_rng([seed, 3, number])
        captions[latent.video_id] = sample_captions(latent, rng)
        _save_npy(video_dir / f"{latent.video_id}.npy", video_features(latent, num_frames, prototypes, rng))
        if latent.sound is not None:
            windows = int(rng.integers(low, high + 1))
            _save_npy(audio_dir / f"{latent.video_id}.npy", audio_features(latent.sound, windows, prototypes, rng))
    if level.annotator_noise > 0:
        captions = add_annotator_noise(captions, latents, seed, level.annotator_noise)

    train_val = [latent for latent in latents if latent.split != "test"]
    test = [latent for latent in latents if latent.split == "test"]
    _write_json(out / "train_val_videodatainfo.json", _official_json(train_val, captions, 0, seed))
    _write_json(out / "test_videodatainfo.json",
                _official_json(test, captions, CAPTIONS_PER_VIDEO * len(train_val), seed))
    no_audio = [latent.video_id for latent in latents if latent.sound is None]
    # the level is recorded only when it is not the default, so that default files stay as they were
    level_entry = {} if level is DEFAULT else {"difficulty": level.name}
    _write_json(out / "meta.json", {
        "video": {"model": "synth", "pretrained": None, "num_frames": num_frames, "dim": VIDEO_DIM,
                  "dtype": "float16"},
        "audio": {"model": "synth", "window_s": 2.0, "hop_s": 2.0, "dim": AUDIO_DIM, "dtype": "float16",
                  "no_audio": no_audio},
        "synth": {"version": FORMAT_VERSION, "seed": seed, "splits": dict(zip(("train", "validate", "test"), sizes)),
                  "num_audio_windows": num_audio_windows, **level_entry},
    }, indent=1)
    _write_json(out / "synth_latents.json", {
        "version": FORMAT_VERSION,
        "seed": seed,
        **level_entry,
        "videos": {latent.video_id: {**{k: v for k, v in asdict(latent).items()
                                        if k not in ("video_id", "difficulty") and (k != "held" or level.held_objects)},
                                     "canonical": latent.canonical} for latent in latents},
    })
    qa_counts = write_qa_files(out, latents, seed) if qa else {}
    return SynthSummary(
        out_dir=str(out), seed=seed, splits=dict(zip(("train", "validate", "test"), sizes)), num_frames=num_frames,
        num_audio_windows=num_audio_windows, num_no_audio=len(no_audio),
        num_captions=CAPTIONS_PER_VIDEO * len(latents), num_questions=sum(qa_counts.values()),
        seconds=time.perf_counter() - start,
        files={"train_val": str(out / "train_val_videodatainfo.json"), "test": str(out / "test_videodatainfo.json"),
               "features": str(out), "latents": str(out / "synth_latents.json"),
               **{f"qa_{split}": str(out / name) for split, name in QA_FILES.items() if qa}},
    )


def latent_factors(out_dir: str | Path) -> dict[str, Latent]:
    """Read ``synth_latents.json``: ``{video_id: Latent}`` (``latent.canonical`` is the upper-reference caption)."""
    data = json.loads((Path(out_dir) / "synth_latents.json").read_text())
    difficulty = data.get("difficulty", "default")
    return {video_id: Latent(video_id=video_id, **{k: v for k, v in fields.items() if k != "canonical"},
                             difficulty=difficulty)
            for video_id, fields in data["videos"].items()}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m videoblip2.synth", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--size", choices=list(SIZES), default="default",
                       help="small 60/10/20, default 600/100/200, large 6513/497/2990 (train/validate/test)")
    sizes.add_argument("--num-videos", type=int, default=None, help="this many videos, split 6:1:2")
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--num-audio-windows", type=int, default=8, help="typical audio windows per video")
    parser.add_argument("--difficulty", choices=list(LEVELS), default="default",
                        help="hard: more subjects/places/actions/sounds, longer captions, weaker prototypes, more "
                             "nuisance, overlapping sounds (the tiny demo model no longer names every factor)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing feature files in --out")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--no-qa", action="store_true", help="do not write the avqa-*.json question files")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> SynthSummary:
    args = parse_args(argv)
    summary = generate(args.out, seed=args.seed, size=args.size, num_videos=args.num_videos,
                       num_frames=args.num_frames, num_audio_windows=args.num_audio_windows,
                       overwrite=args.overwrite, progress=not args.no_progress, difficulty=args.difficulty,
                       qa=not args.no_qa)
    splits = ", ".join(f"{k} {v}" for k, v in summary.splits.items())
    print(f"wrote {sum(summary.splits.values())} videos ({splits}; {summary.num_no_audio} without audio), "
          f"{summary.num_captions} captions, {summary.num_questions} questions to {summary.out_dir} "
          f"in {summary.seconds:.1f} s")
    return summary


if __name__ == "__main__":
    from .cli import cli

    cli(main)  # a full disk or a bad --out: one line, exit 2
