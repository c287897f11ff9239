"""The collector's OpenAPI document, with inline ``$defs`` moved where references resolve.

Routes that describe their body with ``openapi_extra`` paste in a pydantic JSON Schema
(``TypeAdapter(...).json_schema()``), whose nested models sit under ``$defs`` and are
referenced as ``#/$defs/Name``. In an OpenAPI document such a reference resolves against
the document's root, where there is no ``$defs``; clients, code generators and
schemathesis then cannot read those bodies. :func:`hoist_inline_defs` moves every inline
``$defs`` entry to ``components/schemas`` and rewrites the references.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["hoist_inline_defs", "install_openapi"]


def hoist_inline_defs(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``doc`` with every inline ``$defs`` under ``components/schemas``.

    A definition keeps its own name unless ``components/schemas`` already holds a different
    schema of that name; then it gets the first free ``Name2``, ``Name3``, …
    """
    doc = copy.deepcopy(doc)
    components: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})

    def place(name: str, schema: Any) -> str:
        candidate, n = name, 1
        while candidate in components and components[candidate] != schema:
            n += 1
            candidate = f"{name}{n}"
        components[candidate] = schema
        return candidate

    def target(ref: str, names: dict[str, str]) -> str:
        if not ref.startswith("#/$defs/"):
            return ref
        name = ref.removeprefix("#/$defs/")
        return "#/components/schemas/" + names.get(name, name)

    def rewrite(node: Any, names: dict[str, str]) -> Any:
        if isinstance(node, dict):
            if isinstance(node.get("$defs"), dict):
                defs: dict[str, Any] = node.pop("$defs")
                local = dict(names)
                # references between the definitions need every new name first
                pending = {name: name for name in defs}
                local.update(pending)
                for name, schema in defs.items():
                    local[name] = place(name, rewrite(schema, local))
                names = local
            out = {k: rewrite(v, names) for k, v in node.items()}
            ref = out.get("$ref")
            if isinstance(ref, str):
                out["$ref"] = target(ref, names)
            mapping = out.get("mapping")
            if isinstance(mapping, dict):  # a discriminator's tag -> $ref table
                out["mapping"] = {
                    k: target(v, names) if isinstance(v, str) else v for k, v in mapping.items()
                }
            return out
        if isinstance(node, list):
            return [rewrite(v, names) for v in node]
        return node

    doc["paths"] = rewrite(doc.get("paths", {}), {})
    return doc


def install_openapi(app: FastAPI) -> None:
    """Serve ``app``'s OpenAPI document with inline ``$defs`` hoisted (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = hoist_inline_defs(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
