#!/usr/bin/env bash
# Runs a Python script in a virtual environment with timm, made on first use
# on top of Debian's python3-torch: timm comes from PyPI without its
# dependencies, since Debian already provides torch, torchvision, numpy and
# the rest that timm imports.
# Usage: timm-venv.sh VENV_DIR SCRIPT [ARGS...]
set -euo pipefail
dir=${1:?usage: timm-venv.sh VENV_DIR SCRIPT [ARGS...]}
shift
if ! "$dir/bin/python" -c "import timm" 2>/dev/null; then
  echo "timm-venv.sh: creating $dir (pip install --no-deps timm)" >&2
  rm -rf "$dir"
  /usr/bin/python3 -m venv --system-site-packages "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check --no-deps "timm==1.0.31"
fi
exec "$dir/bin/python" "$@"
