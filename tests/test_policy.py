"""The spend policy's parsing and its verdict on a spec (spec/policy.py): each violation names the
spec field and what the policy allows; a policy that does not parse says which field is wrong."""

from __future__ import annotations

import dataclasses

import pytest

from remote_ollama.spec.model import Spec
from remote_ollama.spec.policy import POLICY_ENV, Policy, parse_policy, policy_from, violations
from remote_ollama.spec.sections import Placement, parse_instance_type

POLICY = parse_policy(
    '{"instanceTypes": ["gpua5000.small", "gpu3080ti.*"], "zones": ["at-vie-2", "ch-gva-2"],'
    ' "maxDiskSize": 200, "allowedSourceCIDRs": ["10.0.0.0/8", "2001:db8::/32"]}'
)


def spec(**kw: object) -> Spec:
    base = Spec(instance_type=parse_instance_type("gpua5000.small"), zone="at-vie-2", disk_size=100,
                allowed_source_cidrs=("10.1.0.0/16",))  # fmt: skip
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def test_a_spec_within_the_policy_passes_and_no_policy_allows_anything() -> None:
    assert violations(spec(), POLICY) == []
    assert violations(spec(instance_type=parse_instance_type("gpu3080ti.large")), POLICY) == []
    huge = spec(instance_type=parse_instance_type("gpu3.huge"), disk_size=51200,
                allowed_source_cidrs=("0.0.0.0/0",))  # fmt: skip
    assert violations(huge, Policy()) == [] and policy_from({}) == Policy()


def test_each_violation_names_the_field_and_what_is_allowed() -> None:
    bad = spec(
        instance_type=parse_instance_type("gpu3.huge"),
        zone="de-fra-1",
        disk_size=51200,
        allowed_source_cidrs=("10.0.0.0/8", "0.0.0.0/0", "2001:db8:1::/48", "2001:db9::/32"),
        placements=(Placement("ch-gva-2", parse_instance_type("gpu2.large")),),
    )
    assert violations(bad, POLICY) == [
        "spec.instanceType gpu3.huge is not allowed (allowed: gpua5000.small, gpu3080ti.*)",
        "spec.zone de-fra-1 is not allowed (allowed: at-vie-2, ch-gva-2)",
        "spec.placements[0].instanceType gpu2.large is not allowed (allowed: gpua5000.small, gpu3080ti.*)",
        "spec.diskSize 51200 is above the maximum of 200 GiB",
        "spec.allowedSourceCIDRs 0.0.0.0/0, 2001:db9::/32 is wider than allowed (within: 10.0.0.0/8, 2001:db8::/32)",
    ]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[]", "JSON object"),
        ("{nope", "not JSON"),
        ('{"instanceType": ["x"]}', "unknown field"),
        ('{"zones": "at-vie-2"}', "zones"),
        ('{"maxDiskSize": "200"}', "maxDiskSize"),
        ('{"maxDiskSize": true}', "maxDiskSize"),
        ('{"allowedSourceCIDRs": ["10.0.0.0/33"]}', "allowedSourceCIDRs"),
    ],
)
def test_a_policy_that_does_not_parse_names_the_field(text: str, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        policy_from({POLICY_ENV: text})
