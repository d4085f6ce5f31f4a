"""Model files in Keras 3's formats (`.weights.h5`), beside gpunet's own `.npz` checkpoints."""
