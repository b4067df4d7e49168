"""A small generic registry: plug-ins by name, built from config strings.

One class serves divergences, radius schedulers, solvers and presets::

    DIVERGENCES: Registry[Divergence] = Registry("divergence", Divergence)

    @DIVERGENCES.register("w1", aliases=("wasserstein",))
    class Wasserstein1(Divergence): ...

    DIVERGENCES.build("w1")                      # by name
    DIVERGENCES.build("w1:ground=l1")            # name plus keyword arguments
    DIVERGENCES.build("mypkg.mymod:MyDiv:p=2")   # a user's class, not registered
    DIVERGENCES.build(Wasserstein1(), )          # an instance passes through

Config-string grammar: ``name[:key=value[,key=value...]]`` where a value is a Python
literal (``1e-3``, ``true``, ``(1, 3, 1)``, ``"text"``) or a bare word (a string).
Commas inside brackets or quotes do not split arguments.
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = [
    "Plugin",
    "Registry",
    "UnknownNameError",
    "format_value",
    "parse_kwargs",
    "parse_value",
    "split_spec",
]


class UnknownNameError(KeyError, ValueError):
    """An unknown plug-in name. Both a ``KeyError`` (a failed lookup) and a ``ValueError``."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def parse_value(text: str) -> Any:
    """Parse one config value: a Python literal, ``true``/``false``/``none``, or a bare string."""
    stripped = text.strip()
    lowered = stripped.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(stripped)
    except (ValueError, SyntaxError):
        return stripped


