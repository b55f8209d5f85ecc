"""Features of a network's layers: forward hooks, global pooling, one copy.

Everything that reads features out of a torch network goes through
:class:`LayerFeatures`: :class:`~sklearn_ood.TorchFeatureExtractor` (``transform``
and ``forward_features``) and, through the extractor's public methods, the
composites that differentiate the features (input pre-processing). The checks
live here once:

- a hooked module must return a tensor, of shape ``(N, C, H, W)`` (globally
  pooled) or ``(N, D)`` (kept as it is);
- a hooked module must run exactly once per forward pass (checked on the full
  pass that :meth:`LayerFeatures.probe` makes);
- the pass stops right after the last module needed (the rest of the network
  does not run);
- a forward pass that fails inside the network (images smaller than a kernel,
  a flattened size that does not match a linear layer) is reported as a
  ``ValueError`` naming the layer, the shape it received and the input size
  the network needs (:func:`forward_error`).

The default features of a network (no layer named) follow one rule
(:func:`default_features`): timm's ``forward_head(forward_features(x),
pre_logits=True)`` when the model has that interface; else, for a
classification network whose last operation is a :class:`torch.nn.Linear`
classifier (named ``fc``, ``classifier``, ``head``, ``heads`` or
``last_linear``, or inside a module of that name: the torchvision ResNet,
DenseNet, VGG, MobileNet, EfficientNet, ConvNeXt, RegNet, Swin and ViT
layouts), the input of that classifier, i.e. the pooled penultimate features;
else the network's output, flattened.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "CLASSIFIER_NAMES",
    "LayerFeatures",
    "check_layer_names",
    "default_features",
    "forward_error",
    "global_pool",
]

#: Names of the module (or of an enclosing module) that marks a network's last
#: linear layer as its classifier, whose input are the penultimate features.
CLASSIFIER_NAMES = ("fc", "classifier", "head", "heads", "last_linear")

_POOLINGS = ("avg", "max", "avgmax")
# Modules that may follow the classifier without changing what it computes.
_PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Flatten)


class _StopForward(Exception):
    """Raised by the last hook needed, to skip the rest of the forward pass."""


def global_pool(output, pooling: str, name: str) -> torch.Tensor:
    """Reduce a module's output to one float32 row per sample.

    Parameters
    ----------
    output : torch.Tensor
        ``(N, C, H, W)`` maps are pooled over ``H`` and ``W``; ``(N, D)``
        vectors are kept as they are.
    pooling : {"avg", "max", "avgmax"}
        The mean, the maximum, or both concatenated (means first).
    name : str
        The module's name, for error messages.

    Returns
    -------
    features : torch.Tensor of shape (N, d), dtype float32
        Differentiable with respect to ``output``.
    """
    if not isinstance(output, torch.Tensor):
        raise ValueError(
            f"Layer {name!r} returned a {type(output).__name__}, not a tensor; "
            "choose a module whose output is a tensor in the 'layers' parameter."
        )
    if output.ndim == 4:
        out = output.float()
        if pooling == "avg":
            return out.mean(dim=(2, 3))
        if pooling == "max":
            return out.amax(dim=(2, 3))
        return torch.cat([out.mean(dim=(2, 3)), out.amax(dim=(2, 3))], dim=1)
    if output.ndim == 2:
        return output.float()
    raise ValueError(
        f"Layer {name!r} returned an output of shape {tuple(output.shape)}; only "
        "(N, C, H, W) feature maps (pooled over H and W) and (N, D) vectors are "
        "supported."
    )


def _flat(out, what: str) -> torch.Tensor:
    if not isinstance(out, torch.Tensor) or out.ndim == 0:
        raise ValueError(
            f"{what} is a {type(out).__name__}"
            + (" of shape ()" if isinstance(out, torch.Tensor) else "")
            + ", not a batch of tensors; use the 'layers' parameter to name the "
            "module(s) whose output to use."
        )
    return out.reshape(out.shape[0], -1).float()


@dataclass(frozen=True)
class LayerFeatures:
    """How to read features out of a network: what to hook and how to pool.

    Parameters
    ----------
    layers : tuple of str or None
        Module names (``model.named_modules()``) whose outputs are pooled and
        concatenated, in this order. None: the default features, as ``source``
        says.
    pooling : {"avg", "max", "avgmax"}
        Global pooling of ``(N, C, H, W)`` outputs of ``layers``.
    source : {"timm", "classifier", "output"}
        With ``layers=None``: timm's pre-logits features, the input of the
        classifier ``classifier``, or the network's output.
    classifier : str or None
        Name of the classifier module when ``source="classifier"``.
    """

    layers: tuple[str, ...] | None
    pooling: str = "avg"
    source: str = "output"
    classifier: str | None = None

    def describe(self, pooled: dict[str, bool]) -> str:
        """What the features are, in words (``pooled``: group -> pooled map?)."""
        if self.layers is not None:
            maps = [n for n in self.layers if pooled.get(n)]
            text = f"the outputs of the modules {list(self.layers)!r}"
            if maps:
                text += f" ({self.pooling}-pooled over space: {maps!r})"
            return text
        if self.source == "timm":
            return (
                "forward_head(forward_features(x), pre_logits=True): the model's "
                "pooled penultimate features (timm's interface)"
            )
        if self.source == "classifier":
            return (
                f"the input of the classifier {self.classifier!r}: the pooled "
                f"penultimate features (layers={self.classifier!r} gives its "
                "output, the logits)"
            )
        return "the model's output, flattened"

    @property
    def groups(self) -> tuple[str, ...]:
        """Names of the column groups, in output order."""
        return self.layers if self.layers is not None else ("output",)

    def __call__(
        self, module: nn.Module, x: torch.Tensor, needed: Sequence[str] | None = None
    ) -> list[torch.Tensor | None]:
        """Features of network inputs ``x``: one ``(N, d)`` tensor per group.

        Autograd follows the caller's mode (no ``no_grad`` here). With
        ``needed`` (a subset of ``layers``), the pass stops after the last of
        them and the other groups are None.
        """
        if self.layers is None:
            return [self._default(module, x)]
        wanted = list(self.layers) if needed is None else list(needed)
        captured = self._run_hooked(module, x, wanted, stop=True)
        return [captured[name][0] if name in wanted else None for name in self.layers]

    def probe(self, module: nn.Module, x: torch.Tensor) -> list[tuple[str, int, bool]]:
        """``(group, width, pooled map?)`` of each group from one full pass.

        Unlike a feature pass, the whole network runs, so that a hooked module
        that runs more than once is found and refused.
        """
        if self.layers is None:
            return [("output", int(self._default(module, x).shape[1]), False)]
        captured = self._run_hooked(module, x, list(self.layers), stop=False)
        return [
            (name, int(captured[name][0].shape[1]), bool(captured[name][1]))
            for name in self.layers
        ]

    # ------------------------------------------------------------ helpers
    def _default(self, module, x) -> torch.Tensor:
        if self.source == "timm":
            out = module.forward_head(module.forward_features(x), pre_logits=True)
            return _flat(out, "The model's forward_head(..., pre_logits=True)")
        if self.source == "classifier":
            return _classifier_input(module, x, self.classifier)
        return _flat(module(x), "The model's output")

    def _run_hooked(self, module, x, wanted, *, stop):
        named = dict(module.named_modules())
        captured: dict[str, list] = {}
        runs = dict.fromkeys(wanted, 0)

        def make_hook(name):
            def hook(mod, args, output):
                runs[name] += 1
                if runs[name] == 1:
                    pooled = global_pool(output, self.pooling, name)
                    captured[name] = [pooled, output.ndim == 4]
                if stop and len(captured) == len(wanted):
                    raise _StopForward

            return hook

        handles = [named[n].register_forward_hook(make_hook(n)) for n in wanted]
        try:
            module(x)
        except _StopForward:
            pass
        finally:
            for handle in handles:
                handle.remove()
        for name in wanted:
            if runs[name] != 1:
                raise ValueError(
                    f"Layer {name!r} ran {runs[name]} times in one forward pass; "
                    "choose modules that run exactly once in the 'layers' parameter."
                )
        return captured


def check_layer_names(
    module: nn.Module, layers, owner: str = "TorchFeatureExtractor"
) -> tuple[str, ...] | None:
    """Validate a ``layers`` parameter against ``module.named_modules()``."""
    if layers is None:
        return None
    names = [layers] if isinstance(layers, str) else layers
    if len(names) == 0 or not all(isinstance(n, str) for n in names):
        raise ValueError(
            f"The 'layers' parameter of {owner} must be None, a module name or a "
            f"non-empty list of module names. Got {layers!r} instead."
        )
    if len(set(names)) != len(names):
        raise ValueError(
            f"The 'layers' parameter of {owner} has duplicate names: {list(names)!r}."
        )
    known = dict(module.named_modules())
    unknown = [n for n in names if n not in known]
    if unknown:
        valid = [n for n in known if n]
        shown = ", ".join(repr(n) for n in valid[:8])
        more = f", ... ({len(valid)} in all)" if len(valid) > 8 else ""
        raise ValueError(
            f"The 'layers' parameter of {owner} names modules that the model does "
            f"not have: {unknown!r}. Valid names are those of "
            f"model.named_modules(), e.g. {shown}{more}."
        )
    return tuple(names)


def _classifier_input(module: nn.Module, x, classifier: str) -> torch.Tensor:
    """The input of ``classifier`` (flattened); the classifier itself never runs."""
    captured = []

    def pre_hook(mod, args):
        captured.append(args[0])
        raise _StopForward

    handle = module.get_submodule(classifier).register_forward_pre_hook(pre_hook)
    try:
        module(x)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if len(captured) != 1:
        raise ValueError(
            f"The classifier {classifier!r} of the model did not run in the forward "
            "pass; name the module(s) whose output to use in the 'layers' parameter."
        )
    return _flat(captured[0], f"The input of the classifier {classifier!r}")


def _is_classifier_name(name: str) -> bool:
    return any(part in CLASSIFIER_NAMES for part in name.split("."))


def default_features(module: nn.Module, x: torch.Tensor) -> LayerFeatures:
    """The default features of ``module`` (see the module docstring for the rule).

    Parameters
    ----------
    module : torch.nn.Module
        The network, in evaluation mode.
    x : torch.Tensor
        One batch of network input (a single sample is enough); the network runs
        once on it, without gradients, when it has no timm interface.

    Returns
    -------
    features : LayerFeatures
        With ``layers=None`` and ``source`` ``"timm"``, ``"classifier"`` or
        ``"output"``.
    """
    if all(
        callable(getattr(module, f, None)) for f in ("forward_features", "forward_head")
    ):
        return LayerFeatures(None, source="timm")
    order: list[tuple[str, nn.Module, object]] = []
    handles = []
    for name, sub in module.named_modules():
        if name and not any(True for _ in sub.children()):  # leaf modules
            handles.append(
                sub.register_forward_hook(
                    lambda mod, args, out, name=name: order.append((name, mod, out))
                )
            )
    try:
        with torch.no_grad():
            output = module(x)
    finally:
        for handle in handles:
            handle.remove()
    while order and isinstance(order[-1][1], _PASS_THROUGH):
        order.pop()
    if (
        order
        and isinstance(order[-1][1], nn.Linear)
        and _is_classifier_name(order[-1][0])
        and isinstance(output, torch.Tensor)
        and output.ndim == 2
        and output.shape[-1] == order[-1][1].out_features
    ):
        return LayerFeatures(None, source="classifier", classifier=order[-1][0])
    return LayerFeatures(None, source="output")


# ----------------------------------------------------- failing forward passes
def _failing_layer(run: Callable, module: nn.Module, x: torch.Tensor):
    """Re-run ``run(x)`` and return ``(name, module, input shapes)`` of the
    innermost module that was running when it failed, or None."""
    stack: list[tuple[str, nn.Module, list]] = []
    failed: list = []
    handles = []

    def pre(name):
        def hook(mod, args):
            shapes = [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]
            stack.append((name, mod, shapes))

        return hook

    def post(mod, args, out):
        if stack:
            stack.pop()

    for name, sub in module.named_modules():
        if name:
            handles.append(sub.register_forward_pre_hook(pre(name)))
            handles.append(sub.register_forward_hook(post))
    try:
        with torch.no_grad():
            run(x)
    except Exception:  # the error being explained
        if stack:
            failed.append(stack[-1])
    finally:
        for handle in handles:
            handle.remove()
    return failed[0] if failed else None


def _runs(run: Callable, x: torch.Tensor) -> bool:
    try:
        with torch.no_grad():
            run(x)
    except Exception:  # any failure means "this size does not work"
        return False
    return True


def _working_size(run, x, *, grow: bool, hint: float | None) -> int | None:
    """A square input size on which ``run`` works: the smallest one above the
    current size (``grow``), or the one nearest ``hint``."""
    _, c, h, w = x.shape
    current = min(h, w)

    def trial(s):
        return _runs(run, x.new_zeros((1, c, s, s)))

    if grow:
        low, high = current, None
        s = max(current * 2, 8)
        while s <= 1024:
            if trial(s):
                high = s
                break
            low, s = s, s * 2
        if high is None:
            return None
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (low, mid) if trial(mid) else (mid, high)
        return high
    if hint is None or not math.isfinite(hint) or hint < 1:
        return None
    centre = round(hint)
    for delta in (0, 1, -1, 2, -2, 3, -3, 4, -4):
        if centre + delta >= 1 and trial(centre + delta):
            return centre + delta
    return None


def forward_error(
    run: Callable, module: nn.Module, x: torch.Tensor, exc: Exception, hint: str = ""
) -> ValueError:
    """Explain a forward pass that failed inside the network.

    Parameters
    ----------
    run : callable
        ``run(x)`` repeats the failing pass (e.g. ``module`` or a
        :class:`LayerFeatures` call).
    module : torch.nn.Module
        The network, whose modules are inspected.
    x : torch.Tensor
        The network input that failed; only its first sample is re-run.
    exc : Exception
        The error raised.
    hint : str, default=""
        What the caller's user can do, appended to the message (e.g. which
        parameter sets the input size).

    Returns
    -------
    error : ValueError
        Names the failing layer, the shape it received and, for convolution,
        pooling and linear layers, the input size the network needs.
    """
    x1 = x[:1].detach()
    found = _failing_layer(run, module, x1)
    where = "the network"
    if found is not None:
        name, mod, shapes = found
        shape = shapes[0] if shapes else "?"
        where = f"layer {name!r} ({type(mod).__name__}), which received shape {shape}"
    message = f"The forward pass failed in {where}: {str(exc).rstrip('.')}."
    spatial = x1.ndim == 4
    needs = ""
    if found is not None and spatial:
        _, mod, shapes = found
        if isinstance(mod, nn.Linear) and shapes:
            got = math.prod(shapes[0][1:])
            hint_size = min(x1.shape[-2:]) * math.sqrt(mod.in_features / max(got, 1))
            size = _working_size(run, x1, grow=False, hint=hint_size)
            needs = (
                f" The layer expects {mod.in_features} input features, i.e. "
                "network inputs of another size than "
                f"{tuple(x1.shape[-2:])}"
                + (f"; it works with {size} x {size} inputs." if size else ".")
            )
        elif getattr(mod, "kernel_size", None) is not None:  # convolution, pooling
            size = _working_size(run, x1, grow=True, hint=None)
            kernel = getattr(mod, "kernel_size", None)
            needs = (
                f" The network inputs, {x1.shape[-2]} x {x1.shape[-1]} pixels, are "
                f"too small for this layer (kernel {kernel})"
                + (
                    f": it needs inputs of at least {size} x {size} pixels."
                    if size
                    else "."
                )
            )
    elif found is not None and isinstance(found[1], nn.Linear):
        mod, shapes = found[1], found[2]
        needs = (
            f" The layer expects {mod.in_features} input features; it received "
            f"{shapes[0][-1] if shapes else '?'}."
        )
    return ValueError(message + needs + (f" {hint}" if hint else ""))
