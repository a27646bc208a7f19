"""How one implementation serves both clients (the sans-IO way, as in h11 or httpcore's state machines).

Every operation is written once, as a *plan*: a generator that yields what it needs done (a ``RequestSpec`` to
send, or one of the effects below) and is sent back the outcome, or has the failure thrown in. ``Client`` carries
the effects out with blocking calls, ``AsyncClient`` awaits them: the rules know no I/O, the I/O knows no rules.

``operation`` and ``listing`` turn a plan into a method of each client: on ``Client`` a plain method, on
``AsyncClient`` a coroutine method (a listing is a plain method on both: it returns a pager at once).
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, get_args, get_type_hints, overload

from alliance_partner._base import RequestSpec
from alliance_partner._models import Batch
from alliance_partner._pagination import AsyncPager, SyncPager

P = ParamSpec("P")
T = TypeVar("T")

#: A plan that ends with a ``T``; what it yields and is sent is each effect's own business.
Plan = Generator[Any, Any, T]

#: Called with the batch after each poll; on ``AsyncClient`` it may be a coroutine function.
BatchProgress = Callable[[Batch], object | Awaitable[object]]


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class FetchToken:
    """Authlib's client-credentials token request; the outcome is the token."""


@dataclass(frozen=True)
class RevokeToken:
    """Authlib's revocation request (RFC 7009); the outcome is the response."""

    options: dict[str, Any]


@dataclass(frozen=True)
class Progress:
    """Tell the caller's ``progress`` callback about ``batch`` (awaited if it answers with an awaitable)."""

    callback: BatchProgress
    batch: Batch


@dataclass(frozen=True)
class Locked(Generic[T]):
    """Carry out ``plan`` holding the client's token lock; the outcome is the plan's result."""

    plan: Plan[T]


@dataclass(frozen=True)
class Listing(Generic[T]):
    """A list call: the pager a client builds from it fetches a page of ``cls`` per ``name`` call."""

    cls: type[T]
    name: str
    ids: Mapping[str, str]
    cursor: str | None
    limit: int
    filters: dict[str, Any] = field(default_factory=dict)


def start(effect: Any, client: Any) -> Any:
    """Start ``effect`` (anything but ``Locked``) on ``client``: its outcome, or on ``AsyncClient`` an awaitable of
    it."""
    if isinstance(effect, Sleep):
        return client._sleep(effect.seconds)
    if isinstance(effect, FetchToken):
        return client._http.fetch_token()
    if isinstance(effect, RevokeToken):
        return client._http.revoke_token(**effect.options)
    if isinstance(effect, Progress):
        return effect.callback(effect.batch)
    if isinstance(effect, RequestSpec):
        return client._http.request(effect.method, effect.path, **effect.sending_options())
    raise TypeError(f"a plan yielded {effect!r}, which is no effect")


class Blocking:
    """A client whose I/O blocks (``Client``)."""

    def _run(self, plan: Plan[T]) -> T:
        raise NotImplementedError

    def _pager(self, listing: Listing[T]) -> SyncPager[T]:
        raise NotImplementedError


class Awaited:
    """A client whose I/O is awaited (``AsyncClient``)."""

    async def _run(self, plan: Plan[T]) -> T:
        raise NotImplementedError

    def _pager(self, listing: Listing[T]) -> AsyncPager[T]:
        raise NotImplementedError


class _ClientMethod:
    """A descriptor that gives each client class a real function made from one plan, with the plan's name,
    docstring and parameters, so that ``help``, ``inspect`` and IDEs see an ordinary method."""

    def __init__(self, plan: Callable[..., Any]) -> None:
        self._plan = plan
        self._made: dict[type[Any], Callable[..., Any]] = {}

    def __get__(self, client: Any, owner: type[Any]) -> Any:
        if owner not in self._made:
            self._made[owner] = self._method(owner)
        made = self._made[owner]
        return made if client is None else types.MethodType(made, client)

    def _method(self, owner: type[Any]) -> Callable[..., Any]:
        awaited = issubclass(owner, Awaited)
        method = self._make(self._plan, awaited)
        functools.update_wrapper(method, self._plan)
        method.__qualname__ = f"{owner.__qualname__}.{self._plan.__name__}"
        hints = get_type_hints(self._plan)
        returns = self._returns(hints.pop("return"), awaited)
        method.__annotations__ = {**hints, "return": returns}
        signature = inspect.signature(self._plan)
        parameters = [
            item.replace(annotation=hints.get(item.name, item.annotation)) for item in signature.parameters.values()
        ]
        method.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=parameters, return_annotation=returns
        )
        return method

    @staticmethod
    def _make(plan: Callable[..., Any], awaited: bool) -> Callable[..., Any]:
        raise NotImplementedError

    @staticmethod
    def _returns(hint: Any, awaited: bool) -> Any:
        """What the client's method returns, from the hint of what the plan returns."""
        raise NotImplementedError


