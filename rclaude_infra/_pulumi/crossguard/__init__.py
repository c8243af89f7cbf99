"""The CrossGuard policy pack directory (``PulumiPolicy.yaml`` and ``__main__.py``),
shipped in the package so that ``up()`` finds it from any install."""
