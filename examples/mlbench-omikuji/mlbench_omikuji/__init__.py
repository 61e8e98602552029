"""An mlbench method plugin: Parabel/Bonsai label trees through the omikuji library.

mlbench finds it through the ``mlbench.methods`` entry point declared in this distribution's
``pyproject.toml``; importing this package imports neither omikuji nor scikit-learn (they load in ``fit``).
"""

from mlbench_omikuji.method import Omikuji

__all__ = ["Omikuji"]
__version__ = "0.1.0"
