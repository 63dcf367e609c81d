"""Running the model: training, prediction over many images, benchmarks."""

from .benchmark import benchmark_detector, run_benchmark, synthetic_inputs
from .distributed import Processes, all_gather_lists, gather_in_order, init_process_group, pick_device
from .faults import StopSignals, TrainingError, TrainingInterrupted
from .predict_many import PredictionStopped, PredictionSummary, predict_files
from .predictor import Detector, Prediction, iter_predictions, predict, to_record
from .schedule import build_optimizer, lr_factor
from .trainer import Trainer

__all__ = [
    "Trainer",
    "TrainingError",
    "TrainingInterrupted",
    "build_optimizer",
    "lr_factor",
    "Detector",
    "Prediction",
    "iter_predictions",
    "predict",
    "to_record",
    "run_benchmark",
    "benchmark_detector",
    "synthetic_inputs",
    "StopSignals",
    "predict_files",
    "PredictionStopped",
    "PredictionSummary",
    "Processes",
    "all_gather_lists",
    "gather_in_order",
    "init_process_group",
    "pick_device",
]
