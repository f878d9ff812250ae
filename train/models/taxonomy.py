"""The codec-taxonomy multi-task model (Chen et al., Interspeech 2025; its authors' W2V2-AASIST).

One wav2vec 2.0 front end, one shared trunk, one AASIST graph back end per task::

    wave (B, S) -> wav2vec 2.0 (fine-tuned)                  or cached frozen features
                -> (B, T, ssl_dim)
      trunk:    Linear(ssl_dim, 128) -> (B, 1, 128, T) -> max-pool 3x3 -> BN -> SELU
                -> 6 residual blocks, no time pooling -> BN -> SELU          x (B, 64, 42, T/3)
                -> attention weights w = conv1x1(64->128) -> SELU -> BN -> conv1x1(128->64)
                -> spectral nodes sum_t x softmax_t(w) (B, 42, 64), temporal nodes sum_f x softmax_f(w)
      per task: + the task's own positional embedding on the spectral nodes
                -> the full AASIST graph back end (:class:`~train.models.aasist.GraphBackEnd`,
                   pool ratios 0.5) -> (logits (B, C_task), readout (B, 160))

The node attention has no parameters of its own, so computing it once in the trunk equals the
authors' per-branch computation. The residual blocks and the graph back end are the ones of
:mod:`train.models.aasist`.

``forward`` keeps every ncst model's contract ``(logits, embedding)``: ``logits (B, sum C_task)``
is the heads' logits side by side in :attr:`TaxonomyModel.tasks` order (:meth:`split` cuts them
into a dict), ``embedding (B, 160 * n_tasks)`` their readouts side by side.

Front end, ``finetune=True`` (the authors' setup): :class:`TrainableW2V2` is part of the model,
trained with it and saved in its checkpoints; it returns the last hidden state of a wav2vec 2.0
cut to its first ``layer`` transformer layers (for XLS-R 300m, ``layer=24``: the authors' "last
layer" output, final layer norm included), with SpecAugment masking off (they call the model
with ``mask=False``) and layer drop off. ``finetune=False``: the model takes frozen features from
:class:`train.features.W2V2FrontEnd` (the feature cache), i.e. ``frontend=None``.
"""
from __future__ import annotations

import json
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..taxonomy import TASK_CLASSES, TaxonomyLoss, variant_tasks
from .aasist import GAT_DIMS, TEMPERATURES, GraphBackEnd, residual_encoder
from .w2v2_aasist import W2V_FILTS, W2V_POOL_RATIOS


class TrainableW2V2(nn.Module):
    """wav2vec 2.0 cut to ``layer`` transformer layers, trainable.

    ``forward(wave (B, S) at 16 kHz) -> (B, frames, hidden)``: the cut model's last hidden state.
    ``normalize``: per-utterance zero mean / unit variance first (the model's preprocessor).
    """

    def __init__(self, model: nn.Module, layer: int, *, normalize: bool = False):
        super().__init__()
        n_layers = len(model.encoder.layers)
        if not 1 <= layer <= n_layers:
            raise ValueError(f"w2v2 layer must be in 1..{n_layers}, got {layer}")
        model.encoder.layers = model.encoder.layers[:layer]
        model.config.num_hidden_layers = layer
        model.config.apply_spec_augment = False
        model.config.layerdrop = 0.0
        self.model = model
        self.layer = int(layer)
        self.normalize = bool(normalize)
        self.hidden_size = int(model.config.hidden_size)

    @classmethod
    def from_pretrained(cls, name_or_path: str, layer: int, *, normalize: bool | None = None,
                        weights: bool = True) -> "TrainableW2V2":
        """Offline, from a local directory or the Hugging Face cache (see :func:`train.features.resolve_model_dir`).

        ``weights=False`` builds the architecture from its config only (random weights), for
        loading a checkpoint that holds the fine-tuned weights anyway."""
        from transformers import Wav2Vec2Config, Wav2Vec2Model

        from ..features import resolve_model_dir

        model_dir = resolve_model_dir(name_or_path)
        if normalize is None:
            pre = model_dir / "preprocessor_config.json"
            normalize = bool(json.loads(pre.read_text()).get("do_normalize", True)) if pre.exists() else True
        if weights:
            model = Wav2Vec2Model.from_pretrained(str(model_dir))
        else:
            model = Wav2Vec2Model(Wav2Vec2Config.from_pretrained(str(model_dir)))
        return cls(model, layer, normalize=normalize)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            wave = (wave - wave.mean(dim=-1, keepdim=True)) / torch.sqrt(wave.var(dim=-1, keepdim=True, unbiased=False) + 1e-7)
        return self.model(wave).last_hidden_state


