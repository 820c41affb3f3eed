"""Scale-out over a Ray cluster: many recordings converted at once, merged into one dataset.

`vidihand convert --ray` lands here (`convert_on_ray`). Nothing in this package imports Ray at
import time, so the CLI and the core stay importable without the `ray` extra; Ray is imported
when a conversion starts.
"""

from __future__ import annotations

from vidihand_ros.distributed.convert import EstimatorSpec, convert_on_ray
from vidihand_ros.distributed.merge import copy_episodes

__all__ = ["EstimatorSpec", "convert_on_ray", "copy_episodes"]
