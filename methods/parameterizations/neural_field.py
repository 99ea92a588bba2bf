"""DDiF's parameterization: every synthetic instance is a small SIREN neural field.

Shin et al., "Distilling Dataset into Neural Field" (DDiF, ICLR 2025). A synthetic instance is
x̃_j = F_{ψ_j}(C), a field evaluated on the coordinate grid C ⊂ [−1, 1]ⁿ (Eq. 1); the set is
{(F_{ψ_j}, ỹ_j)} with one-hot labels. Under the storage budget of IPC real instances per class
a field of b = d(n+1) + (L−1)·d(d+1) + m(d+1) scalars buys ⌊IPC · |x| / b⌋ instances per class
(Table 8), and because C can be re-sampled, a set distilled at one resolution decodes at any
other one (Sec. 4.3, Table 13).

Initialisation is the warm-up of Sec. 3.3 / App. B.5: each field is fitted to a random real
instance of its class by minimising ‖F_ψ(C) − x‖² (Eq. 2) with Adam (lr 5e-4, 5,000
iterations) — all fields at once, in one batched computation. The fitted weights are cached as
``ddif_warmup`` artifacts (the distillation's artifact cache; when none was given — a run
outside the orchestrator — this node's cache :func:`methods.artifacts.node_cache`,
``$DDX_CACHE/artifacts``, the same verified, locked cache the orchestrator's store keeps its
node-local copies in) keyed by the SHA-256 of the real instances, the field configuration and the
warm-up settings; the initial weights are seeded by that key too, so
every worker that runs the warm-up gets the same fields (each Train worker runs the whole
warm-up; the cache makes repeats free).
"""

from __future__ import annotations

import hashlib
import json

import torch
from torch import Tensor, nn

from methods.artifacts import node_cache
from methods.parameterizations.base import ParamConfig, Parameterization
from methods.parameterizations.options import NeuralFieldOptions, SetShape, field_scalars
from methods.parameterizations.siren import decode_fields, init_siren

WARMUP_VERSION = "siren-warmup-v1"


#: DDiF Table 9: the fields' learning rate (Adam) under trajectory matching, per (dataset, IPC)
#: (CIFAR-10 IPC 1/10 and CIFAR-100: 1e-3; everything else in the table, e.g. CIFAR-10 IPC 50 and
#: ImageNet subsets, 1e-4)
TM_OBJECTIVES = ("tm", "mtt")
TM_FIELD_LR_HIGH = 1e-3
TM_FIELD_LR = 1e-4
FIELD_LR_DEFAULT = 5e-5  # DM and DC (Table 9a/b, ImageNet-Subset 128)


def field_lr(objective: str, dataset: str | None, ipc: int) -> float:
    """DDiF Table 9's field learning rate for ``objective`` on ``dataset`` at ``ipc``.

    TM: 1e-3 for CIFAR-10 at IPC 1 and 10 and for CIFAR-100, 1e-4 otherwise; DM, DC and
    objectives DDiF does not list (e.g. ``cfm``): 5e-5.
    """
    if objective not in TM_OBJECTIVES:
        return FIELD_LR_DEFAULT
    if dataset == "cifar100" or (dataset == "cifar10" and ipc in (1, 10)):
        return TM_FIELD_LR_HIGH
    return TM_FIELD_LR


#: the artifact kind of cached warm-ups
WARMUP_KIND = "ddif_warmup"


