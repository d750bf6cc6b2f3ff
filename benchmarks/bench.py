#!/usr/bin/env python
"""Where training time goes, measured side by side against the report's input pipeline.

    python benchmarks/bench.py --data-dir ../shared/data/galaxy-zoo-sample --out bench.json
    python benchmarks/bench.py --data-dir DIR --out FILE.json --approaches cnn_cropped --quick
    python benchmarks/bench.py --quick        # synthetic galaxies (made once into the cache), bench-latest.json

In one process, for each approach (figures in images/s; medians of interleaved repeats):
  (a) model only: `fit` on decoded images already in memory, no augmentation
  (b) this project's training input: the decoded-image cache → `make_dataset` (augmentation on) → `fit`
  (c) the report's: `ImageDataGenerator(...).flow_from_dataframe`, decoding every JPEG each epoch → `fit`
  (d) the inputs of (b) and of (c) alone, no model
  (e) the cold cache build (a fresh GZ_CACHE_DIR) and inference (`Predictor.predict_images`)
(a) and (b) also under Keras' mixed_bfloat16 policy, and (a) in float32 with XLA off and on
(`jit_compile`; `xla_vs_plain` is their ratio, what each approach's setting is chosen by).
And a roofline (`roofline.py`): the machine's matmul peak in float32 and bfloat16, each model's training
FLOPs per image counted from the built model, and (a)'s achieved GFLOP/s and fraction of the peak of the
precision it ran in. Ratios count, not absolute times: run it on an otherwise idle machine (`flock
/tmp/heavy.lock python benchmarks/bench.py ...` here); the report records the load average before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from experiments import APPROACHES, REPORT_APPROACHES  # noqa: E402
SYNTHETIC, SYNTHETIC_IMAGES = "synthetic", 600
TARGETS = {"pipeline_vs_model": ("cnn_cropped", 0.90), "input_vs_report_input": (None, 10.0),
           "cache_build_images_per_s": (None, 1500.0)}


def plans(quick: bool):
    """Steps per measurement, sized so a default run of all four approaches takes ~10 minutes
    on 2 cores; ResNet50 trains at ~50 images/s there, so it gets the fewest."""
    from measure import Plan
    if quick:
        tiny = Plan(steps=2, report_steps=2, input_batches=4, report_input_batches=2, repeats=1, inference_images=128)
        return {**{name: tiny for name in APPROACHES}, "resnet": replace(tiny, bf16_kinds=("model_only",))}
    full = Plan(steps=4, inference_images=300)   # 100² costs twice 70²
    resnet = Plan(steps=2, report_steps=2, input_batches=20, report_input_batches=3, repeats=2,
                  bf16_kinds=("model_only",), inference_images=200)
    return {"cnn_full": full, "cnn_cropped": Plan(), "cnn_slim_head": Plan(), "galaxy_cnn": Plan(), "resnet": resnet}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=SYNTHETIC, help="a competition-layout folder (labels CSV + images "
                        f"folder), or {SYNTHETIC} (default: {SYNTHETIC_IMAGES} generated galaxies, made once)")
    parser.add_argument("--out", default=Path("bench-latest.json"), type=Path, help="where to write the JSON results")
    parser.add_argument("--approaches", nargs="+", default=list(REPORT_APPROACHES), choices=APPROACHES)
    parser.add_argument("--quick", action="store_true", help="a ~1-minute smoke run: few steps, one repeat")
    parser.add_argument("--max-images", type=int, default=None, help="use only the first N labelled images")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the approach's (100); --quick: 32")
    parser.add_argument("--no-bf16", action="store_true", help="skip the mixed_bfloat16 measurements")
    parser.add_argument("--no-xla", action="store_true", help="measure (a) only with the approach's jit_compile")
    return parser.parse_args(argv)


def approach_config(name: str, args):
    import experiments
    from gz_experiments.config import override
    # Throughput does not depend on the weights' values: ResNet starts from none (no download).
    extra = {"weights": "none"} if name == "resnet" else {}
    batch = args.batch_size or (32 if args.quick else None)
    return override(experiments.load(name).CONFIG, {**extra, **({"batch_size": batch} if batch else {})})


def build_caches(store, ids, configs) -> tuple[dict, list[dict]]:
    """(e) the cold cache build, once per distinct preprocessing recipe, into a fresh GZ_CACHE_DIR.
    The JPEGs are read once beforehand, so every recipe finds them in the OS page cache alike."""
    from gz_experiments.data.cache import load_or_build
    for galaxy_id in ids:
        store.read(galaxy_id)
    cached, builds = {}, []
    for config in configs.values():
        recipe = (config.data.image_size, config.data.crop)
        if recipe in cached:
            continue
        start = time.perf_counter()
        cached[recipe] = load_or_build(store, ids, *recipe, skip_bad_images=True, progress=False)
        seconds = time.perf_counter() - start
        builds.append({"image_size": recipe[0], "crop": recipe[1], "images": len(ids), "seconds": round(seconds, 3),
                       "images_per_s": round(len(ids) / seconds, 1)})
        print(f"cold cache build: {len(ids)} images → {recipe[0]}² (crop {recipe[1] or 'none'}) in {seconds:.2f} s "
              f"= {len(ids) / seconds:,.0f} images/s", flush=True)
    return cached, builds


def bench_approach(name, config, cached, store, ids, labels, plan, precisions, peaks) -> dict:
    import measure
    import roofline
    started = time.perf_counter()
    print(f"\n== {name}: {config.data.image_size}², crop {config.data.crop or 'none'}, "
          f"batch {config.batch_size}", flush=True)
    images = cached[(config.data.image_size, config.data.crop)].images
    training = measure.measure_training(config, images, labels, store, ids, plan, precisions)
    inputs = measure.measure_inputs(training["project"], training["report"], config.batch_size, plan)
    inference = measure.measure_inference(training["models"][measure.FP32], images, config, plan)
    result = measure.summarise(training, inputs, inference, precisions, plan)
    flops = roofline.training_flops_per_image(training["models"][measure.FP32])
    result["roofline"] = {"training_gflop_per_image": round(flops / 1e9, 4), **roofline.achieved(
        {p: result["images_per_s"].get(f"model_only/{p}") for p in precisions}, flops, peaks)}
    result["seconds"] = round(time.perf_counter() - started, 1)
    print_approach(name, result)
    return result


def print_approach(name: str, result: dict) -> None:
    fig = result["images_per_s"]
    rows = [("(a) model only, images in memory", "model_only"), ("(b) project pipeline -> fit", "pipeline"),
            ("(c) report pipeline -> fit", "report")]
    print(f"{'images/s':42s} {'float32':>10s} {'bf16':>10s}")
    for label, kind in rows:
        bf16 = fig.get(f"{kind}/mixed_bfloat16")
        print(f"{label:42s} {fig[kind + '/float32']:10.1f} {'' if bf16 is None else f'{bf16:10.1f}'}")
    for label, kind in [("(d) project input only", "input_only"), ("(d) report input only", "report_input_only"),
                        ("(e) inference (predict_images)", "inference")]:
        print(f"{label:42s} {fig[kind]:10.1f}")
    target = " (target >= 0.90)" if name == "cnn_cropped" else ""
    print(f"b/a = {result['pipeline_vs_model']}{target}   b/c = {result['pipeline_vs_report']}   "
          f"d(b)/d(c) = {result['input_vs_report_input']} (target >= 10)")
    if "xla_vs_plain" in result:
        print(f"(a) XLA off {fig['model_only_plain/float32']:.1f}, on {fig['model_only_xla/float32']:.1f} images/s: "
              f"xla_vs_plain = {result['xla_vs_plain']} (the approach trains with jit_compile={result['jit_compile']})")
    if "mixed_bfloat16" in result:
        print(f"mixed_bfloat16: b/a = {result['mixed_bfloat16']['pipeline_vs_model']}, "
              f"a vs float32 = {result['mixed_bfloat16']['model_only_vs_float32']}")
    line = f"roofline: {result['roofline']['training_gflop_per_image']:.3f} GFLOP per training image;"
    for precision, got in result["roofline"].items():
        if isinstance(got, dict):
            line += f" (a) {precision} {got['gflop_per_s']:.1f} GFLOP/s = {got['fraction_of_peak']:.1%} of peak;"
    print(line.rstrip(";"))
    print(f"({name} measured in {result['seconds']:.0f} s)", flush=True)


def verdicts(report: dict) -> dict:
    """Each target with the figure it is judged on, and whether it is met."""
    out = {"cache_build_images_per_s": report["cache_build_images_per_s"] >= TARGETS["cache_build_images_per_s"][1]}
    for key in ("pipeline_vs_model", "input_vs_report_input"):
        only, threshold = TARGETS[key]
        for name, result in report["approaches"].items():
            if only in (None, name):
                out[f"{name}.{key}"] = result[key] is not None and result[key] >= threshold
    return out


def open_data(args):
    """The benchmark's images: the folder given, or synthetic galaxies made once into the cache."""
    from gz_experiments.config import DataConfig
    from gz_experiments.data.dataset import resolve_data_dir
    from gz_experiments.data.source import open_source
    if args.data_dir != SYNTHETIC:
        return open_source(args.data_dir)
    n = args.max_images or SYNTHETIC_IMAGES
    return open_source(resolve_data_dir(DataConfig(data_dir=SYNTHETIC, n_train=n - 2, n_val=1, n_test=1)))


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np
    import roofline
    from gz_experiments.hardware import bfloat16_is_native
    load_before = os.getloadavg()
    source = open_data(args)
    ids = source.labels.index.to_numpy()[: args.max_images]
    labels = source.labels.loc[ids].to_numpy(np.float32)
    configs = {name: approach_config(name, args) for name in args.approaches}
    precisions = ("float32",) if args.no_bf16 else ("float32", "mixed_bfloat16")
    started, cache_dir = time.perf_counter(), tempfile.mkdtemp(prefix="gz-bench-cache-")
    os.environ["GZ_CACHE_DIR"] = cache_dir
    try:
        cached, builds = build_caches(source.images, ids, configs)
        peaks = roofline.matmul_peaks()
        print(f"matmul peak ({roofline.PEAK_SIZE}², {os.cpu_count()} cores): float32 {peaks['float32']:,.1f} GFLOP/s, "
              f"bfloat16 {peaks['bfloat16']:,.1f} GFLOP/s", flush=True)
        # Where bfloat16 is native it is measured as often as float32, so their ratio is as sure
        bf16_as_fp32 = bfloat16_is_native()
        results = {name: bench_approach(name, config, cached, source.images, ids, labels,
                                        plan_for(plans(args.quick)[name], args, bf16_as_fp32), precisions, peaks)
                   for name, config in configs.items()}
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    report = assemble(args, source.root, len(ids), builds, results, time.perf_counter() - started)
    report["peak_gflop_per_s"] = {**peaks, "matmul_size": roofline.PEAK_SIZE}
    report["machine"]["load_average"] = {"before": load_before, "after": os.getloadavg()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print_roofline(report)
    print(f"\ncache build {report['cache_build_images_per_s']:,.0f} images/s (target >= 1,500); "
          f"targets met: {report['targets_met']}\nwrote {args.out} in {report['seconds']:.0f} s")
    return 0


def plan_for(plan, args, bf16_as_fp32: bool):
    plan = replace(plan, xla=not args.no_xla)
    return replace(plan, bf16_steps=plan.steps, bf16_repeats=plan.repeats) if bf16_as_fp32 else plan


def print_roofline(report: dict) -> None:
    peaks, machine = report["peak_gflop_per_s"], report["machine"]
    print(f"\nroofline on {machine['cpu']} ({machine['cpus']} cores; load average {machine['load_average']['before'][0]:.1f} "
          f"before, {machine['load_average']['after'][0]:.1f} after), (a) model only:")
    print(f"{'approach':15s} {'GFLOP/img':>9s} | {'fp32 img/s':>10s} {'GFLOP/s':>8s} {'of peak':>7s} | "
          f"{'bf16 img/s':>10s} {'GFLOP/s':>8s} {'of peak':>7s} | bf16/fp32")
    for name, result in report["approaches"].items():
        line = f"{name:15s} {result['roofline']['training_gflop_per_image']:9.3f}"
        for precision in ("float32", "mixed_bfloat16"):
            got, rate = result["roofline"].get(precision), result["images_per_s"].get(f"model_only/{precision}")
            line += (f" | {rate:10.1f} {got['gflop_per_s']:8.1f} {got['fraction_of_peak']:7.1%}" if got
                     else f" | {'':10s} {'':8s} {'':7s}")
        speedup = result.get("mixed_bfloat16", {}).get("model_only_vs_float32")
        print(line + (f" | {speedup:.2f}" if speedup else " |"))
    print(f"peaks: float32 {peaks['float32']:,.1f}, bfloat16 {peaks['bfloat16']:,.1f} GFLOP/s (matmul "
          f"{peaks['matmul_size']}²)")


def assemble(args, data_dir, n_images: int, builds: list[dict], results: dict, seconds: float) -> dict:
    import keras
    import tensorflow as tf
    from gz_experiments.hardware import cpu_model, devices, resolve_precision
    built = sum(b["images"] for b in builds) / sum(b["seconds"] for b in builds)
    report = {"cache_build_images_per_s": round(built, 1), "cache_builds": builds, "approaches": results,
              "targets": {k: {"approach": a or "all", "at_least": t} for k, (a, t) in TARGETS.items()},
              "data_dir": str(Path(data_dir).resolve()), "images": n_images, "quick": args.quick,
              "machine": {"cpus": os.cpu_count(), "cpu": cpu_model(), "devices": devices(),
                          "bfloat16": resolve_precision("auto").reason, "platform": platform.platform(),
                          "tensorflow": tf.__version__, "keras": keras.__version__}, "seconds": round(seconds, 1)}
    report["targets_met"] = verdicts(report)
    return report


if __name__ == "__main__":
    sys.exit(main())
