"""What outlives a run: atomic files, the session file format, autosave and replay."""