class SharedTrunk(nn.Module):
    """SSL features ``(B, T, ssl_dim)`` -> ``(nodes_S (B, proj_dim // 3, C), nodes_T (B, T', C))``,
    without positional embedding (each task adds its own)."""

    def __init__(self, ssl_dim: int, proj_dim: int = 128, filts: Sequence = W2V_FILTS):
        super().__init__()
        self.ssl_dim = int(ssl_dim)
        self.proj = nn.Linear(ssl_dim, proj_dim)
        self.first_bn = nn.BatchNorm2d(1)
        self.act = nn.SELU()
        self.encoder = residual_encoder(filts, pool=False)
        c = int(filts[-1][-1])
        self.channels = c
        self.n_spectral = proj_dim // 3
        self.enc_bn = nn.BatchNorm2d(c)
        self.attention = nn.Sequential(
            nn.Conv2d(c, 2 * c, kernel_size=1), nn.SELU(), nn.BatchNorm2d(2 * c), nn.Conv2d(2 * c, c, kernel_size=1)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 3 or x.shape[-1] != self.ssl_dim:
            raise ValueError(f"the taxonomy trunk expects features (batch, frames, {self.ssl_dim}), got {tuple(x.shape)}")
        x = self.proj(x).transpose(1, 2).unsqueeze(1)  # (B, 1, proj_dim, T)
        x = self.act(self.first_bn(F.max_pool2d(x, (3, 3))))
        x = self.act(self.enc_bn(self.encoder(x)))  # (B, C, proj_dim // 3, T // 3)
        w = self.attention(x)
        nodes_S = (x * torch.softmax(w, dim=-1)).sum(dim=-1).transpose(1, 2)
        nodes_T = (x * torch.softmax(w, dim=-2)).sum(dim=-2).transpose(1, 2)
        return nodes_S, nodes_T


class TaskBranch(nn.Module):
    """One task's positional embedding and AASIST graph back end: ``(logits (B, C), readout (B, 160))``."""

    def __init__(self, n_spectral: int, channels: int, n_classes: int, gat_dims: Sequence[int] = GAT_DIMS,
                 pool_ratios: Sequence[float] = W2V_POOL_RATIOS, temperatures: Sequence[float] = TEMPERATURES):
        super().__init__()
        self.pos_S = nn.Parameter(torch.randn(1, n_spectral, channels))
        self.backend = GraphBackEnd(channels, n_classes, gat_dims, pool_ratios, temperatures)

    def forward(self, nodes_S: torch.Tensor, nodes_T: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.backend(nodes_S + self.pos_S, nodes_T)


class TaxonomyModel(nn.Module):
    """Multi-task codec-taxonomy model of one ``variant`` (S_BIN ... M1, M2).

    ``forward(x)``: waveforms ``(B, S)`` when it has a ``frontend`` (fine-tuned), else SSL features
    ``(B, T, ssl_dim)``; returns ``(logits (B, sum C_task), embedding (B, 160 * n_tasks))``.
    ``criterion`` (:class:`train.taxonomy.TaxonomyLoss`) holds the task weights, so learnable
    weights are saved, restored and optimised with the model.
    """

    def __init__(self, variant: str = "M1", *, ssl_dim: int = 1024, frontend: nn.Module | None = None,
                 learnable_task_weights: bool = False, proj_dim: int = 128):
        super().__init__()
        self.variant = variant
        self.tasks = variant_tasks(variant)
        self.frontend = frontend
        if frontend is not None and int(frontend.hidden_size) != int(ssl_dim):
            raise ValueError(f"front end hidden size {frontend.hidden_size} != ssl_dim {ssl_dim}")
        self.trunk = SharedTrunk(ssl_dim, proj_dim)
        self.branches = nn.ModuleDict({
            t: TaskBranch(self.trunk.n_spectral, self.trunk.channels, len(TASK_CLASSES[t])) for t in self.tasks
        })
        self.criterion = TaxonomyLoss(self.tasks, learnable_task_weights)
        self.task_sizes = [len(TASK_CLASSES[t]) for t in self.tasks]
        self.embedding_dim = sum(b.backend.embedding_dim for b in self.branches.values())

    @property
    def takes_waveform(self) -> bool:
        return self.frontend is not None

    def split(self, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{task: (B, C_task)}`` from the side-by-side logits ``forward`` returns."""
        return dict(zip(self.tasks, torch.split(logits, self.task_sizes, dim=1)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.frontend is not None:
            if x.dim() != 2:
                raise ValueError(f"a fine-tuned taxonomy model takes waveforms (batch, samples), got {tuple(x.shape)}")
            x = self.frontend(x)
        nodes_S, nodes_T = self.trunk(x)
        outs = [self.branches[t](nodes_S, nodes_T) for t in self.tasks]
        return torch.cat([o[0] for o in outs], dim=1), torch.cat([o[1] for o in outs], dim=1)
