"""Stops hopeless fine-tuning trials early: after every epoch the model's eval accuracy drop goes to
`trial.report`, and Optuna's pruner decides whether the trial continues."""

import numpy as np

from edgeopt.components._shared.data import TrainingData
from edgeopt.components._shared.keras_bootstrap import keras


class ReportAccuracyDrop(keras.callbacks.Callback):
    """Reports the Keras model's eval accuracy drop (points below `baseline_accuracy`) at the end of each epoch of
    every fine-tuning step of one trial, numbering epochs across the chain's steps, and raises `optuna.TrialPruned`
    when the study's pruner says so."""

    def __init__(self, trial, data: TrainingData, baseline_accuracy: float, max_examples: int = 512):
        super().__init__()
        self.trial = trial
        self.inputs, self.labels = data.take(data.eval_split, max_examples)
        self.baseline_accuracy = baseline_accuracy
        self.epochs_seen = 0
        self.last_drop: float | None = None

    def on_epoch_end(self, epoch, logs=None):
        import optuna

        predictions = np.asarray(self.model(self.inputs, training=False)).argmax(-1)
        self.last_drop = (self.baseline_accuracy - float(np.mean(predictions == self.labels))) * 100.0
        self.trial.report(self.last_drop, self.epochs_seen)
        self.epochs_seen += 1
        if self.trial.should_prune():
            raise optuna.TrialPruned(
                f"pruned after fine-tuning epoch {self.epochs_seen}: eval accuracy drop {self.last_drop:.2f} pt"
            )
