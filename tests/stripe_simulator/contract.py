"""Stripe's object definitions for the pinned API version, read from the installed `stripe`
package, and a checker of JSON against them.

stripe-python's object classes (`stripe/_invoice.py`, ...) are generated from Stripe's OpenAPI
description of the version the package pins (`stripe.api_version`). Their annotations are the
contract, read here and nowhere else, so no one can tune it by hand:

- a field that is not `Optional` is always present and never null;
- an `Optional` field may be null (the annotations do not say whether it may also be absent,
  so an absent `Optional` field is accepted);
- `Literal[...]` (also `Union[Literal[...], str]`, the library's forward-compatible spelling)
  is an enum: any other string is a violation;
- `ExpandableField[X]` (`Union[str, X]`) is an id or, when expanded, an X;
- nested classes describe sub-objects, `ListObject[X]` a list envelope of X;
- a key the class does not define is a field this version does not have (removed or invented).

Three shapes are not generated, so they are written out here from Stripe's API reference: the
list envelope (`stripe/_list_object.py` is hand-written), the search result envelope, and the
`deleted_<object>` stubs (`{"id", "object", "deleted": true}`) that the library folds into each
class as `deleted: Optional[Literal[True]]`.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import types
import typing
from decimal import Decimal, InvalidOperation
from typing import Any, ForwardRef, Literal, Union

import stripe
from stripe._list_object import ListObject
from stripe._object_classes import OBJECT_CLASSES
from stripe._search_result_object import SearchResultObject
from stripe._stripe_object import StripeObject, UntypedStripeObject

API_VERSION: str = stripe.api_version
_NONE = type(None)
_MISSING = object()


class ContractError(AssertionError):
    """Violations of the contract, one per line."""


def object_class(object_name: str) -> type[StripeObject]:
    """The class stripe-python maps `object: "<name>"` to."""
    module, name = OBJECT_CLASSES[object_name]
    return getattr(importlib.import_module(module), name)


@functools.cache
def _type_checking_names(module_name: str) -> dict[str, Any]:
    """What the module imports under `if TYPE_CHECKING:`: its annotations name those classes
    as strings (forward references)."""
    module = importlib.import_module(module_name)
    tree = ast.parse(inspect.getsource(module))
    names: dict[str, Any] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"):
            continue
        for statement in node.body:
            if isinstance(statement, ast.ImportFrom) and statement.module:
                if statement.module.startswith("stripe.params"):
                    continue  # request parameters, never in an object's annotations
                imported = importlib.import_module(statement.module)
                for alias in statement.names:
                    names[alias.asname or alias.name] = getattr(imported, alias.name)
    return names


def _enclosing(cls: type) -> list[type]:
    """`Invoice.AutomaticTax.Liability` → [Invoice, Invoice.AutomaticTax]."""
    module = importlib.import_module(cls.__module__)
    chain: list[type] = []
    node: Any = module
    for part in cls.__qualname__.split(".")[:-1]:
        node = getattr(node, part)
        chain.append(node)
    return chain


@functools.cache
def fields(cls: type) -> dict[str, Any]:
    """JSON key → resolved annotation, for the fields `cls` itself declares."""
    namespace: dict[str, Any] = dict(vars(importlib.import_module(cls.__module__)))
    namespace.update(_type_checking_names(cls.__module__))
    for outer in _enclosing(cls):
        namespace.update(vars(outer))
    namespace.update(vars(cls))
    own = cls.__dict__.get("__annotations__", {})
    hints = typing.get_type_hints(cls, globalns=namespace, localns=namespace)
    remap = getattr(cls, "_field_remappings", {})
    return {
        remap.get(name, name): hints[name]
        for name in own
        if not name.startswith("_") and typing.get_origin(hints[name]) is not typing.ClassVar
    }


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def optional(tp: Any) -> bool:
    return _is_union(tp) and _NONE in typing.get_args(tp)


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# The two envelopes: key -> check, and the keys always present.
ENVELOPES: dict[str, tuple[dict[str, Any], set[str]]] = {
    "list": (
        {
            "object": lambda v: v == "list",
            "data": lambda v: isinstance(v, list),
            "has_more": lambda v: isinstance(v, bool),
            "url": lambda v: isinstance(v, str),
        },
        {"object", "data", "has_more", "url"},
    ),
    "search_result": (
        {
            "object": lambda v: v == "search_result",
            "data": lambda v: isinstance(v, list),
            "has_more": lambda v: isinstance(v, bool),
            "next_page": lambda v: v is None or isinstance(v, str),
            "url": lambda v: isinstance(v, str),
            "total_count": _integer,  # only with expand[]=total_count
        },
        {"object", "data", "has_more", "next_page", "url"},
    ),
}


class Checker:
    """Collects violations as `path: problem` lines."""

    def __init__(self) -> None:
        self.violations: list[str] = []
        self.checked: set[str] = set()  # object names validated at least once

    def fail(self, path: str, problem: str) -> None:
        self.violations.append(f"{path}: {problem}")

    # ---------------------------------------------------------------- entry points
    def check_response(self, value: Any, path: str = "") -> None:
        """A whole API answer: an object, a deleted stub, a list or a search result."""
        if not isinstance(value, dict) or not isinstance(value.get("object"), str):
            self.fail(path or "<response>", f"not a Stripe object: {_describe(value)}")
            return
        name = value["object"]
        if name in ("list", "search_result"):
            self._envelope(value, None, path or name)
            return
        if name not in OBJECT_CLASSES:
            self.fail(path or name, f"unknown object type {name!r}")
            return
        self.check_object(value, object_class(name), path or name)

    def check_event(self, event: Any, path: str = "") -> None:
        """An event, and its `data.object` against that object's own class."""
        path = path or f"event[{event.get('type') if isinstance(event, dict) else '?'}]"
        self.check_response(event, path)
        data = event.get("data") if isinstance(event, dict) else None
        if not isinstance(data, dict):
            return
        self.check_response(data.get("object"), f"{path}.data.object")
        previous = data.get("previous_attributes")
        obj = data.get("object")
        if isinstance(previous, dict) and isinstance(obj, dict) and obj.get("object"):
            known = fields(object_class(obj["object"]))
            for key in previous:
                if key not in known:
                    self.fail(f"{path}.data.previous_attributes.{key}", "unknown field")

    # ---------------------------------------------------------------- objects
    def check_object(self, value: Any, cls: type, path: str) -> None:
        if not isinstance(value, dict):
            self.fail(path, f"expected a {cls.__qualname__} object, got {_describe(value)}")
            return
        object_name = getattr(cls, "OBJECT_NAME", None)
        if object_name and value.get("deleted") is True:
            self._deleted_stub(value, object_name, path)
            return
        if object_name:
            self.checked.add(object_name)
        declared = fields(cls)
        for key in value:
            if key not in declared:
                self.fail(f"{path}.{key}", f"unknown field (not in API version {API_VERSION})")
        for key, tp in declared.items():
            found = value.get(key, _MISSING)
            if found is _MISSING:
                if not optional(tp):
                    self.fail(f"{path}.{key}", "required field missing")
                continue
            self.check_value(found, tp, f"{path}.{key}")

    def _deleted_stub(self, value: dict, object_name: str, path: str) -> None:
        if set(value) != {"id", "object", "deleted"}:
            self.fail(path, f"a deleted {object_name} has exactly id, object, deleted")
        if not isinstance(value.get("id"), str) or value.get("object") != object_name:
            self.fail(path, f"a deleted {object_name} needs its id and object")

    def _envelope(self, value: dict, item: Any, path: str) -> None:
        kind = value.get("object")
        if kind not in ENVELOPES:
            self.fail(path, f"expected a list, got {_describe(kind)}")
            return
        allowed, required = ENVELOPES[kind]
        for key in value:
            if key not in allowed:
                self.fail(f"{path}.{key}", f"unknown field of a {kind} envelope")
            elif not allowed[key](value[key]):
                self.fail(f"{path}.{key}", f"wrong type: {_describe(value[key])}")
        for key in sorted(required - set(value)):
            self.fail(f"{path}.{key}", "required field missing")
        data = value.get("data")
        for index, element in enumerate(data if isinstance(data, list) else []):
            where = f"{path}.data[{index}]"
            if item is None:
                self.check_response(element, where)
            else:
                self.check_value(element, item, where)

    # ---------------------------------------------------------------- values
    def check_value(self, value: Any, tp: Any, path: str) -> None:
        problems = self._problems(value, tp, path)
        self.violations.extend(problems)

    def _problems(self, value: Any, tp: Any, path: str) -> list[str]:
        """Violations of `value` against `tp` (collected apart, so unions can try members)."""
        inner = Checker()
        inner._match(value, tp, path)
        self.checked |= inner.checked
        return inner.violations

    def _match(self, value: Any, tp: Any, path: str) -> None:  # noqa: C901 - one case per kind
        if isinstance(tp, ForwardRef | str):
            self.fail(path, f"unresolved annotation {tp!r} (contract reader bug)")
            return
        if tp is Any:
            return
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if _is_union(tp):
            self._union(value, args, path)
            return
        if value is None:
            self.fail(path, "null, but the field is not nullable")
            return
        if origin is Literal:
            if value not in args:
                self.fail(path, f"{_describe(value)} is not one of {', '.join(map(repr, args))}")
            return
        if origin in (list, typing.List):  # noqa: UP006 - both spellings occur
            if not isinstance(value, list):
                self.fail(path, f"expected a list, got {_describe(value)}")
                return
            for index, element in enumerate(value):
                self._match(element, args[0], f"{path}[{index}]")
            return
        if origin in (dict, typing.Dict) or origin is UntypedStripeObject:  # noqa: UP006
            if not isinstance(value, dict):
                self.fail(path, f"expected a hash, got {_describe(value)}")
                return
            value_type = args[-1] if args else Any
            for key, element in value.items():
                self._match(element, value_type, f"{path}[{key!r}]")
            return
        if origin is ListObject or tp is ListObject:
            if not isinstance(value, dict):
                self.fail(path, f"expected a list envelope, got {_describe(value)}")
                return
            self._envelope(value, args[0] if args else None, path)
            return
        if origin is SearchResultObject:
            self._envelope(value, args[0] if args else None, path)
            return
        if inspect.isclass(tp) and issubclass(tp, StripeObject):
            self.check_object(value, tp, path)
            return
        if tp is bool:
            if not isinstance(value, bool):
                self.fail(path, f"expected a boolean, got {_describe(value)}")
            return
        if tp is int:
            if not isinstance(value, int) or isinstance(value, bool):
                self.fail(path, f"expected an integer, got {_describe(value)}")
            return
        if tp is float:
            if not isinstance(value, int | float) or isinstance(value, bool):
                self.fail(path, f"expected a number, got {_describe(value)}")
            return
        if tp is str:
            if not isinstance(value, str):
                self.fail(path, f"expected a string, got {_describe(value)}")
            return
        if tp is Decimal:  # sent as a decimal string (`_field_encodings`)
            try:
                Decimal(value if isinstance(value, str) else "x")
            except InvalidOperation:
                self.fail(path, f"expected a decimal string, got {_describe(value)}")
            return
        self.fail(path, f"annotation {tp!r} is not understood (contract reader bug)")

    def _union(self, value: Any, args: tuple, path: str) -> None:
        members = [a for a in args if a is not _NONE]
        if value is None:
            if _NONE not in args:
                self.fail(path, "null, but the field is not nullable")
            return
        literals = [v for a in members if typing.get_origin(a) is Literal for v in a.__args__]
        if literals and isinstance(value, str):
            # Union[Literal[...], str]: the library keeps `str` for values newer than the
            # package; for the pinned version the enum is the contract.
            if value not in literals:
                self.fail(
                    path, f"{_describe(value)} is not one of {', '.join(map(repr, literals))}"
                )
            return
        classes = [a for a in members if inspect.isclass(a) and issubclass(a, StripeObject)]
        if isinstance(value, dict) and isinstance(value.get("object"), str):
            named = [c for c in classes if getattr(c, "OBJECT_NAME", None) == value["object"]]
            if named:
                self._match(value, named[0], path)
                return
        attempts = [self._problems(value, member, path) for member in members]
        if any(not problems for problems in attempts):
            return
        best = min(attempts, key=len)
        self.violations.extend(best)


def violations_of_response(value: Any) -> list[str]:
    checker = Checker()
    checker.check_response(value)
    return checker.violations


def violations_of_event(event: Any) -> list[str]:
    checker = Checker()
    checker.check_event(event)
    return checker.violations
