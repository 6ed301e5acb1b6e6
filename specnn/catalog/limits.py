"""Caps on the sizes a spec may declare, written into the schema so editors see them too.

Each sits far above any real model and far below what would hang ``specnn validate`` or exhaust
memory while a model is built (``repeat: 1000000000000`` once looped until memory ran out). The
reading limits (file size, aliases, nesting) are :mod:`specnn.spec.limits`; the README's
"Reliability" section lists both.
"""

from __future__ import annotations

# Dimensions of one sample's shape (`input`, a synthetic `shape`): Conv3d needs 4.
MAX_DIMS = 16

# Nodes written in one `layers:` list (the model's or a block's).
MAX_LAYER_NODES = 1_000

# `repeat:` on a block use.
MAX_REPEAT = 1_000

# `num_layers` of a recurrent layer or a TransformerEncoder.
MAX_NUM_LAYERS = 1_000

# Layers in the model once every block use is expanded: repeats multiply through nested blocks.
MAX_EXPANDED_LAYERS = 10_000

# Values a synthetic data set generates: samples x values per sample (every input, and the targets),
# plus the per-class and per-token tables it draws from. 100 million float32 values are 400 MB, and
# generating them briefly needs twice that (numpy draws float64).
MAX_SYNTHETIC_VALUES = 100_000_000

# Each side of `images.size`: every image is resized to it and held as float32 ([3, 8192, 8192] is
# 800 MB per image); PIL's decompression-bomb guard refuses larger files the same way.
MAX_IMAGE_SIDE = 8_192
