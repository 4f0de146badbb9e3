"""xpnet: explicit backpropagation, written once against the Array API, on any backend.

The public API follows PyTorch's names and layouts::

    import xpnet
    model = xpnet.Sequential(xpnet.Linear(64, 128), xpnet.ReLU(), xpnet.Linear(128, 10))
    model.to("cupy")                       # or "numpy", "torch", "array_api_strict"
    loss_fn = xpnet.CrossEntropyLoss()
    opt = xpnet.optim.Adam(model.parameters(), lr=1e-3)
    history = xpnet.fit(model, loss_fn, opt, X, y, epochs=20, batch_size=32)
"""

from __future__ import annotations

from . import callbacks, data, distributed, functional, init, metrics, optim
from ._backend import asarray, backend_name, get_namespace, namespace_of, to_numpy
from ._summary import ModelSummary, summary
from .activations import (
    CELU,
    ELU,
    GELU,
    SELU,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    Heaviside,
    LeakyReLU,
    LogSigmoid,
    LogSoftmax,
    Mish,
    PReLU,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Softsign,
    Tanh,
    Tanhshrink,
    get_activation,
)
from .callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    LossThreshold,
    LRSchedulerCallback,
    ModelCheckpoint,
    NaNGuard,
    NonFiniteLossError,
)
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, load_model, save_checkpoint
from .clip import clip_grad_norm_, clip_grad_value_
from .interop import load_safetensors, save_safetensors
from .layers import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Embedding,
    Flatten,
    Identity,
    LayerNorm,
    Linear,
    MaxPool2d,
    Residual,
    Sequential,
    Unflatten,
)
from .losses import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from .models import mlp
from .module import Module, Parameter
from .random import default_generator, get_rng_state, manual_seed, set_rng_state
from .training import History, evaluate, fit, predict

__version__ = "0.1.0"

__all__ = [
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BCELoss",
    "BCEWithLogitsLoss",
    "BatchNorm1d",
    "BatchNorm2d",
    "CELU",
    "CSVLogger",
    "Callback",
    "Checkpoint",
    "CheckpointError",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "ELU",
    "EarlyStopping",
    "Embedding",
    "Flatten",
    "GELU",
    "Hardsigmoid",
    "Hardswish",
    "Hardtanh",
    "Heaviside",
    "History",
    "HuberLoss",
    "Identity",
    "KLDivLoss",
    "L1Loss",
    "LRSchedulerCallback",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LogSigmoid",
    "LogSoftmax",
    "LossThreshold",
    "MSELoss",
    "MaxPool2d",
    "Mish",
    "ModelCheckpoint",
    "ModelSummary",
    "Module",
    "NLLLoss",
    "NaNGuard",
    "NonFiniteLossError",
    "PReLU",
    "Parameter",
    "ReLU",
    "ReLU6",
    "Residual",
    "SELU",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "SmoothL1Loss",
    "Softmax",
    "Softplus",
    "Softsign",
    "Tanh",
    "Tanhshrink",
    "Unflatten",
    "asarray",
    "backend_name",
    "callbacks",
    "clip_grad_norm_",
    "clip_grad_value_",
    "data",
    "default_generator",
    "distributed",
    "evaluate",
    "fit",
    "functional",
    "get_activation",
    "get_namespace",
    "get_rng_state",
    "init",
    "load_checkpoint",
    "load_model",
    "load_safetensors",
    "manual_seed",
    "metrics",
    "mlp",
    "namespace_of",
    "optim",
    "predict",
    "save_checkpoint",
    "save_safetensors",
    "set_rng_state",
    "summary",
    "testing",
    "to_numpy",
]


def __getattr__(name: str) -> object:
    # xpnet.testing (check_layer, gradcheck, the parity toolkit) is for tests and the
    # parity CLI: imported on first use, not by every `import xpnet` (~20 ms of a
    # training run's start-up).
    if name == "testing":
        import importlib

        return importlib.import_module(".testing", __name__)
    raise AttributeError(f"module 'xpnet' has no attribute {name!r}")
