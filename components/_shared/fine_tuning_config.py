"""The fields every fine-tuning technique shares (prune, cluster, QAT, factorize, distill): the schedule, the seed,
how the training split is streamed, and how training is distributed. Each technique's config subclasses it and may
change a default (e.g. its own number of epochs) or a description."""

import enum

import pydantic

from edgeopt.components._shared.config_base import StrictConfig


class Distribution(enum.StrEnum):
    """Which tf.distribute strategy fine-tuning runs under."""

    AUTO = "auto"  # multi_worker when TF_CONFIG describes a cluster, mirrored when >1 GPU is visible, else none
    NONE = "none"  # TensorFlow's default strategy: one device
    MIRRORED = "mirrored"  # every GPU of this machine (MirroredStrategy)
    MULTI_WORKER = "multi_worker"  # every worker TF_CONFIG names (MultiWorkerMirroredStrategy, e.g. a Kubeflow TFJob)


class FineTuningConfig(StrictConfig):
    """Shared fine-tuning fields: epochs, batch size, learning rate, seed, skipped layers, streaming, distribution."""

    epochs: pydantic.PositiveInt = pydantic.Field(2, description="Fine-tuning epochs over the training split.")
    batch_size: pydantic.PositiveInt = pydantic.Field(
        32, description="Fine-tuning batch size (the global batch: split across replicas when distributed)."
    )
    learning_rate: float = pydantic.Field(1e-4, gt=0, lt=1, description="Adam learning rate for fine-tuning.")
    seed: int = pydantic.Field(
        0, description="Seed for TensorFlow, NumPy and Python randomness and the data order during fine-tuning."
    )
    skip_layers: list[str] = pydantic.Field(
        default_factory=list, description="Names of layers the technique leaves as they are."
    )
    shuffle_buffer: pydantic.PositiveInt = pydantic.Field(
        4096,
        description="Examples held in the shuffle buffer while the training split streams from its files (shards "
        "are read interleaved in a seeded order); memory grows with this, not with the split.",
    )
    steps_per_epoch: pydantic.PositiveInt | None = pydantic.Field(
        None,
        description="Batches per epoch. Unset: the split's size over batch_size, from one counting pass over its "
        "files (cached for the job).",
    )
    distribution: Distribution = pydantic.Field(
        Distribution.AUTO,
        description="auto: multi_worker when TF_CONFIG describes a cluster (a Kubeflow TFJob), mirrored when more "
        "than one GPU is visible, else none; none: one device; mirrored: every local GPU; multi_worker: every worker "
        "of TF_CONFIG. Only the chief writes outputs.",
    )
