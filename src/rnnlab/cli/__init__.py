"""Back-ends of ``eval.py`` and ``predict.py``: a checkpoint loaded on its own, evaluated, and run on new text."""
