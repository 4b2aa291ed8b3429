"""The OmegaConf resolvers tunelab's configs use: ``${pkg_file:package/path}``."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from tunelab.config.schema import ConfigError


def package_file(spec: str) -> str:
    """``${pkg_file:package/relative/path}``: absolute path of a file shipped in an installed
    package (e.g. the bundled sample data). Only locates files; imports no code."""
    import importlib.util

    package, _, relative = spec.partition("/")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ConfigError(f"${{pkg_file:{spec}}}: package '{package}' is not installed")
    for location in found.submodule_search_locations:
        candidate = Path(location) / relative
        if candidate.exists():
            return str(candidate)
    raise ConfigError(f"${{pkg_file:{spec}}}: no file '{relative}' in package '{package}'")


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("pkg_file"):
        OmegaConf.register_new_resolver("pkg_file", package_file)
