#!/usr/bin/env bash
# The service under load beside `sparse-rcnn benchmark` for the same model and input size, in one run
# (BENCHMARKS.md, "Serve"). Usage:
#   benchmarks/serve_side_by_side.sh WEIGHTS MODEL HxW IMAGE "CLIENTS..." REQUESTS [extra serve flags]
# IMAGE is sent by every client; HxW is the size IMAGE is resized to (what `benchmark` times).
# Localhost only; each load run stops after REQUESTS requests or 120 s.
set -euo pipefail
weights=$1 model=$2 size=$3 image=$4 levels=$5 requests=$6
shift 6
port=$((20000 + RANDOM % 20000))
lscpu | grep -m1 "Model name"
sparse-rcnn benchmark --model "$model" --weights "$weights" --size "$size" --iters "${ITERS:-20}" --warmup 2 --threads 2 \
  | grep -E "images/s|median|ms" || true
sparse-rcnn serve --model "$model" --weights "$weights" --port "$port" "$@" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 1; done
for clients in $levels; do
  echo "--- concurrency $clients"
  python benchmarks/serve_load.py --url "http://127.0.0.1:$port" --clients "$clients" --requests "$requests" \
    --duration 120 --images "$image" --pid "$server" --timeout 300
done
