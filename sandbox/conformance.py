"""Request conformance against Discord's published OpenAPI description.

Every REST request the bot sends to the sandbox is matched to a path template of
``data/openapi.json`` (Discord's MIT-licensed spec, see ``data/LICENSE``) and its
path parameters, query string and JSON body are validated against the schemas.
Validators are compiled once per operation and shared process-wide.

Discord accepts snowflakes as JSON integers as well as strings (and discord.py
sends some as integers), so the spec's ``SnowflakeType`` is widened to accept a
non-negative integer too; likewise permission bit sets (``permissions``, ``allow``,
``deny``, ``default_member_permissions``) accept a string of digits where the spec says integer,
as Discord documents them as strings.

Speed: ``$ref``s are resolved once into a shared in-memory schema graph (cycles are
fine: the validator only walks the schema as deep as the instance goes), so a
request costs one plain ``Draft202012Validator`` pass with no reference lookups.
``oneOf`` unions are evaluated as ``anyOf`` (Discord's unions are discriminated by
their ``type`` field, so at most one branch can match; this only skips the
exclusivity scan over every branch). Recently seen valid bodies are cached.
"""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

SPEC_PATH = Path(__file__).with_name("data") / "openapi.json"
METHODS = ("get", "put", "post", "patch", "delete")

_lock = threading.Lock()
_spec_singleton: Spec | None = None


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass
class Operation:
    operation_id: str
    method: str
    template: str
    path_params: dict[str, str]  # name -> pointer to schema
    query_params: dict[str, tuple[str, dict]]  # name -> (pointer, resolved-ish schema for coercion)
    required_query: tuple[str, ...]
    body_pointer: str | None
    body_required: bool
    _validators: dict[str, Any] = field(default_factory=dict)


class Spec:
    """The parsed spec, a path matcher and a cache of compiled validators."""

    def __init__(self, path: Path = SPEC_PATH) -> None:
        raw = json.loads(path.read_text(encoding="utf-8"))
        schemas = raw["components"]["schemas"]
        snowflake = schemas["SnowflakeType"]
        # Discord accepts snowflakes as integers too; widen exactly this type.
        schemas["SnowflakeType"] = {
            "anyOf": [snowflake, {"type": "integer", "minimum": 0}],
            "format": "snowflake",
        }
        _widen_permission_bitsets(raw)
        self.raw = raw
        self._memo: dict[int, Any] = {}
        self._valid_cache: dict[tuple[str, bytes], bool] = {}
        self.operations: dict[tuple[str, str], Operation] = {}
        self.by_id: dict[str, Operation] = {}
        # (segment count, first segment) -> templates; every Discord path starts with a literal
        self._templates: dict[tuple[int, str], list[tuple[tuple[str, ...], str]]] = {}
        for template, item in raw["paths"].items():
            segs = tuple(template.strip("/").split("/"))
            self._templates.setdefault((len(segs), segs[0]), []).append((segs, template))
            shared = item.get("parameters", [])
            for method in METHODS:
                op = item.get(method)
                if op is None:
                    continue
                self._add_operation(template, method, item, op, shared)

    def _add_operation(self, template: str, method: str, item: dict, op: dict, shared: list) -> None:
        path_params: dict[str, str] = {}
        query_params: dict[str, tuple[str, dict]] = {}
        required_query: list[str] = []
        for where, params in (("parameters", shared), (f"{method}/parameters", op.get("parameters", []))):
            for index, p in enumerate(params):
                pointer = "#/" + _pointer("paths", template) + "/" + where + f"/{index}/schema"
                if p["in"] == "path":
                    path_params[p["name"]] = pointer
                elif p["in"] == "query":
                    query_params[p["name"]] = (pointer, self.resolve(p.get("schema", {})))
                    if p.get("required"):
                        required_query.append(p["name"])
        body_pointer = None
        body_required = False
        body = op.get("requestBody")
        if body is not None and "application/json" in body.get("content", {}):
            body_pointer = "#/" + _pointer(
                "paths", template, method, "requestBody", "content", "application/json", "schema"
            )
            body_required = bool(body.get("required"))
        operation = Operation(
            operation_id=op["operationId"],
            method=method.upper(),
            template=template,
            path_params=path_params,
            query_params=query_params,
            required_query=tuple(required_query),
            body_pointer=body_pointer,
            body_required=body_required,
        )
        self.operations[(method.upper(), template)] = operation
        self.by_id[operation.operation_id] = operation

    def _get(self, ref: str) -> Any:
        node: Any = self.raw
        for part in ref.lstrip("#/").split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node

    def deref(self, node: Any) -> Any:
        """The schema at ``node`` with every $ref replaced by the referenced object (shared, cyclic-safe)."""
        if isinstance(node, list):
            return [self.deref(x) for x in node]
        if not isinstance(node, dict):
            return node
        key = id(node)
        done = self._memo.get(key)
        if done is not None:
            return done
        if "$ref" in node:
            if len(node) == 1:
                # Cycles are broken by the memo entry of the (dict) target itself.
                target = self.deref(self._get(node["$ref"]))
                self._memo[key] = target
                return target
            new: dict[str, Any] = {}
            self._memo[key] = new
            new["allOf"] = [self.deref(self._get(node["$ref"]))]
            for k, v in node.items():
                if k != "$ref":
                    new[k] = self.deref(v)
            return new
        new = {}
        self._memo[key] = new
        for k, v in node.items():
            if k.startswith("x-"):
                continue
            if k in ("properties", "patternProperties", "$defs", "definitions"):
                new[k] = {name: self.deref(sub) for name, sub in v.items()}
            else:
                new["anyOf" if k == "oneOf" else k] = self.deref(v)
        return new

    def resolve(self, schema: dict) -> dict:
        """Follow a top-level $ref (one level deep is enough for query-param coercion)."""
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < 8:
            ref = schema["$ref"]
            node: Any = self.raw
            for part in ref.lstrip("#/").split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            schema = node
            seen += 1
        return schema

    # ------------------------------------------------------------------ matching

    @functools.lru_cache(maxsize=8192)  # noqa: B019 - the Spec is a process-wide singleton
    def match_template(self, path: str) -> tuple[str, tuple[tuple[str, str], ...]] | None:
        segs = tuple(path.strip("/").split("/"))
        best: tuple[tuple[int, ...], str, tuple[tuple[str, str], ...]] | None = None
        for tsegs, template in self._templates.get((len(segs), segs[0]), ()):
            score: list[int] = []
            params: list[tuple[str, str]] = []
            for t, s in zip(tsegs, segs, strict=True):
                if t.startswith("{"):
                    score.append(0)
                    params.append((t[1:-1], s))
                elif t == s:
                    score.append(1)
                else:
                    break
            else:
                key = tuple(score)
                if best is None or key > best[0]:
                    best = (key, template, tuple(params))
        if best is None:
            return None
        return best[1], best[2]

    def operation(self, method: str, template: str) -> Operation | None:
        return self.operations.get((method, template))

    def methods_for(self, template: str) -> list[str]:
        return [m for (m, t) in self.operations if t == template]

    def validator(self, op: Operation, pointer: str) -> Any:
        v = op._validators.get(pointer)
        if v is None:
            with _lock:
                schema = self.deref(self._get(pointer))
            v = jsonschema.Draft202012Validator(schema)
            op._validators[pointer] = v
        return v


