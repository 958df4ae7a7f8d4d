#!/usr/bin/env bash
# Installs VideoBLIP2 with every extra into ./.venv (idempotent), and Java for pycocoevalcap if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! command -v java >/dev/null 2>&1; then
  echo "Java not found: installing a headless JRE (pycocoevalcap's METEOR and PTB tokenizer need it)"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq default-jre-headless >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq default-jre-headless >/dev/null; fi
fi
# Optional: Chromium + chromedriver for the demo page's browser test (tests/test_app.py, skipped without them).
# Only where apt-get runs as root (or password-less sudo); VIDEOBLIP2_NO_BROWSER=1 skips it.
if [ -z "${VIDEOBLIP2_NO_BROWSER:-}" ] && ! command -v chromedriver >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  SUDO=none
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=sudo; fi
  if [ "$SUDO" != none ]; then
    echo "installing Chromium + chromedriver (Debian packages) for the demo page's browser test"
    { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
      || echo "could not install Chromium: the browser test will be skipped"
  fi
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e ".[all]"
echo "installed into $(pwd)/.venv"
