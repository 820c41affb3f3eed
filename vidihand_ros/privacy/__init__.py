"""Privacy filters applied to frames before they are stored (`vidihand convert --blur-faces`)."""

from vidihand_ros.privacy.faces import FaceBlurrer, FaceBox

__all__ = ["FaceBlurrer", "FaceBox"]
