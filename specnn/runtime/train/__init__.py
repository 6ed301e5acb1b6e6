"""Training: the loop, the session state it moves, and what a run needs while it trains.

``trainer`` sets a run up (seeds, model, data, loss, optimizer, run folder) and finishes it
(weights, ``meta.json``); ``loop.fit`` is the one training loop (forward, loss, backward, every N
batches unscale/clip/step/zero_grad/schedule, then evaluate, log, checkpoint, stop) over a
``session.Session``, plain state with ``state_dict()``/``load_state_dict()``. Beside them:
schedulers, metrics (each ``MetricSet`` sums itself over ranks), atomic resumable checkpoints, rng
state, epoch logs, the device, the run folder's choice, and this rank's place in a torchrun job
(``distributed``: environment, process group, DDP, collectives; ``shards``: each rank's part of an
epoch). Launching ranks and reporting a failure once is ``specnn/launch.py``, above this stage.
"""
