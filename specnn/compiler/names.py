"""Names in generated code: which identifiers are taken, and the namespace that hands out the rest.

Every name generated code defines goes through here: node attributes and forward variables
(:class:`Namespace`), model inputs (``forward``'s parameters), block parameters (``__init__``'s)
and block class names. A name is refused when generated code would stop working with it:
a keyword, a name the code itself refers to (:data:`RESERVED`), or, for a module attribute, a
member of ``nn.Module`` (an attribute called ``eval`` or ``to`` would silently replace the method).
"""

from __future__ import annotations

import builtins
import functools
import keyword
from typing import Optional

from specnn.catalog.layers import LAYERS

# What generated code refers to by name: a node, input, parameter or class called one of these
# would shadow it (the `torch` and `nn` imports, `F` as people import torch.nn.functional, `self`,
# `super().__init__()`, `forward`, and `_` for what `out, _ = self.lstm1(x)` throws away).
RESERVED = frozenset({"self", "torch", "nn", "F", "super", "forward", "_"})

# nn.Module's attributes: its methods and the attributes its __init__ sets. Written out so that
# naming never imports torch; tests/test_compiler_names.py checks it against the installed torch.
MODULE_MEMBERS = frozenset({
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children",
    "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward",
    "get_buffer", "get_extra_state", "get_parameter", "get_submodule", "half", "ipu",
    "load_state_dict", "modules", "mtia", "named_buffers", "named_children", "named_modules",
    "named_parameters", "parameters", "register_backward_hook", "register_buffer",
    "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter",
    "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_",
    "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train",
    "training", "type", "xpu", "zero_grad",
    # private, but replacing one breaks the module all the same
    "_apply", "_backward_hooks", "_backward_pre_hooks", "_buffers", "_call_impl",
    "_compiled_call_impl", "_forward_hooks", "_forward_hooks_always_called",
    "_forward_hooks_with_kwargs", "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs",
    "_get_backward_hooks", "_get_backward_pre_hooks", "_get_name", "_is_full_backward_hook",
    "_load_from_state_dict", "_load_state_dict_post_hooks", "_load_state_dict_pre_hooks",
    "_maybe_warn_non_full_backward_hook", "_modules", "_named_members", "_non_persistent_buffers_set",
    "_parameters", "_register_load_state_dict_pre_hook", "_register_state_dict_hook",
    "_replicate_for_data_parallel", "_save_to_state_dict", "_slow_forward", "_state_dict_hooks",
    "_state_dict_pre_hooks", "_version", "_wrapped_call_impl",
})

# Role -> (stem, numbered). A stem of None means the layer's own name in lower case (relu, gelu).
NAME_STEMS: dict[str, tuple[Optional[str], bool]] = {
    "linear": ("fc", True),
    "conv": ("conv", True),
    "pool": ("pool", True),
    "norm": ("bn", True),
    "dropout": ("dropout", True),
    "reshape": (None, False),
    "activation": (None, True),
    "output": (None, False),
    "identity": ("identity", True),
    "recurrent": (None, True),
    "attention": ("attn", True),
    "embedding": ("embed", True),
    "operation": (None, True),
}

# Kinds that share a role but not a name: a LayerNorm is no BatchNorm, a TransformerEncoder is a
# stack of layers, not one attention.
KIND_STEMS: dict[str, str] = {
    "Bilinear": "bilinear",
    "ConvTranspose1d": "deconv",
    "ConvTranspose2d": "deconv",
    "LayerNorm": "ln",
    "GroupNorm": "gn",
    "InstanceNorm2d": "norm",
    "TransformerEncoderLayer": "encoder_layer",
    "TransformerEncoder": "encoder",
}


def is_identifier(name: str) -> bool:
    """A legal Python name that is not a keyword."""
    return name.isidentifier() and not keyword.iskeyword(name)


def is_parameter_name(name: str) -> bool:
    """May be a parameter of generated ``forward`` (a model input) or ``__init__`` (a block's)."""
    return is_identifier(name) and name not in RESERVED


def is_class_name(name: str) -> bool:
    """May name a generated class: a module-level name, so it must not shadow a builtin either."""
    return is_parameter_name(name) and not hasattr(builtins, name)


def why_not_class_name(name: str) -> Optional[str]:
    """Why ``name`` cannot name a generated class, or None when it can.

    >>> [why_not_class_name(n) for n in ("Net", "class", "nn", "list", "2x")]
    [None, 'it is a Python keyword', 'generated code uses that name', 'it would shadow the builtin list', 'it is not a Python identifier']
    """
    if not name.isidentifier():
        return "it is not a Python identifier"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return "it is a Python keyword"
    if name in RESERVED:
        return "generated code uses that name"
    if hasattr(builtins, name):
        return f"it would shadow the builtin {name}"
    return None


def is_attribute_name(name: str) -> bool:
    """May name a node: an attribute of the generated module and a variable of its ``forward``."""
    return is_parameter_name(name) and name not in MODULE_MEMBERS and not _is_dunder(name)


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _is_free_for_generation(name: str) -> bool:
    # Generated names also keep clear of builtins: `list = ...` in forward reads badly.
    return is_attribute_name(name) and not hasattr(builtins, name)


class Namespace:
    """Hands out unique, legal identifiers that never shadow keywords, builtins or reserved names.

    >>> ns = Namespace()
    >>> ns.numbered("fc"), ns.numbered("fc"), ns.fresh("list"), ns.fresh("flatten"), ns.fresh("flatten")
    ('fc1', 'fc2', 'list_', 'flatten', 'flatten_1')
    """

    def __init__(self) -> None:
        self._taken: set[str] = set(RESERVED)
        self._counters: dict[str, int] = {}

    def reserve(self, name: str) -> None:
        self._taken.add(name)

    def is_taken(self, name: str) -> bool:
        return name in self._taken

    def fresh(self, candidate: str) -> str:
        """``candidate`` itself when free, else ``candidate_1``, ``candidate_2``, ..."""
        if not _is_free_for_generation(candidate):
            candidate += "_"
        name, n = candidate, 0
        while name in self._taken:
            n += 1
            name = f"{candidate}_{n}"
        self._taken.add(name)
        return name

    def numbered(self, stem: str) -> str:
        """The next free ``stem1``, ``stem2``, ..."""
        n = self._counters.get(stem, 0)
        while True:
            n += 1
            name = f"{stem}{n}"
            if name not in self._taken:
                self._counters[stem] = n
                self._taken.add(name)
                return name

    def for_layer(self, kind: str) -> str:
        """A readable attribute name for a node of this kind: fc1, conv2, relu1, encoder1, flatten, ..."""
        stem, numbered = _stem(kind)
        return self.numbered(stem) if numbered else self.fresh(stem)


@functools.lru_cache(maxsize=None)
def _stem(kind: str) -> tuple[str, bool]:
    stem, numbered = NAME_STEMS.get(LAYERS[kind].role, (None, True))
    return KIND_STEMS.get(kind) or stem or kind.lower(), numbered
