from setuptools import find_packages, setup

setup(
    name="videoblip2",
    version="0.1.0",
    description="Audio-visual video captioning: CLIP + CLAP features, dual Q-Formers, LoRA Flan-T5",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # Only the library is installed; features/, train/, eval/ run with `python -m` from the repository.
    packages=find_packages(include=["videoblip2", "videoblip2.*"]),
    install_requires=[
        "torch==2.14.1",
        "transformers==5.23.*",
        "peft==0.21.*",
        "tokenizers>=0.22",
        "safetensors",
        "sentencepiece",
        "numpy<2",
        "tqdm",
    ],
    extras_require={
        # open_clip/laion-clap need a torchvision that matches torch 2.14.1
        "features": ["torchvision==0.29.1", "open_clip_torch==3.3.*", "laion-clap==1.1.7", "av", "Pillow", "soxr"],
        "eval": ["pycocoevalcap==1.2"],
        "train": ["accelerate", "matplotlib"],
        # the demo page (python -m videoblip2.app); its browser test also uses selenium + the system's Chromium
        "app": ["torchvision==0.29.1", "open_clip_torch==3.3.*", "laion-clap==1.1.7", "av", "Pillow", "soxr",
                "gradio>=6,<7", "matplotlib"],
        # the documentation site (mkdocs.yml, docs/): `mkdocs build --strict`, offline
        "docs": ["mkdocs==1.6.*", "mkdocs-material==9.*", "mkdocstrings[python]==1.*"],
        "dev": ["pytest", "selenium", "mkdocs==1.6.*", "mkdocs-material==9.*", "mkdocstrings[python]==1.*"],
        "all": [
            "torchvision==0.29.1", "open_clip_torch==3.3.*", "laion-clap==1.1.7", "av", "Pillow", "soxr",
            "pycocoevalcap==1.2", "accelerate", "matplotlib", "gradio>=6,<7", "pytest", "selenium",
            "mkdocs==1.6.*", "mkdocs-material==9.*", "mkdocstrings[python]==1.*",
        ],
    },
)
