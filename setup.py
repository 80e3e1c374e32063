"""Package discovery that pyproject.toml cannot express alone.

The chip configs (``chips/``) and measured traces (``validation/``) sit at the top of the checkout
and ship as the data-only packages ``anesim._chipdata`` and ``anesim._validationdata`` (mapped in
pyproject.toml); automatic discovery would not see them.
"""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["anesim", "anesim.*"])
      + ["anesim._chipdata", "anesim._chipdata.generations", "anesim._validationdata"])
