"""The AWS edge: the only package that imports boto3 / botocore (inside its functions)."""

from typing import Any


def client_config() -> Any:
    """botocore client settings for every client the library makes."""
    from botocore.config import Config

    # Adaptive retries: botocore backs off on throttling with a client-side rate limit,
    # shared by the clients of one process; no hand-written sleeps.
    # A pool as large as the submitting threads (Deployment.run_tasks), so no connection
    # is dropped and made again under load.
    return Config(retries={"mode": "adaptive", "max_attempts": 12}, max_pool_connections=32)


def default_session(region: str | None = None) -> Any:
    """A boto3 session from the environment's credential chain (profile, SSO, the task
    role's endpoint in a container), for callers that were not given one."""
    import boto3

    return boto3.Session(region_name=region)


def error_code(exc: Any) -> str:
    """The AWS error code of a botocore ``ClientError`` (``""`` when it has none).

    >>> from botocore.exceptions import ClientError
    >>> error_code(ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject"))
    'NoSuchKey'
    """
    return str(exc.response.get("Error", {}).get("Code", ""))