class NeuralField(Parameterization):
    """Instances as SIREN fields with stacked weights ``weight_k (N, out, in)``, ``bias_k (N, out)``."""

    resize_mode = "coordinates"

    def __init__(self, config: ParamConfig) -> None:
        super().__init__(config)
        self.opts: NeuralFieldOptions = config.options
        s = config.shape
        self.warmup_mse: Tensor | None = None  # per-field MSE after warm-up (normalised units)
        self.warmup_cached: bool | None = None
        layers = init_siren(
            self.num_instances, s.dims, self.opts.nf_width, self.opts.nf_depth, s.channels, self.opts.nf_w0,
            generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
        for k, (w, b) in enumerate(layers):
            self.register_parameter(f"weight_{k}", nn.Parameter(w))
            self.register_parameter(f"bias_{k}", nn.Parameter(b))

    # --- budget ------------------------------------------------------------------------
    @classmethod
    def scalars_per_instance(cls, shape: SetShape, options: NeuralFieldOptions) -> int:
        """b = d(n+1) + (L−1)·d(d+1) + m(d+1) (DDiF Table 8), m = channels, n = spatial dims."""
        return field_scalars(shape, options)

    # --- decoding ----------------------------------------------------------------------
    def layers(self, index: Tensor | None = None) -> list[tuple[Tensor, Tensor]]:
        """The stacked ``(W, b)`` of every layer, restricted to the rows ``index`` if given."""
        out = []
        for k in range(self.opts.nf_depth + 1):  # L sine layers, then the output layer
            w, b = getattr(self, f"weight_{k}"), getattr(self, f"bias_{k}")
            if index is not None:
                w, b = w.index_select(0, index), b.index_select(0, index)
            out.append((w, b))
        return out

    def decode(self, resolution: int | None = None, index: Tensor | None = None) -> Tensor:
        """Instances ``(n, C, r, …, r)`` (``dims`` axes): every field on the grid C of r points per axis.

        Re-sampling C is how DDiF decodes at a resolution never seen in distillation (Sec. 4.3).
        """
        r = self.config.shape.resolution if resolution is None else int(resolution)
        size = [r] * self.config.shape.dims
        return decode_fields(self.layers(index), size, self.opts.nf_w0_first, self.opts.nf_w0)

    def optim_defaults(self, objective: str) -> dict[str, str | float]:
        """Adam at DDiF's field learning rates (Table 9, :func:`field_lr`: 5e-5 for DM/DC; TM 1e-3 on
        CIFAR-10 IPC 1/10 and CIFAR-100, 1e-4 otherwise).

        Objectives DDiF does not list (e.g. ``cfm``) get 5e-5 too; the objective's betas and
        schedule are kept. A sweep's ``lr_images``/``optimizer`` override both.
        """
        s = self.config.shape
        return {"optimizer": "adam", "lr": field_lr(objective, s.dataset, s.ipc)}

    # --- warm-up (Eq. 2) ---------------------------------------------------------------
    def warmup_key(self, images: Tensor) -> str:
        """SHA-256 of the target instances, the field configuration and the warm-up settings."""
        h = hashlib.sha256()
        x = images.detach().to("cpu", torch.float32).contiguous()
        h.update(json.dumps(list(x.shape)).encode())
        h.update(x.numpy().tobytes())
        cfg = {
            "version": WARMUP_VERSION,
            "dims": self.config.shape.dims,
            "channels": self.config.shape.channels,
            "resolution": self.config.shape.resolution,
            "width": self.opts.nf_width,
            "depth": self.opts.nf_depth,
            "w0": self.opts.nf_w0,
            "w0_first": self.opts.nf_w0_first,
            "iterations": self.opts.warmup_iterations,
            "lr": self.opts.warmup_lr,
        }
        h.update(json.dumps(cfg, sort_keys=True).encode())
        return h.hexdigest()

    def init_from_real(self, images: Tensor) -> None:
        """Warm-up: fit field j to ``images[j]`` by MSE (Eq. 2), all fields batched; cached by content."""
        if images.shape[0] != self.num_instances:
            raise ValueError(f"warm-up needs one real instance per field ({self.num_instances}), got {images.shape[0]}")
        key = self.warmup_key(images)
        cache = None
        if self.opts.warmup_cache:  # no cache given (a run outside the orchestrator): this node's artifact cache
            cache = self.cache if self.cache is not None else node_cache()
        description = {"kind": WARMUP_KIND, "key": key}
        path = cache.find(WARMUP_KIND, description) if cache is not None else None
        if path is not None:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            self._load_fields(saved["state"])
            self.warmup_mse = saved["mse"]
            self.warmup_cached = True
            return
        gen = torch.Generator().manual_seed(int(key[:15], 16))
        s = self.config.shape
        fresh = init_siren(
            self.num_instances, s.dims, self.opts.nf_width, self.opts.nf_depth, s.channels, self.opts.nf_w0, gen
        )
        with torch.no_grad():
            for k, (w, b) in enumerate(fresh):
                getattr(self, f"weight_{k}").copy_(w)
                getattr(self, f"bias_{k}").copy_(b)
        o = self.opts
        self.warmup_mse = fit_fields(self.layers(), images, o.nf_w0_first, o.nf_w0, o.warmup_iterations, o.warmup_lr)
        self.warmup_cached = False
        if cache is not None:
            saved = {"state": {k: v.detach().cpu().clone() for k, v in self.instance_tensors().items()}}
            saved["mse"] = self.warmup_mse
            cache.get_or_create(WARMUP_KIND, description, lambda tmp: torch.save(saved, tmp))

    def _load_fields(self, state: dict[str, Tensor]) -> None:
        with torch.no_grad():
            for k, v in state.items():
                getattr(self, k).copy_(v)


def fit_fields(
    layers: list[tuple[Tensor, Tensor]], images: Tensor, w0_first: float, w0: float, iterations: int, lr: float
) -> Tensor:
    """Warm-up (DDiF Eq. 2): minimise Σ_j mean_c (F_{ψ_j}(c) − x_j(c))² with Adam, in place.

    ``layers`` are stacked leaf tensors (one row per field, ``requires_grad``), ``images`` the
    targets ``(N, C, *size)``. The loss is a sum of independent per-field terms, so every field
    follows its own Eq. 2 gradient (Adam is per parameter); each step is one batched decode.
    Returns each field's final MSE.
    """
    target = images.to(layers[0][0])
    size = list(target.shape[2:])
    params = [t for wb in layers for t in wb]
    opt = torch.optim.Adam(params, lr=lr)
    dims = tuple(range(1, target.dim()))
    with torch.enable_grad():
        for _ in range(iterations):
            opt.zero_grad(set_to_none=True)
            per_field = (decode_fields(layers, size, w0_first, w0) - target).pow(2).mean(dim=dims)
            per_field.sum().backward()
            opt.step()
    with torch.no_grad():
        return (decode_fields(layers, size, w0_first, w0) - target).pow(2).mean(dim=dims).cpu()
