"""What every edgeopt TFX component shares: artifact keys, the calibration artifact type, and executors that only
map artifacts to paths, rebuild configs from exec properties, and call the core."""

import importlib.util
import json
import os

from tfx import types
from tfx.dsl.components.base import base_component, base_executor
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from edgeopt.components import __version__
from edgeopt.components._shared.data import (
    DataSpec,
    TrainingData,
    check_one_data_source,
    is_module_name,
    load_training_data,
)
from edgeopt.components._shared.errors import ConfigError
from edgeopt.components._shared.remote_files import local_artifacts

# Artifact and property keys (module constants, as in tfx/types/standard_component_specs.py).
MODEL_KEY = "model"
EXAMPLES_KEY = "examples"
CALIBRATION_KEY = "calibration"
BASELINE_MODEL_KEY = "baseline_model"
OUTPUT_MODEL_KEY = "output_model"
BLESSING_KEY = "blessing"
EVALUATION_KEY = "evaluation"
CONFIG_KEY = "config"
DATA_SPEC_KEY = "data_spec"
MODULE_FILE_KEY = "module_file"
COMPONENT_VERSION_KEY = "component_version"
TRACKING_KEY = "tracking"

SERVING_DIR = "Format-Serving"
MODEL_FORMAT_PROPERTY = "model_format"
KERAS_FORMAT, TFLITE_FORMAT = "keras_saved_model", "tflite"


class CalibrationData(types.Artifact):
    """A calibration sample: data.tfrecord.gz and manifest.json from the calibration sampler."""

    TYPE_NAME = "edgeopt.CalibrationData"
    TYPE_ANNOTATION = None


# Parameters of every step that reads training data; the version makes a code change invalidate TFX's cache.
DATA_PARAMETERS = {
    DATA_SPEC_KEY: ExecutionParameter(type=str, optional=True),
    MODULE_FILE_KEY: ExecutionParameter(type=str, optional=True),
}
VERSION_PARAMETERS = {
    COMPONENT_VERSION_KEY: ExecutionParameter(type=str),
    TRACKING_KEY: ExecutionParameter(type=str, optional=True),
}


def validated_config(config_class, config):
    """The config as its class, validated now, so a bad value fails while the pipeline is built."""
    if isinstance(config, config_class):
        return config
    if isinstance(config, str):
        return config_class.from_json(config)
    if isinstance(config, dict) or config is None:
        return config_class.from_dict(config)
    raise ConfigError(f"expected a {config_class.__name__}, a dict or JSON, got {type(config).__name__}")


def data_source_properties(data_spec=None, module_file=None) -> dict:
    """Exec properties for the training input: exactly one of a data spec or a Trainer-style module file."""
    check_one_data_source(data_spec, module_file)
    if data_spec is not None:
        if isinstance(data_spec, (str, os.PathLike)) and str(data_spec).endswith((".yaml", ".yml")):
            data_spec = DataSpec.from_yaml(data_spec)
        return {DATA_SPEC_KEY: validated_config(DataSpec, data_spec).to_json()}
    module_file = str(module_file)
    if is_module_name(module_file):
        if importlib.util.find_spec(module_file) is None:
            raise ConfigError(f"module_file {module_file} is not an importable module; pass a file or a module name")
        return {MODULE_FILE_KEY: module_file}
    if not os.path.isfile(module_file):
        raise ConfigError(f"module_file {module_file} does not exist; pass the Trainer module with input_fn")
    return {MODULE_FILE_KEY: os.path.abspath(module_file)}


def single(input_dict: dict, key: str):
    return artifact_utils.get_single_instance(input_dict[key])


def single_uri(input_dict: dict, key: str) -> str:
    return artifact_utils.get_single_uri(input_dict[key])


