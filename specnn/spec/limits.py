"""Hard limits on what specnn reads, each checked before the work it bounds.

A spec is a few hundred values written by a person; these limits sit orders of magnitude above any
real one and far below what would exhaust a machine, so bad or hostile input (an alias bomb, a
FIFO, a 50 MB file, ``repeat: 1000000000000``) is refused with a located error in well under a
second instead of hanging or growing until memory runs out. The README's "Reliability" section
lists them with the caps on declared sizes (:mod:`specnn.catalog.limits`).
"""

from __future__ import annotations

# Bytes in a spec file. A large real spec is ~10 KB; 10 MB still reads, parses and validates in
# about a second.
MAX_SPEC_BYTES = 10 * 1024 * 1024

# Values (scalars, lists and mappings, each merge-key entry too) in a document after YAML aliases
# and merge keys are expanded: the billion-laughs defence, and the bound on work after parsing.
MAX_VALUES = 50_000

# Lists and mappings inside one another, aliases followed.
MAX_DEPTH = 64

NESTED_TOO_DEEPLY = f"nested too deeply (more than {MAX_DEPTH} levels of lists and mappings)"

# Digits of an integer literal (Python itself refuses to parse more than 4300).
MAX_INT_DIGITS = 100

# Problems reported for one file: past this many, the rest are summed up in one line.
MAX_PROBLEMS = 200


def megabytes(size: int) -> str:
    """A byte count as messages show it.

    >>> megabytes(MAX_SPEC_BYTES), megabytes(52_428_800)
    ('10 MB', '50 MB')
    """
    return f"{size / (1024 * 1024):.3g} MB"
