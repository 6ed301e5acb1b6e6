"""The runtime: what happens to a compiled spec, one subpackage per stage.

``data/`` reads a spec's sources into tensors (and fits the preprocessing on the training split);
``train/`` runs the loop that turns them into weights in a run folder (session state, schedulers,
metrics, checkpoints, devices, the distributed session); ``runs/`` is what is done with a finished
run (load it, evaluate, predict, export, plot); ``sweep/`` trains many runs of one spec with
values an Optuna study draws (a hyperparameter sweep). Each stage imports only the stages before it.
"""
