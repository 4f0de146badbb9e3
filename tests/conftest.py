"""Shared test configuration: the public `backend` fixture from xpnet's pytest plugin."""

import warnings

pytest_plugins = ["xpnet.testing.pytest_plugin"]

# torch warns once about NumPy interop on some builds; it is noise for this suite.
warnings.filterwarnings("ignore", message=".*NumPy.*", category=UserWarning)
