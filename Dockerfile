# The image every KFP step (and the compiled TFX pipeline) runs in: edgeopt with the locked environment.
# Build and push (see README, "Kubeflow Pipelines"):
#   docker build -t REGISTRY/edgeopt:$(python3 setup.py --version) .
#   docker push REGISTRY/edgeopt:VERSION
# then compile with EDGEOPT_KFP_IMAGE=REGISTRY/edgeopt:VERSION (pipeline YAML: `image:` for the TFX compile).
# Python 3.13 on Debian 13 (glibc 2.41): the interpreter and glibc that requirements.lock was resolved for.
FROM python:3.13-slim-trixie

RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.lock /app/requirements.lock
RUN pip install --no-cache-dir -r /app/requirements.lock

COPY . /app
RUN pip install --no-cache-dir --no-deps /app

ENV TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2
