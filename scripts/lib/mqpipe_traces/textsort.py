"""Sorting as `LC_ALL=C sort` does, so the committed files compare byte
for byte wherever they are made."""


def sorted_lines(lines):
    """Returns lines sorted by their UTF-8 bytes (C collation)."""
    return sorted(lines, key=lambda s: s.encode("utf-8", "surrogateescape"))
