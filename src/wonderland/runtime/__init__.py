"""The runtime of the one node: the kubelet that runs pods as processes (``kubelet``,
``pod_worker``, ``container_runner``, ``launch``, ``containers``, ``spawner``), the
scheduler, volumes, cgroups, mount namespaces (``sandbox``), probes, logs, images, and
the revision supervisor. Import what you need from its module; this package imports
nothing, so a small process (the spawner) can use one module alone."""
