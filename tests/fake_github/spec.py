"""GitHub's OpenAPI description of the operations the App calls: matching and validation.

The description is `shared/github/rest-api-subset.json`, GitHub's own file cut down to
the operations we call. Requests and answers are checked against it as written, with
two readings that match what GitHub means and sends:

- `discriminator` keys are dropped: `openapi-schema-validator` would otherwise look for
  `#/components/schemas/<value>` schemas that do not exist;
- a `nullable` schema with an `enum` also accepts `null` (a check run in progress has
  `conclusion: null`, yet that enum does not list `null`).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from tests.paths import github_data_dir

SPEC_URN = "urn:github-rest-api"
HTTP_METHODS = ("get", "put", "post", "patch", "delete", "head", "options")
# Path parameters that GitHub lets span several segments (`.github/pinkflow.yml`, `heads/main`).
MULTI_SEGMENT_PARAMETERS = frozenset({"path", "ref"})


def default_spec_path() -> Path:
    """GitHub's description in `shared/` (or the copy of it in `tests/shared/`)."""
    return github_data_dir() / "rest-api-subset.json"


def as_github_means_it(value: Any) -> Any:
    """The description with the two readings above applied."""
    if isinstance(value, dict):
        schema = {k: as_github_means_it(v) for k, v in value.items() if k != "discriminator"}
        if schema.get("nullable") is True and isinstance(schema.get("enum"), list) and None not in schema["enum"]:
            schema["enum"] = [*schema["enum"], None]
        return schema
    if isinstance(value, list):
        return [as_github_means_it(v) for v in value]
    return value


def json_pointer_token(text: str) -> str:
    return text.replace("~", "~0").replace("/", "~1")


@dataclass(frozen=True)
class Parameter:
    name: str
    location: str  # "path" or "query"
    required: bool
    schema: Mapping[str, Any]


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str  # upper case, as on the wire
    template: str
    pattern: re.Pattern[str]
    path_parameters: Mapping[str, Parameter]
    query_parameters: Mapping[str, Parameter]
    has_body: bool
    body_required: bool
    response_codes: frozenset[str]

    @property
    def pointer(self) -> str:
        return f"#/paths/{json_pointer_token(self.template)}/{self.method.lower()}"


@dataclass(frozen=True)
class CheckedRequest:
    """A request's parts, typed from their schemas, and what is wrong with it."""

    errors: list[str]
    path_params: dict[str, Any]
    query: dict[str, Any]
    body: Any


