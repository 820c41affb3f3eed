"""`python -m vidihand_ros.cli`: the `vidihand` command without its console script."""

import sys

from vidihand_ros.cli import main

sys.exit(main())
