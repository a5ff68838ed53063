"""Qt-free album tagger: scanner, SQLite catalog, tagging runs, metadata writer, export."""
