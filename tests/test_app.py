"""videoblip2.app: the demo page, driven as a person uses it (gradio_client, HTTP requests, a headless browser).

One server per module: ``python -m videoblip2.app`` with a tiny model and tiny extractors on a free loopback
port. Its captions and answers are compared with `caption_videos` run here on the same files and settings.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

gradio_client = pytest.importorskip("gradio_client", reason="the demo page's tests need the [app] extra")
pytest.importorskip("gradio", reason="the demo page's tests need the [app] extra")

from media import write_corrupt, write_truncated, write_video  # noqa: E402

from videoblip2.caption import caption_videos, extract_video, generate_from_features  # noqa: E402
from videoblip2.decoding import DecodingOptions  # noqa: E402
from videoblip2.extract import load_clap, load_clip  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ARTEFACTS = Path(os.environ.get("VIDEOBLIP2_TEST_ARTEFACTS", REPO / "tests" / "artefacts"))
WINDOW = ("--window", "1", "--hop", "0.5")  # 1 s CLAP windows: several on the 2.5 s test video
MAX_FILE_SIZE = "1MB"  # the test videos are a few kB


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, root: Path, files: dict, model_dir: Path, examples: Path):
        self.root, self.files, self.model_dir, self.examples = root, files, model_dir, examples
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "server.log"
        self.uploaded: list[str] = []  # files uploaded by the tests (gone once the server stops)
        argv = [sys.executable, "-m", "videoblip2.app", "--model", str(model_dir), "--device", "cpu",
                "--clip-model", files["clip_config"], "--clip-pretrained", files["clip_ckpt"],
                "--clap-model", files["clap_config"], "--clap-pretrained", files["clap_ckpt"], *WINDOW,
                "--examples", str(examples), "--port", str(self.port), "--max-file-size", MAX_FILE_SIZE]
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
        self.process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(1)
        self.stop()
        raise RuntimeError(f"the app did not answer within 300 s:\n{self.log.read_text()[-3000:]}")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def upload(self, data: bytes, name: str) -> tuple[int, bytes]:
        boundary = "----videoblip2test"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(self.url + "/gradio_api/upload", data=body, method="POST",
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_files, tiny_model_factory):
    root = tmp_path_factory.mktemp("app")
    model_dir = root / "model"
    model = tiny_model_factory(seed=0)
    model.config.max_caption_len = 10  # short captions: quick beams
    model.save_pretrained(model_dir)
    examples = root / "examples"
    examples.mkdir()
    write_video(examples / "tone.mp4", num_frames=20, fps=8)  # 2.5 s, 440 Hz
    write_video(examples / "mute.mp4", num_frames=10, fps=5, audio=None)  # no audio track
    app = Server(root, tiny_files, model_dir, examples)
    yield app
    app.stop()
    assert app.process.returncode == 0  # SIGTERM stops it like Ctrl+C ...
    assert not [path for path in app.uploaded if os.path.exists(path)]  # ... and its uploads are deleted


@pytest.fixture(scope="module")
def reference(server):
    """The same model and extractors, in this process: what `caption_videos` says."""
    from videoblip2.modeling import VideoBLIP2

    files = server.files
    model = VideoBLIP2.from_pretrained(server.model_dir)
    clip = load_clip(files["clip_config"], files["clip_ckpt"], device="cpu")
    clap = load_clap(files["clap_config"], files["clap_ckpt"], device="cpu")

    def run(path, decoding, question=None):
        [entry] = caption_videos([path], model, clip=clip, clap=clap, window_s=1.0, hop_s=0.5, decoding=decoding,
                                 question=question)
        return entry["answer" if question else "caption"]

    def features(path):
        return extract_video(path, clip, clap, max_frames=model.config.max_frames, window_s=1.0, hop_s=0.5,
                             max_audio_windows=model.config.max_audio_windows)

    run.model, run.features = model, features
    return run


@pytest.fixture
def client(server):
    return gradio_client.Client(server.url, verbose=False, download_files=False)


def analyse(client, path, beams=5, length_penalty=1.0, block=False):
    """The page's outputs for one video: status, caption, no audio, shuffled, frames, sound, heard, history."""
    return client.predict(gradio_client.handle_file(str(path)), beams, length_penalty, block, api_name="/analyse")


