"""Evaluate a ValidatingAdmissionPolicy's CEL as the API server does (matchConditions, then
variables in order, then validations), with the `cel-python` library, for tests without a cluster."""

from __future__ import annotations

from typing import Any

import celpy


class PolicyEvaluator:
    def __init__(self, policy: dict[str, Any]):
        self.env = celpy.Environment()
        spec = policy["spec"]
        self.conditions = [self._program(c["expression"]) for c in spec.get("matchConditions", [])]
        self.variables = [(v["name"], self._program(v["expression"])) for v in spec.get("variables", [])]
        self.validations = [
            (self._program(v["expression"]), v.get("message", "")) for v in spec["validations"]
        ]

    def _program(self, expression: str) -> Any:
        return self.env.program(self.env.compile(expression))

    def admit(
        self, username: str, old: dict[str, Any], new: dict[str, Any], sub_resource: str = ""
    ) -> tuple[bool, str]:
        """(allowed, message) for an UPDATE by `username` from `old` to `new`."""
        meta = new["metadata"]
        request = {
            "userInfo": {"username": username},
            "namespace": meta["namespace"],
            "name": meta["name"],
            "operation": "UPDATE",
            **({"subResource": sub_resource} if sub_resource else {}),  # the API server omits it when empty
        }
        activation: dict[str, Any] = {
            "request": celpy.json_to_cel(request),
            "object": celpy.json_to_cel(new),
            "oldObject": celpy.json_to_cel(old),
        }
        if not all(bool(p.evaluate(activation)) for p in self.conditions):
            return True, "not matched"
        values: dict[str, Any] = {}
        for name, program in self.variables:
            activation["variables"] = celpy.json_to_cel({}) if not values else celpy.celtypes.MapType(values)
            values[celpy.celtypes.StringType(name)] = program.evaluate(activation)
        activation["variables"] = celpy.celtypes.MapType(values)
        for program, message in self.validations:
            result = program.evaluate(activation)
            if isinstance(result, celpy.CELEvalError):
                raise AssertionError(f"CEL error: {result}")
            if not bool(result):
                return False, message
        return True, "allowed"
