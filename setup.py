"""Package discovery for the mapped folders (everything else is in pyproject.toml).

``methods/`` and ``tasks/`` are installed as ``mlbench.methods`` and ``mlbench.tasks`` (the ``package-dir``
mapping in pyproject.toml); ``[tool.setuptools.packages.find]`` cannot add that prefix to what it finds, so
the subpackages of each mapped folder are found here and named under the mlbench namespace.
"""

from setuptools import find_packages, setup

MAPPED = {"mlbench.methods": "methods", "mlbench.tasks": "tasks"}

packages = find_packages(include=["mlbench", "mlbench.*"])
for name, folder in MAPPED.items():
    packages += [name] + [f"{name}.{sub}" for sub in find_packages(where=folder)]

setup(packages=packages)