def test_page_captions_and_answers_like_caption_videos(server, client, reference):
    tone = server.examples / "tone.mp4"
    status, caption, no_audio, shuffled, frames, sound, heard, history = analyse(client, tone)
    assert "tone.mp4" in status and history == []
    assert caption == reference(tone, DecodingOptions(num_beams=5)) and caption
    # the ablations: the same features, without the sound / with the frames shuffled
    features = reference.features(tone)
    for ablate, shown in (("no_audio", no_audio), ("shuffle_frames", shuffled)):
        expected = generate_from_features(reference.model, [features], decoding=DecodingOptions(num_beams=5),
                                          ablate=ablate)
        assert shown == expected[0]
    # what it saw: the sampled frames with their frame numbers and times
    assert [f["caption"] for f in frames] == [f"#{i} · {t:.2f} s" for i, t in
                                              zip(features.frame_indices, features.frame_times)]
    assert len(frames) == len(features.video) == 16
    # what it heard: 2.5 s of sound in 1 s windows every 0.5 s
    assert heard.startswith(f"{len(features.audio)} CLAP windows of 1 s every 0.5 s") and len(features.audio) >= 3
    assert sound is not None

    # questions about the same video, with other decoding settings: answers collect in the history
    history = []
    options = DecodingOptions(num_beams=2, length_penalty=1.5, block_bad_endings=True)
    for i, question in enumerate(("What sound can be heard?", "Who is in the video?")):
        history, box = client.predict(question, history, 2, 1.5, True, api_name="/ask")
        assert box == ""
        expected = (reference(tone, options, question) if i == 0 else  # (the second from the same features)
                    generate_from_features(reference.model, [features], question=question, decoding=options)[0])
        assert history[-1]["content"][0]["text"] == expected
    assert [m["role"] for m in history] == ["user", "assistant"] * 2
    assert history[2]["content"][0]["text"] == "Who is in the video?"

    # new decoding settings re-caption the same features
    again = client.predict(1, 1.0, True, api_name="/recaption")
    options = DecodingOptions(num_beams=1, block_bad_endings=True)
    assert list(again) == [generate_from_features(reference.model, [features], decoding=options, ablate=ablate)[0]
                           for ablate in (None, "no_audio", "shuffle_frames")]

    # a video without an audio track: "no sound", and removing the sound changes nothing
    status, caption, no_audio, *_, heard, _ = analyse(client, server.examples / "mute.mp4")
    assert heard == "no sound: the file has no audio track"
    assert caption == no_audio == reference(server.examples / "mute.mp4", DecodingOptions(num_beams=5))


def test_bad_uploads_give_a_message_and_the_page_keeps_working(server, client, tmp_path, reference):
    text = tmp_path / "notes.mp4"
    text.write_text("this is a text file, not a video\n")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    broken = write_corrupt(tmp_path / "broken.mp4")  # the index (written last) is cut off
    for path, reason in ((text, "cannot open"), (empty, "empty file"), (broken, "cannot open")):
        status, caption, no_audio, shuffled, frames, sound, heard, history = analyse(client, path)
        assert status.startswith("**Cannot read this video:**") and path.name in status and reason in status
        assert str(tmp_path) not in status  # the server's folders are not shown
        assert (caption, no_audio, shuffled, frames, sound) == ("", "", "", [], None)
    # a question now has no video to go with
    history, _ = client.predict("What sound can be heard?", [], 1, 1.0, False, api_name="/ask")
    assert history[-1]["content"][0]["text"] == "(upload a video first)"

    # a file whose data stops halfway is captioned from the frames that decode, with a warning
    truncated = write_truncated(tmp_path / "truncated.mp4")
    status, caption, *_ = analyse(client, truncated)
    assert "**Warning:** frames decode only up to" in status and "truncated" in status and caption

    # and the next good upload works as before
    good = write_video(tmp_path / "good.mp4", num_frames=12, fps=6)
    status, caption, *_ = analyse(client, good, beams=1)
    assert status.startswith("**Read**") and caption == reference(good, DecodingOptions(num_beams=1))


def test_serves_only_its_own_files(server, tmp_path):
    status, body = server.upload(b"uploaded bytes", "clip.mp4")
    assert status == 200
    [uploaded] = json.loads(body)
    server.uploaded.append(uploaded)
    assert server.get(f"/gradio_api/file={uploaded}") == (200, b"uploaded bytes")  # the route works ...
    folder = os.path.dirname(uploaded)
    secret = server.model_dir / "config.json"  # a file the server process can read, outside its folders
    for path in ("/etc/passwd", str(secret), f"{folder}/../../../../../../etc/passwd", f"{folder}/../../model/config.json",
                 "http://example.com/x.png", "https://127.0.0.1:1/x"):
        for route in (f"/gradio_api/file={path}", f"/gradio_api/file/{path}"):
            status, body = server.get(route)
            assert status in (403, 404), (route, status)
            assert b"root:" not in body and b"video_dim" not in body
    assert server.get("/gradio_api/proxy=http://example.com/")[0] == 403
    # uploads over --max-file-size are refused
    assert server.upload(b"\0" * 1_100_000, "big.mp4")[0] == 413
    # it listens on the loopback address only (the default --host)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("10.255.255.255", 1))  # picks the outgoing interface; sends nothing
        address = probe.getsockname()[0]
    if not address.startswith("127."):
        with pytest.raises(OSError), socket.create_connection((address, server.port), timeout=5):
            pass
    # no analytics, no share link, no fonts from other hosts in the page's configuration
    status, body = server.get("/config")
    config = json.loads(body)
    assert status == 200 and config["analytics_enabled"] is False and not config.get("share_url")
    assert "fonts.googleapis" not in json.dumps(config)


