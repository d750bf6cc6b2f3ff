"""Data: the competition layout (folder or zips), validation, splits, the decoded-image cache and
the tf.data input pipeline. Nothing here imports models."""
