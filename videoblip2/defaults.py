"""Defaults and choices the command lines need before the model stack loads: this module imports nothing, so
``--help`` and argument errors answer before torch, open_clip or laion_clap load. ``videoblip2.extract`` and
``videoblip2.data`` re-export them; why each value was chosen is written here, once."""

VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ts")

DEFAULT_CLIP_MODEL = "ViT-L-14"
DEFAULT_CLIP_PRETRAINED = "openai"
DEFAULT_NUM_FRAMES = 32
CLIP_LAYERS = ("embed", "pooled")

DEFAULT_CLAP_MODEL = "HTSAT-tiny"
CLAP_SAMPLE_RATE = 48_000
# Audio windows. CLAP's audio tower sees 10 s inputs (shorter ones are repeat-padded, as in CLAP training).
# MSR-VTT clips last 10-30 s and the model reads at most 16 windows (config.max_audio_windows): 5 s windows
# every 2.5 s give 3 windows for a 10 s clip and 11 for a 30 s clip -- sub-clip temporal resolution (a
# sound that starts halfway is visible) while every window still holds enough context to be recognisable
# (CLAP is weak on 1-2 s snippets). Longer videos get at most `max_windows` windows spread evenly.
DEFAULT_WINDOW_S = 5.0
DEFAULT_HOP_S = 2.5
DEFAULT_MAX_WINDOWS = 16
# Peak amplitude below which a track counts as silent (-80 dBFS; quantised to int16 it is all zeros).
DEFAULT_SILENCE_THRESHOLD = 1e-4

# modality ablations of videoblip2.data.ablate_features (predict --ablate, eval.ablation)
ABLATIONS = ("audio", "frame-order", "video")