def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("no Chromium + chromedriver installed (Debian: apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
    except ImportError:
        pytest.skip("selenium is not installed (pip install selenium)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,2000", "--no-first-run", "--disable-background-networking"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))


def test_page_in_a_browser(server, reference, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    video = write_video(tmp_path / "browser.mp4", num_frames=20, fps=8)
    expected = reference(video, DecodingOptions(num_beams=5))
    browser = _browser()
    try:
        browser.get(server.url)
        wait = WebDriverWait(browser, 120)
        upload = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "input[type=file]"))[0]
        upload.send_keys(str(video))

        def shown(b):
            boxes = b.find_elements(By.CSS_SELECTOR, "#shuffled textarea")  # filled last
            return boxes and boxes[0].get_attribute("value") not in ("", "…")

        wait.until(shown)
        caption = browser.find_element(By.CSS_SELECTOR, "#caption textarea").get_attribute("value")
        assert caption == expected
        assert "browser.mp4" in browser.find_element(By.ID, "status").text
        assert "CLAP windows" in browser.find_element(By.ID, "heard").text
        # a question typed into the page: its answer joins the history
        question = "What sound can be heard?"
        answer = reference(video, DecodingOptions(num_beams=5), question)
        box = browser.find_element(By.CSS_SELECTOR, "#question textarea")
        box.send_keys(question)
        box.send_keys(Keys.ENTER)
        wait.until(lambda b: answer in b.find_element(By.ID, "chat").text)
        assert question in browser.find_element(By.ID, "chat").text
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTEFACTS / "app_browser.png"))
        # everything the page loaded came from the app itself: no CDN fonts or scripts, no analytics
        hosts = set()
        for entry in browser.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                url = message["params"]["request"]["url"]
                if url.startswith(("http:", "https:", "ws:", "wss:")):
                    hosts.add(url.split("/")[2])
        assert hosts == {f"127.0.0.1:{server.port}"}
    finally:
        browser.quit()


def test_questions_reuse_the_extracted_features(tiny_model_factory, tiny_files, monkeypatch, tmp_path):
    """The page's handlers in this process: one extraction per video, however many questions and re-captions."""
    import videoblip2.caption
    from videoblip2.app import Demo, ExtractionSettings, build_page

    clip = load_clip(tiny_files["clip_config"], tiny_files["clip_ckpt"], device="cpu")
    calls = []
    real = videoblip2.caption.extract_video
    monkeypatch.setattr(videoblip2.caption, "extract_video", lambda path, *a, **k: calls.append(path) or real(path, *a, **k))
    model = tiny_model_factory(seed=0)
    model.config.max_caption_len = 10
    page = build_page(Demo(model, clip, None, ExtractionSettings()))
    handlers = {fn.api_name: fn.fn for fn in page.fns.values()}
    video = write_video(tmp_path / "v.mp4", num_frames=8, fps=4)
    features, status, caption, *_, heard, _ = list(handlers["analyse"](str(video), 1, 1.0, False))[-1]
    assert heard.startswith("no sound: the page runs without a CLAP model")
    history = []
    for question in ("What sound can be heard?", "Where is this?", "Who is in the video?"):
        history, _ = handlers["ask"](features, question, history, 1, 1.0, False)
    assert handlers["recaption"](features, 1, 1.0, False)[0] == caption
    assert calls == [str(video)] and len(history) == 6


def test_command_line_errors(tmp_path, capsys):
    from videoblip2.app import main

    assert main(["--model", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err.strip().splitlines()[-1]
    assert main(["--model", "acme/no-such-model"]) == 2  # a Hub id, offline and not cached
    [line] = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.startswith("error: ") and "acme/no-such-model" in line
    assert main(["--model", str(tmp_path), "--examples", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip() == f"error: --examples {tmp_path / 'nowhere'}: no such folder"
