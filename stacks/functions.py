"""The one place canarywise Lambdas are built: shared bundle, runtime, tracing, logs, role and environment.

Every function runs the same bundle (``stacks/bundle.py``) with a different handler string; only the
handler, the extra environment, the timeout/memory and the permissions differ, so a construct asks
:class:`FunctionFactory` for a function instead of repeating a 40-line ``Function(...)`` block.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import jsii
from aws_cdk import (
    AssetHashType,
    BundlingOptions,
    DockerImage,
    Duration,
    ILocalBundling,
    RemovalPolicy,
)
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from . import bundle
from .nag import acknowledge

BUNDLE_MARKER = "canarywise/__init__.py"  # a staged asset holding this is one of our bundles
# Powertools reads these; the names are fixed in notes/contracts.md.
POWERTOOLS_SERVICE_NAME = "canarywise"
METRICS_NAMESPACE = "Canarywise"


def bundle_input_hash() -> str:
    """The hash of the bundle's inputs (requirements, constraints, runtime source): the asset hash."""
    return bundle.input_hash()


@jsii.implements(ILocalBundling)
class PrebuiltBundle:
    """Local bundling without Docker: build ``build/lambda-bundle`` (a no-op when unchanged) and link it in.

    CDK calls :meth:`try_bundle` only when ``cdk.out/asset.<hash>`` does not exist yet, so a warm synth
    neither builds nor copies anything. Hard links make the copy into ``cdk.out`` instant; the bundle
    script replaces files rather than editing them, so a later rebuild cannot change a staged asset.
    """

    def try_bundle(self, output_dir: str, options: BundlingOptions) -> bool:
        built = bundle.build()
        shutil.copytree(built, output_dir, dirs_exist_ok=True, copy_function=_link_or_copy)
        _prune_stale_bundles(Path(output_dir))
        return True


def _prune_stale_bundles(current: Path) -> None:
    """Remove older canarywise bundles from ``cdk.out``: each pins ~165 MB of replaced files on disk."""
    staged = f"asset.{bundle_input_hash()}"
    for asset in current.parent.glob("asset.*"):
        if asset.name != staged and asset != current and (asset / BUNDLE_MARKER).is_file():
            shutil.rmtree(asset, ignore_errors=True)


def _link_or_copy(source: str, dest: str) -> None:
    try:
        os.link(source, dest)
    except OSError:  # cdk.out on another file system
        shutil.copy2(source, dest)


def bundle_code() -> lambda_.Code:
    """The Lambda code asset: our bundle, hashed by its inputs so a changed bundle is re-uploaded.

    The asset's source folder (the ``canarywise`` package) only has to exist: with a custom hash CDK never
    reads it, and infrastructure tests that skip bundling (context ``aws:cdk:bundling-stacks: []``) point the
    asset at it instead of the bundle, so they need no bundle at all.
    """
    return lambda_.Code.from_asset(
        str(bundle.PACKAGE_DIR),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=bundle_input_hash(),
        bundling=BundlingOptions(
            # Never pulled: PrebuiltBundle always succeeds, so CDK does not fall back to Docker.
            image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.12"),
            # The stubs type try_bundle with keyword options, but the jsii runtime calls an implementation
            # with the options struct as a second positional argument (a keyword signature fails).
            local=PrebuiltBundle(),  # type: ignore[arg-type]
        ),
    )


@dataclass(frozen=True)
class FunctionFactory:
    """Builds canarywise functions that share the bundle, the runtime settings and the base environment.

    Example
    -------
    >>> factory = FunctionFactory(code=bundle_code(), environment={"REGISTRY_TABLE": table.table_name})
    >>> fn = factory.function(scope, "StageGate", handler="canarywise.handlers.stage_gate.handler",
    ...                       description="Reads the latest decision for a stage")
    """

    code: lambda_.Code
    environment: dict[str, str] = field(default_factory=dict)

    def function(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: str,
        description: str,
        environment: dict[str, str] | None = None,
        timeout: Duration | None = None,
        memory_size: int = 512,
        reserved_concurrent_executions: int | None = None,
        on_failure: lambda_.IDestination | None = None,
        retry_attempts: int | None = None,
    ) -> lambda_.Function:
        """A function with its own role (logs to its own log group only) and X-Ray tracing."""
        log_group = logs.LogGroup(
            scope,
            f"{construct_id}Logs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=RemovalPolicy.DESTROY,
        )
        # Our own role instead of the default one: the default attaches the AWSLambdaBasicExecutionRole
        # managed policy (logs:* on every log group), broader than this function's one log group.
        role = iam.Role(
            scope,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"canarywise {construct_id}: {description}"[:1000],
        )
        log_group.grant_write(role)
        fn = lambda_.Function(
            scope,
            construct_id,
            code=self.code,
            handler=handler,
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.X86_64,  # the bundle holds manylinux x86_64 wheels
            description=description,
            environment={
                "POWERTOOLS_SERVICE_NAME": POWERTOOLS_SERVICE_NAME,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                **self.environment,
                **(environment or {}),
            },
            timeout=timeout or Duration.seconds(30),
            memory_size=memory_size,
            reserved_concurrent_executions=reserved_concurrent_executions,
            on_failure=on_failure,
            retry_attempts=retry_attempts,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            role=role,
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions "
            "(tracing is on).",
        )
        acknowledge(
            fn,
            "AwsSolutions-L1",
            "Pinned to python3.12 on purpose: the bundle's numpy/scipy wheels and .pyc are built for 3.12.",
        )
        return fn
