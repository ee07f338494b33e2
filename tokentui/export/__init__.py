"""Files made from engine results: the 3D attention graph (HTML) and data formats.

Nothing here imports textual or typer: the TUI and the CLI both call these writers.
"""
