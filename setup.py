"""Package discovery that pyproject.toml cannot express alone.

The chip configs sit at the top of the checkout in ``chips/`` and ship as the data-only package
``anesim._chipdata`` (mapped in pyproject.toml); automatic discovery would not see it.
"""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["anesim", "anesim.*"]) + ["anesim._chipdata"])
