"""Pictures for people: detections drawn on images, grids, training curves."""

from .curves import plot_training_curves
from .draw import draw_detections, draw_predictions, save_grid, save_png

__all__ = ["draw_detections", "draw_predictions", "save_grid", "save_png", "plot_training_curves"]
