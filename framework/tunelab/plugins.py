"""Plugin manager and component registry.

Plugins are found through the ``tunelab`` entry-point group — tunelab's own built-in
components are registered the same way a third-party package registers its own.
One place validates names and conflicts: :func:`build_registry`.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from tunelab import hookspecs
from tunelab.api import API_VERSION, KIND_TABLE, KINDS, Component
from tunelab.errors import TunelabError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "tunelab"
#: Set to 1/true/yes to load only plugins shipped in the ``tunelab`` distribution.
DISABLE_EXTERNAL_ENV = "TUNELAB_DISABLE_EXTERNAL_PLUGINS"
BUILTIN_DISTRIBUTION = "tunelab"


class PluginError(TunelabError):
    """A plugin is unusable in a way that must stop tunelab (conflict, bad hook name)."""


class UnknownComponentError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


@dataclass(frozen=True)
class Supplier:
    """Which plugin supplied a component: entry-point name, distribution, version."""

    plugin: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"{self.distribution} {self.version} (plugin '{self.plugin}')"


@dataclass(frozen=True)
class RegisteredComponent:
    kind: str
    name: str
    component: Component
    supplier: Supplier

    @property
    def cls(self) -> type:
        return self.component.cls

    @property
    def config_schema(self) -> type | None:
        return self.component.config

    @property
    def description(self) -> str:
        return self.component.summary()

    def create(self, config: Any) -> Any:
        """``cls(config)``. A component of another distribution than tunelab's whose constructor
        fails is named with its plugin: a ValueError/TypeError (a bad value: the caller names the
        key) gets the plugin appended; any other exception becomes a :class:`PluginError`."""
        try:
            return self.cls(config)
        except TunelabError:
            raise
        except (ValueError, TypeError) as exc:
            if self.supplier.distribution == BUILTIN_DISTRIBUTION:
                raise
            message = f"{exc} ({self.kind} '{self.name}' of plugin {self.supplier})"
            raise (ValueError(message) if isinstance(exc, ValueError) else TypeError(message)) from exc
        except Exception as exc:
            if self.supplier.distribution == BUILTIN_DISTRIBUTION:
                raise
            raise PluginError(
                f"{self.kind} '{self.name}' of plugin {self.supplier} is broken: its constructor raised "
                f"{type(exc).__name__}: {exc}. Fix or reinstall {self.supplier.distribution}, "
                f"or choose another {self.kind}."
            ) from exc


@dataclass
class Registry:
    """kind -> name -> :class:`RegisteredComponent`."""

    components: dict[str, dict[str, RegisteredComponent]] = field(default_factory=lambda: {kind: {} for kind in KINDS})
    #: plugin name -> why it was skipped (starting with its distribution and version)
    failed: dict[str, str] = field(default_factory=dict)

    def get(self, kind: str, name: str) -> RegisteredComponent:
        try:
            return self.components[kind][name]
        except KeyError:
            choices = ", ".join(sorted(self.components.get(kind, {}))) or "(none registered)"
            broken = "; ".join(f"'{plugin}' ({reason})" for plugin, reason in sorted(self.failed.items()))
            hint = f". Broken plugins (one of them may provide it): {broken}" if broken else ""
            raise UnknownComponentError(f"unknown {kind} '{name}'. Registered {kind}s: {choices}{hint}") from None

    def names(self, kind: str) -> list[str]:
        return sorted(self.components[kind])

    def __iter__(self):
        for kind in KINDS:
            yield from (self.components[kind][n] for n in sorted(self.components[kind]))

    def add(self, kind: str, component: Component, supplier: Supplier) -> None:
        existing = self.components[kind].get(component.name)
        if existing is not None:
            raise PluginError(
                f"two plugins register a {kind} named '{component.name}': {existing.supplier} "
                f"and {supplier}. Uninstall one of them, or set {DISABLE_EXTERNAL_ENV}=1 "
                "to use only built-in components."
            )
        self.components[kind][component.name] = RegisteredComponent(kind, component.name, component, supplier)


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("tunelab")
    pm.add_hookspecs(hookspecs)
    return pm


def _external_disabled() -> bool:
    return os.environ.get(DISABLE_EXTERNAL_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _api_compatible(plugin: Any) -> str | None:
    """None if the plugin's declared API version is compatible, else the reason."""
    declared = getattr(plugin, "TUNELAB_API_VERSION", None)
    if declared is None:
        return None
    if str(declared).split(".")[0] != API_VERSION.split(".")[0]:
        return (
            f"it was written for tunelab plugin API {declared}, this tunelab provides {API_VERSION}; "
            "install a version of the plugin made for this API"
        )
    return None


