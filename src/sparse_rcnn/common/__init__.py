"""What every layer uses: processes under torchrun (``distributed``), output files written safely
(``output_files``) and the precisions by name. Nothing here imports another part of the package."""

from .distributed import (
    Processes,
    all_gather_lists,
    all_reduce_mean,
    gather_in_order,
    init_process_group,
    pick_device,
    wrap_model,
)
from .output_files import (
    OutputError,
    atomic_write,
    check_output_dir,
    check_outputs,
    check_outside,
    claim_folder,
    naming,
    unique_names,
)
from .precisions import PRECISIONS

__all__ = [
    "Processes",
    "all_gather_lists",
    "all_reduce_mean",
    "gather_in_order",
    "init_process_group",
    "pick_device",
    "wrap_model",
    "OutputError",
    "atomic_write",
    "check_output_dir",
    "check_outputs",
    "check_outside",
    "claim_folder",
    "naming",
    "unique_names",
    "PRECISIONS",
]
