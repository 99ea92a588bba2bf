"""The science of ddx: datasets, networks, parameterizations and objectives.

Pure PyTorch. Nothing here imports Ray: the orchestrator drives these pieces on one or
many workers through a :class:`methods.context.DistillContext`.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
