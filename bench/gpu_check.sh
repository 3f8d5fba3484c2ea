#!/usr/bin/env bash
# GPU check: build llama.cpp with CUDA for the binding and llama-server, run mstui on GPU and CPU in one go.
#
# Run it from the repository root on a machine with an NVIDIA GPU: bash bench/gpu_check.sh
# It prints the layers offloaded, tok/s on the GPU against the CPU (in-process `mstui run`, and a
# short `mstui sweep` against llama-server at concurrency 1 and 4), and peak memory (host RSS,
# GPU memory), and says plainly what it could not do. Without a GPU it exits at once (code 2).
#
# Inputs (environment): PYTHON (default .venv/bin/python, else python3) with mstui's
# dependencies installed; MODEL (default models/SmolLM2-135M-Instruct.Q4_1.gguf);
# LLAMA_CPP_SDIST (the pinned llama-cpp-python sdist; else build/ or pip's index);
# GPU_CHECK_SECONDS (the time budget, default 570: it must end within 10 minutes).
#
# One CUDA build serves both: llama.cpp is built once as shared libraries with llama-server;
# the installed binding loads that libllama through LLAMA_CPP_LIB_PATH (its own hook), so the
# binding is not compiled a second time. Only the GPU's own architecture is compiled.
set -uo pipefail
cd "$(dirname "$0")/.."
budget=${GPU_CHECK_SECONDS:-570}
deadline=$((SECONDS + budget))
say() { echo "gpu_check: $*"; }
left() { echo $((deadline - SECONDS)); }
could_not=()
cannot() { could_not+=("$*"); say "could not: $*"; }
finish() {
  if [ ${#could_not[@]} -gt 0 ]; then
    say "done in ${SECONDS}s; NOT done:"
    printf '  - %s\n' "${could_not[@]}"
    exit 1
  fi
  say "done in ${SECONDS}s; everything ran"
  exit 0
}

# --- what this machine has ---------------------------------------------------------------------
if ! command -v nvidia-smi >/dev/null 2>&1; then
  say "no NVIDIA GPU here (nvidia-smi not found): nothing to check on this machine"; exit 2
fi
if ! gpus=$(nvidia-smi --query-gpu=name,memory.total,compute_cap --format=csv,noheader 2>&1) \
    || [ -z "$gpus" ]; then
  say "no NVIDIA GPU here (nvidia-smi sees none: ${gpus:-no output}): nothing to check"; exit 2
fi
say "GPU: $(echo "$gpus" | head -1)"
arch=$(echo "$gpus" | head -1 | awk -F', ' '{gsub(/\./, "", $3); print $3}')
nvcc=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
if [ -z "$nvcc" ]; then
  say "a GPU but no CUDA toolkit (nvcc not on PATH nor in /usr/local/cuda/bin): cannot build" \
      "llama.cpp for CUDA (apt-get install nvidia-cuda-toolkit, or the NVIDIA installer)"
  exit 3
fi
say "CUDA toolkit: $("$nvcc" --version | tail -1)"
for tool in cmake c++; do
  command -v "$tool" >/dev/null || { say "no $tool: cannot build llama.cpp"; exit 3; }
done
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || command -v python3)}
if ! "$PYTHON" -c "import mstui, llama_cpp, openai" 2>/dev/null; then
  say "$PYTHON cannot import mstui, llama_cpp and openai: run \`make setup\` first"; exit 3
fi
version=$("$PYTHON" -c "import llama_cpp; print(llama_cpp.__version__)")
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
[ -f "$MODEL" ] || { say "no model at $MODEL (run \`make model\` or set MODEL)"; exit 3; }

# --- one CUDA build of the pinned llama.cpp: shared libraries and llama-server -----------------
work=build/gpu-check
mkdir -p "$work"
sdist=${LLAMA_CPP_SDIST:-$(ls build/llama_cpp_python-"$version".tar.gz 2>/dev/null || true)}
if [ -z "$sdist" ]; then
  say "fetching the llama-cpp-python $version sdist from the package index"
  if timeout 120 "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: \
      "llama-cpp-python==$version" -d "$work" >/dev/null 2>&1; then
    sdist=$work/llama_cpp_python-$version.tar.gz
  else
    say "no llama-cpp-python $version sdist (none in build/, LLAMA_CPP_SDIST unset, the index" \
        "unreachable): cannot build llama.cpp for CUDA"
    exit 3
  fi
fi
src=$work/llama_cpp_python-$version/vendor/llama.cpp
[ -d "$src" ] || tar -xzf "$sdist" -C "$work"
cuda_build=$work/cuda
start=$SECONDS
say "building llama.cpp $version with CUDA for sm_$arch (shared libraries + llama-server)"
build_rc=0
timeout $(( $(left) - 150 )) bash -c "
    cmake -S '$src' -B '$cuda_build' -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=on \
      -DCMAKE_CUDA_ARCHITECTURES='$arch' -DCMAKE_CUDA_COMPILER='$nvcc' -DBUILD_SHARED_LIBS=ON \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON \
      -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF \
      -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF ${CMAKE_ARGS:-} >'$work/configure.log' 2>&1 &&
    cmake --build '$cuda_build' --target llama-server llama -j \$(nproc) >'$work/build.log' 2>&1" \
  || build_rc=$?
