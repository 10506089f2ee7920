"""The composition root (`speeltuin.cli`) and the shared kernel: defaults, typed records, the store, keys."""
