"""Robot-hand joint actions from the dataset's hand poses, on `dex-retargeting` (docs/retarget.md)."""