if [ "$build_rc" -eq 0 ]; then
  say "CUDA build: $((SECONDS - start)) s"
  built=1
else
  # The log that ends last says why: configure (CMake could not find CUDA parts) or build.
  for log in "$work/configure.log" "$work/build.log"; do
    [ -s "$log" ] && { echo "--- tail of $log:"; tail -8 "$log"; }
  done
  if [ "$build_rc" -eq 124 ]; then
    cannot "build llama.cpp with CUDA within the time budget (logs in $work)"
  else
    cannot "build llama.cpp with CUDA: the build failed after $((SECONDS - start)) s, exit" \
      "$build_rc (see the log tail above; logs in $work)"
  fi
  built=0
fi

# --- in-process: mstui run on the GPU and on the CPU, same binary --------------------------------
# Peak RSS of one child command, and its output kept in a file.
peak_run() {  # peak_run OUTFILE CMD... -> prints the child's peak RSS in MiB
  "$PYTHON" - "$@" <<'EOF'
import resource, subprocess, sys
with open(sys.argv[1], "w") as out:
    code = subprocess.run(sys.argv[2:], stdout=out, stderr=subprocess.STDOUT).returncode
print(f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} rc={code}")
EOF
}
median_tps() {  # median tokens_per_s of the --json rounds in a file
  "$PYTHON" -c "
import json, statistics, sys
v = [json.loads(l)['tokens_per_s'] for l in open(sys.argv[1]) if l.startswith('{')]
print(f'{statistics.median(v):.0f}' if v else 'n/a')" "$1"
}
gpu_mem_watch() {  # samples GPU memory use until killed; the peak is the max line
  while true; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1
    sleep 0.5; done
}
gpu_mem_watch >"$work/gpu_mem.txt" 2>/dev/null &
watcher=$!
trap 'kill $watcher 2>/dev/null' EXIT
db=$work/gpu_check.db
rm -f "$db"
q="A shop sells pencils at 3 dollars each. Tom buys 7 pencils. How much does he pay?"
if [ "$built" = 1 ] && [ "$(left)" -gt 90 ]; then
  export LLAMA_CPP_LIB_PATH=$cuda_build/bin
  for where in gpu cpu; do
    layers=$([ $where = gpu ] && echo -1 || echo 0)
    res=$(peak_run "$work/run_$where.txt" timeout 60 "$PYTHON" -m mstui run --question "$q" \
          --gold 21 --max-rounds 4 --max-tokens 128 --gpu-layers "$layers" --json --db "$db")
    offload=$(grep -o 'GPU: [0-9]*/[0-9]* layers\|CPU only[^·]*' "$work/run_$where.txt" | head -1)
    say "mstui run on the $where: ${offload:-offload not printed} · $(median_tps \
        "$work/run_$where.txt") tok/s (median round) · peak RSS ${res% rc=*} MiB (${res#* })"
  done
  unset LLAMA_CPP_LIB_PATH
else
  cannot "run mstui in-process on the GPU (no CUDA build, or too little time left)"
fi

# --- llama-server with 4 slots: a short sweep at concurrency 1 and 4, GPU then CPU -------------
serve_and_sweep() {  # serve_and_sweep gpu|cpu
  local where=$1 ngl port log pid
  ngl=$([ "$where" = gpu ] && echo 99 || echo 0)
  port=$("$PYTHON" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  log=$work/server_$where.log
  "$cuda_build/bin/llama-server" -m "$MODEL" --host 127.0.0.1 --port "$port" -np 4 -c 8192 \
    -ngl "$ngl" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.5
  done
  say "llama-server on the $where: $(grep -o 'offloaded [0-9]*/[0-9]* layers to GPU' "$log" \
      | head -1 || echo 'offload not logged')"
  for c in 1 4; do
    local t0 t1 out tokens
    t0=$(date +%s.%N)
    out=$(timeout 120 "$PYTHON" -m mstui sweep --backend openai \
          --base-url "http://127.0.0.1:$port/v1" --problem-set gen --limit 8 --max-rounds 2 \
          --max-tokens 64 --concurrency "$c" --db "$work/sweep_${where}_$c.db" 2>/dev/null)
    t1=$(date +%s.%N)
    tokens=$(echo "$out" | grep -o '[0-9]* tokens generated' | cut -d' ' -f1)
    if [ -n "$tokens" ]; then
      say "  sweep 8 questions x 2 rounds, c=$c on the $where: $(awk -v a="$t0" -v b="$t1" \
          -v n="$tokens" 'BEGIN {printf "%.1f s, %.0f tok/s", b - a, n / (b - a)}')"
    else
      cannot "sweep at c=$c on the $where (see $work/sweep_${where}_$c.db and $log)"
    fi
  done
  say "  llama-server peak RSS $(awk '/VmHWM/ {printf "%.0f", $2/1024}' /proc/$pid/status) MiB"
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
}
for where in gpu cpu; do
  if [ "$built" = 1 ] && [ "$(left)" -gt 60 ]; then
    serve_and_sweep "$where"
  else
    cannot "sweep against llama-server on the $where (no CUDA build, or too little time left)"
  fi
done
kill $watcher 2>/dev/null
peak=$(sort -n "$work/gpu_mem.txt" 2>/dev/null | tail -1)
say "peak GPU memory used during the check: ${peak:-n/a} MiB"
finish
