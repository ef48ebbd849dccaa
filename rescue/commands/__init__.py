"""CLI subcommands. Each module exposes ``add_parser(subparsers)`` that registers its
subcommand and sets ``func`` (``run(args) -> int``) as the parser default."""
