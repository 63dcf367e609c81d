"""Video: frames read with PyAV (``reader``), detected through the one inference loop
(``predict``: ``predict_video`` yields one record per frame), tracked across frames with
Roboflow's ``trackers`` (``tracking``), written as JSON Lines / MOTChallenge rows and annotated
videos (``files``, ``mot``, ``writer``, ``draw``; ``annotate`` draws and encodes in a thread);
tracks scored with TrackEval (``track_eval``), on a generated clip for the demo (``clips``,
``clip_tracking``). PyAV and ``trackers`` are the optional ``video`` extra, imported when first used.
"""

from .annotate import AnnotatedVideo
from .clip_tracking import CLIP_SEED, ClipTracking, track_clip
from .clips import ClipFiles, make_clip
from .draw import FrameDrawer, frame_strip
from .files import OUTPUT_FORMATS, VideoSummary, predict_video_file
from .mot import MotFormatError, MotRows, read_mot, record_rows, write_ground_truth, write_seqinfo
from .predict import FramePrediction, VideoStopped, frame_record, iter_video, predict_video
from .reader import (
    VIDEO_EXTENSIONS,
    Frame,
    FrameReader,
    MissingVideoPackageError,
    VideoError,
    VideoInfo,
    is_video,
    probe,
)
from .track_eval import FIELDS, TrackEvalError, TrackScores, evaluate_tracks, format_score
from .tracking import DEFAULT_NMS, TRACKERS, Tracker, TrackSettings
from .writer import FAST_PRESET, VideoWriter

__all__ = [
    "evaluate_tracks",
    "TrackScores",
    "TrackEvalError",
    "FIELDS",
    "format_score",
    "make_clip",
    "track_clip",
    "ClipTracking",
    "CLIP_SEED",
    "ClipFiles",
    "predict_video",
    "predict_video_file",
    "iter_video",
    "frame_record",
    "FramePrediction",
    "VideoSummary",
    "VideoStopped",
    "OUTPUT_FORMATS",
    "FrameReader",
    "Frame",
    "VideoInfo",
    "VideoError",
    "MissingVideoPackageError",
    "VIDEO_EXTENSIONS",
    "is_video",
    "probe",
    "Tracker",
    "TrackSettings",
    "TRACKERS",
    "DEFAULT_NMS",
    "VideoWriter",
    "FAST_PRESET",
    "AnnotatedVideo",
    "FrameDrawer",
    "frame_strip",
    "MotRows",
    "MotFormatError",
    "read_mot",
    "record_rows",
    "write_ground_truth",
    "write_seqinfo",
]
