"""Cloud billing exports in an embedded DuckDB store, normalised to FOCUS 1.x columns (issue 9).

``columns`` and ``formats`` are pure: they read a file's header and write the SQL that maps its
columns to FOCUS names. ``store`` does the I/O (DuckDB, file hashes); ``cli`` is
``costwarden billing``. Nothing here is imported by ``costwarden run`` yet.
"""