def _split_top_level(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside brackets and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for pos, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == sep and depth == 0:
            parts.append(text[start:pos])
            start = pos + 1
    parts.append(text[start:])
    return parts


def parse_kwargs(text: str) -> dict[str, Any]:
    """Parse ``"a=1,b=(1, 2),c=l1"`` into ``{"a": 1, "b": (1, 2), "c": "l1"}``."""
    kwargs: dict[str, Any] = {}
    if not text.strip():
        return kwargs
    for item in _split_top_level(text, ","):
        if "=" not in item:
            raise ValueError(f"Bad argument {item.strip()!r} in {text!r}: expected key=value")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key.isidentifier():
            raise ValueError(f"Bad keyword {key!r} in {text!r}: not a Python identifier")
        if key in kwargs:
            raise ValueError(f"Keyword {key!r} given twice in {text!r}")
        kwargs[key] = parse_value(value)
    return kwargs


def split_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``"name:k=v,..."`` or ``"pkg.mod:Class:k=v"`` into (target, kwargs).

    The target is either a registry name or ``"pkg.mod:Class"``.
    """
    spec = spec.strip()
    head, sep, rest = spec.partition(":")
    if not sep:
        return head, {}
    # "pkg.mod:Class[:kwargs]" when the part after the first colon is an identifier
    # (kwargs always contain "=").
    second, sep2, tail = rest.partition(":")
    if "=" not in second and second.strip().isidentifier():
        return f"{head.strip()}:{second.strip()}", parse_kwargs(tail) if sep2 else {}
    return head, parse_kwargs(rest)


@functools.cache
def accepted_keywords(cls: type) -> tuple[str, ...]:
    """The keyword arguments a class's constructor accepts, in signature order (cached per
    class: comparing or printing plug-ins asks for it often)."""
    params = inspect.signature(cls).parameters.values()
    return tuple(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def _is_import_target(name: str) -> bool:
    """Whether ``name`` has the form ``module[.sub...]:Class`` (a module path to import)."""
    module, sep, attr = name.strip().partition(":")
    return bool(sep) and attr.isidentifier() and all(p.isidentifier() for p in module.split("."))


def _takes_var_kwargs(cls: type) -> bool:
    return any(
        p.kind is p.VAR_KEYWORD for p in inspect.signature(cls).parameters.values()
    )


class Registry(Generic[T]):
    """Name -> class map for one kind of plug-in.

    Args:
        kind: what the entries are, for messages (``"divergence"``).
        base: optional base class; registered classes and passed-through instances must
            derive from it.
    """

    def __init__(self, kind: str, base: type | None = None) -> None:
        self.kind = kind
        self.base = base
        self._classes: dict[str, type] = {}
        self._aliases: dict[str, str] = {}

    # -- registration -------------------------------------------------------------------
    def register(
        self, name: str, *, aliases: tuple[str, ...] = ()
    ) -> Callable[[type], type]:
        """Class decorator registering ``cls`` under ``name`` (and ``aliases``)."""

        def decorator(cls: type) -> type:
            if self.base is not None and not (
                isinstance(cls, type) and issubclass(cls, self.base)
            ):
                raise TypeError(
                    f"Cannot register {cls!r} as a {self.kind}: it must subclass "
                    f"{self.base.__name__}"
                )
            keys = [self._normalise(name), *(self._normalise(a) for a in aliases)]
            for key in keys:
                if key in self._classes or key in self._aliases:
                    owner = self._classes.get(key) or self._classes[self._aliases[key]]
                    raise ValueError(
                        f"The {self.kind} name {key!r} is already taken by "
                        f"{owner.__module__}.{owner.__qualname__}"
                    )
            canonical = keys[0]
            self._classes[canonical] = cls
            for alias in keys[1:]:
                self._aliases[alias] = canonical
            cls.registry_name = canonical  # type: ignore[attr-defined]
            return cls

        return decorator

    @staticmethod
    def _normalise(name: str) -> str:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"A registry name must be a non-empty string, got {name!r}")
        return name.strip().lower()

    # -- lookup -------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Canonical registered names, sorted."""
        return sorted(self._classes)

    def aliases(self) -> dict[str, str]:
        """Alias -> canonical name."""
        return dict(self._aliases)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.strip().lower()
        return key in self._classes or key in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._classes)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"

    def get(self, name: str) -> type:
        """The class registered as ``name`` (or an alias), or a ``"pkg.mod:Class"`` import."""
        if not isinstance(name, str):
            raise TypeError(f"A {self.kind} name must be a string, got {type(name).__name__}")
        key = name.strip().lower()
        if key in self._aliases:
            key = self._aliases[key]
        if key in self._classes:
            return self._classes[key]
        if _is_import_target(name):
            head, _, rest = name.strip().partition(":")
            if head in self:  # "w1:ground": arguments without "=", not a module
                raise ValueError(
                    f"Bad arguments {rest!r} for {self.kind} {head!r}: expected "
                    f"'{head}:key=value[,key=value...]'"
                )
            return self._import(name.strip())
        candidates = [*self._classes, *self._aliases]
        close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownNameError(
            f"Unknown {self.kind} {name!r}.{hint} Available: {', '.join(self.names())}"
            " (or 'package.module:Class')"
        )

    def _import(self, target: str) -> type:
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise UnknownNameError(
                f"Cannot import module {module_name!r} for {self.kind} {target!r}: {exc}"
            ) from exc
        try:
            cls = getattr(module, attr)
        except AttributeError:
            raise UnknownNameError(
                f"Module {module_name!r} has no attribute {attr!r} (for {self.kind} {target!r})"
            ) from None
        if self.base is not None and not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise TypeError(f"{target!r} is not a {self.base.__name__} subclass")
        return cls

    # -- construction -------------------------------------------------------------------
    def build(self, spec: str | T | type | Mapping[str, Any], **kwargs: Any) -> T:
        """Build a plug-in from a config string, a class, an instance or a mapping.

        Keyword arguments in ``spec`` and in ``kwargs`` are merged (``kwargs`` win).
        A mapping has the form ``{"name": "w1", "ground": "l1"}``.

        Raises:
            UnknownNameError: unknown name (with suggestion and the available names).
            ValueError: unknown keyword or a value the plug-in refuses (accepted keywords
                listed).
        """
        if self.base is not None and isinstance(spec, self.base):
            if kwargs:
                raise ValueError(
                    f"Cannot apply keyword arguments {sorted(kwargs)} to an already built "
                    f"{self.kind} {spec!r}"
                )
            return spec  # type: ignore[return-value]
        if isinstance(spec, Mapping):
            spec = dict(spec)
            if "name" not in spec:
                raise ValueError(f"A {self.kind} mapping needs a 'name' key, got {sorted(spec)}")
            name = spec.pop("name")
            return self.build(name, **{**spec, **kwargs})
        if isinstance(spec, type):
            if self.base is not None and not issubclass(spec, self.base):
                raise TypeError(f"{spec!r} is not a {self.base.__name__} subclass")
            cls, spec_kwargs, label = spec, {}, spec.__name__
        elif isinstance(spec, str):
            target, spec_kwargs = split_spec(spec)
            cls, label = self.get(target), target
        else:
            raise TypeError(
                f"Cannot build a {self.kind} from {type(spec).__name__} {spec!r}: give a name, "
                "a config string, a class or an instance"
            )
        merged = {**spec_kwargs, **kwargs}
        return self.instantiate(cls, merged, label)

    def instantiate(self, cls: type, kwargs: dict[str, Any], label: str) -> T:
        """Instantiate ``cls(**kwargs)`` with messages that list the accepted keywords."""
        accepted = sorted(accepted_keywords(cls))
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown and not _takes_var_kwargs(cls):
            raise ValueError(
                f"Unknown keyword(s) {', '.join(map(repr, unknown))} for {self.kind} "
                f"{label!r}. Accepted: {', '.join(accepted) or '(none)'}"
            )
        try:
            return cls(**kwargs)
        except UnknownNameError:
            raise
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"Cannot build {self.kind} {label!r} with {kwargs}: {exc}. "
                f"Accepted keywords: {', '.join(accepted) or '(none)'}"
            ) from exc


def format_value(value: Any) -> str:
    """Format one value so that ``parse_value`` reads it back (nested plug-ins as quoted specs)."""
    if isinstance(value, Plugin):
        return repr(value.spec())
    if isinstance(value, str):
        bare = value.replace("_", "").replace("-", "").replace(".", "")
        if bare.isalnum() and parse_value(value) == value:
            return value
        return repr(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return repr(type(value)(format_value(v) if isinstance(v, Plugin) else v for v in value))
    return repr(value)


class Plugin:
    """Base class for registered plug-ins.

    Subclasses keep each constructor argument as an attribute of the same name; in return
    they get a readable ``repr``, ``config()`` (the arguments as a dict) and ``spec()`` (a
    config string that rebuilds an equal object through the registry).
    """

    registry_name: str = ""

    def config(self) -> dict[str, Any]:
        """The constructor arguments of this object."""
        return {
            name: getattr(self, name)
            for name in accepted_keywords(type(self))
            if hasattr(self, name)
        }

    def spec(self) -> str:
        """A config string such as ``"caatr:C=0.02,eps_base=0.001"``."""
        # Only a name registered for this very class: a subclass inherits the attribute.
        registered = type(self).__dict__.get("registry_name", "")
        name = registered or f"{type(self).__module__}:{type(self).__qualname__}"
        args = ",".join(f"{k}={format_value(v)}" for k, v in self.config().items())
        return f"{name}:{args}" if args else name

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.config() == other.config()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), repr(self)))
