#!/usr/bin/env bash
# Installs a vkfuse build into a scratch prefix, checks what it holds, builds
# examples/ against it (shared and static library, not the build tree) and
# runs them on a torchvision export:
#   - the prefix has include/vkfuse/ only, and libvkfuse.so exports the API only;
#   - classify's top-5 for a PNG match `vkfuse run` on the same image decoded
#     by PIL and resized by PyTorch (an independent preprocessing path);
#   - batch, from 3 threads over PNG and JPEG files, gives classify's top-1
#     for every PNG;
#   - an application with a Halide pipeline of its own (tests/package/) keeps
#     its own Halide runtime and parallel-loop handler beside vkfuse's, whose
#     host kernels still match its reference kernels.
# Usage: tools/test-package.sh BUILD_DIR MODEL.onnx [WORK_DIR]
set -euo pipefail
build=$(cd "$1" && pwd)
model=$2
work=${3:-$build/package-test}
src=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
fail() { echo "test-package: $*" >&2; exit 1; }

rm -rf "$work" && mkdir -p "$work/images"
cmake --install "$build" --prefix "$work/prefix" >"$work/install.log"
prefix=$work/prefix
libdir=$(dirname "$(find "$prefix" -name libvkfuse.so | head -1)")
[[ -f $prefix/include/vkfuse/vkfuse.h && -f $libdir/libvkfuse.a && -f $libdir/pkgconfig/vkfuse.pc ]] ||
  fail "the install lacks the headers, libvkfuse.a or vkfuse.pc (see $work/install.log)"
[[ $(ls "$prefix/include") == vkfuse ]] || fail "include/ holds more than vkfuse/: $(ls "$prefix/include")"
leaked=$(nm -D --defined-only "$libdir/libvkfuse.so" | cut -d' ' -f3- | c++filt |
  grep -Ev '^(vkfuse::|typeinfo for vkfuse::|typeinfo name for vkfuse::|vtable for vkfuse::)' || true)
[[ -z $leaked ]] || fail "libvkfuse.so exports more than the API: $(echo "$leaked" | head -5 | tr '\n' ';')"
internal=$(nm -D --defined-only "$libdir/libvkfuse.so" | cut -d' ' -f3- | c++filt |
  grep -E 'vkfuse::(graph|planner|runtime|codegen)::|halide_' | head -3 || true)
[[ -z $internal ]] || fail "libvkfuse.so exports internals: $internal"
[[ $(PKG_CONFIG_PATH=$libdir/pkgconfig pkg-config --libs vkfuse) == *-lvkfuse* ]] || fail "vkfuse.pc does not give -lvkfuse"

# Images: random pictures as PNG and JPEG, and PyTorch's preprocessing of the PNGs.
"$py" - "$work/images" <<'PY'
import sys, numpy as np, torch, torch.nn.functional as F
from PIL import Image
out = sys.argv[1]
rng = np.random.default_rng(7)
for i, (h, w) in enumerate([(260, 300), (224, 224), (180, 320)]):
    # smooth random pictures (noise upsampled), so that JPEG keeps them close
    small = rng.integers(0, 256, (h // 20 + 1, w // 20 + 1, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.BILINEAR)
    img.save(f"{out}/img{i}.png")
    img.save(f"{out}/img{i}.jpg", quality=95)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    np.save(f"{out}/../ref{i}.input.npy", ((x - mean) / std).numpy().astype(np.float32))
PY

top5_of_npy() { "$py" -c "import numpy as np, sys; y = np.load(sys.argv[1]).reshape(-1); print(' '.join(map(str, np.argsort(-y)[:5])))" "$1"; }

for link in shared static; do
  ex=$work/examples-$link
  cmake -S "$src/examples" -B "$ex" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
    -DVKFUSE_LINK=$link >"$ex.configure.log" 2>&1 || fail "configuring examples ($link) failed: see $ex.configure.log"
  cmake --build "$ex" -j2 >"$ex.build.log" 2>&1 || fail "building examples ($link) failed: see $ex.build.log"
  # (ldd's list captured first: grep -q closing the pipe early would fail the pipeline under pipefail)
  libs=$(ldd "$ex/classify")
  if [[ $link == shared ]]; then
    [[ $libs == *"$libdir/libvkfuse.so"* ]] || fail "classify does not load the installed libvkfuse.so"
  else
    [[ $libs != *libvkfuse.so* ]] || fail "the static classify loads libvkfuse.so"
  fi
  for i in 0 1 2; do
    "$ex/classify" "$model" "$work/images/img$i.png" --strategy cpu >"$work/classify-$link-$i.txt" 2>"$work/classify-$link-$i.err" ||
      fail "classify ($link) failed on img$i.png: $(cat "$work/classify-$link-$i.err")"
    got=$(grep -oE 'class [0-9]+' "$work/classify-$link-$i.txt" | cut -d' ' -f2 | tr '\n' ' ' | sed 's/ $//')
    "$build/cli/vkfuse" run "$model" -s cpu -q -n 1 -w 0 -i "$work/ref$i.input.npy" -o "$work/ref$i.output.npy" >/dev/null
    want=$(top5_of_npy "$work/ref$i.output.npy")
    [[ ${got%% *} == "${want%% *}" ]] ||
      fail "classify ($link) img$i.png: top-5 $got, vkfuse run on PyTorch's preprocessing: $want"
    [[ $(echo "$got" | tr ' ' '\n' | sort | tr '\n' ' ') == $(echo "$want" | tr ' ' '\n' | sort | tr '\n' ' ') ]] ||
      fail "classify ($link) img$i.png: top-5 $got, vkfuse run on PyTorch's preprocessing: $want"
  done
  "$ex/batch" "$model" "$work/images" --threads 3 --strategy cpu >"$work/batch-$link.txt" 2>&1 ||
    fail "batch ($link) failed: $(tail -3 "$work/batch-$link.txt")"
  for i in 0 1 2; do
    want=$(grep -oE 'class [0-9]+' "$work/classify-$link-$i.txt" | head -1)
    grep -q "img$i.png: $want\$" "$work/batch-$link.txt" || fail "batch ($link) img$i.png: not $want ($(grep "img$i.png" "$work/batch-$link.txt"))"
  done
  app=$work/halide-app-$link
  cmake -S "$src/tests/package" -B "$app" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
    -DVKFUSE_LINK=$link >"$app.configure.log" 2>&1 || fail "configuring halide_app ($link) failed: see $app.configure.log"
  cmake --build "$app" -j2 >"$app.build.log" 2>&1 || fail "building halide_app ($link) failed: see $app.build.log"
  "$app/halide_app" "$model" >"$app.txt" 2>&1 || fail "halide_app ($link): $(tail -3 "$app.txt")"
  echo "test-package: $link: classify matches PyTorch's preprocessing on 3 images; batch agrees from 3 threads;" \
    "an application's own Halide runtime stays its own"
done
