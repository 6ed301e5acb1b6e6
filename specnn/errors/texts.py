"""Message text that recurs across specnn, written once so every message reads the same way.

A check says *what* it found (a misspelt name and the names it could have been, the kind of value
it wanted and the value it got, the extra a feature needs) and takes the words from here.

>>> suggest("Linaer", ["Linear", "Conv2d"])
"did you mean 'Linear'?"
>>> suggest("hidden", ["fc1", "fc2", "out"], listing="known names")
'known names: fc1, fc2, out'
>>> expected("an integer", "3")
"expected an integer, got string '3'"
>>> needs_extra("ONNX export", "onnx", missing=["onnxscript"])
('ONNX export needs onnxscript, which is not installed', 'pip install "specnn[onnx]"')
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable, Optional, Sequence

# The packages of each optional extra (pyproject.toml's [project.optional-dependencies]), by the
# names pip installs; a test checks this table against pyproject.
EXTRAS = {
    "onnx": ("onnx", "onnxscript", "onnxruntime"),
    "safetensors": ("safetensors",),
    "sklearn": ("scikit-learn",),
    "plot": ("matplotlib",),
    "tensorboard": ("tensorboard",),
    "progress": ("tqdm",),
    "parquet": ("pyarrow",),
    "images": ("Pillow",),
    "sweep": ("optuna", "matplotlib", "scikit-learn"),
}


def did_you_mean(word: str, choices: Iterable[str]) -> Optional[str]:
    """The closest choice to a misspelt word, or None when nothing is close.

    >>> did_you_mean("Linaer", ["Linear", "Conv2d"])
    'Linear'
    >>> did_you_mean("lr", ["momentum"]) is None
    True
    """
    choices = list(choices)
    by_lower = {c.lower(): c for c in choices}
    if word.lower() in by_lower:
        return by_lower[word.lower()]
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def suggest(word: str, choices: Iterable[str], *, listing: Optional[str] = None,
            empty: Optional[str] = None, prefix: str = "") -> Optional[str]:
    """The hint for a name that is not one of ``choices``.

    The closest choice when one is close (``did you mean 'Linear'?``); else, given ``listing``, all
    the choices after it (``known names: fc1, fc2``); else, when there are no choices at all,
    ``empty`` (what to do instead). ``prefix`` is written before the suggested name (``$`` for a
    block parameter).

    >>> suggest("chanels", ["channels"], prefix="$")
    "did you mean '$channels'?"
    >>> suggest("x", [], listing="known names", empty="give the node a 'name' first")
    "give the node a 'name' first"
    >>> suggest("Linear", ["Linear"]) is None  # not a misspelling: say nothing
    True
    """
    choices = list(choices)
    match = did_you_mean(word, choices)
    if match is not None and match != word:
        return f"did you mean '{prefix}{match}'?"
    if not choices:
        return empty
    return f"{listing}: " + ", ".join(choices) if listing else None


def one_of(words: Sequence[str]) -> str:
    """Words joined as a reader lists alternatives.

    >>> one_of(["a", "b", "c"])
    'a, b or c'
    """
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def all_of(words: Sequence[str]) -> str:
    """Words joined as a reader lists what is all needed.

    >>> all_of(["onnx", "onnxscript", "onnxruntime"])
    'onnx, onnxscript and onnxruntime'
    """
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def describe(value: Any) -> str:
    """A value as a message shows it.

    >>> [describe(v) for v in ["3", 3, 0.5, True, None, [1], {}]]
    ["string '3'", 'integer 3', 'number 0.5', 'true', 'null', 'a list', 'a mapping']
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"string '{shortened(value)}'"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value:g}"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    name = type(value).__name__
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"


# A user value longer than this is shortened in messages (a 5 MB name stays one readable line).
SHOWN_CHARS = 80


def shortened(text: str) -> str:
    """``text``, or its start and its length when it is too long to show.

    >>> shortened("x" * 100)
    'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... (100 characters)'
    """
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS - 4]}... ({len(text):,} characters)"


def plain(value: Any) -> str:
    """A value inside a sentence: strings quoted, numbers as written.

    >>> [plain(v) for v in ["relu", 3, 0.5, None]]
    ["'relu'", '3', '0.5', 'null']
    """
    if isinstance(value, str):
        return f"'{shortened(value)}'"
    return describe(value).split(" ", 1)[-1] if isinstance(value, (int, float)) else describe(value)


def expected(wanted: str, value: Any) -> str:
    """``expected X, got Y``: what a place takes, and the value (described) found there.

    >>> expected("a JSON object", [1, 2])
    'expected a JSON object, got a list'
    """
    return f"expected {wanted}, got {describe(value)}"


def install_hint(extra: str) -> str:
    """The command that installs an extra, quoted so zsh leaves the brackets alone.

    >>> install_hint("plot")
    'pip install "specnn[plot]"'
    """
    if extra not in EXTRAS:
        raise KeyError(f"no extra named {extra!r}; known extras: {', '.join(EXTRAS)}")
    return f'pip install "specnn[{extra}]"'


def needs_extra(feature: str, extra: str, missing: Optional[Sequence[str]] = None) -> tuple[str, str]:
    """Message and hint for a feature whose optional packages are not installed.

    ``missing`` names the packages found absent (all of the extra's when not given).

    >>> needs_extra("the sklearn data source ('iris')", "sklearn")
    ("the sklearn data source ('iris') needs scikit-learn, which is not installed", 'pip install "specnn[sklearn]"')
    """
    packages = list(missing) if missing else list(EXTRAS[extra])
    verb = "is" if len(packages) == 1 else "are"
    return f"{feature} needs {all_of(packages)}, which {verb} not installed", install_hint(extra)
