"""Plumbing with no machine learning: atomic writes of files and folders, run provenance (git
commit, machine, checksums).

May import only the standard library, ``errors`` and ``_version``.
"""
