"""``python tests/fault_runner.py FAULT -- sparse-rcnn arguments``: the command in a real process with
one injected fault. FAULT is ``slow-save=N`` (iteration N's checkpoint hangs while being written) or
``sigterm=N`` (the process sends itself SIGTERM during iteration N)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import sparse_rcnn.cli.train as train_cli  # noqa: E402
from fault_injection import SignalAt, SlowSave, with_hooks  # noqa: E402
from sparse_rcnn.cli import main  # noqa: E402

FAULTS = {"slow-save": SlowSave, "sigterm": SignalAt}

if __name__ == "__main__":
    fault, sep, *argv = sys.argv[1:]
    name, _, iteration = fault.partition("=")
    train_cli.Trainer = with_hooks(train_cli.Trainer, FAULTS[name](int(iteration)))
    sys.exit(main(argv))
