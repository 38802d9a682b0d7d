"""Augmentation on the device: one Keras layer that turns stored uint8 images into the
network's input, compiled with the training step.

`Augment` takes a batch of uint8 images as they are stored (32-px CIFAR-10, say). In
training it resizes them (to 256 px, the size of the paper's images), cuts a random square
crop (227 px), mirrors half of them left-right, normalises with the training split's mean
and standard deviation, and adds AlexNet's PCA colour noise; at evaluation it resizes, takes
the centre crop and normalises. `course_lib.data.batches(..., device=True)` makes one and
`course_lib.train.fit` puts it in front of the model (`in_front`), so the model stays the
paper's model and the host only gathers uint8 batches: 4x fewer bytes than float32, 50x
fewer than 227-px crops of 32-px images.

How: resizing is linear and works on rows and columns separately, so "resize, pad, crop,
flip" is, for each axis, a matrix: the rows of a resize matrix that the crop keeps, in
reverse order for a flip. The layer applies the two matrices as batched matrix products,
which XLA compiles on any device. The resize matrix is made by `keras.ops.image.resize`
itself (bilinear, antialiased, as `data.resize`), so the pixels are those of resizing the
data set once, without its rounding to uint8 (at most half a grey level apart); on GPUs that
multiply float32 in TF32 they differ by about 0.1 grey level more.

Random draws come from a `keras.random.SeedGenerator`, as Dropout's do: its state is a
variable of the training model, which `course_lib.train.fit` checkpoints, so a resumed run
draws exactly what an uninterrupted one would. Drawing statelessly from (seed, epoch, step)
would need the step fed in with every batch, changing what the model takes as input.

Keras's own RandomCrop, RandomTranslation, RandomZoom and RandomRotation set
``supports_jit = False``, which silently turns XLA off for the whole model that holds them;
this layer uses only `keras.ops` and `keras.random`, so the training model compiles with XLA
on every backend (tests/test_augment.py checks it on JAX).

The paper (Krizhevsky et al. 2012, Section 4.1) resized every image to 256 x 256, trained
on random 224 x 224 crops (227 px in the arithmetic of its layers) and their mirror images,
and added PCA colour noise; at test time it averaged the softmax of ten crops (the corners
and the centre, and their mirror images), which ``in_front(..., views=10)`` does on the
device. ZFNet did the same with 224.
From 32-px CIFAR-10 the course resizes each batch to 256 and crops 227, the paper's recipe
(30 x 30 positions x 2 flips), rather than keeping a 7.7 GB copy at 227 px.

Reliability: every argument is checked (whole numbers, a crop that fits the resized and
padded image, one mean and std per channel, PCA only for 3 channels, a model that takes the
crop's shape), and the tests compare the layer against `keras.ops.image.resize`, the NumPy
pipeline's centre crop, an exhaustive search of crops and flips, and the paper's PCA formula.
"""

from __future__ import annotations

import keras
import numpy as np

from course_lib.config import flag, is_number, whole_number

PCA_SIGMA = 0.1  # the paper's standard deviation of the alphas


def resize_matrix(size_in: int, size_out: int) -> np.ndarray:
    """The (size_out, size_in) matrix that resizes one axis as `keras.ops.image.resize`
    does (bilinear, antialiased): resize the identity, one channel per input pixel."""
    basis = np.eye(size_in, dtype="float32")[None, :, None, :]
    resized = keras.ops.image.resize(basis, (size_out, 1), interpolation="bilinear",
                                     antialias=True)
    return keras.ops.convert_to_numpy(resized)[0, :, 0, :].astype("float32")


