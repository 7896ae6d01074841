#!/usr/bin/env bash
# Install one peer into its own virtual environment:
#   benchmarks/peers/install.sh flair      -> benchmarks/peers/.venvs/flair
#   benchmarks/peers/install.sh eole       -> benchmarks/peers/.venvs/eole
# The peer's requirements.txt pins torch==2.13.0 (the CPU build rnnlab uses).
set -euo pipefail
peer="${1:?usage: install.sh PEER (flair or eole)}"
here="$(cd "$(dirname "$0")" && pwd)"
req="$here/$peer/requirements.txt"
[ -f "$req" ] || { echo "no $req" >&2; exit 2; }
venv="$here/.venvs/$peer"
py="${PYTHON:-python3}"
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
"$venv/bin/python" -m pip install --upgrade pip wheel >/dev/null
# torch==2.13.0 is pinned in the requirements: with pip's default index this
# resolves to the local CPU wheel where one is offered (find-links); set
# PEER_TORCH_INDEX=https://download.pytorch.org/whl/cpu to fetch the CPU
# build from PyTorch's index instead of a multi-GB CUDA build.
extra=()
[ -n "${PEER_TORCH_INDEX:-}" ] && extra=(--extra-index-url "$PEER_TORCH_INDEX")
"$venv/bin/python" -m pip install "${extra[@]}" -r "$req"
"$venv/bin/python" -m pip freeze > "$here/.venvs/$peer.freeze.txt"
echo "installed $peer into $venv"
