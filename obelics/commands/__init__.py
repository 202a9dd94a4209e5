"""Sub-commands of the ``obelics`` CLI, one module each (see ``obelics.cli``)."""
