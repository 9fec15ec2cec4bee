# The image the GPU box runs (docker-compose.yml): CUDA 12 + cuDNN 9 for CTranslate2, callqa installed from
# this checkout. Models are not baked in: they live in the models-cache volume (docs/batch.md).
#
# Two stages: the virtual environment is built where a compiler is (webrtcvad, which resemblyzer needs, ships
# only as source for the image's Python 3.12), and copied into a runtime image without one.
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 AS build

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv python3-dev build-essential ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md requirements.lock ./
COPY pipeline pipeline
COPY models models
COPY lexicons lexicons
# Editable, so that models/cache and lexicons/ resolve to /app (where the volumes are mounted); with pyannote.audio
# for mono calls (its pipeline folder goes into the models-cache volume, see docs/speakers.md). The versions are
# requirements.lock's, the ones `make test` passed with (pip constraints pin only what the image installs; every
# pinned version has a CPython 3.12 manylinux wheel or, for docopt, typing and webrtcvad, a source release).
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir -c requirements.lock -e '.[pyannote]'

FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
RUN callqa --help > /dev/null
CMD ["callqa", "--help"]
