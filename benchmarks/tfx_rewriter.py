"""Benchmark helper: TFX's own TFLite rewriter (the Trainer's rewriting module) on the same SavedModel edgeopt
exports, in the modes it offers: float, dynamic range, float16, and full integer from a representative dataset.

The rewriter converts with `TFLiteConverter.from_saved_model` and sets only optimizations, supported types and
the representative dataset: it cannot restrict ops to int8 builtins or set int8 I/O, and its post-rewrite
validation is empty (`_post_rewrite_validate` is `pass`), so nothing checks the .tflite against the model.
"""

import time
from pathlib import Path

import numpy as np

from edgeopt.components._shared.keras_bootstrap import tf
from edgeopt.components._shared.tflite_runtime import TfliteRunner
from edgeopt.components.evaluation.core import gzip_size


def rewrite_modes(calibration: np.ndarray) -> dict[str, dict]:
    def representative_dataset():
        for example in calibration:
            yield [example[np.newaxis].astype(np.float32)]

    return {
        "float": {},
        "dynamic_range": {"quantization_optimizations": [tf.lite.Optimize.DEFAULT]},
        "float16": {
            "quantization_optimizations": [tf.lite.Optimize.DEFAULT],
            "quantization_supported_types": [tf.float16],
        },
        "full_integer": {
            "quantization_optimizations": [tf.lite.Optimize.DEFAULT],
            "quantization_enable_full_integer": True,
            "representative_dataset": representative_dataset,
        },
    }


def run_rewriter(model_dir: str, out: Path, calibration: np.ndarray, eval_inputs, eval_labels, *, modes=None) -> dict:
    from tfx.components.trainer.rewriting import rewriter, rewriter_factory

    results = {}
    for mode, options in rewrite_modes(calibration).items():
        if modes is not None and mode not in modes:
            continue
        target = out / mode
        target.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        tflite_rewriter = rewriter_factory.create_rewriter(
            rewriter_factory.TFLITE_REWRITER, name=f"tflite_{mode}", filename="model.tflite", **options
        )
        tflite_rewriter.perform_rewrite(
            rewriter.ModelDescription(rewriter.ModelType.SAVED_MODEL, model_dir),
            rewriter.ModelDescription(rewriter.ModelType.TFLITE_MODEL, str(target)),
        )
        seconds = time.perf_counter() - started
        path = target / "model.tflite"
        runner = TfliteRunner(path)
        results[mode] = {
            "tflite_path": str(path),
            "tflite_bytes": path.stat().st_size,
            "gzip_bytes": gzip_size(path),
            "accuracy": float(np.mean(runner.predict(eval_inputs).argmax(-1) == eval_labels)),
            "input_dtype": np.dtype(runner.input_dtype).name,
            "seconds": seconds,
        }
    return results
