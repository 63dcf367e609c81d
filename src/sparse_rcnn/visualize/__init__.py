"""Pictures for people: detections drawn on images, grids, training curves, the evaluation report."""

from .curves import plot_training_curves
from .dataset import show_dataset
from .draw import caption_font, class_color, draw_detections, draw_predictions, save_grid, save_png, text_color
from .report import write_report

__all__ = [
    "caption_font",
    "class_color",
    "text_color",
    "draw_detections",
    "draw_predictions",
    "save_grid",
    "save_png",
    "plot_training_curves",
    "write_report",
    "show_dataset",
]
