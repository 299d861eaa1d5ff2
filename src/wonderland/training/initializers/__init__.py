"""Kubeflow Trainer's dataset and model initializers, as programs a TrainJob's pods run.

A TrainJob's ``spec.initializer.dataset`` / ``.model`` become the containers
``dataset-initializer`` / ``model-initializer`` (images
``ghcr.io/kubeflow/trainer/dataset-initializer`` and ``.../model-initializer``), which
this platform runs as::

    python -m wonderland.training.initializers dataset   # or: model

with the container's env: ``STORAGE_URI`` and the user's ``env``/``secretRef`` variables.
They leave the files in ``/workspace/dataset`` and ``/workspace/model`` (the pod's
``initializer`` volume is mounted at ``/workspace``) before the training nodes start.
``--dest DIR`` writes elsewhere (tests, use outside a pod); the controller never passes it.

Variables (upstream's config fields in upper case; an empty one counts as unset):

- ``STORAGE_URI`` (required): where the files come from, one of

  - ``hf://<org>/<name>[:<revision>]``: the repository in the local Hugging Face cache
    (``HF_HUB_CACHE``, ``HF_HOME``, else ``~/.cache/huggingface/hub``); datasets from
    ``datasets--<org>--<name>``, models from ``models--<org>--<name>``. Nothing is
    downloaded: a repository that is not there fails with the ``hf download ...`` command
    that puts it there. A model copies only ``*.json, *.safetensors, *.model, *.txt,
    *.gguf`` and by default ignores ``*.msgpack, *.h5, *.bin, *.pt, *.pth`` (upstream's
    patterns); a dataset copies every file.
  - ``s3://<bucket>/<prefix>``: every object under the prefix (not ``<prefix>2/...``),
    each checked against its size and MD5 ETag; a key's path below the prefix is its
    path in the destination.
  - ``http(s)://...``: one file, or an archive (tar, tar.gz, zip) that is unpacked;
    downloads are kept in ``<state_dir>/models`` and revalidated with ETag.
  - ``file://<path>``, a plain path, ``pvc://<claim>/<path>`` (the claim's folder under
    ``<state_dir>/volumes/<namespace>/<claim>``; the namespace is ``POD_NAMESPACE``, the
    service account's namespace file, else ``default``): copied.
  - ``cache://`` (upstream's distributed data cache) fails with what to use instead.

- ``IGNORE_PATTERNS``: comma-separated patterns of files to leave out, matched as
  huggingface_hub matches them (``*`` crosses ``/``, ``dir/`` is everything below it):
  for s3:// against the object key, as upstream; elsewhere against the path in the source.
- ``ACCESS_TOKEN`` (hf): accepted and unused (the local cache needs no token).
- ``ENDPOINT``, ``ACCESS_KEY_ID``, ``SECRET_ACCESS_KEY``, ``REGION``, ``ROLE_ARN`` (s3):
  the server (``https://`` is added to an endpoint without a scheme), the keys (without
  them boto3's chain: ``AWS_*`` variables, ``~/.aws``), the region (else ``AWS_REGION``,
  else ``us-east-1``) and a role to assume through STS.

Errors: the exit status is 1 and the last line of stderr says what was wrong, where, and
what to do (the kubelet's termination message); SIGTERM gives 143. The destination
appears whole or not at all: files are staged in a hidden sibling folder and renamed into
place at the end, so a failed, stopped or killed initializer never leaves a tree that
looks complete (and a previous tree stays as it was until the new one is whole).

Pickles: unlike an InferenceService's model server, an initializer loads nothing, so a
pickle from a remote source is copied like any file; the model initializer logs a warning
naming it. The training code decides how to load it.
"""

from __future__ import annotations

from wonderland.training.initializers._config import (
    DATASET_PATH,
    MODEL_ALLOW_PATTERNS,
    MODEL_IGNORE_PATTERNS,
    MODEL_PATH,
    WORKSPACE_PATH,
    InitializerConfig,
    InitializerError,
    load_config,
)
from wonderland.training.initializers._program import Initialized, initialize, main

__all__ = [
    "DATASET_PATH",
    "MODEL_ALLOW_PATTERNS",
    "MODEL_IGNORE_PATTERNS",
    "MODEL_PATH",
    "WORKSPACE_PATH",
    "Initialized",
    "InitializerConfig",
    "InitializerError",
    "initialize",
    "load_config",
    "main",
]
