"""Where a config value came from: the group options Hydra selected, their files, the
command-line overrides, and the config file that last set a key (:class:`Origin`), so that
an error can name the file or override to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from tunelab.redaction import redact_text


@dataclass(frozen=True)
class Origin:
    """Where config values came from: selected group options, their files, overrides."""

    choices: dict[str, str] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()
    #: how Hydra composed the config (every config source as (provider, url), the primary
    #: config's name, the task overrides, the run mode), to find the file that set a key
    #: (:meth:`file_setting`)
    composition: tuple[Any, ...] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_hydra(cls) -> Origin:
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            return cls()
        hc = HydraConfig.get()
        choices = {k: str(v) for k, v in hc.runtime.choices.items() if not k.startswith("hydra/")}
        sources = tuple(f"{s.schema}://{s.path}" for s in hc.runtime.config_sources if s.schema in ("file", "pkg"))
        # the search path as composed (hydra.searchpath and --config-dir included)
        search_path = tuple((s.provider, f"{s.schema}://{s.path}") for s in hc.runtime.config_sources)
        task = [o for o in OmegaConf.to_container(hc.overrides.task, resolve=False)]
        composition = (search_path, hc.job.config_name, task, hc.mode)
        # unresolved: an override such as seed=${nope} is reported by validate(), not here
        return cls(choices, sources, tuple(OmegaConf.to_container(hc.overrides.task, resolve=False)), composition)

    def _config_files(self) -> list[tuple[str, str, str, Any]]:
        """(file, group=option or '', package, content) of every config file Hydra merged
        (tunelab's and plugins' groups, a ``--config-dir``, the primary config), in merge
        order: a later one's value wins. Computed once, when an error names a file."""
        if "_files" in self.__dict__:
            return self.__dict__["_files"]
        files: list[tuple[str, str, str, Any]] = []
        if self.composition is not None:
            from hydra._internal.config_loader_impl import ConfigLoaderImpl
            from hydra._internal.config_search_path_impl import ConfigSearchPathImpl

            search_path, config_name, overrides, mode = self.composition
            try:
                path = ConfigSearchPathImpl()
                for provider, url in search_path:
                    path.append(provider, url)
                loader = ConfigLoaderImpl(path)
                for default in loader.compute_defaults_list(config_name, list(overrides), mode).defaults:
                    package = default.package or ""
                    if default.config_path is None or package == "hydra" or package.startswith("hydra."):
                        continue
                    result = loader.repository.load_config(default.config_path)
                    if result is None or result.is_schema_source:
                        continue
                    content = OmegaConf.to_container(result.config, resolve=False)
                    if isinstance(content, dict):
                        content.pop("defaults", None)
                    group, _, option = default.config_path.rpartition("/")
                    selected = f"{group.replace('/', '.')}={option}" if group else ""
                    files.append((_source_file(result.path, default.config_path), selected, package, content))
            except Exception:  # naming a file is a courtesy: never let it hide the error being reported
                files = []
        self.__dict__["_files"] = files  # frozen dataclass: cache outside the fields
        return files

    def file_setting(self, dotted_key: str) -> str | None:
        """'FILE (selected by GROUP=OPTION)' of the last config file that sets ``dotted_key``
        (or a key inside it), e.g. an experiment preset that sets ``pipeline.params.x``; None
        when no file does (or Hydra's composition is not known)."""
        parts = dotted_key.split(".")
        for path, selected, package, content in reversed(self._config_files()):
            prefix = package.split(".") if package else []
            if parts[: len(prefix)] != prefix:
                continue
            node = content
            for part in parts[len(prefix) :]:
                if not isinstance(node, dict) or part not in node:
                    break
                node = node[part]
            else:
                return f"{path} (selected by {selected})" if selected else f"{path} (the primary config)"
        return None

    def file_of(self, group: str) -> str | None:
        """Path of the YAML file selected for ``group`` (e.g. ``peft/lora.yaml``)."""
        choice = self.choices.get(group)
        if not choice or choice == "None":
            return None
        for source in self.sources:
            schema, _, path = source.partition("://")
            if schema == "file":
                candidate = Path(path) / group / f"{choice}.yaml"
                if candidate.exists():
                    return str(candidate)
            elif schema == "pkg":
                import importlib.resources

                try:
                    candidate = importlib.resources.files(path.replace("/", ".")) / group / f"{choice}.yaml"
                    if candidate.is_file():
                        return str(candidate)
                except ModuleNotFoundError:
                    continue
        return f"{group}/{choice}.yaml"

    def from_command_line(self, dotted_key: str) -> bool:
        """Whether a command-line override sets ``dotted_key`` or a section holding it (an
        override that selects a group's file, ``model=hf``, sets nothing itself)."""
        for override in self.overrides:
            key = override.split("=", 1)[0].lstrip("+~")
            if key in self.choices or key.startswith("hydra"):  # a config group selection
                continue
            if key == dotted_key or dotted_key.startswith(key + "."):
                return True
        return False

    def describe(self, group: str, dotted_key: str) -> str:
        """'the command-line override X' or 'conf/group/choice.yaml' for a key."""
        for override in reversed(self.overrides):  # the last override of a key is the one that counts
            key = override.split("=", 1)[0].lstrip("+~")
            if key == group:  # selects the group's file; the values come from that file
                continue
            # the override sets this key, a section holding it, or a key inside it (tracker.x for tracker.x.y=1)
            if (
                key == dotted_key
                or dotted_key.startswith(key + ".")
                or ("." in dotted_key and key.startswith(dotted_key + "."))
            ):
                return f"the command-line override '{redact_text(override)}'"
        setting = self.file_setting(dotted_key)  # an experiment preset, a --config-dir file, the group's own file
        if setting:
            return setting
        where = self.file_of(group)
        if where:
            return f"{where} (selected by {group}={self.choices.get(group)})"
        return f"the '{group}' section of the primary config"


def _source_file(source: str, config_path: str) -> str:
    """The path of ``config_path``.yaml in a Hydra config source (``file://DIR``, ``pkg://package``)."""
    schema, _, where = source.partition("://")
    if schema == "pkg":
        import importlib.resources

        try:
            return str(importlib.resources.files(where.replace("/", ".")) / f"{config_path}.yaml")
        except ModuleNotFoundError:
            pass
    return str(Path(where or source) / f"{config_path}.yaml")
