"""Camera geometry shared by every estimator: lens undistortion and the metric translation solve."""

from __future__ import annotations

from vidihand_ros.geometry.distortion import SUPPORTED_DISTORTION_MODELS, undistort_points
from vidihand_ros.geometry.translation import solve_translation

__all__ = ["SUPPORTED_DISTORTION_MODELS", "solve_translation", "undistort_points"]
