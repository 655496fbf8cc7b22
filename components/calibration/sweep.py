"""Calibration-size sweep: int8 accuracy at several sample sizes, to show where more calibration data stops helping."""

import os
from pathlib import Path

from edgeopt.components._shared.data import TrainingData
from edgeopt.components.calibration.config import CalibrationConfig
from edgeopt.components.calibration.core import load_calibration_inputs, sample_calibration_data
from edgeopt.components.evaluation.config import EvaluationConfig
from edgeopt.components.evaluation.core import evaluate_tflite
from edgeopt.components.quantization.config import QuantizationConfig, QuantizationMode
from edgeopt.components.quantization.core import quantize


def calibration_sweep(
    model_path: str | os.PathLike,
    examples: str | os.PathLike,
    sizes: list[int],
    output_dir: str | os.PathLike,
    *,
    data: TrainingData,
    calibration: CalibrationConfig,
    baseline_accuracy: float,
    mode: QuantizationMode = QuantizationMode.FULL_INTEGER,
    beam_pipeline_args: list[str] | None = None,
) -> list[dict]:
    """For each size: sample with the sampler, quantize with that sample, measure accuracy on the eval split.

    Returns one row per size: size, count actually taken, data_sha256, accuracy and accuracy_drop (points, against
    `baseline_accuracy`).
    """
    rows = []
    evaluation = EvaluationConfig(timed_runs=1, warmup_runs=0)
    for size in sorted(set(sizes)):
        folder = Path(output_dir) / f"size-{size}"
        config = CalibrationConfig(**{**calibration.to_dict(), "size": size, "take_all_if_smaller": True})
        sample = sample_calibration_data(
            examples, config, folder / "calibration", beam_pipeline_args=beam_pipeline_args
        )
        converted = quantize(
            model_path,
            QuantizationConfig(mode=mode),
            folder / "quantized",
            data=data,
            calibration_inputs=load_calibration_inputs(folder / "calibration", data),
        )
        accuracy = evaluate_tflite(converted.tflite_path, data, evaluation).accuracy
        rows.append(
            {
                "size": size,
                "count": sample.count,
                "data_sha256": sample.data_sha256,
                "accuracy": accuracy,
                "accuracy_drop": (baseline_accuracy - accuracy) * 100.0,
            }
        )
    return rows
