"""Running the model end to end: training, prediction over many files, benchmarks, evaluation with
its report. The top library layer: the CLI, the service and video call these."""

from .benchmark import benchmark_detector, run_benchmark, synthetic_inputs
from .evaluate_report import analyse_results, evaluate_with_report
from .faults import StopSignals, TrainingError, TrainingInterrupted
from .file_prediction import PredictionStopped, PredictionSummary, predict_files
from .quantization import quantize_model_file
from .schedule import build_optimizer, learning_rate, lr_factor
from .trainer import Trainer

__all__ = [
    "Trainer",
    "analyse_results",
    "evaluate_with_report",
    "TrainingError",
    "TrainingInterrupted",
    "build_optimizer",
    "learning_rate",
    "lr_factor",
    "run_benchmark",
    "benchmark_detector",
    "synthetic_inputs",
    "StopSignals",
    "predict_files",
    "PredictionStopped",
    "PredictionSummary",
    "quantize_model_file",
]
