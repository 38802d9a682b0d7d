"""course_lib: the small helper library of "The classical ImageNet CNNs, rebuilt in Keras".

One module per concern: `config` (profiles, `setup()`), `data` (datasets), `imagenet`
(WordNet and ILSVRC metadata), `models` and `layers` (the papers' networks), `analysis`
(parameters, multiply-adds, receptive fields), `train` (a thin layer over `model.fit`) and
`plots` (static figures).
"""

from course_lib.config import setup

__all__ = ["setup"]
__version__ = "0.1.0"
