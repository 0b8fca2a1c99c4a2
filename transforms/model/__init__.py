"""The internal model every layer shares: samples, categories, results, errors, output paths.

`types` (Sample, Category, Annotation, ManifestRow, task types, formats), `errors` (the
three kinds of error), `taxonomy` (per-category tables: semantic values, colours, YOLO
classes), `paths` (the output tree: safe, unique, deterministic names).

The bottom layer: imports nothing else of the project, never Beam. Anything may import it.
"""
