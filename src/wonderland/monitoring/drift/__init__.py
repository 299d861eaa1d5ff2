"""Data drift detection for InferenceServices (no alibi-detect: numpy, scipy optional).

- :mod:`.stats`: KS with Bonferroni, chi-squared, PSI, feature typing;
- :mod:`.reference`: the reference sample from a ``storageUri``;
- :mod:`.features`: V1/V2 request bodies as rows of features;
- :mod:`.detector`: windows, tests, metrics and the drift CloudEvent (the core);
- :mod:`.publish`: Dapr pub/sub, ``--reply_url`` and the payload sink forwarder;
- :mod:`.server` and :mod:`.cli`: the HTTP server and ``python -m wonderland.monitoring.drift``
  (image ``wonderland/drift-detector``, :mod:`.image`).
"""
