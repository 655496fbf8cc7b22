"""edgeopt.pipelines: ready-made TFX and Kubeflow pipelines that add an optimize step after training."""
