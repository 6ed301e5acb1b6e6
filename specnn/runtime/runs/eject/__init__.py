"""Eject: a spec or a run as a plain PyTorch project (model.py, data.py, train.py, predict.py).

Each file comes from a small emitter here (``data_py``, ``train_py``, ``metrics_py``,
``predict_py``, ``readme``; ``sources`` holds one reader per data source) that writes only what
the spec uses. The ejected ``train.py`` repeats ``runtime/train``'s steps in its order, so on the
CPU its weights equal ``specnn train``'s bit for bit; tests/test_eject.py checks every example.
"""

from specnn.runtime.runs.eject.project import EjectedProject, eject

__all__ = ["EjectedProject", "eject"]
