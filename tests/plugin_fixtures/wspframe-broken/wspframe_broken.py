"""A plugin module that fails to import."""

raise RuntimeError("wspframe_broken exploded on import")
