"""Running an experiment: the training pipeline, its callbacks and loggers, run directories, numeric precision,
and the user errors every entry point reports without a traceback."""
