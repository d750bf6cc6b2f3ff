"""How close training comes to what the machine can compute: its matmul peak per precision, each
model's training FLOPs per image, and achieved GFLOP/s as a fraction of the peak.

Peak: TensorFlow's own matmul of two n×n matrices (2n³ FLOPs) in float32 and in bfloat16, on as many
threads as TensorFlow uses for training (every core), timed in a loop inside one `tf.function`; best of
several rounds, the two precisions alternating so a noisy neighbour slows both alike. It is the
practical peak of this TensorFlow build on these cores (oneDNN; AMX tiles for bfloat16 where present).

FLOPs: counted from the built model, not by hand: TensorFlow's profiler (`tf.compat.v1.profiler`,
float-operation view) sums the FLOPs its op statistics register (Conv2D, MatMul, BiasAdd, pooling,
element-wise ops, ...) over the graph of one traced forward pass (`model(x, training=True)`, batch 1).
Training is counted as 3× the forward pass (the backward pass computes a gradient for both the
inputs and the weights of every layer, each about one forward pass); that slightly overcounts the
first convolution, whose input needs no gradient.
"""
from __future__ import annotations

import time

import tensorflow as tf

TRAINING_PER_FORWARD = 3
PEAK_SIZE, PEAK_ROUNDS, PEAK_LOOPS = 2048, 5, 4


def matmul_peaks(size: int = PEAK_SIZE, rounds: int = PEAK_ROUNDS, loops: int = PEAK_LOOPS) -> dict[str, float]:
    """GFLOP/s of TensorFlow's matmul in float32 and bfloat16, best of `rounds` interleaved rounds."""
    kernels = {name: _matmul_loop(size, dtype, loops) for name, dtype in (("float32", tf.float32),
                                                                          ("bfloat16", tf.bfloat16))}
    best = {name: 0.0 for name in kernels}
    for round_ in range(rounds + 1):   # round 0 traces and warms up: not counted
        for name, run in kernels.items():
            start = time.perf_counter()
            run()
            if round_:
                best[name] = max(best[name], loops * 2 * size ** 3 / (time.perf_counter() - start) / 1e9)
    return {name: round(rate, 1) for name, rate in best.items()}


def _matmul_loop(size: int, dtype, loops: int):
    a = tf.random.stateless_uniform((size, size), seed=(1, 2), dtype=tf.float32)
    a = tf.cast(a, dtype)

    @tf.function
    def run():
        total = tf.zeros((), tf.float32)
        for _ in tf.range(loops):   # each product depends on the loop, so none is optimised away
            total += tf.cast(tf.reduce_sum(tf.linalg.matmul(a, a)[:1, :1]), tf.float32)
        return total

    return lambda: run().numpy()


def training_flops_per_image(model) -> float:
    """3 × the FLOPs of one image's forward pass through `model`, as TensorFlow's profiler counts them."""
    spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32)
    graph = tf.function(lambda x: model(x, training=True)).get_concrete_function(spec).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    counted = tf.compat.v1.profiler.profile(graph=graph, cmd="op", options=options)
    if not counted.total_float_ops:
        raise RuntimeError(f"TensorFlow's profiler counted no FLOPs in {model.name}'s forward pass")
    return float(TRAINING_PER_FORWARD * counted.total_float_ops)


PEAK_OF = {"float32": "float32", "mixed_bfloat16": "bfloat16"}   # the peak a training precision is held to


def achieved(images_per_s: dict[str, float], flops_per_image: float, peaks: dict[str, float]) -> dict:
    """GFLOP/s and the fraction of its precision's peak, for each `precision -> images/s` measured."""
    out = {}
    for precision, rate in images_per_s.items():
        if rate:
            gflops = rate * flops_per_image / 1e9
            out[precision] = {"gflop_per_s": round(gflops, 1),
                              "fraction_of_peak": round(gflops / peaks[PEAK_OF[precision]], 3)}
    return out
