"""Approach 2 of the report: approach 1's network on the central 250² crop resized to 70×70.

Report: test RMSE 0.1369 — as good as the whole frame and about twice as fast, so it is the
project's main from-scratch baseline and the default sweep target.
"""
from experiments.cnn_full import CONFIG as FULL
from experiments.cnn_full import SEARCH_SPACE as FULL_SPACE
from experiments import Report
from gz_experiments.config import override
from gz_experiments.search import Categorical

REPORT = Report(number=2, test_rmse=0.1369)   # approach 2 of the report

CONFIG = override(FULL, approach="cnn_cropped", crop=250, image_size=70)

# The whole frame's space, at the crop's sizes, with the crop itself searched too.
SEARCH_SPACE = {**FULL_SPACE, "image_size": Categorical((56, 64, 70, 84)), "crop": Categorical((180, 212, 250, 300))}