def load_plugins(
    pm: pluggy.PluginManager,
    entry_points: Iterable[md.EntryPoint] | None = None,
) -> tuple[dict[str, Supplier], dict[str, str]]:
    """Import and register every entry point of the ``tunelab`` group.

    Returns ``(suppliers, failed)``: the plugin name -> :class:`Supplier` of each
    registered plugin, and plugin name -> reason for each plugin that was skipped
    (it raised on import, declared an incompatible API, or its hooks do not match their
    specifications). Skipped plugins produce a warning; everything else keeps working.
    A hook implementation whose name matches no hook specification is a
    :class:`PluginError` naming the plugin and the hook.
    """
    if entry_points is None:
        entry_points = md.entry_points(group=ENTRY_POINT_GROUP)
    suppliers: dict[str, Supplier] = {}
    failed: dict[str, str] = {}
    external_off = _external_disabled()
    for ep in sorted(entry_points, key=lambda e: (e.dist.name if e.dist else "", e.name)):
        dist_name = ep.dist.name if ep.dist else "unknown"
        version = ep.dist.version if ep.dist else "unknown"
        if external_off and dist_name != BUILTIN_DISTRIBUTION:
            log.info("external plugin %s (%s) not loaded: %s is set", ep.name, dist_name, DISABLE_EXTERNAL_ENV)
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must not take tunelab down
            reason = f"it raised {type(exc).__name__} on import: {exc}"
            failed[ep.name] = f"{dist_name} {version}: {reason}"
            warnings.warn(
                f"tunelab plugin '{ep.name}' from {dist_name} {version} was skipped: {reason}",
                stacklevel=2,
            )
            continue
        incompatible = _api_compatible(plugin)
        if incompatible:
            failed[ep.name] = f"{dist_name} {version}: {incompatible}"
            warnings.warn(
                f"tunelab plugin '{ep.name}' from {dist_name} {version} was skipped: {incompatible}", stacklevel=2
            )
            continue
        supplier = Supplier(ep.name, dist_name, version)
        try:
            register(pm, plugin, supplier)
        except pluggy.PluginValidationError as exc:
            failed[ep.name] = f"{dist_name} {version}: {exc}"
            warnings.warn(f"tunelab plugin '{ep.name}' from {dist_name} {version} was skipped: {exc}", stacklevel=2)
            continue
        suppliers[ep.name] = supplier
    return suppliers, failed


def register(pm: pluggy.PluginManager, plugin: Any, supplier: Supplier) -> None:
    """Register one plugin object and check that all its hooks are known."""
    pm.register(plugin, name=supplier.plugin)
    try:
        _check_unknown_hooks(pm, supplier.plugin)
    except PluginError:
        pm.unregister(name=supplier.plugin)
        raise


def _check_unknown_hooks(pm: pluggy.PluginManager, plugin_name: str) -> None:
    for hook_name in dir(pm.hook):
        if hook_name.startswith("_"):
            continue
        caller = getattr(pm.hook, hook_name)
        if caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.plugin_name == plugin_name:
                known = sorted(h for h in dir(pm.hook) if h.startswith("tunelab_") and getattr(pm.hook, h).has_spec())
                raise PluginError(
                    f"plugin '{plugin_name}' implements hook '{hook_name}', which is not a tunelab hook "
                    f"(misspelled?). Known hooks: {', '.join(known)}"
                )


def build_registry(pm: pluggy.PluginManager, suppliers: dict[str, Supplier]) -> Registry:
    """Call every registration hook, plugin by plugin, and index the results."""
    registry = Registry()
    for kind in KIND_TABLE.values():
        hook_name = kind.hook
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            supplier = suppliers.get(impl.plugin_name) or Supplier(impl.plugin_name, "unknown", "unknown")
            try:
                records = impl.function() or []
            except Exception as exc:
                where = f"{supplier.distribution} {supplier.version}"
                registry.failed[impl.plugin_name] = f"{where}: {hook_name} raised {type(exc).__name__}: {exc}"
                warnings.warn(
                    f"tunelab plugin '{impl.plugin_name}' from {where}: {hook_name} raised {exc!r}; "
                    f"its {kind.name}s are skipped"
                )
                continue
            for record in records:
                if not isinstance(record, Component):
                    raise PluginError(
                        f"plugin '{impl.plugin_name}': {hook_name} must return tunelab.api.Component records, "
                        f"got {type(record).__name__}"
                    )
                if not (isinstance(record.cls, type) and issubclass(record.cls, kind.contract)):
                    raise PluginError(
                        f"plugin '{impl.plugin_name}' ({supplier.distribution} {supplier.version}): "
                        f"{hook_name} returned "
                        f"{kind.name} '{record.name}' whose class {record.cls!r} does not subclass "
                        f"tunelab.api.{kind.contract.__name__}. Every {kind.name} must; derive the class from it."
                    )
                registry.add(kind.name, record, supplier)
    return registry


