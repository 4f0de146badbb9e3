"""Ready-made models: the multilayer perceptron, a small CNN, and their JSON-able descriptions.

:func:`mlp` builds the lecture's fully connected network as a :class:`~xpnet.Sequential`
of :class:`~xpnet.Linear` layers and activations; :func:`cnn` a LeNet-style convolutional
net (conv → activation → max-pool stages, then a dense head). :func:`mlp_config` describes the same
architecture as a small JSON-able dict and :func:`mlp_from_config` rebuilds it, which is
how a checkpoint (or the ``xpnet`` command line) records which model its weights belong
to without pickling Python objects.

Example
-------
>>> import xpnet
>>> from xpnet.models import mlp, mlp_config, mlp_from_config
>>> model = mlp([64, 128, 10], activation="relu", generator=0)
>>> cfg = mlp_config([64, 128, 10], activation="relu")
>>> clone = mlp_from_config(cfg)
>>> clone.load_state_dict(model.state_dict())
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _backend
from . import init as _init
from .layers import Conv2d, Dropout, Flatten, Linear, MaxPool2d, Sequential, Unflatten
from .module import Module
from .random import resolve_generator

__all__ = [
    "INITS",
    "mlp",
    "mlp_config",
    "mlp_from_config",
    "cnn",
    "cnn_config",
    "cnn_from_config",
    "model_from_config",
    "config_in_features",
    "config_out_features",
    "model_config",
    "parameter_count",
]

#: Weight initialization schemes accepted by :func:`mlp` (``None`` means ``"torch"``).
INITS = ("torch", "xavier", "xavier_normal", "he", "he_uniform", "lecun", "lecun_uniform", "zeros")

_CONFIG_TYPE = "mlp"
_CONFIG_VERSION = 1


def _check_sizes(sizes: Sequence[int]) -> list[int]:
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
        raise ValueError(
            f"mlp: sizes must be a sequence of layer widths such as [64, 128, 10], got {sizes!r}"
        )
    out = []
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s <= 0:
            raise ValueError(
                f"mlp: every size must be a positive int, got {s!r} in {list(sizes)!r}"
            )
        out.append(int(s))
    if len(out) < 2:
        raise ValueError(
            f"mlp: sizes needs at least an input and an output width (e.g. [2, 1]), got {out!r}"
        )
    return out


def _check_init(init: str | None) -> str:
    name = "torch" if init is None else init
    if not isinstance(name, str) or name.lower() not in INITS:
        raise ValueError(f"mlp: unknown init {init!r}; expected one of {list(INITS)} or None")
    return name.lower()


def _activation(name: str | None, *, who: str) -> Module | None:
    """Activation module for a name; ``None``/``"identity"``/``"linear"`` mean no module."""
    if name is None:
        return None
    if not isinstance(name, str):
        raise ValueError(f"mlp: {who} must be an activation name such as 'relu', got {name!r}")
    key = name.strip().lower()
    if key in ("identity", "linear", "none"):
        return None
    from .activations import get_activation  # lazy: keeps models importable on its own

    try:
        return get_activation(key)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"mlp: unknown {who} {name!r} ({exc})") from None


def _gain(activation: str | None) -> float:
    """Xavier/He gain for a hidden activation (1 where torch defines none)."""
    key = (activation or "linear").lower()
    try:
        return _init.calculate_gain(key)
    except ValueError:
        return 1.0


def _reinit(layer: Linear, scheme: str, activation: str | None, g: np.random.Generator) -> None:
    """Redraw ``layer``'s weight with ``scheme`` and set its bias to zero.

    Zero biases are the usual companion of the variance-scaling schemes (Keras, the
    Glorot and He papers): the scheme controls the spread of the pre-activations and a
    random bias would only add to it.
    """
    w = layer.weight
    if scheme == "xavier":
        _init.xavier_uniform_(w, gain=_gain(activation), generator=g)
    elif scheme == "xavier_normal":
        _init.xavier_normal_(w, gain=_gain(activation), generator=g)
    elif scheme in ("he", "he_uniform"):
        # He et al. derive their variance for ReLU; leaky ReLU uses its own gain.
        act = (activation or "relu").lower()
        nonlin = "leaky_relu" if act == "leaky_relu" else "relu"
        if scheme == "he":
            _init.kaiming_normal_(w, nonlinearity=nonlin, generator=g)
        else:
            _init.kaiming_uniform_(w, nonlinearity=nonlin, generator=g)
    elif scheme == "lecun":
        _init.lecun_normal_(w, generator=g)
    elif scheme == "lecun_uniform":
        _init.lecun_uniform_(w, generator=g)
    elif scheme == "zeros":
        _init.zeros_(w)
    else:  # pragma: no cover - _check_init guards this
        raise ValueError(f"mlp: unknown init {scheme!r}")
    if layer.bias is not None:
        _init.zeros_(layer.bias)


def mlp(
    sizes: Sequence[int],
    activation: str | None = "relu",
    *,
    dtype: Any = None,
    generator: np.random.Generator | int | None = None,
    output_activation: str | None = None,
    init: str | None = None,
    bias: bool = True,
) -> Sequential:
    """Build a multilayer perceptron ``Linear → act → … → Linear [→ output_activation]``.

    Parameters
    ----------
    sizes
        Layer widths from input to output, e.g. ``[64, 128, 10]``: 64 inputs, one hidden
        layer of 128 units, 10 outputs. ``[2, 1]`` is a single neuron.
    activation
        Name of the hidden activation (``"relu"``, ``"sigmoid"``, ``"tanh"``, ...; see
        :func:`xpnet.activations.get_activation`); ``None`` or ``"identity"`` for none.
    dtype
        ``"float32"`` (default) or ``"float64"``.
    generator
        ``numpy.random.Generator`` or int seed for the initial weights; default the
        generator seeded by :func:`xpnet.manual_seed`.
    output_activation
        Activation after the last layer; default none (logits, as
        :class:`~xpnet.losses.CrossEntropyLoss` expects). ``"sigmoid"`` gives the
        lecture's XOR network.
    init
        Weight initialization: ``"torch"`` (default; U(±1/√fan_in) for weight and bias,
        as ``torch.nn.Linear``), ``"xavier"`` (Glorot uniform, gain of the activation),
        ``"xavier_normal"``, ``"he"`` (Kaiming normal, fan-in), ``"he_uniform"``,
        ``"lecun"`` (N(0, 1/fan_in)), ``"lecun_uniform"`` or ``"zeros"``. Every scheme
        but ``"torch"`` sets the biases to zero.
    bias
        Give every Linear layer a bias (default True).

    Returns
    -------
    Sequential
        Layers named ``"0"``, ``"1"``, ... as in torch, so ``"0.weight"`` is the first
        layer's weight. The model lives on NumPy; move it with ``model.to(backend)``.
        Its description is available as :func:`model_config(model) <model_config>`.

    Notes
    -----
    Forward for one hidden layer: ``h = σ(x W₁ᵀ + b₁)``, ``y = h W₂ᵀ + b₂``. Backward is
    the δ recursion of each layer in reverse order (see :class:`~xpnet.Linear`).
    Weights are drawn on the host, so a seed gives the same network on every backend.
    With ``init="zeros"`` every hidden unit computes the same function and the hidden
    weights receive zero gradient: the symmetry that random init breaks.
    """
    sizes = _check_sizes(sizes)
    scheme = _check_init(init)
    g = resolve_generator(generator)
    if dtype is not None:
        name = _backend.dtype_name(dtype)
        if name not in ("float32", "float64", "float16"):
            raise TypeError(f"mlp: dtype must be 'float32' or 'float64', got {dtype!r}")
    layers: list[Module] = []
    n_layers = len(sizes) - 1
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == n_layers - 1
        if scheme == "torch":
            layer = Linear(n_in, n_out, bias=bias, dtype=dtype, generator=g)
        else:
            # A throwaway generator for Linear's own draw keeps the user's stream for
            # the chosen scheme only: the weights then depend on (seed, scheme) alone.
            layer = Linear(n_in, n_out, bias=bias, dtype=dtype, generator=np.random.default_rng(0))
            # The last layer feeds the output activation (or none: linear gain).
            _reinit(layer, scheme, output_activation if last else activation, g)
        layers.append(layer)
        act = _activation(output_activation if last else activation,
                          who="output_activation" if last else "activation")
        if act is not None:
            layers.append(act)
    model = Sequential(*layers)
    # A plain attribute (not a Parameter or Module): ignored by state_dict and to().
    model._xpnet_config = mlp_config(
        sizes,
        activation,
        dtype=dtype,
        output_activation=output_activation,
        init=init,
        bias=bias,
    )
    return model


def mlp_config(
    sizes: Sequence[int],
    activation: str | None = "relu",
    *,
    dtype: Any = None,
    output_activation: str | None = None,
    init: str | None = None,
    bias: bool = True,
) -> dict[str, Any]:
    """JSON-able description of the network :func:`mlp` builds with these arguments.

    Parameters
    ----------
    sizes, activation, dtype, output_activation, init, bias
        As for :func:`mlp` (validated the same way).

    Returns
    -------
    dict
        ``{"type": "mlp", "version": 1, "sizes": [...], "activation": ...,
        "output_activation": ..., "init": ..., "dtype": ..., "bias": ...}``, only str,
        int, bool, list and None values, so ``json.dumps`` accepts it.
    """
    sizes = _check_sizes(sizes)
    scheme = _check_init(init)
    for who, name in (("activation", activation), ("output_activation", output_activation)):
        if name is not None and not isinstance(name, str):
            raise ValueError(f"mlp_config: {who} must be a name or None, got {name!r}")
    return {
        "type": _CONFIG_TYPE,
        "version": _CONFIG_VERSION,
        "sizes": sizes,
        "activation": activation,
        "output_activation": output_activation,
        "init": scheme,
        "dtype": "float32" if dtype is None else _backend.dtype_name(dtype),
        "bias": bool(bias),
    }


def mlp_from_config(
    config: dict[str, Any],
    *,
    generator: np.random.Generator | int | None = None,
    dtype: Any = None,
) -> Sequential:
    """Rebuild the network described by :func:`mlp_config` (fresh weights).

    Parameters
    ----------
    config
        A dict from :func:`mlp_config` (for example read back from a checkpoint's
        hyperparameters).
    generator
        Seed or generator for the fresh weights (load trained ones with
        ``load_state_dict``).
    dtype
        Override the recorded dtype.

    Raises
    ------
    ValueError
        When ``config`` is not an mlp description or is from a newer version.
    """
    if not isinstance(config, dict) or config.get("type") != _CONFIG_TYPE:
        got = config.get("type") if isinstance(config, dict) else type(config).__name__
        raise ValueError(
            f"mlp_from_config: expected a dict from mlp_config() with type 'mlp', got {got!r}"
        )
    version = config.get("version", 1)
    if not isinstance(version, int) or version > _CONFIG_VERSION:
        raise ValueError(
            f"mlp_from_config: config version {version!r} is newer than this xpnet "
            f"understands ({_CONFIG_VERSION}); upgrade xpnet"
        )
    if "sizes" not in config:
        raise ValueError("mlp_from_config: config has no 'sizes'")
    return mlp(
        config["sizes"],
        config.get("activation", "relu"),
        dtype=dtype if dtype is not None else config.get("dtype"),
        generator=generator,
        output_activation=config.get("output_activation"),
        init=config.get("init"),
        bias=config.get("bias", True),
    )


def model_config(model: Module) -> dict[str, Any]:
    """The description recorded on a model built by :func:`mlp` or :func:`cnn`.

    Returns
    -------
    dict
        The :func:`mlp_config` / :func:`cnn_config` dict, with ``"dtype"`` the dtype the
        weights have now (after any ``model.to(dtype=...)``).

    Raises
    ------
    ValueError
        For a model that :func:`mlp` did not build.
    """
    cfg = getattr(model, "_xpnet_config", None)
    if cfg is None:
        raise ValueError(
            f"model_config: {type(model).__name__} was not built by xpnet.models.mlp or cnn, so "
            f"it carries no description; build it with mlp()/cnn() or write the config yourself"
        )
    out = {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in cfg.items()}
    p = next(iter(model.parameters()), None)
    if p is not None:
        out["dtype"] = _backend.dtype_name(p.data.dtype)
    return out


def parameter_count(model: Module) -> int:
    """Number of scalar parameters of ``model``."""
    return sum(math.prod(p.shape) for p in model.parameters())


# --------------------------------------------------------------------------- cnn

_CNN_TYPE = "cnn"
_CNN_VERSION = 1


def _positive_ints(values: Any, who: str, what: str, *, allow_empty: bool) -> list[int]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(f"{who}: {what} must be a sequence of positive ints, got {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise ValueError(f"{who}: every entry of {what} must be a positive int, got {v!r} in {list(values)!r}")
        out.append(int(v))
    if not out and not allow_empty:
        raise ValueError(f"{who}: {what} needs at least one entry, got {list(values)!r}")
    return out


def cnn_config(
    input_shape: Sequence[int],
    num_classes: int,
    channels: Sequence[int] = (32, 64),
    hidden: Sequence[int] = (128,),
    *,
    kernel_size: int = 3,
    activation: str = "relu",
    dropout: float = 0.0,
    dtype: Any = None,
    flat_input: bool = True,
) -> dict[str, Any]:
    """JSON-able description of the network :func:`cnn` builds with these arguments."""
    shape = _positive_ints(input_shape, "cnn", "input_shape", allow_empty=False)
    if len(shape) != 3:
        raise ValueError(f"cnn: input_shape must be (channels, height, width), got {tuple(input_shape)!r}")
    (n_classes,) = _positive_ints([num_classes], "cnn", "num_classes", allow_empty=False)
    (k,) = _positive_ints([kernel_size], "cnn", "kernel_size", allow_empty=False)
    if k % 2 == 0:
        raise ValueError(f"cnn: kernel_size must be odd (padding k//2 keeps the image size), got {k}")
    if not isinstance(activation, str):
        raise ValueError(f"cnn: activation must be a name such as 'relu', got {activation!r}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"cnn: dropout must be in [0, 1), got {dropout!r}")
    return {
        "type": _CNN_TYPE,
        "version": _CNN_VERSION,
        "input_shape": shape,
        "num_classes": n_classes,
        "channels": _positive_ints(channels, "cnn", "channels", allow_empty=False),
        "hidden": _positive_ints(hidden, "cnn", "hidden", allow_empty=True),
        "kernel_size": k,
        "activation": activation,
        "dropout": float(dropout),
        "dtype": "float32" if dtype is None else _backend.dtype_name(dtype),
        "flat_input": bool(flat_input),
    }


def cnn(
    input_shape: Sequence[int],
    num_classes: int,
    channels: Sequence[int] = (32, 64),
    hidden: Sequence[int] = (128,),
    *,
    kernel_size: int = 3,
    activation: str = "relu",
    dropout: float = 0.0,
    dtype: Any = None,
    generator: np.random.Generator | int | None = None,
    flat_input: bool = True,
) -> Sequential:
    """Build a LeNet-style convolutional classifier.

    One stage per entry of ``channels``: ``Conv2d(k, padding=k//2) → activation →
    MaxPool2d(2)`` (the pooling is left out once the image is down to 1 pixel), then
    ``Flatten → [Linear → activation (→ Dropout)] per hidden width → Linear(num_classes)``.

    Parameters
    ----------
    input_shape
        ``(channels, height, width)`` of one image: ``(1, 8, 8)`` for the UCI digits,
        ``(1, 28, 28)`` for MNIST.
    num_classes
        Number of output logits.
    channels
        Output channels of each convolution stage (default ``(32, 64)``).
    hidden
        Widths of the dense layers after the convolutions (default ``(128,)``).
    kernel_size
        Odd square kernel of every convolution (default 3).
    activation
        Activation name (default ``"relu"``).
    dropout
        Dropout probability after each hidden dense layer (default 0: none).
    dtype
        ``"float32"`` (default) or ``"float64"``.
    generator
        Seed or generator for the initial weights (torch's default init for every layer).
    flat_input
        Start with ``Unflatten(1, input_shape)`` so the model takes flat pixel vectors
        ``(N, C·H·W)``, as :func:`mlp` does (default); ``False`` takes ``(N, C, H, W)``.

    Returns
    -------
    Sequential
        With its description available as :func:`model_config(model) <model_config>`.

    Notes
    -----
    For digits (1×8×8) the defaults give ``8×8×32 → 4×4×32 → 4×4×64 → 2×2×64 → 256 → 128
    → 10``. See :class:`~xpnet.Conv2d` and :class:`~xpnet.MaxPool2d` for the forward and
    backward formulas of each stage.
    """
    cfg = cnn_config(input_shape, num_classes, channels, hidden, kernel_size=kernel_size,
                     activation=activation, dropout=dropout, dtype=dtype, flat_input=flat_input)
    g = resolve_generator(generator)
    c, h, w = cfg["input_shape"]
    k = cfg["kernel_size"]
    layers: list[Module] = [Unflatten(1, (c, h, w))] if cfg["flat_input"] else []
    for out_c in cfg["channels"]:
        layers.append(Conv2d(c, out_c, k, padding=k // 2, dtype=dtype, generator=g))
        act = _activation(activation, who="activation")
        if act is not None:
            layers.append(act)
        if h >= 2 and w >= 2:
            layers.append(MaxPool2d(2))
            h, w = h // 2, w // 2
        c = out_c
    layers.append(Flatten())
    n_in = c * h * w
    for width in cfg["hidden"]:
        layers.append(Linear(n_in, width, dtype=dtype, generator=g))
        act = _activation(activation, who="activation")
        if act is not None:
            layers.append(act)
        if cfg["dropout"] > 0.0:
            layers.append(Dropout(cfg["dropout"], generator=g))
        n_in = width
    layers.append(Linear(n_in, cfg["num_classes"], dtype=dtype, generator=g))
    model = Sequential(*layers)
    model._xpnet_config = cfg
    return model


def cnn_from_config(
    config: dict[str, Any],
    *,
    generator: np.random.Generator | int | None = None,
    dtype: Any = None,
) -> Sequential:
    """Rebuild the network described by :func:`cnn_config` (fresh weights)."""
    if not isinstance(config, dict) or config.get("type") != _CNN_TYPE:
        got = config.get("type") if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"cnn_from_config: expected a dict from cnn_config() with type 'cnn', got {got!r}")
    version = config.get("version", 1)
    if not isinstance(version, int) or version > _CNN_VERSION:
        raise ValueError(
            f"cnn_from_config: config version {version!r} is newer than this xpnet understands "
            f"({_CNN_VERSION}); upgrade xpnet"
        )
    return cnn(
        config["input_shape"],
        config["num_classes"],
        config.get("channels", (32, 64)),
        config.get("hidden", (128,)),
        kernel_size=config.get("kernel_size", 3),
        activation=config.get("activation", "relu"),
        dropout=config.get("dropout", 0.0),
        dtype=dtype if dtype is not None else config.get("dtype"),
        generator=generator,
        flat_input=config.get("flat_input", True),
    )


def model_from_config(
    config: dict[str, Any],
    *,
    generator: np.random.Generator | int | None = None,
    dtype: Any = None,
) -> Sequential:
    """Rebuild an :func:`mlp` or a :func:`cnn` from its description (its ``"type"`` says which)."""
    kind = config.get("type") if isinstance(config, dict) else None
    if kind == _CNN_TYPE:
        return cnn_from_config(config, generator=generator, dtype=dtype)
    if kind == _CONFIG_TYPE:
        return mlp_from_config(config, generator=generator, dtype=dtype)
    raise ValueError(f"model_from_config: unknown model type {kind!r}; expected 'mlp' or 'cnn'")


def config_in_features(config: dict[str, Any]) -> int:
    """Length of the flat input vector a described model takes."""
    if config.get("type") == _CNN_TYPE:
        return math.prod(config["input_shape"])
    return int(config["sizes"][0])


def config_out_features(config: dict[str, Any]) -> int:
    """Number of outputs (classes or targets) of a described model."""
    if config.get("type") == _CNN_TYPE:
        return int(config["num_classes"])
    return int(config["sizes"][-1])