def colour_pca(images: np.ndarray, mean, std) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (largest first) and eigenvectors (columns) of the 3 x 3 covariance of
    the RGB pixels of `images`, each channel standardised with `mean` and `std`: the units
    the network sees. A couple of million pixels estimate it well; more are subsampled."""
    if images.shape[-1] != 3:
        raise ValueError(f"PCA colour noise needs RGB images, not {images.shape[-1]} "
                         "channel(s)")
    pixels = images.reshape(-1, 3)
    pixels = pixels[::max(1, len(pixels) // 2_000_000)]
    pixels = (pixels.astype("float64") - np.asarray(mean)) / np.asarray(std)
    values, vectors = np.linalg.eigh(np.cov(pixels, rowvar=False, bias=True))
    order = np.argsort(values)[::-1]
    return values[order].astype("float32"), vectors[:, order].astype("float32")


def pca_shift(alphas, eigenvalues, eigenvectors):
    """The paper's colour shift of each image, [p1 p2 p3] [a1 l1, a2 l2, a3 l3]^T, for
    alphas of shape (batch, 3): one RGB shift per image, added to every pixel."""
    return keras.ops.matmul(alphas * eigenvalues, keras.ops.transpose(eigenvectors))



class Augment(keras.layers.Layer):
    """uint8 images (batch, height, width, channels) -> normalised crops (batch, crop, crop,
    channels), float32.

    Training: resize to `resize` x `resize` (None: keep the stored size), zero-pad `pad`
    pixels per side, take a random `crop` x `crop` window, mirror it with probability 0.5
    (`flip`), normalise with `mean` and `std` (0-255 units, one per channel) and, given
    `pca` = (eigenvalues, eigenvectors) from `colour_pca`, add `pca_shift` with alphas
    drawn from N(0, `pca_sigma`) per image. Evaluation: resize, centre crop, normalise.
    Draws come from a SeedGenerator seeded with `seed`. Computes in float32 whatever the
    precision policy; the model behind it casts to its own.
    """

    def __init__(self, crop: int, *, mean, std, resize: int | None = None, pad: int = 0,
                 flip: bool = True, pca=None, pca_sigma: float = PCA_SIGMA, seed: int = 0,
                 **kwargs):
        kwargs.setdefault("name", "augment")
        kwargs["dtype"] = "float32"  # always, also when from_config passes the saved one
        super().__init__(**kwargs)
        self.crop = whole_number("crop", crop)
        self.resize = None if resize is None else whole_number("resize", resize)
        self.pad = whole_number("pad", pad, minimum=0)
        self.flip = flag("flip", flip)
        self.mean = np.asarray(mean, "float32").reshape(-1)
        self.std = np.asarray(std, "float32").reshape(-1)
        if (self.mean.shape != self.std.shape or not np.isfinite(self.mean).all()
                or not (np.isfinite(self.std) & (self.std > 0)).all()):
            raise ValueError("mean and std need one finite number per channel, std above 0")
        self.pca = None
        if pca is not None:
            values, vectors = (np.asarray(a, "float32") for a in pca)
            if values.shape != (3,) or vectors.shape != (3, 3) or len(self.mean) != 3:
                raise ValueError("pca is (3 eigenvalues, 3 x 3 eigenvectors) of RGB images, "
                                 "as augment.colour_pca returns")
            self.pca = (values, vectors)
        if not (is_number(pca_sigma) and 0 <= pca_sigma < np.inf):
            raise ValueError(f"pca_sigma must be a number >= 0, not {pca_sigma!r}")
        self.pca_sigma = float(pca_sigma)
        self.seed = whole_number("seed", seed, minimum=0)
        self.generator = keras.random.SeedGenerator(self.seed)
        self.first_draws = keras.ops.convert_to_numpy(self.generator.state)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def reset_draws(self) -> None:
        """Draw again from the start, as a new layer with this seed would: each new training
        run (`course_lib.train.fit`) draws the same crops and flips."""
        self.generator.state.assign(self.first_draws)

    def build(self, input_shape):
        height, width, channels = input_shape[1:]
        if None in (height, width):
            raise ValueError("Augment needs images of one known size, such as "
                             "keras.Input((32, 32, 3), dtype='uint8'), not any size")
        if channels != len(self.mean):
            raise ValueError(f"the images have {channels} channels but mean and std "
                             f"{len(self.mean)}")
        self.rows = self.axis_matrix(height)  # (resized + 2 pad, height)
        self.columns = self.axis_matrix(width)
        room = min(len(self.rows), len(self.columns))
        if self.crop > room:
            raise ValueError(f"crop {self.crop} is larger than the {width}x{height} images "
                             f"resized to {self.resize} and padded by {self.pad} per side")

    def axis_matrix(self, size: int) -> np.ndarray:
        """Resize one axis (if asked) and zero-pad it: a (resized + 2 pad, size) matrix."""
        matrix = resize_matrix(size, self.resize) if self.resize else np.eye(size,
                                                                             dtype="float32")
        return np.pad(matrix, ((self.pad, self.pad), (0, 0)))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.crop, self.crop, input_shape[-1])

    def call(self, images, training=False, views=1):
        if check_views(views) != 1:
            if training:
                raise ValueError("test-time views (views=2 or 10) are for evaluation, not "
                                 "training")
            return self.test_views(images, views)
        images = keras.ops.cast(images, "float32")
        if training:
            batch = keras.ops.shape(images)[0]
            rows = self.windows(self.rows, batch, mirror=False)
            columns = self.windows(self.columns, batch, mirror=self.flip)
            images = keras.ops.einsum("bih,bhwc->biwc", rows, images)
            images = keras.ops.einsum("biwc,bjw->bijc", images, columns)
        else:
            images = keras.ops.einsum("ih,bhwc->biwc", self.centre(self.rows), images)
            images = keras.ops.einsum("biwc,jw->bijc", images, self.centre(self.columns))
        images = (images - self.mean) / self.std
        if training and self.pca is not None:
            alphas = keras.random.normal((keras.ops.shape(images)[0], 3),
                                         stddev=self.pca_sigma, seed=self.generator)
            images = images + pca_shift(alphas, *self.pca)[:, None, None, :]
        return images

    def windows(self, matrix: np.ndarray, batch, mirror: bool):
        """Per image, the `crop` consecutive rows of `matrix` from a random start, in
        reverse order (a mirror image) for a random half when `mirror`: (batch, crop, n)."""
        starts = keras.random.randint((batch,), 0, len(matrix) - self.crop + 1,
                                      seed=self.generator)
        steps = keras.ops.arange(self.crop)[None, :]
        if mirror:
            flipped = keras.random.uniform((batch,), seed=self.generator) < 0.5
            steps = keras.ops.where(flipped[:, None], self.crop - 1 - steps, steps)
        return keras.ops.take(matrix, starts[:, None] + steps, axis=0)

    def centre(self, matrix: np.ndarray) -> np.ndarray:
        """The central `crop` rows of `matrix`, as `data.centre_crop` cuts them."""
        start = (len(matrix) - self.crop) // 2
        return matrix[start:start + self.crop]

    def test_views(self, images, views: int):
        """Test-time views of each image, normalised: ``views=2``, the evaluation crop and
        its mirror image; ``views=10``, the paper's ten patches (Section 4.1), the four
        corner crops and the centre crop of the resized (and padded) image, each also
        mirrored. (views x batch, crop, crop, channels): all of the first view, then all of
        the second, and so on (`patches` lists the windows, the centre last).
        ``layer(images, views=10)``."""
        views = check_views(views)
        if views == 1:
            raise ValueError("views=1 is the evaluation crop alone: call the layer")
        images = keras.ops.cast(images, "float32")
        crops = []
        for top, left in self.patches()[-1:] if views == 2 else self.patches():
            rows = self.rows[top:top + self.crop]
            columns = self.columns[left:left + self.crop]
            for across in (columns, columns[::-1]):  # as cut, then its mirror image
                view = keras.ops.einsum("ih,bhwc->biwc", rows, images)
                crops.append(keras.ops.einsum("biwc,jw->bijc", view, across))
        return (keras.ops.concatenate(crops, axis=0) - self.mean) / self.std

    def patches(self) -> list[tuple[int, int]]:
        """(top, left) of the five patches in the resized, padded image: the corners
        clockwise from the top left, then the centre (as `centre` cuts it)."""
        if not self.built:
            raise ValueError("the patches depend on the images' size: call the layer on a "
                             "batch first (data.batches(..., device=True) does)")
        bottom, right = len(self.rows) - self.crop, len(self.columns) - self.crop
        return [(0, 0), (0, right), (bottom, right), (bottom, 0), (bottom // 2, right // 2)]

    def evaluation(self) -> dict:
        """What decides the evaluation output: two layers that agree here evaluate alike."""
        return {"crop": self.crop, "resize": self.resize, "mean": self.mean.tolist(),
                "std": self.std.tolist()}

    def get_config(self):
        pca = None if self.pca is None else [a.tolist() for a in self.pca]
        return {**super().get_config(), "crop": self.crop, "resize": self.resize,
                "pad": self.pad, "flip": self.flip, "mean": self.mean.tolist(),
                "std": self.std.tolist(), "pca": pca, "pca_sigma": self.pca_sigma,
                "seed": self.seed}


def in_front(layer: Augment, model: keras.Model, image_shape, *,
             views: int = 1) -> keras.Model:
    """A model that takes uint8 images of `image_shape`, augments them with `layer` and
    passes them to `model`, whose weights it shares (train it, and `model` is trained).

    With ``views=10`` it predicts as the paper tested: `model` sees `layer`'s ten patches
    of each image (`Augment.test_views`) and the ten softmax outputs are averaged; with
    ``views=2``, the evaluation crop and its mirror image.
    """
    inputs = keras.Input(tuple(image_shape), dtype="uint8", name="images")
    views = check_views(views)
    if views != 1:
        crops = layer(inputs, views=views)
        check_takes(model, crops)
        probabilities = keras.ops.reshape(model(crops), (views, -1, model.output_shape[-1]))
        return keras.Model(inputs, keras.ops.mean(probabilities, axis=0),
                           name=f"{model.name}_{views}_views")
    crops = layer(inputs)
    check_takes(model, crops)
    return keras.Model(inputs, model(crops), name=model.name)


def check_views(views) -> int:
    """`views`, if it is one of the test-time views `Augment` knows: 1, 2 or 10."""
    if isinstance(views, bool) or views not in (1, 2, 10):
        raise ValueError(f"views is 1 (the evaluation crop), 2 (it and its mirror image) or "
                         f"10 (the paper's ten patches), not {views!r}")
    return int(views)


def check_takes(model: keras.Model, crops) -> None:
    """Refuse a model whose input is not the shape of `crops`, saying what to change."""
    expected = tuple(getattr(model, "input_shape", (None, *crops.shape[1:]))[1:])
    if len(expected) != 3 or any(e not in (None, c) for e, c in zip(expected, crops.shape[1:],
                                                                   strict=True)):
        raise ValueError(f"the model takes {expected} images but the augmentation makes "
                         f"{tuple(crops.shape[1:])} crops: pass crop= (and resize=) that "
                         "match the model's input")