class operation(_ClientMethod, Generic[P, T]):
    """A call that answers a ``T``: ``client.name(...)`` returns it, ``await async_client.name(...)`` too."""

    def __init__(self, plan: Callable[Concatenate[Any, P], Plan[T]]) -> None:
        super().__init__(plan)

    @overload
    def __get__(self, client: None, owner: type[Any]) -> Callable[Concatenate[Any, P], Any]: ...
    @overload
    def __get__(self, client: Blocking, owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self, client: Awaited, owner: type[Any]) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(self, client: Any, owner: type[Any]) -> Any:
        return super().__get__(client, owner)

    @staticmethod
    def _make(plan: Callable[..., Any], awaited: bool) -> Callable[..., Any]:
        if awaited:

            async def awaited_call(client: Awaited, /, *args: Any, **kwargs: Any) -> Any:
                return await client._run(plan(client, *args, **kwargs))

            return awaited_call

        def call(client: Blocking, /, *args: Any, **kwargs: Any) -> Any:
            return client._run(plan(client, *args, **kwargs))

        return call

    @staticmethod
    def _returns(hint: Any, awaited: bool) -> Any:
        result = get_args(hint)[2]  # Plan[T] is Generator[Any, Any, T]
        return None if result is type(None) else result


class listing(_ClientMethod, Generic[P, T]):
    """A list: ``client.name(...)`` returns a ``SyncPager[T]`` at once, ``async_client.name(...)`` an
    ``AsyncPager[T]``; pages are fetched as it is iterated."""

    def __init__(self, build: Callable[Concatenate[Any, P], Listing[T]]) -> None:
        super().__init__(build)

    @overload
    def __get__(self, client: None, owner: type[Any]) -> Callable[Concatenate[Any, P], Any]: ...
    @overload
    def __get__(self, client: Blocking, owner: type[Any]) -> Callable[P, SyncPager[T]]: ...
    @overload
    def __get__(self, client: Awaited, owner: type[Any]) -> Callable[P, AsyncPager[T]]: ...
    def __get__(self, client: Any, owner: type[Any]) -> Any:
        return super().__get__(client, owner)

    @staticmethod
    def _make(build: Callable[..., Any], awaited: bool) -> Callable[..., Any]:
        def pager(client: Blocking | Awaited, /, *args: Any, **kwargs: Any) -> Any:
            return client._pager(build(client, *args, **kwargs))

        return pager

    @staticmethod
    def _returns(hint: Any, awaited: bool) -> Any:
        (item,) = get_args(hint)
        return AsyncPager[item] if awaited else SyncPager[item]  # type: ignore[valid-type]


B = TypeVar("B", bound=Blocking)
A = TypeVar("A", bound=Awaited)


class namespace(Generic[B, A]):
    """A group of operations under one name (``client.sandbox.simulate(...)``), written once like every other:
    ``blocking`` and ``awaited`` are the group's plans carried out by a ``Client`` and an ``AsyncClient``. On the
    class, the group's class for that client (``Client.sandbox.simulate`` is a method, for ``help`` and IDEs)."""

    def __init__(self, blocking: type[B], awaited: type[A]) -> None:
        self._blocking, self._awaited = blocking, awaited

    @overload
    def __get__(self, client: None, owner: type[Any]) -> type[B] | type[A]: ...
    @overload
    def __get__(self, client: Blocking, owner: type[Any]) -> B: ...
    @overload
    def __get__(self, client: Awaited, owner: type[Any]) -> A: ...
    def __get__(self, client: Any, owner: type[Any]) -> Any:
        if client is None:
            return self._awaited if issubclass(owner, Awaited) else self._blocking
        return self._awaited(client) if isinstance(client, Awaited) else self._blocking(client)
