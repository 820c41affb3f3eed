"""Robot action labels from hand poses, in UMI's key convention (`vidihand label`, docs/labels.md).

`config` reads the hand-to-gripper YAML, `gripper` is the maths, `keys` the key names, `label`
writes them into a dataset.
"""
