"""Approach 3 of the report: the cropped 70×70 network with 96 filters in conv 2 and a 96/64 head.

Report: dense 96 ReLU, dropout 0.5, dense 64 ReLU (dropout 0.5 before both); test RMSE 0.1464.
"""
from experiments.cnn_cropped import CONFIG as CROPPED
from experiments import Report
from gz_experiments.config import override
from gz_experiments.search import Categorical, Float, Int

REPORT = Report(number=3, test_rmse=0.1464)   # approach 3 of the report

CONFIG = override(CROPPED, approach="cnn_slim_head", filters="32,96,128,128", dense="96,64")

SEARCH_SPACE = {
    "filters[1]": Int(48, 192, log=True),
    "dense[0]": Int(32, 256, log=True),
    "dense[1]": Int(16, 128, log=True),
    "dropout": Float(0.0, 0.6),
    "image_size": Categorical((56, 70, 84)),
    "learning_rate": Float(3e-4, 1e-2, log=True),
}
