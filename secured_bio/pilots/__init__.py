"""The pilot plugin interface: hook specification, :class:`PilotSpec` and the registry.

A pilot is a plugin that registers one :class:`PilotSpec` through the pluggy hook
``secured_bio_register_pilot``, published in the entry-point group ``secured_bio.pilots``.
The four built-in pilots register through exactly the same path as third-party ones::

    # pyproject.toml of a third-party pilot
    [project.entry-points."secured_bio.pilots"]
    my_pilot = "my_package.plugin"

    # my_package/plugin.py
    from secured_bio.pilots import PilotSpec, hookimpl

    @hookimpl
    def secured_bio_register_pilot():
        return PilotSpec(name="my_pilot", description="...", run=run)
"""

from secured_bio.pilots._registry import (
    ENTRY_POINT_GROUP,
    collect_pilot,
    get_pilot,
    list_pilots,
    plugin_manager,
    run_pilot,
)
from secured_bio.pilots._spec import STATUSES, PilotSpec, hookimpl, hookspec

__all__ = [
    "ENTRY_POINT_GROUP",
    "STATUSES",
    "PilotSpec",
    "collect_pilot",
    "get_pilot",
    "hookimpl",
    "hookspec",
    "list_pilots",
    "plugin_manager",
    "run_pilot",
]
