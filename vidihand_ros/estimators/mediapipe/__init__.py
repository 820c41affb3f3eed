"""The MediaPipe Hands baseline: detector, side tracking, One Euro smoothing, the estimator (`hands`)."""
