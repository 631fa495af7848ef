"""Data: TFDS builders, host pre-processing, loading, on-device augmentation."""
