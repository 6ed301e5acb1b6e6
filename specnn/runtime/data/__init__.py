"""Data: a spec's sources (csv, npz, scikit-learn, synthetic) read, split and preprocessed into tensors.

Small data becomes in-memory tensors batched by slicing a seeded permutation (the fast path); the
preprocessing (scalers, categorical encodings) is fitted on the training split only and stored with
the run so that evaluate and predict apply exactly the same steps. Data bigger than memory is
streamed by DataLoader workers: image folders (``streaming.py``), and CSV/Parquet tables read unit
by unit (``table_units.py``), split and fitted in passes (``table_stream.py``) and batched per epoch
(``table_loader.py``).
"""
