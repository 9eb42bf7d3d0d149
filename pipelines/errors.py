"""Errors of the pipelines layer that the CLI shows as one line (besides ``pipelines.config.ConfigError``)."""
from __future__ import annotations


class PipelineError(Exception):
    """Base of the pipelines' own errors."""


class BucketFailedError(PipelineError):
    """A bucket's task raised on the cluster: the run stops before anything is written."""


class ClusterError(PipelineError):
    """The Dask cluster could not be started or reached."""
