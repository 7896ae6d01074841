"""Analysis of sweeps: figures and tables from the runs of a multirun folder."""
