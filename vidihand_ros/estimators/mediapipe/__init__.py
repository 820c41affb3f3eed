"""The MediaPipe Hands baseline: detector, side tracking, steady metric 3D, the estimator (`hands`)."""
