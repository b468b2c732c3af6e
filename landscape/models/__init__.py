"""Model registry and the architectures it holds; every model is a plain ``nn.Module``.

Build models with :func:`create_model`, list them with :func:`list_models`, add your own
with :func:`register_model`. ``tv:<name>`` builds any torchvision classification model.
"""

from __future__ import annotations

# Importing the architecture modules registers their models.
from landscape.models import conv1d, convnet, mlp, resnet, vgg, wrn  # noqa: F401
from landscape.models.registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
