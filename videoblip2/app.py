"""A demo page: caption a video and ask it questions in the browser, see what the model saw and heard.

    pip install -e ".[app]"
    python -m videoblip2.app --model runs/scst/best \\
        --clip-pretrained /models/ViT-L-14-openai.safetensors --quick-gelu \\
        --clap-pretrained /models/630k-audioset-best.pt

serves a Gradio page on http://127.0.0.1:7860 (this machine only; ``--host 0.0.0.0`` to share it on the local
network). Drop in a video (any container FFmpeg reads) or pick one of ``--examples DIR``: its caption appears,
then the page shows the frames the model saw (with their timestamps), the sound it heard (spectrogram with the
CLAP windows marked, or "no sound"), the captions without the sound and with the frames shuffled beside the
full one, and a question box whose answers collect in a history. Each video is decoded and encoded once
(`videoblip2.caption.extract_video`); captions, answers and ablations come from those features
(`videoblip2.caption.generate_from_features`), exactly what ``python -m videoblip2.caption`` prints.

Local and offline: no analytics, no share link, no fonts or scripts from other hosts (system fonts), uploads of
at most ``--max-file-size`` (default 100MB); the server hands out only files from its own temporary folder
(uploads, frame images; deleted on exit) and ``--examples``, and never fetches URLs for a client.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .decoding import PREDICT_NUM_BEAMS, DecodingOptions
from .extract import (
    DEFAULT_CLAP_MODEL,
    DEFAULT_CLIP_MODEL,
    DEFAULT_CLIP_PRETRAINED,
    DEFAULT_HOP_S,
    DEFAULT_SILENCE_THRESHOLD,
    DEFAULT_WINDOW_S,
    VIDEO_EXTENSIONS,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_FILE_SIZE = "100MB"  # per upload; Gradio refuses larger ones before they reach the disk
SYSTEM_FONTS = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"]
SYSTEM_MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
THUMBNAIL_HEIGHT = 96  # px, frames in the strip
DISPLAY_SAMPLE_RATE = 16_000  # Hz, the audio plot (the features use CLAP's 48 kHz)
ABLATION_LABELS = {None: "frames + sound", "no_audio": "without the sound", "shuffle_frames": "frames shuffled"}


@dataclasses.dataclass(frozen=True)
class ExtractionSettings:
    """How the page turns a video into features: the model's limits and the extractors' windows."""

    fps: float | None = None  # None: the model's max_frames frames, uniformly
    window_s: float = DEFAULT_WINDOW_S
    hop_s: float = DEFAULT_HOP_S
    silence_threshold: float = DEFAULT_SILENCE_THRESHOLD


def default_decoding() -> DecodingOptions:
    """The page's initial decoding controls: ``python -m videoblip2.caption``'s defaults (beam 5, LAVIS's)."""
    return DecodingOptions(num_beams=PREDICT_NUM_BEAMS)


def decoding_from_controls(num_beams: float, length_penalty: float, block_bad_endings: bool) -> DecodingOptions:
    """The page's three controls -> the options (the others keep `default_decoding`'s values)."""
    return dataclasses.replace(default_decoding(), num_beams=int(num_beams), length_penalty=float(length_penalty),
                               block_bad_endings=bool(block_bad_endings))


class _CollectWarnings(logging.Handler):
    """Collects the extractors' warnings (a truncated file decoded only in part) to show them on the page."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class Demo:
    """What the page does, without the page: extract once, then caption, answer, ablate, draw.

    Args:
        model: a ``VideoBLIP2`` (eval mode).
        clip: the frame extractor (``videoblip2.extract.load_clip``).
        clap: the audio extractor (``videoblip2.extract.load_clap``); None = no sound.
        settings: frame rate and audio windows (`ExtractionSettings`).
    """

    def __init__(self, model: Any, clip: Any, clap: Any | None = None,
                 settings: ExtractionSettings = ExtractionSettings()):
        self.model, self.clip, self.clap, self.settings = model.eval(), clip, clap, settings

    def extract(self, path: str | os.PathLike) -> tuple[Any, list[str]]:
        """(VideoFeatures, warnings) of one video; raises ExtractionError when it cannot be read."""
        from .caption import extract_video

        config = self.model.config
        collect = _CollectWarnings()
        extract_logger = logging.getLogger("videoblip2.extract")
        extract_logger.addHandler(collect)
        try:
            features = extract_video(path, self.clip, self.clap, max_frames=config.max_frames, fps=self.settings.fps,
                                     window_s=self.settings.window_s, hop_s=self.settings.hop_s,
                                     silence_threshold=self.settings.silence_threshold,
                                     max_audio_windows=config.max_audio_windows)
        finally:
            extract_logger.removeHandler(collect)
        return features, collect.messages + short_video_warning(features)

    def caption(self, features: Any, decoding: DecodingOptions, ablate: str | None = None) -> str:
        """The caption of one extracted video (``ablate``: None, "no_audio" or "shuffle_frames")."""
        from .caption import generate_from_features

        return generate_from_features(self.model, [features], decoding=decoding, ablate=ablate)[0]

    def answer(self, features: Any, question: str, decoding: DecodingOptions) -> str:
        """The model's answer to a question about one extracted video."""
        from .caption import generate_from_features

        return generate_from_features(self.model, [features], question=question, decoding=decoding)[0]

    def frames(self, features: Any) -> list[tuple[np.ndarray, str]]:
        """The frames the model saw, small, each with its label ("#index · 1.25 s")."""
        from PIL import Image

        from .extract import decode_frames

        def thumbnail(image: Image.Image) -> Image.Image:
            width = max(1, round(image.width * THUMBNAIL_HEIGHT / image.height))
            return image.resize((width, THUMBNAIL_HEIGHT), Image.BILINEAR)

        # decode_frames samples the same frames as the extraction did (same count and fps)
        images = decode_frames(features.path, self.model.config.max_frames, fps=self.settings.fps,
                               transform=thumbnail)
        return [(image, f"#{int(index)} · {time:.2f} s")
                for image, index, time in zip(images, features.frame_indices, features.frame_times)]

    def sound(self, features: Any) -> tuple[np.ndarray, str]:
        """A picture of what the model heard (waveform + spectrogram, CLAP windows shaded) and a one-line note."""
        from .extract import decode_audio, is_silent

        wave = decode_audio(features.path, DISPLAY_SAMPLE_RATE)
        windows = np.asarray(features.audio_window_times, dtype=float).reshape(-1, 2)
        if features.audio is not None:
            note = (f"{len(windows)} CLAP window{'s' if len(windows) != 1 else ''} of {self.settings.window_s:g} s "
                    f"every {self.settings.hop_s:g} s (numbered bars)")
        elif self.clap is None:
            note = "no sound: the page runs without a CLAP model (--clap-pretrained), the model hears nothing"
        elif wave is None:
            note = "no sound: the file has no audio track"
        elif is_silent(wave, self.settings.silence_threshold):
            note = "no sound: the audio track is silent"
        else:
            note = "no sound"
        return plot_sound(wave, DISPLAY_SAMPLE_RATE, windows if features.audio is not None else None, note), note


def short_video_warning(features: Any) -> list[str]:
    """A warning when the decoded frames stop well before the duration the file states (a truncated file:
    the extractor samples from the frames that decode, silently)."""
    if not features.duration or not len(features.frame_times):
        return []
    last = float(features.frame_times[-1])
    if last < features.duration - max(1.0, 0.25 * features.duration):
        return [f"frames decode only up to {last:.1f} s of the {features.duration:.1f} s the file states "
                f"(a truncated file?); the model saw those"]
    return []


def plot_sound(wave: np.ndarray | None, sample_rate: int, windows: np.ndarray | None, title: str) -> np.ndarray:
    """RGB uint8 (H, W, 3): the waveform, the windows (``(N, 2)`` seconds) as numbered bars, the spectrogram.

    Without a wave (no audio track) or without windows (nothing heard) the picture says ``title``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    if wave is None or wave.size == 0:
        axis = figure.add_subplot()
        axis.axis("off")
        axis.text(0.5, 0.5, title, ha="center", va="center", fontsize=13, transform=axis.transAxes)
    else:
        top, middle, bottom = figure.subplots(3, 1, sharex=True, height_ratios=(1, 0.6, 2))
        times = np.arange(len(wave)) / sample_rate
        top.plot(times, wave, linewidth=0.5, color="#1f4e79")
        top.set_ylabel("wave")
        if windows is None or not len(windows):
            top.set_title(title, fontsize=11)
            windows = np.zeros((0, 2))
        # neighbouring windows overlap (hop < window): stack them on as many rows as overlap
        rows = max(1, int(np.ceil((windows[0, 1] - windows[0, 0]) / (windows[1, 0] - windows[0, 0])))
                   if len(windows) > 1 and windows[1, 0] > windows[0, 0] else 1)
        for i, (start, end) in enumerate(windows):
            row = rows - 1 - i % rows
            middle.broken_barh([(start, end - start)], (row + 0.1, 0.8), facecolor=("#2ca02c", "#ff7f0e")[i % 2],
                               edgecolor="white", linewidth=2)
            middle.text((start + end) / 2, row + 0.5, str(i + 1), ha="center", va="center", fontsize=7)
        middle.set_ylim(0, rows)
        middle.set_yticks([])
        middle.set_ylabel("CLAP", rotation=0, ha="right", va="center")
        if len(wave) >= 512:
            with np.errstate(divide="ignore"):  # silent stretches: log10(0), drawn blank
                bottom.specgram(wave, NFFT=512, Fs=sample_rate, noverlap=256, cmap="magma")
        bottom.set_ylabel("Hz")
        bottom.set_xlabel("seconds")
        bottom.set_xlim(0, len(wave) / sample_rate)
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


# ----------------------------------------------------------------------------------------------
# the page

_FOREIGN_FILE = re.compile(r"/(?:file[=/]|proxy=)")
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


class LocalFilesOnly:
    """ASGI middleware: refuse Gradio's routes that fetch another host's file for a client (``file=URL``,
    ``proxy=URL``); a local demo has no reason to make requests on a page's behalf."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            path = scope.get("path", "")
            match = _FOREIGN_FILE.search(path)
            if match and (match.group().startswith("/proxy") or _URL_SCHEME.match(path[match.end():])):
                from starlette.responses import PlainTextResponse

                await PlainTextResponse("this demo serves local files only", status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _status(kind: str, text: str) -> str:
    return f"**{kind}** {text}"


def build_page(demo: Demo, examples: list[str] | None = None):
    """The Gradio Blocks of the page (not launched). Endpoints: ``/analyse``, ``/recaption``, ``/ask``."""
    import gradio as gr

    from .extract import ExtractionError
    from .ids import UnsafeIdError

    decoding = default_decoding()

    def analyse(video, beams, length_penalty, block) -> Iterator[tuple]:
        def cleared(message: str) -> tuple:  # nothing shown but the message; no features kept
            return None, message, "", "", "", [], None, "", []

        if not video:
            yield cleared("Upload a video or pick an example.")
            return
        name = Path(video).name
        try:
            features, warnings = demo.extract(video)
            options = decoding_from_controls(beams, length_penalty, block)
            caption = demo.caption(features, options)
            note = _status("Read", f"`{name}`: {len(features.video)} frames, "
                                   f"{0 if features.audio is None else len(features.audio)} audio windows.")
            if warnings:
                note += "  \n" + _status("Warning:", "; ".join(warnings).replace(str(video), name) + ".")
            frames = demo.frames(features)
            picture, heard = demo.sound(features)
            yield features, note, caption, "…", "…", frames, picture, heard, []
            no_audio = demo.caption(features, options, ablate="no_audio")
            shuffled = demo.caption(features, options, ablate="shuffle_frames")
            yield features, note, caption, no_audio, shuffled, frames, picture, heard, []
        except (ExtractionError, UnsafeIdError) as e:  # not a video, truncated, empty; a name no id can have
            message = str(e).replace(str(video), name)
            yield cleared(_status("Cannot read this video:", f"{message}. Try another file."))
        except Exception as e:  # keep serving whatever the file did; the console gets the traceback
            logger.exception("analysing %s failed", video)
            yield cleared(_status("Error:", f"`{name}`: {type(e).__name__}: {str(e).replace(str(video), name)}"))

    def recaption(features, beams, length_penalty, block):
        if features is None:
            return "", "", ""
        options = decoding_from_controls(beams, length_penalty, block)
        return tuple(demo.caption(features, options, ablate=a) for a in (None, "no_audio", "shuffle_frames"))

    def ask(features, question, history, beams, length_penalty, block):
        history = list(history or [])
        question = (question or "").strip()
        if not question:
            return history, ""
        if features is None:
            answer = "(upload a video first)"
        else:
            answer = demo.answer(features, question, decoding_from_controls(beams, length_penalty, block))
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        return history, ""

    with gr.Blocks(title="VideoBLIP2 demo", analytics_enabled=False) as page:
        gr.Markdown("# VideoBLIP2\nCaption a video, ask it questions, and see what the model saw and heard.")
        features = gr.State(None)
        with gr.Row():
            with gr.Column(scale=2):
                video = gr.Video(label="video", sources=["upload"], format=None, include_audio=True, height=300)
                if examples:
                    gr.Examples([[path] for path in examples], inputs=[video], label="examples",
                                cache_examples=False)
                with gr.Accordion("decoding", open=True):
                    beams = gr.Slider(1, 10, value=decoding.num_beams, step=1, label="beams (1 = greedy)")
                    length_penalty = gr.Slider(0.0, 3.0, value=decoding.length_penalty, step=0.1,
                                               label="length penalty (>1 favours longer captions)")
                    block = gr.Checkbox(value=decoding.block_bad_endings,
                                        label="block bad endings (no caption ends on 'a', 'the', 'with', ...)")
            with gr.Column(scale=3):
                status = gr.Markdown("Upload a video or pick an example.", elem_id="status")
                caption = gr.Textbox(label="caption", interactive=False, lines=2, elem_id="caption")
                gr.Markdown("### Does it use the sound?")
                with gr.Row():
                    no_audio = gr.Textbox(label="caption without the sound", interactive=False, elem_id="no_audio")
                    shuffled = gr.Textbox(label="caption with the frames shuffled", interactive=False,
                                          elem_id="shuffled")
                chat = gr.Chatbot(label="questions (about the same video; its features are reused)", height=220,
                                  elem_id="chat")
                question = gr.Textbox(label="ask a question", placeholder="What sound can be heard?",
                                      submit_btn=True, elem_id="question")
        gr.Markdown("### What the model saw")
        gallery = gr.Gallery(label="sampled frames (frame number · time)", columns=8, height=300,
                             object_fit="contain", allow_preview=True)
        gr.Markdown("### What the model heard")
        heard = gr.Markdown(elem_id="heard")
        sound = gr.Image(label="audio", type="numpy", interactive=False, show_label=False)

        controls = [beams, length_penalty, block]
        video.change(analyse, [video, *controls],
                     [features, status, caption, no_audio, shuffled, gallery, sound, heard, chat],
                     api_name="analyse")
        # new decoding settings: new captions from the same features (no second extraction)
        gr.on([beams.release, length_penalty.release, block.change], recaption, [features, *controls],
              [caption, no_audio, shuffled], api_name="recaption")
        question.submit(ask, [features, question, chat, *controls], [chat, question], api_name="ask")
    return page


def serve(demo: Demo, *, host: str = "127.0.0.1", port: int = 7860, examples: list[str] | None = None,
          max_file_size: str | int = DEFAULT_MAX_FILE_SIZE, workdir: str | None = None) -> None:
    """Build the page and serve it until interrupted; uploads and frame images live in ``workdir``
    (default a new temporary folder, deleted afterwards), the only folder served besides ``examples``."""
    own = workdir is None
    workdir = os.path.realpath(workdir or tempfile.mkdtemp(prefix="videoblip2-app-"))
    # Gradio reads these when its modules load and when a page is built: set them first.
    os.environ["GRADIO_TEMP_DIR"] = os.path.join(workdir, "uploads")
    os.environ["GRADIO_EXAMPLES_CACHE"] = os.path.join(workdir, "examples")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import gradio as gr
    from starlette.middleware import Middleware

    examples = [os.path.realpath(path) for path in examples or []]
    theme = gr.themes.Default(font=SYSTEM_FONTS, font_mono=SYSTEM_MONO_FONTS)  # no Google Fonts
    page = build_page(demo, examples)
    page.queue(default_concurrency_limit=1)  # one model: one video at a time
    try:
        page.launch(server_name=host, server_port=port, share=False, inbrowser=False, show_error=True,
                    max_file_size=max_file_size, allowed_paths=[workdir, *{os.path.dirname(p) for p in examples}],
                    footer_links=[], run_history=False, enable_monitoring=False, ssr_mode=False, pwa=False,
                    mcp_server=False, theme=theme, app_kwargs={"middleware": [Middleware(LocalFilesOnly)]})
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m videoblip2.app", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", required=True, help="VideoBLIP2 model: a save_pretrained folder or a Hub id")
    parser.add_argument("--examples", help="a folder of example videos to offer on the page")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: the local network)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--max-file-size", default=DEFAULT_MAX_FILE_SIZE, help="largest upload, e.g. 100MB, 1GB")
    parser.add_argument("--device", default="auto", help="cuda, cpu or auto")
    clip = parser.add_argument_group("frames (CLIP): the settings of the model's training features")
    clip.add_argument("--clip-model", default=DEFAULT_CLIP_MODEL, help="open_clip architecture or model-config .json")
    clip.add_argument("--clip-pretrained", default=DEFAULT_CLIP_PRETRAINED, help="open_clip tag or local checkpoint")
    clip.add_argument("--quick-gelu", action="store_true", help="for OpenAI CLIP weights given as a local file")
    clip.add_argument("--layer", default="embed", choices=("embed", "pooled"))
    clip.add_argument("--fps", type=float, help="sample frames at this rate (default: max_frames uniform frames)")
    clap = parser.add_argument_group("audio (CLAP)")
    clap.add_argument("--clap-model", default=DEFAULT_CLAP_MODEL, help="laion_clap audio config or .json")
    clap.add_argument("--clap-pretrained", help="local CLAP checkpoint; omitted = the model hears nothing")
    clap.add_argument("--window", type=float, default=DEFAULT_WINDOW_S, help="audio window, seconds")
    clap.add_argument("--hop", type=float, default=DEFAULT_HOP_S, help="audio hop, seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        import gradio  # noqa: F401
        import matplotlib  # noqa: F401
    except ImportError as e:
        print(f"error: the demo page needs {e.name}: pip install -e '.[app]'", file=sys.stderr)
        return 2
    if args.examples is not None and not os.path.isdir(args.examples):
        print(f"error: --examples {args.examples}: no such folder", file=sys.stderr)
        return 2
    from .extract import ExtractorModelError, auto_device, load_clap, load_clip, videos_in
    from .modeling import CheckpointError, VideoBLIP2

    examples = [str(path) for path in videos_in(args.examples)] if args.examples else []
    if args.examples and not examples:
        print(f"error: --examples {args.examples}: no video files ({', '.join(VIDEO_EXTENSIONS)})", file=sys.stderr)
        return 2
    device = auto_device(args.device)
    try:
        model = VideoBLIP2.from_pretrained(args.model, map_location=device)
        clip = load_clip(args.clip_model, args.clip_pretrained, layer=args.layer, device=device,
                         quick_gelu=args.quick_gelu)
        clap = load_clap(args.clap_model, args.clap_pretrained, device=device) if args.clap_pretrained else None
        if clip.dim != model.config.video_dim or (clap is not None and clap.dim != model.config.audio_dim):
            raise ExtractorModelError(f"the extractors give {clip.dim}-d frames / "
                                      f"{clap.dim if clap else '-'}-d audio, the model expects "
                                      f"video_dim={model.config.video_dim} / audio_dim={model.config.audio_dim}")
    except (CheckpointError, ExtractorModelError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if clap is None:
        logger.warning("no --clap-pretrained checkpoint: the page captions without sound")
    demo = Demo(model, clip, clap, ExtractionSettings(fps=args.fps, window_s=args.window, hop_s=args.hop))
    print(f"VideoBLIP2 demo on http://{args.host}:{args.port} (Ctrl+C to stop)", flush=True)
    # `kill` stops the page like Ctrl+C does: its temporary folder (the uploads) is deleted
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        serve(demo, host=args.host, port=args.port, examples=examples, max_file_size=args.max_file_size)
    except OSError as e:  # the port is taken, the address is not this machine's
        print(f"error: cannot serve on --host {args.host} --port {args.port}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from .cli import cli

    sys.exit(cli(main))
