"""Runs: what is done with a finished run folder.

Load it from its files alone (no pickle), evaluate it on data, predict with the run's own
preprocessing and label names, export it (state_dict, safetensors, ONNX checked against
onnxruntime) and plot its curves.
"""
