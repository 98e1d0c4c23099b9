#!/usr/bin/env bash
# Prepares, on this build machine, everything tools/gpu-check.sh needs on a
# lent GPU machine (the `device` tool's bare NVIDIA H200 box: x86-64, no
# network, none of our build dependencies - no Halide, glslang, protobuf,
# libonnx, GoogleTest, Vulkan loader). Only the working tree travels there
# (64 MiB at most, carried paths included), so the binaries go as a bundle:
#
#   build-gpu-bundle/
#     bin/      vkfuse, bench_vulkan and the Vulkan test binaries, stripped and
#               gzipped: a single-target build's four are 46 MB stripped, 18
#               MB gzipped (the multi-target build's Halide code is 3x, so
#               about 70 and 27, estimated); gpu-check.sh unpacks them to /tmp
#     lib/      every shared library they load that is not glibc, libstdc++,
#               libgcc_s or the Vulkan loader (today protobuf, onnx_proto and
#               zlib: glslang and SPIRV-Tools are linked statically)
#     compat/   libstdc++ and libgcc_s: used there only if the machine's own are
#               missing or older (its newer ones are preferred, since the
#               NVIDIA driver loaded into our process may need them)
#     glibc/    this machine's glibc and dynamic loader: used there only if the
#               machine's glibc is older than the one we built against
#     debs/     the Vulkan loader and GL vendor-neutral dispatch .debs that
#               /work/.library/device/README.md says to unpack into / there
#     tests.tsv the GPU test binaries and their arguments (ctest label
#               "vulkan", not "validation": the validation layer stays here)
#     MANIFEST  commit, dirty files, build options, build machine
#
# Usage: tools/gpu-bundle.sh
# Environment:
#   GPU_BUILD_DIR   build to bundle (default build-gpu; configured and built
#                   here with the default options - Release, multi-target
#                   Halide kernels, so the binaries run on the GPU machine's
#                   CPU whatever its x86-64 level - if it does not exist).
#                   An existing build (e.g. build-dev) is only brought up to
#                   date for the bundled targets, never reconfigured.
#   GPU_BUNDLE_DIR  where the bundle goes (default build-gpu-bundle; any
#                   build*/ folder is git-ignored, so it travels only when the
#                   device call names it in `carry`)
#   GPU_JOBS        build parallelism (default: nproc)
#   GPU_BUILD=0     bundle the binaries as they are, without building (e.g.
#                   build-dev while someone else is changing the sources)
# The `run` call that uses the bundle is printed at the end, and written at
# the top of tools/gpu-check.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${GPU_BUILD_DIR:-build-gpu}
bundle=${GPU_BUNDLE_DIR:-build-gpu-bundle}
jobs=${GPU_JOBS:-$(nproc)}
deb_cache="build-gpu-debs"  # the loader .debs, kept between bundles (and for offline rebuilds)
limit_mib=64               # the device tool's limit on what travels

case "$bundle" in build*/* | build*) ;; *) echo "gpu-bundle: GPU_BUNDLE_DIR must be a git-ignored build*/ folder" >&2; exit 2 ;; esac

# --- 1. The build: default options (multi-target Halide), only the targets we ship.
if [[ ! -f $build/CMakeCache.txt ]]; then
  ./tools/install-deps.sh
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
# The GPU tests: what ctest labels "vulkan", less the validation-layer runs.
# ctest's JSON gives each test's command, but only once its binary is built:
# before that, a test's target is taken to be its name (vkfuse_add_test).
gpu_tests() {  # name<TAB>binary<TAB>args..., one line per test
  ctest --test-dir "$build" -L vulkan -LE validation --show-only=json-v1 | python3 -c '
import json, os, sys
for t in json.load(sys.stdin)["tests"]:
    cmd = t.get("command") or [t["name"]]
    print("\t".join([t["name"], os.path.basename(cmd[0])] + cmd[1:]))'
}
tests_tsv=$(gpu_tests)
if [[ -z $tests_tsv ]]; then echo "gpu-bundle: ctest lists no test labelled vulkan in $build" >&2; exit 1; fi
mapfile -t test_bins < <(cut -f2 <<<"$tests_tsv" | sort -u)
targets=(vkfuse bench_vulkan "${test_bins[@]}")
if [[ ${GPU_BUILD:-1} != 0 ]]; then
  echo "gpu-bundle: building ${targets[*]} in $build"
  cmake --build "$build" -j"$jobs" --target "${targets[@]}"
  tests_tsv=$(gpu_tests)  # now with the built commands
  mapfile -t test_bins < <(cut -f2 <<<"$tests_tsv" | sort -u)
  targets=(vkfuse bench_vulkan "${test_bins[@]}")
fi

# --- 2. The binaries, stripped (symbols are most of their size).
rm -rf "$bundle"
mkdir -p "$bundle"/{bin,lib,compat,glibc,debs}
find_binary() {  # the built file of a target: its name, anywhere in the build tree
  local f
  f=$(find "$build" -type f -name "$1" -perm -u+x -not -path '*/CMakeFiles/*' -print -quit)
  [[ -n $f ]] || { echo "gpu-bundle: no built binary '$1' in $build" >&2; exit 1; }
  echo "$f"
}
staged=$(mktemp -d)
trap 'rm -rf "$staged"' EXIT
for t in "${targets[@]}"; do
  src=$(find_binary "$t")
  strip --strip-unneeded -o "$staged/$t" "$src"
  gzip -9 -n -c "$staged/$t" >"$bundle/bin/$t.gz"
