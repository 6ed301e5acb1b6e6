"""The tables: one entry per layer, loss, optimizer, data source and exporter.

Each table is a plain dict literal in its own module; the JSON Schema, "did you mean"
suggestions, shape inference and code generation all read the same entries. Nothing here
imports torch: runtime builders are named by dotted reference and imported on use.
"""
