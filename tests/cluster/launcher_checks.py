"""The checks ``ray up`` makes on a cluster YAML before it launches anything, run offline.

``ray up`` (``ray.autoscaler._private.commands.create_or_update_cluster``) looks up the node
provider, then ``_bootstrap_config`` calls ``prepare_config`` (merge with the provider's
defaults.yaml, setup-command merge, Docker check, per-type min/max workers) and
``validate_config`` (``ray/autoscaler/ray-schema.json``, ``head_node_type`` among the node types,
the sum of ``min_workers`` within ``max_workers``). The AWS bootstrap that follows calls AWS,
except ``check_legacy_fields``, which runs here too. Two gaps are closed on top: the schema lets
any key into ``provider`` and ``node_config``, so provider keys are checked against the schema's
own list and each ``node_config`` against botocore's EC2 ``RunInstances`` input shape, which is
what the AWS node provider passes it to (with ``MinCount``/``MaxCount`` added).
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import ray.autoscaler


def ray_up_checks(config: dict[str, Any]) -> dict[str, Any]:
    """Runs ``ray up``'s offline config checks and returns the config they prepare.

    Raises:
        jsonschema.ValidationError: a key, type or value that ``ray-schema.json`` rejects.
        ValueError: inconsistent node types (``ray up`` raises the same).
        NotImplementedError: an unknown ``provider.type``.
    """
    from ray.autoscaler._private.providers import _get_node_provider_cls
    from ray.autoscaler._private.util import check_legacy_fields, prepare_config, validate_config

    _get_node_provider_cls(config["provider"])
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    check_legacy_fields(prepared)
    return prepared


@functools.cache
def _ray_schema() -> dict[str, Any]:
    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def provider_problems(config: dict[str, Any]) -> list[str]:
    """``provider`` keys that Ray's schema does not list (the schema itself lets them through).

    Example:
        >>> provider_problems({"provider": {"type": "aws", "regoin": "us-east-1"}})
        ["provider.regoin: unknown key, expected one of Ray's provider keys (e.g. 'region')"]
    """
    known = _ray_schema()["properties"]["provider"]["properties"]
    return [
        f"provider.{key}: unknown key, expected one of Ray's provider keys (e.g. 'region')"
        for key in config["provider"]
        if key not in known
    ]


@functools.cache
def _run_instances_shape():
    import botocore.session

    return botocore.session.get_session().get_service_model("ec2").operation_model("RunInstances").input_shape


def node_config_problems(config: dict[str, Any]) -> list[str]:
    """Each node type's ``node_config`` as botocore would reject it in ``RunInstances``.

    Example:
        >>> typo = {"available_node_types": {"gpu": {"node_config": {"InstanceTyp": "g5.xlarge"}}}}
        >>> node_config_problems(typo)[0][:66]
        'available_node_types.gpu.node_config: Unknown parameter in input: '
    """
    from botocore.validate import ParamValidator

    problems = []
    for name, node_type in config["available_node_types"].items():
        params = {**node_type["node_config"], "MinCount": 1, "MaxCount": 1}
        report = ParamValidator().validate(params, _run_instances_shape())
        if report.has_errors():
            problems.append(f"available_node_types.{name}.node_config: {report.generate_report()}")
    return problems
