"""The one way to extend rnnlab: a ``Registry`` per kind of extension, filled by a decorator.

An implementation registers itself where it is defined::

    SCORES = Registry("attention score", "model.decoder.attention.kind", package="rnnlab.models.attention")

    @SCORES.register("additive")
    class AdditiveScore(Score): ...

and is found by name (``SCORES["additive"]``). A registry given a ``package`` imports every module of it before
its first look-up, so a new implementation is one file in that package, with no list to edit.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, ClassVar, Generic, Iterable, Iterator, TypeVar

from rnnlab.errors import UserError

T = TypeVar("T")


class UnknownName(UserError, ValueError):
    """A name no implementation registered; a ``ValueError`` too, as the constructors' other bad options are."""


class Registry(Generic[T]):
    """Implementations of one kind, by name.

    Args:
        kind: what is registered, in messages (``"attention score"``).
        option: the config option that names one, in messages (``"model.decoder.attention.kind"``).
        package: the package whose modules define the implementations, imported at the first look-up; None
            when they register elsewhere.
    """

    made: ClassVar[list[Registry]] = []  # every registry, so a built model's registered parts can be named

    def __init__(self, kind: str, option: str, package: str | None = None):
        self.kind, self.option, self.package = kind, option, package
        self._entries: dict[str, T] = {}
        self._discovered = package is None
        Registry.made.append(self)

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator registering what it decorates under ``name``; a name is registered once."""

        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"a {self.kind} named {name!r} is already registered ({self._entries[name]!r})")
            self._entries[name] = entry
            return entry

        return add

    def _discover(self) -> None:
        if not self._discovered:
            self._discovered = True  # first: the modules imported here look names up themselves
            package = importlib.import_module(self.package)
            for module in pkgutil.iter_modules(package.__path__):
                importlib.import_module(f"{self.package}.{module.name}")

    def names(self) -> tuple[str, ...]:
        """The registered names, sorted."""
        self._discover()
        return tuple(sorted(self._entries))

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._entries  # no sort: kernels are looked up at every forward pass

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __getitem__(self, name: str) -> T:
        """The implementation registered as ``name``.

        Raises:
            UnknownName: naming the option and the registered names.
        """
        if name not in self:
            raise UnknownName(f"{self.option} must be one of {list(self.names())}, got {name!r}")
        return self._entries[name]


def registered_names(entries: Iterable[object]) -> dict[str, str]:
    """``{kind: name}`` of each of ``entries`` registered in some ``Registry`` (e.g. a model's part classes)."""
    wanted = {id(entry) for entry in entries}  # by identity: not every entry is hashable
    return {registry.kind: name for registry in Registry.made for name, entry in registry._entries.items()
            if id(entry) in wanted}


def registered(kind: str, name: str) -> object:
    """The implementation of ``kind`` registered as ``name``: the inverse of ``registered_names``."""
    registry = next(registry for registry in Registry.made if registry.kind == kind)
    return registry[name]


def class_path(cls: type) -> str:
    """``"package.module.Class"``: how configs' ``_target_`` and checkpoints name a class."""
    return f"{cls.__module__}.{cls.__qualname__}"
