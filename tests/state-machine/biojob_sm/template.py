"""The stack template (`templates/cfn/biojob.yaml`) read as CloudFormation would deploy it.

moto's CloudFormation cannot create this stack (docs: tooling.md, "Executing the state machine"),
so the harness reads the parts it runs itself -- the compute environments, job queues, job
definitions and the state machine's `DefinitionSubstitutions` -- and resolves the intrinsic
functions they use (`Ref`, `Fn::Sub`, `Fn::GetAtt`, `Fn::Join`, `Fn::If`, `Fn::Select`,
`Fn::Split`, `Fn::Equals`, `Fn::Not`) against parameter values and the names the harness gives
the resources. Anything else is an error: what runs is what the stack deploys, or nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"


class TemplateError(Exception):
    """The template uses something the harness cannot resolve, or is not what it expects."""


class _Loader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation's short tags into their long form."""


def _short_tag(loader: _Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _short_tag)


def load(path: Path) -> dict[str, Any]:
    """The template as plain data, short tags expanded (`!Ref X` is `{"Ref": "X"}`)."""
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


@dataclass
class Template:
    """A loaded template with parameter values and the physical values of its resources.

    `refs` maps a logical id to what `Ref` returns for it (a queue's or job definition's ARN,
    a log group's name); `attributes` maps `(logical id, attribute)` to what `Fn::GetAtt`
    returns. The harness fills both as it creates resources.
    """

    body: dict[str, Any]
    parameters: dict[str, str]
    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: Path, overrides: dict[str, str]) -> Template:
        body = load(path)
        declared = body.get("Parameters", {})
        unknown = set(overrides) - set(declared)
        if unknown:
            raise TemplateError(f"{path}: no such parameters: {sorted(unknown)}")
        parameters: dict[str, str] = {}
        for name, declaration in declared.items():
            if name in overrides:
                value: Any = overrides[name]
            elif "Default" in declaration:
                value = declaration["Default"]
            else:
                raise TemplateError(f"{path}: parameter {name} has no default: give it a value")
            parameters[name] = _parameter_string(value)
        return cls(body=body, parameters=parameters)

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        """`{logical id: resource}` of every resource of type `kind`, in template order."""
        return {
            logical_id: resource
            for logical_id, resource in self.body.get("Resources", {}).items()
            if resource.get("Type") == kind
        }

    def condition(self, name: str) -> bool:
        try:
            return bool(self.resolve(self.body["Conditions"][name]))
        except KeyError as missing:
            raise TemplateError(f"no condition {name}") from missing

    def resolve(self, node: Any) -> Any:
        """`node` with every intrinsic function evaluated; `NO_VALUE` entries dropped."""
        if isinstance(node, list):
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            key, argument = next(iter(node.items()))
            function = _FUNCTIONS.get(key)
            if function is not None:
                return function(self, argument)
            if key.startswith("Fn::") or key == "Condition":
                raise TemplateError(f"unsupported intrinsic function {key}: {argument!r}")
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        if name in self.refs:
            return self.refs[name]
        raise TemplateError(f"Ref {name}: neither a parameter nor a resource the harness created")

    def _get_att(self, argument: list[str]) -> str:
        logical_id, attribute = argument
        try:
            return self.attributes[(logical_id, attribute)]
        except KeyError as missing:
            raise TemplateError(
                f"GetAtt {logical_id}.{attribute}: not a resource the harness created"
            ) from missing

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument
            variables = {name: self.resolve(value) for name, value in variables.items()}
        else:
            text, variables = argument, {}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                return self._get_att(name.split(".", 1))
            return str(self._ref(name))

        return re.sub(r"\$\{([^}]+)\}", substitute, text)


NO_VALUE = object()

PSEUDO_PARAMETERS = {
    "AWS::AccountId": ACCOUNT_ID,
    "AWS::Region": REGION,
    "AWS::Partition": PARTITION,
    "AWS::URLSuffix": "amazonaws.com",
}


def _parameter_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def _ref(template: Template, name: str) -> Any:
    if name == "AWS::NoValue":
        return NO_VALUE
    return template._ref(name)


def _if(template: Template, argument: list[Any]) -> Any:
    name, when_true, when_false = argument
    return template.resolve(when_true if template.condition(name) else when_false)


def _split_list(value: Any) -> list[str]:
    return value.split(",") if isinstance(value, str) else list(value)


_FUNCTIONS: dict[str, Callable[[Template, Any], Any]] = {
    "Ref": _ref,
    "Fn::Sub": lambda t, a: t._sub(a),
    "Fn::GetAtt": lambda t, a: t._get_att(a),
    "Fn::Join": lambda t, a: a[0].join(str(v) for v in _split_list(t.resolve(a[1]))),
    "Fn::If": _if,
    "Fn::Equals": lambda t, a: t.resolve(a[0]) == t.resolve(a[1]),
    "Fn::Not": lambda t, a: not t.resolve(a[0]),
    "Fn::Select": lambda t, a: _split_list(t.resolve(a[1]))[int(t.resolve(a[0]))],
    "Fn::Split": lambda t, a: t.resolve(a[1]).split(a[0]),
}


def camel_keys(node: Any, keep: frozenset[str] = frozenset({"Options", "Tags"})) -> Any:
    """CloudFormation's property names as the Batch API's (`ContainerProperties` ->
    `containerProperties`), recursively; the values of `keep` keys are user data, kept as is."""
    if isinstance(node, list):
        return [camel_keys(item, keep) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key[:1].lower() + key[1:]: (value if key in keep else camel_keys(value, keep))
        for key, value in node.items()
    }
