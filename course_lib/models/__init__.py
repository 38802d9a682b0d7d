"""The papers' networks, by name: ``build("alexnet")`` or ``build("zfnet", width=0.25)``.

Each family is a module (`alexnet`, `zfnet`, `allcnn`, `vgg`, `googlenet`, `resnet`)
whose builder is named like keras.applications' (``alexnet.AlexNet``) and defaults to the paper;
`common` holds the pieces families share, and `pretrained` brings keras.applications'
trained weights into our builders (``build("vgg16", weights="imagenet")``,
`copy_weights`). To add a model, write its builder in its family's module, decorate it
with ``@register("name")`` (stack more, with fixed options, for variants:
``@register("vgg16", config="D")``), and import the module below.
"""

from course_lib.models import (
    alexnet,
    allcnn,
    common,
    googlenet,
    pretrained,
    registry,
    resnet,
    vgg,
    zfnet,
)
from course_lib.models.pretrained import WeightsUnavailable, copy_weights
from course_lib.models.registry import available, build, register

__all__ = [
    "WeightsUnavailable", "alexnet", "allcnn", "available", "build", "common", "copy_weights",
    "googlenet", "pretrained", "register", "registry", "resnet", "vgg", "zfnet",
]  # fmt: skip