def training_data(input_dict: dict, exec_properties: dict) -> TrainingData:
    examples = single_uri(input_dict, EXAMPLES_KEY)
    if exec_properties.get(DATA_SPEC_KEY):
        return load_training_data(examples, data_spec=DataSpec.from_json(exec_properties[DATA_SPEC_KEY]))
    return load_training_data(examples, module_file=exec_properties[MODULE_FILE_KEY])


def serving_dir(artifact) -> str:
    return os.path.join(artifact.uri, SERVING_DIR)


def tflite_path(artifact) -> str:
    return os.path.join(serving_dir(artifact), "model.tflite")


def record_result(artifact, *, model_format: str, config, result: dict):
    """Writes the config and the numeric results onto the artifact, so MLMD alone tells what made it."""
    artifact.set_string_custom_property(MODEL_FORMAT_PROPERTY, model_format)
    artifact.set_string_custom_property("edgeopt_config", config.to_json())
    artifact.set_string_custom_property("edgeopt_version", __version__)
    for name, value in result.items():
        if isinstance(value, bool):
            artifact.set_int_custom_property(name, int(value))
        elif isinstance(value, int):
            artifact.set_int_custom_property(name, value)
        elif isinstance(value, float):
            artifact.set_float_custom_property(name, value)
    artifact.set_string_custom_property("edgeopt_result", json.dumps(result, default=str))


class ModelStepSpecBase(ComponentSpec):
    """Inputs and outputs of a model -> model step; subclasses add their own PARAMETERS."""

    PARAMETERS = {CONFIG_KEY: ExecutionParameter(type=str), **DATA_PARAMETERS, **VERSION_PARAMETERS}
    INPUTS = {
        MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        CALIBRATION_KEY: ChannelParameter(type=CalibrationData, optional=True),
    }
    OUTPUTS = {OUTPUT_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model)}
    TYPE_ANNOTATION = None


class ModelStepExecutor(base_executor.BaseExecutor):
    """Runs one core technique: Model + Examples in, Model out. Subclasses name the config class and core function."""

    CONFIG_CLASS = None
    OUTPUT_FORMAT = KERAS_FORMAT

    def run_core(self, model_path: str, config, output_dir: str, data: TrainingData, input_dict: dict):
        raise NotImplementedError

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802  (TFX's name)
        with local_artifacts(input_dict, output_dict):  # gs:// URIs on Vertex AI / Kubeflow
            self._do(input_dict, output_dict, exec_properties)

    def _do(self, input_dict, output_dict, exec_properties):
        self._log_startup(input_dict, output_dict, exec_properties)
        config = self.CONFIG_CLASS.from_json(exec_properties[CONFIG_KEY])
        output = single(output_dict, OUTPUT_MODEL_KEY)
        result = self.run_core(
            single_uri(input_dict, MODEL_KEY),
            config,
            serving_dir(output),
            training_data(input_dict, exec_properties),
            input_dict,
        )
        record_result(output, model_format=self.OUTPUT_FORMAT, config=config, result=_flat_numbers(result.to_dict()))


def _flat_numbers(result: dict) -> dict:
    return {key: value for key, value in result.items() if isinstance(value, (int, float, str)) and key != "model_dir"}


class ModelStepComponent(base_component.BaseComponent):
    """A model -> model step; the constructor validates the config before the pipeline runs."""

    SPEC_CLASS = None
    EXECUTOR_SPEC = None
    CONFIG_CLASS = None

    def __init__(
        self, model, examples, config=None, *, data_spec=None, module_file=None, calibration=None, tracking=None
    ):
        spec = self.SPEC_CLASS(
            model=model,
            examples=examples,
            calibration=calibration,
            **self.config_parameters(config),
            component_version=__version__,
            tracking=tracking,
            output_model=types.Channel(type=standard_artifacts.Model),
            **data_source_properties(data_spec, module_file),
        )
        super().__init__(spec=spec)

    def config_parameters(self, config) -> dict:
        """The spec parameters that carry the config, validated now (a subclass may carry another config)."""
        return {CONFIG_KEY: validated_config(self.CONFIG_CLASS, config).to_json()}
