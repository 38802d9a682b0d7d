"""The papers' networks, by name: ``build("alexnet")`` or ``build("zfnet", width=0.25)``.

Each family is a module (`alexnet`, `zfnet`) whose builder is named like keras.applications'
(``alexnet.AlexNet``) and defaults to the paper; `common` holds the pieces families share.
To add a model, write its builder in its family's module, decorate it with
``@register("name")`` (stack more, with fixed options, for variants:
``@register("vgg16", config="D")``), and import the module below.
"""

from course_lib.models import alexnet, common, registry, zfnet
from course_lib.models.registry import available, build, register

__all__ = ["alexnet", "available", "build", "common", "register", "registry", "zfnet"]
