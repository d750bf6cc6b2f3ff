"""Approach 1 of the report: four conv layers on the whole 424² frame resized to 100×100.

Report: conv 32/64/128/128, each ReLU + 2×2 max-pool, flatten, dropout 0.5, dense 512 ReLU,
dense 37 sigmoid; batch 100, adamax, MSE, 20 epochs; test RMSE 0.1364 on 8,000 training images.
Unstated, chosen here: 3×3 kernels with 'valid' padding (Keras' Conv2D default).
"""
from experiments import Report
from gz_experiments.config import AugmentConfig, DataConfig, ModelConfig, TrainConfig
from gz_experiments.models.cnn import CnnConfig
from gz_experiments.search import Categorical, Float, Int

REPORT = Report(number=1, test_rmse=0.1364)   # approach 1 of the report

CONFIG = TrainConfig(
    approach="cnn_full",
    data=DataConfig(crop=None, image_size=100, augment=AugmentConfig()),
    model=ModelConfig(architecture="cnn", body=CnnConfig(filters=(32, 64, 128, 128)), dense=(512,), dropout=0.5),
)

SEARCH_SPACE = {
    "filters[0]": Int(16, 64, log=True),
    "filters[1]": Int(32, 128, log=True),
    "filters[2]": Int(64, 256, log=True),
    "filters[3]": Int(64, 256, log=True),
    "dropout": Float(0.1, 0.6),
    "dense[0]": Int(128, 1024, log=True),
    "image_size": Categorical((80, 100, 120)),
    "learning_rate": Float(3e-4, 1e-2, log=True),
}
