#!/usr/bin/env bash
# Maintainer check: do the minimum versions in pyproject.toml really work with numpy 2?
# Installs exactly those versions (and numpy 2.0) into a fresh venv, priorfx without
# its own dependency resolution, then runs the demo, which exercises every manipulation,
# every model runtime and the image/video I/O. Usage: bash core/check_min_versions.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d)}
python3 -m venv "$work/venv"
pins=(numpy==2.0.2 opencv-python-headless==4.10.0.84 onnxruntime==1.19.0 OpenImageIO==3.0.3.1
      ai-edge-litert==1.2.0 pyblish-base==1.8.0 requests==2.31.0 platformdirs==4.0.0 tqdm==4.66.1
      numba==0.60.0 threadpoolctl==3.1.0 scipy==1.13.1 websockets==12.0)
"$work/venv/bin/pip" install -q "${pins[@]}"
"$work/venv/bin/pip" install -q --no-deps .
"$work/venv/bin/pip" check
"$work/venv/bin/python" -c "import numpy; assert numpy.__version__.startswith('2.0'), numpy.__version__"
"$work/venv/bin/priorfx" demo --out "$work/demo"
echo "minimum versions OK: ${pins[*]}"
