# The image every KFP step (and the compiled TFX pipeline) runs in: edgeopt with the locked environment.
# Build and push (see README, "Kubeflow Pipelines"):
#   docker build -t REGISTRY/edgeopt:$(python3 setup.py --version) .
#   docker push REGISTRY/edgeopt:VERSION
# then `edgeopt pipeline compile --engine kfp|tfx --image REGISTRY/edgeopt:VERSION ...` (or the config's `image:`).
# Python 3.13 on Debian 13 (glibc 2.41): the interpreter and glibc that requirements.lock was resolved for.
FROM python:3.13-slim-trixie AS edgeopt

RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.lock /app/requirements.lock
RUN pip install --no-cache-dir -r /app/requirements.lock

COPY . /app
RUN pip install --no-cache-dir --no-deps /app \
    && echo "import edgeopt.components._shared.kfp_logging" \
       > "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/edgeopt_kfp_logging.pth"
# The .pth line shortens KFP's executor-input dump to one line per step (EDGEOPT_KFP_VERBOSE=1 restores it).

ENV TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2

# The same image as the Beam SDK harness of the calibration sampler's workers (Dataflow: --sdk_container_image;
# Flink/Spark: --environment_type=DOCKER --environment_config=IMAGE), see components/calibration/README.md:
#   docker build --target beam-worker -t REGISTRY/edgeopt:VERSION-beam .
# Beam starts its workers through the boot program as the entrypoint; its version and Python must match
# apache-beam in requirements.lock (a test checks).
FROM edgeopt AS beam-worker
COPY --from=apache/beam_python3.13_sdk:2.77.0 /opt/apache/beam /opt/apache/beam
ENTRYPOINT ["/opt/apache/beam/boot"]

# The default target: the KFP / TFX / TFJob image (commands given by the orchestrator, no entrypoint).
FROM edgeopt
