"""The PyTorch reference that the course's training speed is held to.

    python benchmarks/torch_reference.py --model resnet18_small --batch 512 --json
    python benchmarks/torch_reference.py --model resnet50 --batch 256 --json

Times SGD training steps of torchvision's ResNet-18 with a CIFAR stem (conv1 3x3 stride 1,
no max-pool; 10 classes; 32 px) or ResNet-50 (v1.5, 1000 classes; 224 px) on random
images already on the device, the way `python -m course_lib.bench` times the course's
Keras networks: channels-last, bfloat16 autocast (float32 with --precision float32, and
on devices without bfloat16), `torch.compile` (unless --no-compile), and a warm-up that
the timing leaves out (it includes compiling). The same networks in the course:
``build("resnet18", input_shape=(32, 32, 3), num_classes=10, stem="small")`` and
``build("resnet50", stride_in_3x3=True)``; their trainable parameters are printed by both
programs and must agree (11,173,962 and 25,557,032).

torch and torchvision are needed by this script alone; the course does not use them.
`benchmarks/gpu_check.sh --bench` runs both sides in one call on one GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

# name: (image side, classes, weight decay), as the papers trained them
MODELS = {"resnet18_small": (32, 10, 5e-4), "resnet50": (224, 1000, 1e-4)}


def build(name: str):
    """torchvision's network, with the CIFAR stem for resnet18_small."""
    import torch
    import torchvision

    if name == "resnet18_small":
        model = torchvision.models.resnet18(num_classes=10)
        model.conv1 = torch.nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        model.maxpool = torch.nn.Identity()
        return model
    return torchvision.models.resnet50(num_classes=1000)


def measure(name: str, *, batch: int, image_size: int, steps: int, warmup: int,
            precision: str, compile_: bool, device: str) -> dict:
    """Training images per second of `name`, after `warmup` untimed steps."""
    import torch

    _, classes, decay = MODELS[name]
    model = build(name).to(device, memory_format=torch.channels_last)
    parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=decay)
    loss_of = torch.nn.CrossEntropyLoss()
    generator = torch.Generator(device=device).manual_seed(0)
    images = torch.randn(batch, 3, image_size, image_size, device=device,
                         generator=generator).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, classes, (batch,), device=device, generator=generator)
    forward = torch.compile(model) if compile_ else model
    bf16 = precision == "mixed"

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16,
                            enabled=bf16):
            loss = loss_of(forward(images), labels)
        loss.backward()
        optimizer.step()
        return loss

    def finished():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    model.train()
    start = time.perf_counter()
    for _ in range(warmup):
        loss = step()
    finished()
    warmup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    finished()
    seconds = time.perf_counter() - start
    if not torch.isfinite(loss):
        raise FloatingPointError(f"the loss of {name} is {float(loss)}")
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    return {"framework": "torch", "model": name, "device": gpu, "batch": batch,
            "image_size": image_size, "precision": precision, "compile": compile_,
            "steps": steps, "warmup_seconds": warmup_seconds, "training": batch * steps / seconds,
            "trainable_parameters": parameters, "versions": versions()}


def versions() -> dict:
    import torch
    import torchvision

    return {"torch": torch.__version__, "torchvision": torchvision.__version__,
            "cuda": torch.version.cuda, "python": sys.version.split()[0]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/torch_reference.py",
        description="Training images/s of torchvision's ResNet-18 (CIFAR stem) or ResNet-50 "
                    "with torch.compile: the reference for course_lib.bench.")
    parser.add_argument("--model", required=True, choices=sorted(MODELS))
    parser.add_argument("--batch", type=int, default=None,
                        help="default: 512 for resnet18_small, 256 for resnet50")
    parser.add_argument("--image-size", type=int, default=None,
                        help="default: 32 for resnet18_small, 224 for resnet50")
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before them")
    parser.add_argument("--precision", choices=("mixed", "float32"), default=None,
                        help="default: mixed (bfloat16 autocast) where the device has it")
    parser.add_argument("--no-compile", action="store_true", help="eager, no torch.compile")
    parser.add_argument("--device", default=None, help="default: cuda when there is one")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    for option in ("batch", "image_size", "steps", "warmup"):
        value = getattr(args, option)
        if value is not None and value < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1, not {value}")
    try:
        import torch
        import torchvision  # noqa: F401
    except ImportError as error:
        print(f"torch_reference: {error}: this script needs torch and torchvision "
              "(pip install torch torchvision); the course itself does not", file=sys.stderr)
        return 3
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    has_bf16 = device == "cpu" or (device.startswith("cuda") and torch.cuda.is_bf16_supported())
    precision = args.precision or ("mixed" if device != "cpu" and has_bf16 else "float32")
    if precision == "mixed" and not has_bf16:
        parser.error(f"{device} has no bfloat16: pass --precision float32")
    side, _, _ = MODELS[args.model]
    result = measure(args.model, batch=args.batch or (512 if side == 32 else 256),
                     image_size=args.image_size or side, steps=args.steps,
                     warmup=args.warmup, precision=precision, compile_=not args.no_compile,
                     device=device)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['model']} (torch {result['versions']['torch']}, "
              f"{'torch.compile' if result['compile'] else 'eager'}, {precision}) on "
              f"{result['device']}, batch {result['batch']} at {result['image_size']} px: "
              f"{result['training']:,.1f} training images/s "
              f"({result['trainable_parameters']:,} trainable parameters)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
