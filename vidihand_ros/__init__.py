"""vidihand_ros: egocentric video → two-hand 3D pose (MANO) → robot-learning datasets.

Everything outside `vidihand_ros.ros` runs without ROS, torch or diffusers.
"""

from pkgutil import extend_path

# The ROS interfaces generated from msg/ are a Python package of the same name (vidihand_ros.msg):
# colcon installs them beside this code; in a venv, scripts/ros_interfaces.sh installs them in a
# folder of their own, named by a site-packages/vidihand_ros.pkg file that extend_path reads.
__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
