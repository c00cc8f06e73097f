"""One module per sub-command; each defines `register(subparsers)` (see ffnet_nas.cli)."""
