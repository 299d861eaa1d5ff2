"""MLflow tracking and the model registry on the platform.

``access.py`` the seam other areas use (:class:`TrackingAccess`), ``client.py`` a small
REST client of MLflow's API, ``uris.py`` ``models:/``/``runs:/``/``mlflow-artifacts:`` URIs,
``resolve.py`` from such a URI to files through the registry, ``server.py`` and
``mlflow_process.py`` the lean tracking server process, ``runs.py`` the runs made for
TrainJobs, Jobs and Katib trials, ``code.py`` the digest and git commit of their code.
"""
