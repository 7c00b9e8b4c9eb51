"""Read the typed structs the sample apps declare (Kotlin @Serializable data classes, Swift Codable
structs) and check them against the Python schema dataclasses.

Types are compared as JSON kinds: str, int, float, bool, list[T], map, struct. The declaration
style the parsers expect is written at the top of each app's Manifest.kt / Manifest.swift.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

Kind = tuple  # ("str",) ("int",) ("float",) ("bool",) ("list", Kind) ("map", Kind) ("struct", name) ("other", name)


@dataclass(frozen=True)
class AppField:
    key: str  # the JSON key
    kind: Kind
    nullable: bool


Structs = dict[str, dict[str, AppField]]  # struct name -> JSON key -> field

_SCALARS = {"String": ("str",), "Int": ("int",), "Long": ("int",), "Int64": ("int",), "Int32": ("int",),
            "Double": ("float",), "Float": ("float",), "Boolean": ("bool",), "Bool": ("bool",)}


def _kind(text: str, structs: set[str]) -> tuple[Kind, bool]:
    text = text.strip()
    nullable = text.endswith("?")
    text = text.rstrip("?").strip()
    if m := re.fullmatch(r"List<(.+)>", text) or re.fullmatch(r"\[([^:]+)\]", text):
        return ("list", _kind(m.group(1), structs)[0]), nullable
    if m := re.fullmatch(r"Map<\s*String\s*,\s*(.+)>", text) or re.fullmatch(r"\[\s*String\s*:\s*(.+)\]", text):
        return ("map", _kind(m.group(1), structs)[0]), nullable
    if text in _SCALARS:
        return _SCALARS[text], nullable
    return (("struct", text) if text in structs else ("other", text)), nullable


def _type_text(rest: str) -> str:
    """The type at the start of `rest`: up to a default (`=`) or a comma outside `<...>`."""
    depth = 0
    for i, ch in enumerate(rest):
        depth += (ch == "<") - (ch == ">")
        if depth == 0 and ch in "=,":
            return rest[:i]
    return rest


def parse_kotlin(path: Path) -> Structs:
    source = path.read_text()
    blocks = re.findall(r"@Serializable\s+data class (\w+)\((.*?)\n\)", source, re.S)
    names = {name for name, _ in blocks}
    structs: Structs = {}
    for name, body in blocks:
        fields = {}
        for line in body.splitlines():
            m = re.match(r'\s*(?:@SerialName\("([^"]+)"\)\s+)?(?:val|var)\s+(\w+)\s*:(.*)', line)
            if m:
                key = m.group(1) or m.group(2)
                kind, nullable = _kind(_type_text(m.group(3)), names)
                fields[key] = AppField(key, kind, nullable)
        structs[name] = fields
    return structs


def _swift_blocks(source: str, keyword: str) -> list[tuple[str, str, str]]:
    """(name, own body, whole text) of each `keyword Name ... { ... }`; the own body leaves out what
    nested braces hold (keeping their opening brace, which marks computed properties)."""
    out = []
    for m in re.finditer(rf"\b{keyword}\s+(\w+)[^{{]*\{{", source):
        depth, i, body = 1, m.end(), []
        while depth:
            ch = source[i]
            if ch == "{":
                depth += 1
                if depth == 2:
                    body.append(ch)
            elif ch == "}":
                depth -= 1
            elif depth == 1:
                body.append(ch)
            i += 1
        out.append((m.group(1), "".join(body), source[m.start():i]))
    return out


def parse_swift(path: Path) -> Structs:
    source = path.read_text()
    blocks = _swift_blocks(source, "struct")
    names = {name for name, _, _ in blocks}
    structs: Structs = {}
    for name, body, whole in blocks:
        keys: dict[str, str] = {}
        coding = next((b for n, b, _ in _swift_blocks(whole, "enum") if n == "CodingKeys"), None)
        for line in (coding or "").splitlines():
            if m := re.match(r"\s*case\s+(.+)", line):
                for part in m.group(1).split(","):
                    prop, _, raw = part.partition("=")
                    keys[prop.strip()] = raw.strip().strip('"') or prop.strip()
        fields = {}
        for line in body.splitlines():
            m = re.match(r"\s*(?:public\s+|internal\s+)?(?:let|var)\s+(\w+)\s*:\s*([^={]+?)\s*(=.*)?$", line)
            if m and not line.rstrip().endswith("{") and not re.match(r"\s*(?:public\s+)?static", line):
                if coding is not None and m.group(1) not in keys:
                    continue  # not coded: not part of the JSON
                key = keys.get(m.group(1), m.group(1))
                kind, nullable = _kind(m.group(2), names)
                fields[key] = AppField(key, kind, nullable)
        structs[name] = fields
    return structs


def parse_structs(path: Path) -> Structs:
    return parse_kotlin(path) if path.suffix == ".kt" else parse_swift(path)


# --- the Python side -------------------------------------------------------------------------

Overrides = dict[tuple[type, str], Any]  # simulate a schema change: a new type, or None to remove


def _python_fields(cls: type, overrides: Overrides) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
    for (owner, name), new in overrides.items():
        if owner is cls:
            if new is None:
                fields.pop(name, None)
            else:
                fields[name] = new
    return fields


def _python_kind(tp: Any, dict_schema: type | None = None) -> tuple[Kind, bool, Any]:
    """(kind, optional, nested dataclass or None) of a Python annotation."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        kind, _, nested = _python_kind(inner[0], dict_schema)
        return kind, True, nested
    if dict_schema is not None:
        return ("struct", dict_schema.__name__), False, dict_schema
    if dataclasses.is_dataclass(tp):
        return ("struct", tp.__name__), False, tp
    if origin in (list, tuple):
        element, _, nested = _python_kind(args[0])
        return ("list", element), False, nested
    if origin is dict:
        return ("map", ("any",) if args[1] is Any else _python_kind(args[1])[0]), False, None
    return {str: ("str",), int: ("int",), float: ("float",), bool: ("bool",)}.get(tp, ("any",)), False, None


