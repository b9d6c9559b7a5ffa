"""MLflow tracking: the only package that imports mlflow. Renders and sweeps are logged by observers
(params, metrics, images, the manifest), and MLflow run ids resolve to local manifests for rebuild/diff.

May import: run, repro, record and everything below them.
"""
