#!/bin/sh
# Installs the gateway from a directory of wheels (built by `pip wheel --wheel-dir DIR .`)
# into a new virtualenv, with no network: the image's install step, run as it is by
# tests/deploy/test_image_install.py.
# usage: install-wheels.sh WHEEL_DIR VENV_DIR
set -eu
python3 -m venv "$2"
"$2/bin/pip" install --quiet --no-cache-dir --no-index --find-links "$1" essc-gateway
