"""Measure one approach: (a) model only, (b) this project's pipeline, (c) the report's pipeline,
(d) both inputs without a model, (e) inference; (a)/(b) also under mixed_bfloat16, and (a) with
XLA off and on (`jit_compile`), whichever the approach trains with.

Every figure is images/s. Measurements of one kind are interleaved with the others (a, b, c, a,
b, c, …) and summarised by their median, so a noisy neighbour slows all kinds alike.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, replace

import keras
import numpy as np
import tensorflow as tf

from gz_experiments.config import TrainConfig
from gz_experiments.data.pipeline import make_dataset, to_model_input
from gz_experiments.data.source import ImageStore
from gz_experiments.served.predictor import Predictor
from gz_experiments.hardware import precision_policy
from gz_experiments.train import compile_model

import report_pipeline
from timing import batches_per_s, fit_images_per_s, median, ratio

FP32, BF16 = "float32", "mixed_bfloat16"


@dataclass(frozen=True)
class Plan:
    """How many steps each measurement times, and how often. The `warmup` untimed steps before
    each (1 is enough: the first measurement's first step also traces and compiles)."""
    warmup: int = 1
    steps: int = 5                  # (a), (b) in float32
    bf16_steps: int = 1             # (a), (b) in mixed_bfloat16 (slow on CPUs without AVX-512 BF16)
    report_steps: int = 3           # (c)
    input_batches: int = 40         # (d) of the project's pipeline
    report_input_batches: int = 4   # (d) of the report's
    repeats: int = 3
    bf16_repeats: int = 1
    bf16_kinds: tuple[str, ...] = ("model_only", "pipeline")
    inference_images: int = 500
    xla: bool = True                # (a) in float32 both with XLA off and on, for `xla_vs_plain`


def compiled_model(config: TrainConfig, precision: str, jit_compile: bool | None = None) -> keras.Model:
    """The training network as training compiles it, without pretrained weights: speed is the same.
    `jit_compile` None: the approach's own setting."""
    if jit_compile is not None:
        config = replace(config, jit_compile=jit_compile)
    with precision_policy(precision):
        return compile_model(config)


def model_only_kind(jit_compile: bool) -> str:
    """(a) in float32 is measured as two kinds, XLA off and on; the approach's own is its (a)."""
    return "model_only_xla" if jit_compile else "model_only_plain"


def in_memory_batches(images: np.ndarray, labels: np.ndarray, batch: int, k: int = 4) -> tf.data.Dataset:
    """(a)'s input: k distinct batches already decoded, rescaled and held in memory, repeated.
    Batched without a fixed batch size, like (b) and (c), so `fit` traces its step only once."""
    rows = np.arange(k * batch) % len(images)
    x = to_model_input(np.asarray(images[rows])).numpy()
    return tf.data.Dataset.from_tensor_slices((x, labels[rows])).batch(batch).cache().repeat()


def measure_training(config, images, labels, store: ImageStore, ids, plan: Plan, precisions) -> dict:
    batch = config.batch_size
    models = {p: compiled_model(config, p) for p in precisions}
    project = make_dataset(images, labels, batch, training=True, augment=config.data.augment,
                           seed=config.seed).repeat()
    report = report_pipeline.report_flow(store, ids, labels, config.data.image_size, config.data.crop, batch,
                                         config.seed, min_batches=plan.warmup + plan.report_steps + 2)
    in_memory = in_memory_batches(images, labels, batch)
    runs = {}   # one repeat runs them in this order: a, b, c in float32, then a, b in bfloat16
    for precision in precisions:
        kinds = plan.bf16_kinds if precision == BF16 else ("model_only", "pipeline", "report")
        data = {"model_only": in_memory, "pipeline": project, "report": report}
        runs.update({(kind, precision): (models[precision], data[kind]) for kind in kinds})
    if plan.xla:   # (a) with the approach's own setting, then with the other, side by side
        runs = {(model_only_kind(config.jit_compile) if key == ("model_only", FP32) else key[0], key[1]): run
                for key, run in runs.items()}
        other = compiled_model(config, FP32, jit_compile=not config.jit_compile)
        runs[(model_only_kind(not config.jit_compile), FP32)] = (other, in_memory)

    def steps(kind, precision):
        return plan.report_steps if kind == "report" else plan.bf16_steps if precision == BF16 else plan.steps

    samples = {key: [] for key in runs}
    for repeat in range(max(plan.repeats, plan.bf16_repeats)):
        for (kind, precision), (model, data) in runs.items():
            if repeat < (plan.bf16_repeats if precision == BF16 else plan.repeats):
                samples[(kind, precision)].append(fit_images_per_s(model, data, batch, plan.warmup,
                                                                   steps(kind, precision)))
        _log(f"  repeat {repeat + 1}: " + ", ".join(f"{k}/{p} {v[-1]:.0f}" for (k, p), v in samples.items()
                                                    if len(v) > repeat))
    return {"models": models, "project": project, "report": report, "samples": samples,
            "jit_compile": config.jit_compile}


def measure_inputs(project: tf.data.Dataset, report, batch: int, plan: Plan) -> dict[str, list[float]]:
    """(d): how fast each pipeline alone delivers training batches."""
    samples = {"input_only": [], "report_input_only": []}
    for _ in range(plan.repeats):
        iterator = iter(project)
        samples["input_only"].append(batch * batches_per_s(lambda: next(iterator), 5, plan.input_batches))
        del iterator   # stops its threads before the report's pipeline is timed
        samples["report_input_only"].append(batch * batches_per_s(lambda: next(report), 1, plan.report_input_batches))
    return samples


def measure_inference(model, images: np.ndarray, config, plan: Plan) -> list[float]:
    """(e): `Predictor.predict_images`, what evaluation and serving use, on cached frames."""
    predictor = Predictor(model, config.data.image_size, config.data.crop)
    rows = np.arange(min(plan.inference_images, 4 * len(images))) % len(images)
    frames = np.asarray(images[rows])
    predictor.predict_images(frames)   # untimed: traces the full and the last batch's shapes
    rates = []
    for _ in range(plan.repeats):
        start = time.perf_counter()
        predictor.predict_images(frames)
        rates.append(len(frames) / (time.perf_counter() - start))
    return rates


def summarise(training: dict, inputs: dict, inference: list[float], precisions, plan: Plan) -> dict:
    fig = {f"{kind}/{p}": median(v) for (kind, p), v in training["samples"].items()}
    if plan.xla:   # (a) is the approach's own setting of the two
        fig[f"model_only/{FP32}"] = fig[f"{model_only_kind(training['jit_compile'])}/{FP32}"]
    fig.update({kind: median(v) for kind, v in inputs.items()})
    fig["inference"] = median(inference)
    a, b, c = fig[f"model_only/{FP32}"], fig[f"pipeline/{FP32}"], fig[f"report/{FP32}"]
    out = {"pipeline_vs_model": ratio(b, a), "pipeline_vs_report": ratio(b, c),
           "input_vs_report_input": ratio(fig["input_only"], fig["report_input_only"]),
           "images_per_s": {k: round(v, 1) for k, v in fig.items()},
           "samples": {**{f"{k}/{p}": [round(x, 1) for x in v] for (k, p), v in training["samples"].items()},
                       **{k: [round(x, 1) for x in v] for k, v in inputs.items()},
                       "inference": [round(x, 1) for x in inference]},
           "jit_compile": training["jit_compile"], "plan": asdict(plan)}
    if plan.xla:
        out["xla_vs_plain"] = ratio(fig[f"model_only_xla/{FP32}"], fig[f"model_only_plain/{FP32}"])
    if BF16 in precisions:
        a16, b16 = fig.get(f"model_only/{BF16}"), fig.get(f"pipeline/{BF16}")
        out[BF16] = {"pipeline_vs_model": ratio(b16, a16), "model_only_vs_float32": ratio(a16, a),
                     "pipeline_vs_float32": ratio(b16, b)}
    return out


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
