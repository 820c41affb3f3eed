"""The inference server (`vidihand serve`): windows in over HTTP, poses out, for many robots at once."""
