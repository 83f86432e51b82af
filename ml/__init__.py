"""Curate's machine-learning library.

A plain library on numpy, scikit-learn and joblib. It never imports the web framework or the
database layer; plain data (lists, arrays, frozen dataclasses) crosses the seam. Import the
submodules you need (``ml.dough``, ``ml.store``, ``ml.holder``, ...): this package imports nothing
itself, so ``import ml`` stays cheap.
"""
