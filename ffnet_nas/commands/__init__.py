"""One module per sub-command; each defines `register(subparsers)` (see ffnet_nas.cli).

Modules named `_*` are shared helpers, not commands: `_common` holds the parent parser of the options
every command shares (`common_options`) and the closed sets of choices.
"""