@dataclass
class Plugins:
    """The loaded plugin manager and its registry, built once per process."""

    pm: pluggy.PluginManager
    registry: Registry
    suppliers: dict[str, Supplier]

    def versions(self) -> dict[str, str]:
        return {s.distribution: s.version for s in self.suppliers.values()}

    def config_search_paths(self) -> list[str]:
        paths: list[str] = []
        for result in call_safely(self.pm, "tunelab_config_search_paths", self.suppliers, None):
            paths.extend(result or [])
        return paths


def broken_components(registry: Registry) -> dict[tuple[str, str], str]:
    """(kind, name) -> why, for each component of another distribution than tunelab whose
    constructor raises (anything but a ValueError/TypeError about a value) with its default
    config. Components whose config has required fields are not tried."""
    import dataclasses

    broken = {}
    for component in registry:
        if component.supplier.distribution == BUILTIN_DISTRIBUTION:
            continue
        schema = component.config_schema
        try:
            config = schema() if schema is not None and dataclasses.is_dataclass(schema) else None
        except Exception:  # required fields, or defaults that do not validate: not a broken plugin
            continue
        try:
            component.create(config)
        except PluginError as exc:
            broken[(component.kind, component.name)] = str(exc)
        except Exception:
            continue
    return broken


def describe_plugin(plugin_name: str, suppliers: dict[str, Supplier], registry: Registry | None = None) -> str:
    """Who a registered plugin object is, for a message: ``tracker 'wandb'`` for a run's
    tracker (registered as ``tracker:<name>:...``; with its distribution when that is not
    tunelab), else the plugin's distribution and version."""
    if plugin_name.startswith("tracker:"):
        name = plugin_name.split(":")[1]
        tracker = registry.components["tracker"].get(name) if registry is not None else None
        if tracker is not None and tracker.supplier.distribution != BUILTIN_DISTRIBUTION:
            return f"tracker '{name}' of plugin {tracker.supplier}"
        return f"tracker '{name}'"
    supplier = suppliers.get(plugin_name)
    return f"plugin {supplier}" if supplier else f"plugin '{plugin_name}'"


def call_safely(
    pm: pluggy.PluginManager,
    hook_name: str,
    suppliers: dict[str, Supplier],
    warned: set[tuple[str, str]] | None,
    registry: Registry | None = None,
    **kwargs: Any,
) -> list[Any]:
    """Call every implementation of a hook (in pluggy's order) on its own, so that one that
    raises (W&B unreachable, a full disk, a buggy third-party plugin) costs only its own
    work: a warning naming the tracker or plugin and the error, and the others still run.
    ``warned`` (per run) keeps it to one warning per implementation and hook. Returns the
    results of the implementations that returned something other than None."""
    caller = getattr(pm.hook, hook_name)
    impls = caller.get_hookimpls()
    if any(getattr(impl, "hookwrapper", False) or getattr(impl, "wrapper", False) for impl in impls):
        try:  # a wrapper must wrap the whole call: call the hook as one, still without raising
            return [r for r in caller(**kwargs) if r is not None]
        except Exception as exc:
            warnings.warn(
                f"a plugin failed in {hook_name} ({type(exc).__name__}: {exc}); going on without it", stacklevel=2
            )
            return []
    results = []
    for impl in reversed(impls):
        try:
            result = impl.function(*(kwargs[name] for name in impl.argnames))
        except Exception as exc:
            if warned is not None and (impl.plugin_name, hook_name) in warned:
                log.debug("%s failed again in %s: %r", impl.plugin_name, hook_name, exc)
                continue
            if warned is not None:
                warned.add((impl.plugin_name, hook_name))
            who = describe_plugin(impl.plugin_name, suppliers, registry)
            warnings.warn(
                f"{who} failed in {hook_name} ({type(exc).__name__}: {exc}); going on without it", stacklevel=2
            )
            continue
        if result is not None:
            results.append(result)
    return results


_loaded: Plugins | None = None


def get_plugins(reload: bool = False) -> Plugins:
    """The process-wide plugins (loaded on first use)."""
    global _loaded
    if _loaded is None or reload:
        pm = new_plugin_manager()
        suppliers, failed = load_plugins(pm)
        registry = build_registry(pm, suppliers)
        registry.failed.update(failed)
        _loaded = Plugins(pm, registry, suppliers)
    return _loaded


def add_plugin(plugin: Any, name: str, distribution: str = "local", version: str = "0") -> Plugins:
    """Register an in-process plugin object (tests, notebooks) and rebuild the registry."""
    plugins = get_plugins()
    supplier = Supplier(name, distribution, version)
    register(plugins.pm, plugin, supplier)
    plugins.suppliers[name] = supplier
    try:
        plugins.registry = build_registry(plugins.pm, plugins.suppliers)
    except PluginError:
        plugins.pm.unregister(name=name)
        del plugins.suppliers[name]
        raise
    return plugins


def remove_plugin(name: str) -> None:
    plugins = get_plugins()
    plugins.pm.unregister(name=name)
    plugins.suppliers.pop(name, None)
    plugins.registry = build_registry(plugins.pm, plugins.suppliers)
