"""Pictures of what a dataset holds: overlay video and stills, Rerun recordings (never a new estimate)."""
