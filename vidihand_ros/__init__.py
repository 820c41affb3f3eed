"""vidihand_ros: egocentric video → two-hand 3D pose (MANO) → robot-learning datasets.

Everything outside `vidihand_ros.ros` runs without ROS, torch or diffusers.
"""

__version__ = "0.1.0"
