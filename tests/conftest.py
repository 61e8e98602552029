"""Session-wide test settings."""

from __future__ import annotations

import os
import signal

import pytest

#: The PostgreSQL and MLflow server fixtures (tests/servers.py), for every test module that names them.
pytest_plugins = ["servers"]

# A test run started in the background by a shell without job control (a CI script's `cmd &`, nohup) inherits
# SIGINT ignored, and every command the tests start would inherit it too: the Ctrl-C tests' SIGINT would then
# do nothing. A handler (unlike SIG_IGN) is reset to the default in a started program.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True, scope="session")
def _private_caches(tmp_path_factory):
    """Neural fits cache their tokenized corpora and linear fits their TF-IDF features on disk: under temporary
    folders, never the user's data home."""
    from mlbench.methods.features import CACHE_ENV as FEATURES
    from mlbench.methods.neural.token_cache import CACHE_ENV as TOKENS

    before = {name: os.environ.get(name) for name in (TOKENS, FEATURES)}
    for name in before:
        os.environ[name] = str(tmp_path_factory.mktemp(name.lower()))
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


#: The tracking URI the test session started with (normally none).
_SESSION_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI")


@pytest.fixture(autouse=True)
def _tracking_uri_stays_in_its_test():
    """MLflow exports the tracking URI a tracker set (``MLFLOW_TRACKING_URI``) to the environment, from a test
    or from a module fixture that built a store; left there, a later test's ``mlbench`` subprocess would log to
    that store instead of its own. Each test starts with the session's value."""
    def restore() -> None:
        if _SESSION_TRACKING_URI is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = _SESSION_TRACKING_URI

    restore()
    yield
    restore()


@pytest.fixture(autouse=True)
def _plugin_files_stay_in_their_test():
    """A plugin file a test loads in-process (``--plugin``) is forgotten after it: a dataset or method it
    registered must not show up in another test's listings."""
    from mlbench import registry

    before = {group: dict(names) for group, names in registry._local.items()}
    yield
    for group, names in registry._local.items():
        names.clear()
        names.update(before.get(group, {}))
