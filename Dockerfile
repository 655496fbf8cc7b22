# The image every KFP step (and the compiled TFX pipeline) runs in: edgeopt with the locked environment.
# Build and push (see README, "Kubeflow Pipelines"):
#   docker build -t REGISTRY/edgeopt:$(python3 setup.py --version) .
#   docker push REGISTRY/edgeopt:VERSION
# then `edgeopt pipeline compile --engine kfp|tfx --image REGISTRY/edgeopt:VERSION ...` (or the config's `image:`).
# Python 3.13 on Debian 13 (glibc 2.41): the interpreter and glibc that requirements.lock was resolved for.
FROM python:3.13-slim-trixie

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
