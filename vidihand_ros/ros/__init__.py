"""The ROS 2 adapter: the only part of vidihand_ros that imports rclpy.

It converts messages to the core's types at the edge (`messages`), declares the node's
parameters (`settings`) and runs the core's `LiveStream` (`hand_pose_node`); everything else is
the same code `vidihand convert` runs.
"""