class OpenApiSpec:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_spec_path()
        self.document: dict[str, Any] = as_github_means_it(json.loads(self.path.read_text()))
        self._registry = Registry().with_resource(
            SPEC_URN, Resource.from_contents(self.document, default_specification=DRAFT4)
        )
        self._validators: dict[str, OAS30Validator] = {}
        self.operations: dict[str, Operation] = {
            op.operation_id: op for op in self._read_operations()
        }

    # ----------------------------------------------------------------- reading
    def _resolve(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in node:
            target: Any = self.document
            for token in node["$ref"].removeprefix("#/").split("/"):
                target = target[token.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def _read_operations(self) -> list[Operation]:
        operations = []
        for template, item in self.document["paths"].items():
            shared = [self._resolve(p) for p in item.get("parameters", [])]
            for method in HTTP_METHODS:
                if method not in item:
                    continue
                spec = item[method]
                parameters = shared + [self._resolve(p) for p in spec.get("parameters", [])]
                by_location = {
                    location: {
                        p["name"]: Parameter(
                            name=p["name"],
                            location=location,
                            required=bool(p.get("required")),
                            schema=p.get("schema", {}),
                        )
                        for p in parameters
                        if p["in"] == location
                    }
                    for location in ("path", "query")
                }
                body = spec.get("requestBody")
                operations.append(
                    Operation(
                        operation_id=spec["operationId"],
                        method=method.upper(),
                        template=template,
                        pattern=_template_pattern(template),
                        path_parameters=by_location["path"],
                        query_parameters=by_location["query"],
                        has_body=body is not None,
                        body_required=bool(body and body.get("required")),
                        response_codes=frozenset(spec["responses"]),
                    )
                )
        # Literal segments win over parameters, as in GitHub's router.
        operations.sort(key=lambda op: -len(re.sub(r"\{[^}]+\}", "", op.template)))
        return operations

    # ---------------------------------------------------------------- matching
    def match(self, method: str, path: str) -> tuple[Operation | None, dict[str, str], bool]:
        """The operation, its raw path parameters, and whether the path exists for another method."""
        path_known = False
        for operation in self.operations.values():
            found = operation.pattern.fullmatch(path)
            if not found:
                continue
            if operation.method == method.upper():
                return operation, found.groupdict(), True
            path_known = True
        return None, {}, path_known

    # -------------------------------------------------------------- validation
    def validator(self, pointer: str) -> OAS30Validator:
        if pointer not in self._validators:
            self._validators[pointer] = OAS30Validator(
                {"$ref": f"{SPEC_URN}{pointer}"},
                registry=self._registry,
                format_checker=oas30_format_checker,
            )
        return self._validators[pointer]

    def schema_errors(self, value: Any, *, pointer: str) -> list[str]:
        return [_describe(error) for error in self.validator(pointer).iter_errors(value)]

    def check_request(
        self,
        operation: Operation,
        *,
        path_params: Mapping[str, str],
        query: list[tuple[str, str]],
        body: bytes,
        content_type: str,
    ) -> CheckedRequest:
        errors: list[str] = []
        typed_path = {
            name: self._parameter_value(operation, operation.path_parameters[name], raw, errors)
            for name, raw in path_params.items()
        }

        typed_query: dict[str, Any] = {}
        seen: set[str] = set()
        for name, raw in query:
            parameter = operation.query_parameters.get(name)
            if parameter is None:
                errors.append(f"unknown query parameter {name!r}")
                continue
            if name in seen:
                errors.append(f"query parameter {name!r} given more than once")
            seen.add(name)
            typed_query[name] = self._parameter_value(operation, parameter, raw, errors)
        for parameter in operation.query_parameters.values():
            if parameter.required and parameter.name not in seen:
                errors.append(f"missing required query parameter {parameter.name!r}")

        parsed_body: Any = None
        if body.strip():
            if not content_type.startswith("application/json"):
                errors.append(f"body sent as {content_type or 'no content type'}, not application/json")
            try:
                parsed_body = json.loads(body)
            except ValueError as exc:
                errors.append(f"body is not JSON: {exc}")
                return CheckedRequest(errors, typed_path, typed_query, None)
        if operation.has_body:
            if parsed_body is None and body.strip() == b"":
                if operation.body_required:
                    errors.append("missing required JSON body")
            else:
                body_pointer = f"{operation.pointer}/requestBody/content/application~1json/schema"
                errors += [f"body: {e}" for e in self.schema_errors(parsed_body, pointer=body_pointer)]
        elif parsed_body not in (None, {}):
            errors.append("this operation takes no request body")
        return CheckedRequest(errors, typed_path, typed_query, parsed_body)

    def _parameter_value(
        self, operation: Operation, parameter: Parameter, raw: str, errors: list[str]
    ) -> Any:
        kind = parameter.schema.get("type")
        try:
            if kind == "integer":
                if not re.fullmatch(r"-?\d+", raw):
                    raise ValueError
                value: Any = int(raw)
            elif kind == "number":
                value = float(raw)
            elif kind == "boolean":
                if raw not in ("true", "false"):
                    raise ValueError
                value = raw == "true"
            else:
                value = raw
        except ValueError:
            errors.append(f"{parameter.location} parameter {parameter.name!r}: {raw!r} is not {kind}")
            return raw
        validator = OAS30Validator(dict(parameter.schema), format_checker=oas30_format_checker)
        for error in validator.iter_errors(value):
            errors.append(f"{parameter.location} parameter {parameter.name!r}: {error.message}")
        return value

    def response_schema_pointer(self, operation: Operation, status: int) -> str | None:
        """Where the JSON schema of this answer is, if the description documents one."""
        code = str(status)
        if code not in operation.response_codes:
            return None
        pointer = f"{operation.pointer}/responses/{code}"
        response = self.document["paths"][operation.template][operation.method.lower()]["responses"][code]
        if "$ref" in response:
            pointer = response["$ref"]
            response = self._resolve(response)
        if "application/json" not in response.get("content", {}):
            return None
        return f"{pointer}/content/application~1json/schema"

    # ---------------------------------------------------------------- examples
    @cached_property
    def examples(self) -> Mapping[str, Any]:
        return {name: entry["value"] for name, entry in self.document["components"]["examples"].items()}

    def example(self, name: str) -> Any:
        """A fresh copy of one of the description's named examples."""
        return copy.deepcopy(self.examples[name])


def _template_pattern(template: str) -> re.Pattern[str]:
    pattern = ""
    for part in re.split(r"(\{[^}]+\})", template):
        if part.startswith("{"):
            name = part[1:-1]
            pattern += f"(?P<{name}>{'.+' if name in MULTI_SEGMENT_PARAMETERS else '[^/]+'})"
        else:
            pattern += re.escape(part)
    return re.compile(pattern)


def _describe(error: Any) -> str:
    location = "/".join(str(p) for p in error.absolute_path) or "(root)"
    message = error.message if len(error.message) < 300 else error.message[:300] + "..."
    details = ""
    if error.context:
        # oneOf/anyOf: say what each alternative wanted, which is what a reader needs.
        reasons = sorted({sub.message[:160] for sub in error.context})
        details = " (" + "; ".join(reasons[:4]) + ")"
    return f"{location}: {message}{details}"
