"""The precisions of inference (``dtype``), training autocast (``train.amp``) and benchmarks, by name."""

import torch

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
