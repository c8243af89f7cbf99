"""The stack's storage and secrets: its KMS key (strict), the results bucket and its
hardened companions, the access-log bucket, the credential's secret.

A part of :class:`~rclaude_infra._pulumi.program.RclaudeStack`: its methods run in the
component's constructor, so each resource keeps its name and parent (and its URN).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from ..config import PURPOSE_TAG
from ..tasks.layout import TASKS_PREFIX
from .documents import (
    key_policy,
    policy_document,
)
from .stack_base import StackBase

#: Per sign-in mode that keeps a credential: the Pulumi resource name's part, the secret's
#: name prefix part and what it holds.
_CREDENTIAL_SECRETS = {
    "api-key": ("anthropic-api-key", "Anthropic API key"),
    "oauth-token": ("claude-oauth-token", "Claude OAuth token (claude setup-token)"),
}


class StoragePart(StackBase):
    def _stack_key(self) -> aws.kms.Key:
        """The customer-managed key of a strict stack: the bucket, the logs and the secret
        are encrypted with it; rotated yearly; usable by this deployment's roles only."""
        key = aws.kms.Key(
            f"{self._prefix}-key",
            description=f"rclaude-infra {self._name}: results, logs and the credential",
            enable_key_rotation=True,
            deletion_window_in_days=7,
            policy=pulumi.Output.all(self._account_id, self._partition).apply(
                lambda args: key_policy(args[0], args[1], self._config.region, self._name,
                                        task_events=self._config.sends_task_events)),
            tags=self.tags,
            opts=self._child,
        )
        aws.kms.Alias(f"{self._prefix}-key", name=f"alias/rclaude-{self._name}",
                      target_key_id=key.key_id, opts=self._child)
        return key

    def _results_bucket(self) -> None:
        cfg = self._config
        strict = cfg.security_profile == "strict"
        self.access_logs = None
        if strict:
            # Where S3 writes who read and wrote the results (server access logging).
            self.access_logs = self._hardened_bucket(
                "access-logs", expire_days=cfg.log_retention_days, versioned=True,
                writer=("logging.s3.amazonaws.com", "s3:PutObject"))
        self.bucket = self._hardened_bucket(
            "results", expire_days=cfg.results_expire_days, prefix=TASKS_PREFIX,
            retain=cfg.retain_results, versioned=strict)
        if self.access_logs is not None:
            aws.s3.BucketLogging(
                f"{self._prefix}-results-logging",
                bucket=self.bucket.id,
                target_bucket=self.access_logs.id,
                target_prefix="results/",
                opts=self._child,
            )

    def _hardened_bucket(self, part: str, *, expire_days: int, prefix: str = "",
                         retain: bool = False, versioned: bool = False,
                         writer: tuple[str, str] | None = None) -> aws.s3.Bucket:
        """A bucket with its public access block, ownership, encryption, lifecycle and a
        TLS-only policy (and, when given, the one AWS service ``writer`` may write to it);
        with ``versioned``, versioning, old versions expiring like current ones."""
        name = f"{self._prefix}-{part}"
        bucket = aws.s3.Bucket(
            name,
            force_destroy=not retain,
            tags={**self.tags, PURPOSE_TAG: part},
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=retain),
        )
        access_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=self._child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=self._child,
        )
        # The stack key, but for a log target: S3 delivers access logs only to SSE-S3.
        key = self._key_arn() if writer is None else None
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[{
                "apply_server_side_encryption_by_default": (
                    {"sse_algorithm": "AES256"} if key is None
                    else {"sse_algorithm": "aws:kms", "kms_master_key_id": key}),
                "bucket_key_enabled": True,
            }],
            opts=self._child,
        )
        expire: Any = {
            "id": "expire-task-results" if part == "results" else f"expire-{part}",
            "status": "Enabled",
            "filter": {"prefix": prefix},
            "expiration": {"days": expire_days},
        }
        if versioned:
            aws.s3.BucketVersioning(
                f"{name}-versioning",
                bucket=bucket.id,
                versioning_configuration={"status": "Enabled"},
                opts=self._child,
            )
            expire["noncurrent_version_expiration"] = {"noncurrent_days": expire_days}
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=[
                expire,
                {
                    "id": "abort-incomplete-uploads",
                    "status": "Enabled",
                    "filter": {"prefix": ""},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 1},
                },
            ],
            opts=self._child,
        )

        def policy(args: list[str]) -> str:
            arn, account = args
            statements: list[dict[str, Any]] = [{
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [arn, f"{arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }]
            if writer is not None:
                service, action = writer
                statements.append({
                    "Sid": "ServiceWrites",
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": action,
                    "Resource": f"{arn}/*",
                    "Condition": {"StringEquals": {"aws:SourceAccount": account}},
                })
            return policy_document(*statements)

        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket.id,
            policy=pulumi.Output.all(bucket.arn, self._account_id).apply(policy),
            # S3 refuses a bucket policy while the public access block is being applied.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[access_block]),
        )
        if self._config.security_profile == "strict":
            # Every change to the bucket becomes an event on the account's default
            # EventBridge bus (free for AWS service events), for whatever watches it.
            aws.s3.BucketNotification(f"{name}-events", bucket=bucket.id, eventbridge=True,
                                      opts=self._child)
        return bucket

    def _credential_secret(self, credential: pulumi.Input[str] | None) -> None:
        """The secret holding the tasks' Claude credential (none with Bedrock: the task
        role signs its requests)."""
        self.secret = None
        if self._config.auth not in _CREDENTIAL_SECRETS:
            return
        part, what = _CREDENTIAL_SECRETS[self._config.auth]
        self.secret = self._secret(part, what, credential)
