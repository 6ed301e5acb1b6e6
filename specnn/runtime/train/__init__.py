"""Training: the loop, its session state, and everything a run needs while it trains.

One loop (forward, loss, backward, step, zero_grad, evaluate, checkpoint, stop) over the session's
state; schedulers, metrics, atomic resumable checkpoints, rng state, epoch logs, the device, and the
distributed session (torchrun/DDP, sharding, collectives) that lets the same loop run on many ranks.
"""
