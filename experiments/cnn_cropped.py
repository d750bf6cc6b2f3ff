"""Approach 2 of the report: approach 1's network on the central 250² crop resized to 70×70.

Report: test RMSE 0.1369 — as good as the whole frame and about twice as fast, so it is the
project's main from-scratch baseline and the default sweep target.
"""
from experiments.cnn_full import CONFIG as FULL
from gz_experiments.config import override
from gz_experiments.search import Categorical, Float, Int

CONFIG = override(FULL, approach="cnn_cropped", crop=250, image_size=70)

SEARCH_SPACE = {
    "filters[0]": Int(16, 64, log=True),
    "filters[1]": Int(32, 128, log=True),
    "filters[2]": Int(64, 256, log=True),
    "filters[3]": Int(64, 256, log=True),
    "dropout": Float(0.1, 0.6),
    "dense[0]": Int(128, 1024, log=True),
    "image_size": Categorical((56, 64, 70, 84)),
    "crop": Categorical((180, 212, 250, 300)),
    "learning_rate": Float(3e-4, 1e-2, log=True),
}
