"""Extra `trainkit` commands: each module `name_with_underscores.py` here is `trainkit name-with-underscores`,
and exposes `main(argv: list[str]) -> None`."""
