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
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# the exact tested set (the lock); pyproject.toml only holds ranges
.venv/bin/pip install -q --disable-pip-version-check -c requirements/constraints.txt -e ".[all]"
echo "installed into $(pwd)/.venv"
