"""Approach 4 of the report: ImageNet ResNet50 fine-tuned on 250² crops resized to 70×70.

Report: ResNet50 without top, global average pooling, flatten, dense 512 ReLU, dropout 0.5,
dense 37 sigmoid; every layer trained; test RMSE 0.1161, the report's best (7 hours on Colab).
`weights` may be `imagenet` (Keras' download and cache), a local `.weights.h5`, or `none`.
"""
from experiments.cnn_cropped import CONFIG as CROPPED
from experiments import Report
from gz_experiments.config import override
from gz_experiments.search import Categorical, Float, Int

REPORT = Report(number=4, test_rmse=0.1161)   # approach 4 of the report

CONFIG = override(CROPPED, approach="resnet", architecture="resnet", dense="512", weights="imagenet")

SEARCH_SPACE = {
    "fine_tune_blocks": Int(1, 5),        # trainable trailing stages (conv2…conv5 + head)
    "dropout": Float(0.2, 0.6),
    "dense[0]": Int(128, 1024, log=True),
    "image_size": Categorical((64, 70, 96)),
    "learning_rate": Float(1e-4, 3e-3, log=True),
}
