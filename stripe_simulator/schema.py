"""What the pinned API version allows, read from the installed ``stripe`` package.

stripe-python is generated from Stripe's OpenAPI description of the version it pins. Two parts
of it are used here, so the simulator refuses what Stripe would refuse:

- the request parameter types (``stripe.params.<Resource><Action>Params``, TypedDicts): a
  parameter they do not name is answered with Stripe's ``parameter_unknown`` error;
- the object classes' annotations: a field annotated ``ExpandableField[X]`` (``Union[str, X]``)
  may be expanded, anything else may not (``This property cannot be expanded``).

The shapes of the objects the simulator returns are written out in ``shapes.py``, not derived
from here: the contract test (tests/stripe_simulator) checks them against the same classes.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import types
import typing
from typing import Any, ForwardRef, Union

import stripe.params
from stripe._list_object import ListObject
from stripe._object_classes import OBJECT_CLASSES
from stripe._request_options import RequestOptions
from stripe._stripe_object import StripeObject

from .state import ApiError, Obj

_REQUEST_OPTIONS = set(RequestOptions.__annotations__)
_CLASS_NAMES = {name: module for module, name in OBJECT_CLASSES.values()}


# ---------------------------------------------------------------- request parameters
def params_class(name: str) -> type:
    """``"RefundCreateParams"`` or ``"checkout.SessionCreateParams"`` → the TypedDict."""
    package, _, cls = name.rpartition(".")
    module = importlib.import_module(f"stripe.params.{package}") if package else stripe.params
    return getattr(module, cls)


def _is_typed_dict(value: Any) -> bool:
    """Also true of typing_extensions' TypedDicts (which the params are), unlike
    ``typing.is_typeddict`` on Python 3.11."""
    return isinstance(value, type) and issubclass(value, dict) and hasattr(value, "__total__")


@functools.cache
def _typed_dicts(module_name: str) -> dict[str, type]:
    module = importlib.import_module(module_name)
    return {n: v for n, v in vars(module).items() if _is_typed_dict(v)}


@functools.cache
def _param_fields(cls: type) -> dict[str, type | None]:
    """Parameter → the nested TypedDict it takes (a hash, or a list of hashes), if any.

    A params class inherits the client's request options (``api_key``...): those are not
    parameters of the API."""
    nested = _typed_dicts(cls.__module__)
    keys = set(cls.__annotations__)
    if keys >= _REQUEST_OPTIONS:
        keys -= _REQUEST_OPTIONS
    found: dict[str, type | None] = {}
    for key in keys:
        text = repr(cls.__annotations__[key])
        names = [n for n in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text) if n in nested]
        found[key] = nested[names[0]] if names else None
    return found


def check_params(params: Obj, cls: type, prefix: str = "") -> None:
    """Raise Stripe's ``parameter_unknown`` for the first parameter the version does not have."""
    known = _param_fields(cls)
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else key
        if key not in known:
            raise ApiError(
                f"Received unknown parameter: {name}",
                name,
                "parameter_unknown",
                validation=True,
            )
        sub = known[key]
        if sub is None:
            continue
        if isinstance(value, dict):
            check_params(value, sub, name)
        elif isinstance(value, list):
            for index, element in enumerate(value):
                if isinstance(element, dict):
                    check_params(element, sub, f"{name}[{index}]")


# ---------------------------------------------------------------- object fields
def object_class(object_name: str) -> type[StripeObject]:
    module, name = OBJECT_CLASSES[object_name]
    return getattr(importlib.import_module(module), name)


def _resolve(tp: Any) -> Any:
    """A forward reference by class name (``ForwardRef('Invoice')``) → the class."""
    if isinstance(tp, ForwardRef):
        module = _CLASS_NAMES.get(tp.__forward_arg__)
        return getattr(importlib.import_module(module), tp.__forward_arg__) if module else None
    return tp


def _members(tp: Any) -> list[Any]:
    if typing.get_origin(tp) in (Union, types.UnionType):
        return [_resolve(a) for a in typing.get_args(tp) if a is not type(None)]
    return [_resolve(tp)]


def _is_object(tp: Any) -> bool:
    return inspect.isclass(tp) and issubclass(tp, StripeObject)


def field_kind(cls: type, name: str) -> tuple[str, Any]:
    """How ``cls.name`` may appear in an expand path: ("expandable", class), ("object",
    class), ("list", item class), or ("plain", None)."""
    annotation = cls.__dict__.get("__annotations__", {}).get(name)
    if annotation is None:
        return "unknown", None
    members = _members(annotation)
    if str in members:
        targets = [m for m in members if _is_object(m)]
        if targets:
            return "expandable", targets[0]
    for member in members:
        if typing.get_origin(member) is ListObject:
            return "list", _resolve(typing.get_args(member)[0])
        if typing.get_origin(member) in (list, typing.List):  # noqa: UP006
            inner_members = _members(typing.get_args(member)[0])
            inner = [m for m in inner_members if _is_object(m)]
            if inner:
                # A list of ids that expand each (``invoice.discounts``), or of objects.
                return ("expandable" if str in inner_members else "object"), inner[0]
        if _is_object(member):
            return "object", member
    return "plain", None


def check_expand(paths: list[str], object_name: str, includable: dict[str, set[str]]) -> None:
    """Refuse expand paths the version does not allow for an answer of type ``object_name``
    (``list`` answers name the item type as ``list:<item>``). At most 4 levels, as on Stripe."""
    for path in paths:
        parts = path.split(".")
        if len(parts) > 4:
            raise ApiError(
                f"You cannot expand more than 4 levels of a property. Property: {path}",
                "expand",
                validation=True,
            )
        kind, _, item = object_name.partition(":")
        cls: Any = object_class(item) if kind == "list" else object_class(object_name)
        if kind == "list":
            if parts[0] != "data":
                hint = ""
                if field_kind(cls, parts[0])[0] == "expandable" or parts[0] in includable.get(
                    item, ()
                ):
                    hint = f" You may want to try expanding 'data.{path}' instead."
                raise _not_expandable(path, hint)
            parts = parts[1:]
        _check_path(path, parts, cls, includable)


def _check_path(path: str, parts: list[str], cls: Any, includable: dict[str, set[str]]) -> None:
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part in includable.get(getattr(cls, "OBJECT_NAME", ""), ()):
            kind, target = field_kind(cls, part)
            if last:
                return
            if kind != "list" or parts[index + 1] != "data":
                raise _not_expandable(path)
            _check_path(path, parts[index + 2 :], target, includable)
            return
        kind, target = field_kind(cls, part)
        if kind == "expandable":
            cls = target
            continue
        if last or kind == "plain" or kind == "unknown":
            raise _not_expandable(path)
        if kind == "list":
            if parts[index + 1] != "data":
                raise _not_expandable(path)
            _check_path(path, parts[index + 2 :], target, includable)
            return
        cls = target


def _not_expandable(path: str, hint: str = "") -> ApiError:
    return ApiError(f"This property cannot be expanded ({path}).{hint}", "expand", validation=True)