PERMISSION_FIELDS = ("permissions", "allow", "deny", "default_member_permissions")


def _widen_permission_bitsets(node: Any) -> None:
    """Discord serialises permission bit sets as strings ("Permissions ... serialized into a string")
    and discord.py sends them so; the spec types some request fields as integers only. Accept a
    string of digits there too (the integer form stays valid)."""
    if isinstance(node, list):
        for x in node:
            _widen_permission_bitsets(x)
        return
    if not isinstance(node, dict):
        return
    props = node.get("properties")
    if isinstance(props, dict):
        for name in PERMISSION_FIELDS:
            sub = props.get(name)
            if isinstance(sub, dict):
                types = sub.get("type")
                types = [types] if isinstance(types, str) else (types or [])
                if "integer" in types:
                    props[name] = {"anyOf": [sub, {"type": "string", "pattern": "^[0-9]+$"}]}
    for v in node.values():
        _widen_permission_bitsets(v)


def get_spec() -> Spec:
    global _spec_singleton
    if _spec_singleton is None:
        with _lock:
            if _spec_singleton is None:
                _spec_singleton = Spec()
    return _spec_singleton


# ---------------------------------------------------------------------- checks


def _coerce_query(value: str, schema: dict) -> Any:
    types = schema.get("type")
    if isinstance(types, str):
        types = [types]
    if not types:
        # SnowflakeType & friends: a query string is a string
        return value
    if "boolean" in types:
        low = value.lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
    if "integer" in types:
        try:
            return int(value)
        except ValueError:
            pass
    if "number" in types:
        try:
            return float(value)
        except ValueError:
            pass
    return value


def _where(error: ValidationError) -> str:
    return "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path) or "(root)"


