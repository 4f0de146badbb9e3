"""Public testing toolkit: backends, gradient checks, parity checks, layer certification."""

from ._backends import Backend, BackendUnavailable, available_backends, get_backend, requested_backends

__all__ = ["Backend", "BackendUnavailable", "available_backends", "get_backend", "requested_backends"]
