"""``python tests/fault_runner.py SLOW_SAVE_ITER -- sparse-rcnn arguments``: the command in a real
process whose training checkpoint of iteration SLOW_SAVE_ITER hangs while being written."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import sparse_rcnn.cli.train as train_cli  # noqa: E402
from fault_injection import SlowSave, with_hooks  # noqa: E402
from sparse_rcnn.cli import main  # noqa: E402

if __name__ == "__main__":
    iteration, sep, *argv = sys.argv[1:]
    train_cli.Trainer = with_hooks(train_cli.Trainer, SlowSave(int(iteration)))
    sys.exit(main(argv))