done
printf '%s\n' "$tests_tsv" >"$bundle/tests.tsv"

# --- 3. The shared libraries they load, sorted by how the GPU machine gets them.
declare -A seen=()
for t in "${targets[@]}"; do
  while read -r name path; do
    [[ -n ${seen[$name]:-} ]] && continue
    seen[$name]=1
    if [[ $path == "not found" ]]; then echo "gpu-bundle: $t needs $name, which is not found here" >&2; exit 1; fi
    case "$name" in
      linux-vdso.so.*) continue ;;
      libvulkan.so.*) continue ;;  # the loader: the system's, or debs/ unpacked into / there
      libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | libresolv.so.* | ld-linux-x86-64.so.*)
        dest=glibc ;;
      libstdc++.so.* | libgcc_s.so.*) dest=compat ;;
      *) dest=lib ;;
    esac
    cp -L "$path" "$bundle/$dest/$name"
    # Debian's libraries are stripped already; this drops what little is left.
    if [[ $dest == lib ]]; then strip --strip-unneeded "$bundle/$dest/$name" 2>/dev/null || true; fi
  done < <(ldd "$staged/$t" | awk '
    $2 == "=>" && $3 == "not" { print $1, "not found"; next }
    $2 == "=>" { print $1, $3; next }
    $1 ~ /^\// { n = $1; sub(/.*\//, "", n); print n, $1 }')
done
# The dynamic loader under the name gpu-check.sh runs it by.
[[ -f $bundle/glibc/ld-linux-x86-64.so.2 ]] || cp -L /lib64/ld-linux-x86-64.so.2 "$bundle/glibc/"

# --- 4. The Vulkan loader .debs (the device README's recipe: a private apt
# list, so that this machine's own apt state is left alone).
debs=(libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
mkdir -p "$deb_cache" /tmp/vkfuse-apt-amd64/partial
apt_opts=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/vkfuse-apt-amd64
  -oAPT::Sandbox::User=root)  # root downloads into the repository: no _apt sandbox warning
have_debs() { for d in "${debs[@]}"; do compgen -G "$deb_cache/${d}_*.deb" >/dev/null || return 1; done; }
if ! have_debs; then
  if apt-get "${apt_opts[@]}" update >/dev/null && (cd "$deb_cache" && apt-get "${apt_opts[@]}" download "${debs[@]}"); then :
  else echo "gpu-bundle: warning: could not download the Vulkan loader .debs; gpu-check.sh will need the machine's own loader" >&2
  fi
fi
cp "$deb_cache"/*.deb "$bundle/debs/" 2>/dev/null || true

# --- 5. What was built, from what.
{
  echo "commit     $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (dirty)')"
  git status --porcelain 2>/dev/null | sed 's/^/  changed  /' | head -40
  echo "bundled    $(date -u +%Y-%m-%dT%H:%M:%SZ) from $build (vkfuse built $(date -u -r "$(find_binary vkfuse)" +%Y-%m-%dT%H:%M:%SZ))"
  grep -E '^(CMAKE_BUILD_TYPE|VKFUSE_HALIDE_MULTITARGET|VKFUSE_HALIDE_TARGETS?|VKFUSE_SANITIZE):' "$build/CMakeCache.txt" | sed 's/^/option     /'
  echo "compiler   $(grep -m1 '^CMAKE_CXX_COMPILER:' "$build/CMakeCache.txt" | cut -d= -f2) $(c++ -dumpfullversion 2>/dev/null || true)"
  echo "glibc      $(ldd --version | head -1 | awk '{print $NF}')"
  echo "os         $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "cpu        $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
} >"$bundle/MANIFEST"

# --- 6. Does it fit? The whole working tree travels with it.
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
bundle_bytes=$(du -sb "$bundle" | cut -f1)
total_mib=$(( (tree_bytes + bundle_bytes + 1048575) / 1048576 ))
echo
cat "$bundle/MANIFEST"
echo
du -sh "$bundle"/* | sed 's/^/  /'
awk -v b="$bundle_bytes" -v t="$tree_bytes" -v n="$total_mib" -v l="$limit_mib" 'BEGIN {
  printf "bundle %.1f MiB + working tree %.1f MiB = %d MiB of the %d MiB that may travel\n", b / 1048576, t / 1048576, n, l }'
if grep -q '^VKFUSE_HALIDE_MULTITARGET:BOOL=OFF' "$build/CMakeCache.txt"; then
  echo "gpu-bundle: warning: $build has single-target Halide kernels ($(grep -m1 '^VKFUSE_HALIDE_TARGET:' "$build/CMakeCache.txt" | cut -d= -f2)):" \
    "they may not run on another CPU; bundle the default build (build-gpu) for the GPU machine" >&2
fi
if (( total_mib > limit_mib )); then
  echo "gpu-bundle: too big to travel: drop test binaries from tests.tsv or build with fewer Halide targets" >&2
  exit 1
fi
cat <<EOF

Ready. On a session lent a GPU machine, one device call (the machine's start
plus at most 7 minutes of the session's 15), then paste the summary it prints
into the README:

  run(command="bash tools/gpu-check.sh $bundle", carry=["$bundle"], timeout_s=480)

Locally (lavapipe): OUT=build-gpu-check GPU_CHECK_QUICK=1 tools/gpu-check.sh $bundle
EOF