def _message(error: ValidationError) -> str:
    msg = error.message
    if len(msg) > 300:
        msg = msg[:300] + "…"
    return msg


def _deepest(error: ValidationError) -> ValidationError:
    """Best error for anyOf/oneOf unions: descend into the branch the instance was meant for.

    Discord's unions are discriminated by a ``type`` field: a branch whose only
    complaint is about ``type`` is not the one the sender meant.
    """
    while error.context:
        branches: dict[Any, list[ValidationError]] = {}
        for e in error.context:
            branches.setdefault(e.relative_schema_path[0], []).append(e)

        def misfit(errs: list[ValidationError], base: int = len(error.absolute_path)) -> tuple[int, int]:
            discr = any(
                list(e.absolute_path)[base:] == ["type"]
                or (e.validator == "type" and len(e.absolute_path) == base)
                for e in errs
            )
            return (1 if discr else 0, len(errs))

        chosen = min(branches.values(), key=misfit)
        nxt = best_match(chosen)
        if nxt is None:
            break
        error = nxt
    return error


@dataclass
class CheckResult:
    operation: Operation | None
    template: str | None
    path_params: dict[str, str]
    problems: list[str]
    form_errors: dict[str, Any]
    status: int = 0  # 0 = ok; 404/405 route problems; 400 invalid form body


def check_request(
    spec: Spec,
    method: str,
    path: str,
    query: dict[str, str],
    body: Any,
    has_body: bool,
    raw_body: bytes | None = None,
) -> CheckResult:
    matched = spec.match_template(path)
    if matched is None:
        return CheckResult(None, None, {}, [f"{method} {path}: no such route in Discord's API"], {}, 404)
    template, params = matched
    op = spec.operation(method, template)
    path_params = dict(params)
    if op is None:
        allowed = ", ".join(spec.methods_for(template)) or "none"
        return CheckResult(
            None,
            template,
            path_params,
            [f"{method} {path}: method not allowed on {template} (allowed: {allowed})"],
            {},
            405,
        )
    problems: list[str] = []
    form_errors: dict[str, Any] = {}

    def note(where: str, err: ValidationError) -> None:
        err = _deepest(err)
        loc = where + ("" if _where(err) == "(root)" else _where(err))
        problems.append(f"{op.operation_id} ({method} {template}): {loc}: {_message(err)}")
        form_errors.setdefault(loc, {"_errors": []})["_errors"].append(
            {"code": "BASE_TYPE_INVALID" if err.validator == "type" else "INVALID", "message": _message(err)}
        )

    for name, pointer in op.path_params.items():
        if name in path_params:
            err = best_match(spec.validator(op, pointer).iter_errors(path_params[name]))
            if err is not None:
                note(f"path.{name}", err)
    for name, value in query.items():
        entry = op.query_params.get(name)
        if entry is None:
            continue  # Discord ignores unknown query parameters
        pointer, schema = entry
        err = best_match(spec.validator(op, pointer).iter_errors(_coerce_query(value, schema)))
        if err is not None:
            note(f"query.{name}", err)
    for name in op.required_query:
        if name not in query:
            problems.append(f"{op.operation_id}: missing required query parameter {name!r}")
    if op.body_pointer is not None:
        if has_body:
            cache_key = (op.operation_id, raw_body) if raw_body is not None else None
            if cache_key is None or cache_key not in spec._valid_cache:
                err = best_match(spec.validator(op, op.body_pointer).iter_errors(body))
                if err is not None:
                    note("body", err)
                elif cache_key is not None:
                    if len(spec._valid_cache) > 4096:
                        spec._valid_cache.clear()
                    spec._valid_cache[cache_key] = True
        elif op.body_required:
            problems.append(f"{op.operation_id} ({method} {template}): request body is required")
            form_errors.setdefault("body", {"_errors": []})["_errors"].append(
                {"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}
            )
    return CheckResult(op, template, path_params, problems, form_errors, 400 if problems else 0)


class Conformance:
    """What the bot did against the spec during one sandbox's lifetime."""

    def __init__(self) -> None:
        self.operations: set[str] = set()
        self.calls: dict[str, int] = {}
        self.violations: list[str] = []

    def record(self, operation_id: str) -> None:
        self.operations.add(operation_id)
        self.calls[operation_id] = self.calls.get(operation_id, 0) + 1

    def violation(self, message: str) -> None:
        self.violations.append(message)

    def clear(self) -> None:
        self.violations.clear()

    def assert_ok(self) -> None:
        if self.violations:
            listing = "\n  - ".join(self.violations)
            raise AssertionError(
                f"{len(self.violations)} Discord API conformance violation(s):\n  - {listing}"
            )
