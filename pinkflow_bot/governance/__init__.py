"""The pure governance core: commands, rules, tally, decision and rendering.

Nothing in this package does I/O, awaits, or reads the clock: callers pass the
current time in, and values are frozen dataclasses. Import from the modules
(`governance.tally`, `governance.render`, ...); names are not re-exported here, so
that `governance.tally` stays the module and not the function of the same name.
"""