def _compatible(app: Kind, py: Kind) -> bool:
    if py == ("map", ("any",)):
        return app[0] in ("map", "struct", "other")  # free-form dict: the app may type what it uses
    if app[0] != py[0]:
        return False
    if app[0] in ("list", "map"):
        return _compatible(app[1], py[1])
    return True  # scalars by kind; structs are compared field by field by the caller


def check(structs: Structs, root: str, py_root: type, *, writer: bool = False,
          dict_schemas: dict[tuple[type, str], type] | None = None, overrides: Overrides | None = None) -> list[str]:
    """Problems between the app's structs (from `root`) and the Python dataclasses (from `py_root`).

    Every field the app declares must exist in Python with the same JSON kind, and be nullable
    where Python's is optional. A `writer` (bench JSON) must also declare every Python field.
    """
    dict_schemas, overrides = dict_schemas or {}, overrides or {}
    problems: list[str] = []

    def walk(app_name: str, cls: type, where: str) -> None:
        if app_name not in structs:
            problems.append(f"{where}: the app has no struct {app_name}")
            return
        app_fields, py_fields = structs[app_name], _python_fields(cls, overrides)
        for key, field in app_fields.items():
            if key not in py_fields:
                problems.append(f"{where}.{key}: read by the app, not in the schema ({cls.__name__})")
                continue
            kind, optional, nested = _python_kind(py_fields[key], dict_schemas.get((cls, key)))
            if not _compatible(field.kind, kind):
                problems.append(f"{where}.{key}: app type {field.kind} != schema type {kind}")
            elif optional and not field.nullable:
                problems.append(f"{where}.{key}: optional in the schema, not nullable in the app")
            elif nested is not None and kind != ("map", ("any",)):
                inner = field.kind[1] if field.kind[0] == "list" else field.kind
                if inner[0] == "struct":
                    walk(inner[1], nested, f"{where}.{key}")
        if writer:
            for key in py_fields.keys() - app_fields.keys():
                problems.append(f"{where}.{key}: in the schema, not written by the app")

    walk(root, py_root, py_root.__name__)
    return problems


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    return {float: "float", str: "str", list: "list", dict: "map"}.get(type(value), "null")


def decode_problems(structs: Structs, root: str, data: dict[str, Any]) -> list[str]:
    """What would stop the app's structs from decoding `data` (a real manifest or bench document)."""
    problems: list[str] = []

    def value_ok(kind: Kind, value: Any, where: str) -> None:
        actual = _json_kind(value)
        if kind[0] == "struct":
            if actual != "map":
                problems.append(f"{where}: expected an object, got {actual}")
            else:
                walk(kind[1], value, where)
        elif kind[0] == "list":
            if actual != "list":
                problems.append(f"{where}: expected a list, got {actual}")
            else:
                for i, v in enumerate(value):
                    value_ok(kind[1], v, f"{where}[{i}]")
        elif kind[0] == "map":
            if actual != "map":
                problems.append(f"{where}: expected an object, got {actual}")
        elif kind[0] == "float":
            if actual not in ("float", "int"):
                problems.append(f"{where}: expected a number, got {actual}")
        elif kind[0] != "other" and actual != kind[0]:
            problems.append(f"{where}: expected {kind[0]}, got {actual}")

    def walk(name: str, obj: dict[str, Any], where: str) -> None:
        for key, field in structs[name].items():
            if obj.get(key) is None:
                if not field.nullable:
                    problems.append(f"{where}.{key}: missing or null, and the app requires it")
                continue
            value_ok(field.kind, obj[key], f"{where}.{key}")

    walk(root, data, root)
    return problems


# --- source-level checks ---------------------------------------------------------------------


def code_only(source: str) -> str:
    """Kotlin or Swift source with its comments blanked out (string literals kept), so checks of what
    the code calls are not satisfied or tripped by what a comment says."""
    out, i, n = [], 0, len(source)
    while i < n:
        if source.startswith("//", i):
            j = source.find("\n", i)
            i = n if j < 0 else j
        elif source.startswith("/*", i):
            j = source.find("*/", i + 2)
            i = n if j < 0 else j + 2
            out.append(" ")
        elif source[i] == '"':
            j = i + 1
            while j < n and source[j] != '"' and source[j] != "\n":
                j += 2 if source[j] == "\\" else 1
            out.append(source[i:j + 1])
            i = j + 1
        else:
            out.append(source[i])
            i += 1
    return "".join(out)


def block_after(source: str, start: int) -> str:
    """The text between the first `{` at or after `start` and its matching `}`."""
    i = source.index("{", start)
    depth, j = 1, i + 1
    while depth:
        depth += {"{": 1, "}": -1}.get(source[j], 0)
        j += 1
    return source[i + 1:j - 1]
