#!/usr/bin/env bash
# Build llama-server from the llama.cpp source in the pinned llama-cpp-python sdist, cached by version and CMAKE_ARGS.
#
# Usage: scripts/build-llama-server.sh VERSION PYTHON LINK
#   VERSION  the llama-cpp-python version pinned in pyproject.toml (the binding's llama.cpp)
#   PYTHON   a Python with pip, used only to fetch the sdist from the package index
#   LINK     where to put a symlink to the cached binary (e.g. build/llama-server)
#
# The binary is cached like pip caches the binding's wheel: under
# ${MSTUI_CACHE:-${XDG_CACHE_HOME:-~/.cache}/mstui}/llama-server-VERSION-HASH/, where HASH covers
# CMAKE_ARGS (CPU by default; "-DGGML_CUDA=on" etc. as for the binding) and this script's own
# flags, so a fresh clone reuses it and a GPU build never reuses a CPU one.
set -euo pipefail
version=$1 python=$2 link=$3
cmake_args=${CMAKE_ARGS:-}
# No web UI: its assets would be fetched from a model hub (LLAMA_USE_PREBUILT_UI) or built with
# npm; mstui only needs the HTTP API. Static libraries: the cached binary stands alone.
fixed=(-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF
       -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON
       -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF)
sha256() { if command -v sha256sum >/dev/null; then sha256sum; else shasum -a 256; fi; }
key=$(printf '%s\n' "$version" "${fixed[*]}" "$cmake_args" | sha256 | cut -c1-12)
cache=${MSTUI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mstui}
dir=$cache/llama-server-$version-$key
if [ ! -x "$dir/llama-server" ]; then
  command -v cmake >/dev/null || { echo "make server: cmake is missing (apt-get install cmake)" >&2; exit 2; }
  command -v c++ >/dev/null || { echo "make server: no C++ compiler (apt-get install g++)" >&2; exit 2; }
  work=$(mktemp -d "${TMPDIR:-/tmp}/llama-server-build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  echo "Building llama-server from llama-cpp-python $version's llama.cpp (CMAKE_ARGS='$cmake_args'; several minutes once, then cached in $dir)"
  # --no-binary for this package only: ":all:" would also build pip's build tools (cmake)
  # from source while it reads the sdist's metadata, which took over ten minutes on 2 cores.
  "$python" -m pip download --quiet --no-deps --no-binary llama-cpp-python \
    "llama-cpp-python==$version" -d "$work"
  tar -xzf "$work/llama_cpp_python-$version.tar.gz" -C "$work"
  src=$work/llama_cpp_python-$version/vendor/llama.cpp
  # shellcheck disable=SC2086  # CMAKE_ARGS is a list of flags, split on purpose (as pip does)
  cmake -S "$src" -B "$work/build" "${fixed[@]}" $cmake_args >"$work/configure.log" 2>&1 \
    || { tail -30 "$work/configure.log" >&2; echo "make server: cmake configure failed" >&2; exit 1; }
  cmake --build "$work/build" --target llama-server -j "${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}" \
    >"$work/build.log" 2>&1 \
    || { tail -30 "$work/build.log" >&2; echo "make server: build failed" >&2; exit 1; }
  # Publish atomically: a half-copied cache entry must never look finished to a parallel run.
  mkdir -p "$cache"
  stage=$(mktemp -d "$cache/.llama-server-$version-$key.XXXXXX")
  chmod 755 "$stage"
  cp "$work/build/bin/llama-server" "$stage/"
  printf '%s\n' "llama-cpp-python $version" "CMAKE_ARGS=$cmake_args" "${fixed[*]}" >"$stage/BUILD_INFO"
  if [ -e "$dir" ]; then rm -rf "$stage"; else mv "$stage" "$dir"; fi  # or another run won
fi
mkdir -p "$(dirname "$link")"
ln -sfn "$dir/llama-server" "$link"
echo "llama-server: $link -> $dir/llama-server"
