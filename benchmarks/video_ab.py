"""A/B of `sparse-rcnn predict VIDEO` between git revisions: frames/s of each revision's code on the
same clip, the runs interleaved (A B B A A B ...) so that a machine that slows down for a while
slows both alike; each round's ratio is B / A of neighbouring runs, and the medians are printed.

Each revision's ``src`` is taken with ``git archive`` into --workdir and run as a child process
with ``PYTHONPATH`` pointing at it (the installed package's dependencies are shared). Timing as in
``benchmarks/video.py`` (records after the first batch's, to the last record).

    python benchmarks/video_ab.py --revs e50687c,HEAD --weights model_final.pth --video clip.mp4 \
        --modes predict,"predict --track --save-vis" --batch-size 4 --threads 2 --rounds 4
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import video as bench  # noqa: E402 - benchmarks/video.py: the same timing

REPO = Path(__file__).resolve().parents[1]


def export(rev: str, root: Path) -> Path:
    """``rev``'s src/ under root/<commit>/ (once); returns the folder to put on PYTHONPATH."""
    commit = subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO, check=True, capture_output=True, text=True)
    target = root / commit.stdout.strip()
    if not (target / "src").is_dir():
        data = subprocess.run(["git", "archive", rev, "src"], cwd=REPO, check=True, capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(target, filter="data")
    return target / "src"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--revs", required=True, help="A,B (git revisions; B is compared with A)")
    p.add_argument("--weights", required=True)
    p.add_argument("--model", help="named config, for an MMDetection checkpoint")
    p.add_argument("--video", required=True)
    p.add_argument("--modes", default="predict", help="comma-separated, of: " + ", ".join(bench.MODES))
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--threads", type=int, help="OMP/torch threads of every child")
    p.add_argument("--device", default="cpu")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--workdir", default="/tmp/sparse-rcnn-video-ab")
    p.add_argument("--output", help="write the JSON here too")
    args = p.parse_args(argv)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    revs = args.revs.split(",")
    if len(revs) != 2:
        raise SystemExit("--revs takes two revisions, A,B")
    paths = [export(rev, work / "src") for rev in revs]
    model_args = bench._model_args(args.model, args.weights)
    runs: dict = {m: {rev: [] for rev in revs} for m in args.modes.split(",")}
    for r in range(args.rounds):
        for mode, per_rev in runs.items():
            extra = [a.format(work=work) for a in bench.MODES[mode]]
            order = [0, 1] if r % 2 == 0 else [1, 0]
            for i in order:
                os.environ["PYTHONPATH"] = str(paths[i])
                out = work / "out.jsonl"
                result = bench.run_predict(Path(args.video), out, model_args, args.device, args.batch_size, extra)
                per_rev[revs[i]].append(result["frames_per_s"])
                print(f"round {r + 1} {mode:<28}{revs[i]:>12}{result['frames_per_s']:>9.2f} frames/s", flush=True)
    summary = {}
    for mode, per_rev in runs.items():
        a, b = per_rev[revs[0]], per_rev[revs[1]]
        ratios = [y / x for x, y in zip(a, b)]
        summary[mode] = {
            revs[0]: statistics.median(a),
            revs[1]: statistics.median(b),
            "ratio": statistics.median(ratios),
            "ratios": ratios,
        }
        print(f"{mode:<28} {revs[0]} {statistics.median(a):.2f}  {revs[1]} {statistics.median(b):.2f}  "
              f"B/A {statistics.median(ratios):.3f} (rounds: {', '.join(f'{x:.2f}' for x in ratios)})")  # fmt: skip
    result = {"revs": revs, "video": args.video, "batch_size": args.batch_size, "threads": args.threads,
              "modes": summary, "runs": runs}  # fmt: skip
    print(json.dumps(result))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
