"""Sketch-RNN (Ha & Eck 2017) in PyTorch: its hyper-parameters, the model and its losses.

A bidirectional LSTM encoder reads a drawing into a latent code z; an autoregressive LSTM decoder,
started from z, outputs for each next point a mixture of bivariate normals over its offset and a
distribution over the three pen states. The losses are the paper's: the reconstruction loss L_R
(the mixture's negative log-likelihood plus the pen's cross-entropy, over N_max) and the KL loss.

The encoder reads only the real points of each drawing without packing: the forward direction
reads the padded batch and is read out at each drawing's last point; the backward direction reads
each drawing reversed within its own length. The recurrent cells are in cells.py.

Where this project departs from magenta's sketch_rnn (the reference), a Config field names the
choice; REFERENCE holds the reference's values of them all (make_config(faithful=True), `--set
faithful=true`). benchmarks/README.md lists every difference and what it costs.
"""

import math
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from .cells import CELLS, make_cell

LOG_2PI = math.log(2 * math.pi)
RHO_LIMIT = 1 - 1e-4  # keeps 1 - rho^2 away from 0
BATCHINGS = ("bucketed", "reference")  # the values of Config.batching
OUTPUT_INITS = ("torch", "glorot")  # the values of Config.output_init
# The faithful mode's log-sigma clamp: a guard against float32 overflow only. A sigma of e^-20 is
# 1e-7 of the data's scale, far below its resolution (offsets are whole units, the scale about 40
# of them); the training metrics count every value it changes.
LOG_SIGMA_GUARD = 20.0
PRECISIONS = ("fp32", "bf16")


@dataclass
class Config:
    """Every hyper-parameter of a model and its training run; saved inside each checkpoint."""

    categories: tuple = ()
    enc_size: int = 256
    dec_size: int = 512
    z_size: int = 128
    num_mixture: int = 20
    cell: str = "layer_norm"  # one of CELLS
    recurrent_dropout: float = 0.1  # drop rate of the cell's candidate (layer_norm cell only)
    output_dropout: float = 0.0  # drop rate of the decoder's outputs before the mixture layer (the reference's option, off)
    conditional: bool = True  # False: decoder only, no encoder, no z
    batch_size: int = 100
    max_seq_len: int = 250  # longer drawings are dropped; samples stop here
    simplify_epsilon: float = 0.0  # not in the reference: RDP-simplify every drawing as it is loaded (0: as the file has it)
    lr: float = 1e-3
    lr_decay: float = 0.9999
    min_lr: float = 1e-5
    grad_clip: float = 1.0  # by value, as the reference
    kl_weight: float = 0.5
    kl_weight_start: float = 0.01
    kl_decay_rate: float = 0.99995
    kl_tolerance: float = 0.2
    random_scale: float = 0.15
    augment_stroke_prob: float = 0.1
    augment_mirror_prob: float = 0.0  # not in the reference: mirror drawings left to right
    ema_decay: float = 0.0  # not in the reference: validate and keep a moving average of the weights (0: off)
    eval_every: int = 500
    # Where the reference differs (REFERENCE holds its values):
    batching: str = "bucketed"  # "bucketed": drawings of similar length, padded to the batch's longest + 1 (faster;
    # the pen loss sees about a tenth of the steps after each drawing's end); "reference": drawn uniformly, padded to N_max
    log_sigma_limit: float = 7.0  # the mixture's log-sigma is clamped to +-this (the reference has no clamp)
    layer_norm_eps: float = 1e-5  # the layer_norm cell's epsilon (the reference's: 1e-3)
    output_init: str = "torch"  # the output layer's initial weights: nn.Linear's, or "glorot" (the reference's, bias too)
    density_epsilon: float = 0.0  # training's L_s is -log(density + this): 0 as the paper writes it, 1e-6 as the reference
    precision: str = "fp32"  # not in the reference: "bf16" runs the training passes' matmuls in bfloat16

    def __post_init__(self):
        # --set and foreign checkpoints reach here unchecked; a bad value would otherwise fail
        # far from its cause (a division by zero, or NaN reported as a diverged run).
        at_least_1 = (lambda v: v >= 1, "at least 1")
        fraction = (lambda v: 0 <= v < 1, "at least 0 and below 1")
        probability = (lambda v: 0 <= v <= 1, "between 0 and 1")
        rate = (lambda v: 0 < v <= 1, "above 0 and at most 1")
        non_negative = (lambda v: v >= 0, "at least 0")
        rules = {
            "cell": (lambda v: v in CELLS, f"one of {', '.join(CELLS)}"),
            "batching": (lambda v: v in BATCHINGS, f"one of {', '.join(BATCHINGS)}"),
            "output_init": (lambda v: v in OUTPUT_INITS, f"one of {', '.join(OUTPUT_INITS)}"),
            "log_sigma_limit": (lambda v: v > 0, "above 0"),
            "layer_norm_eps": (lambda v: v > 0, "above 0"),
            "density_epsilon": (lambda v: v >= 0, "at least 0"),
            "precision": (lambda v: v in PRECISIONS, f"one of {', '.join(PRECISIONS)}"),
            **dict.fromkeys(["enc_size", "dec_size", "z_size", "num_mixture", "batch_size", "max_seq_len",
                             "eval_every"], at_least_1),
            **dict.fromkeys(["recurrent_dropout", "output_dropout", "ema_decay", "random_scale"], fraction),
            **dict.fromkeys(["augment_stroke_prob", "augment_mirror_prob"], probability),
            **dict.fromkeys(["lr_decay", "kl_decay_rate"], rate),
            **dict.fromkeys(["kl_weight", "kl_weight_start", "kl_tolerance", "simplify_epsilon"], non_negative),
            "lr": (lambda v: v > 0, "above 0"),
            "grad_clip": (lambda v: v > 0, "above 0"),
            "min_lr": (lambda v: 0 <= v <= self.lr, "between 0 and lr"),
        }
        # inf passes some rules above and would fail only steps later, as a "diverged" run.
        rules.update({f.name: (math.isfinite, "a finite number") for f in fields(self)
                      if f.type is float and not math.isfinite(getattr(self, f.name))})
        broken = [f"{name}={getattr(self, name)!r} (must be {requirement})"
                  for name, (ok, requirement) in rules.items() if not ok(getattr(self, name))]
        if broken:
            raise ValueError(f"invalid settings: {', '.join(broken)}")

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        values = dict(values)
        values["categories"] = tuple(values.get("categories", ()))
        return cls(**values)

    def to_dict(self):
        values = asdict(self)
        values["categories"] = list(self.categories)
        return values

    @property
    def faithful(self):
        """Whether every setting of REFERENCE has the reference's value."""
        return all(getattr(self, key) == value for key, value in REFERENCE.items())

    def lr_at(self, step):
        return (self.lr - self.min_lr) * self.lr_decay**step + self.min_lr

    def kl_weight_at(self, step):
        return self.kl_weight - (self.kl_weight - self.kl_weight_start) * self.kl_decay_rate**step


PRESETS = {
    # The paper's and the reference's defaults.
    "paper": dict(enc_size=256, dec_size=512, z_size=128, num_mixture=20, batch_size=100),
    # Small enough to learn a category on two CPU cores in about an hour.
    "cpu": dict(enc_size=128, dec_size=256, z_size=64, num_mixture=20, batch_size=100),
}


# The faithful mode: the reference's choice wherever this project's default departs from it.
REFERENCE = dict(batching="reference", log_sigma_limit=LOG_SIGMA_GUARD, layer_norm_eps=1e-3, output_init="glorot",
                 density_epsilon=1e-6)


def make_config(preset="cpu", faithful=False, **overrides):
    """The preset's config, with REFERENCE's settings when `faithful`, and `overrides` over both."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset '{preset}' (choose from {', '.join(PRESETS)})")
    config = replace(Config(), **{**PRESETS[preset], **(REFERENCE if faithful else {}), **overrides})
    if faithful and config.cell == "lstm" and config.recurrent_dropout > 0:
        # nn.LSTM's fused kernel (the fused cell's reason to be) has no place for a mask on the
        # candidate; a cell that masks it must run its steps one by one, as the layer-norm cell does.
        raise ValueError("the faithful mode trains with the reference's recurrent dropout, which the fused lstm cell "
                         "cannot apply; use the layer_norm cell (the reference's LayerNormLSTMCell, with the same "
                         "dropout) or recurrent_dropout=0 (the reference's use_recurrent_dropout=False)")
    return config


# ---------------------------------------------------------------------------------------------
# The model


def reverse_within_length(x, lengths):
    """Reverse each sequence of x (B, T, F) within its own length; padding stays at the end."""
    steps = torch.arange(x.shape[1], device=x.device)
    index = (lengths[:, None] - 1 - steps[None]) % x.shape[1]
    index = torch.where(steps[None] < lengths[:, None], index, steps[None])
    return torch.gather(x, 1, index[:, :, None].expand_as(x))


class SketchRNN(nn.Module):
    """The encoder (encode), the latent code z, and the decoder (decode; decode_step for sampling),
    whose outputs split_outputs turns into the mixture's and the pen's parameters."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        c = config
        if c.conditional:
            # The encoder's two directions, forwards and backwards, are the two groups of one cell.
            self.enc = make_cell(c, 5, c.enc_size, groups=2)
            self.to_mu = nn.Linear(2 * c.enc_size, c.z_size)
            self.to_sigma_hat = nn.Linear(2 * c.enc_size, c.z_size)
            self.z_to_state = nn.Linear(c.z_size, 2 * c.dec_size)
            for layer in (self.to_mu, self.to_sigma_hat, self.z_to_state):
                nn.init.normal_(layer.weight, std=0.001)
                nn.init.zeros_(layer.bias)
        self.dec = make_cell(c, 5 + (c.z_size if c.conditional else 0), c.dec_size)
        self.out = nn.Linear(c.dec_size, 6 * c.num_mixture + 3)
        if c.output_init == "glorot":
            # TensorFlow's default for both: Glorot uniform, a vector's fans both its length.
            nn.init.xavier_uniform_(self.out.weight)
            bound = math.sqrt(3 / self.out.bias.numel())
            nn.init.uniform_(self.out.bias, -bound, bound)
        self.register_state_dict_post_hook(save_names)
        self.register_load_state_dict_pre_hook(load_names)

    def low_precision(self, device):
        """With precision "bf16", a training pass runs the cells' and the output layer's matmuls in
        bfloat16 (autocast); the latent code, the mixture, the losses, validation and sampling stay
        in float32."""
        return torch.autocast(device.type, torch.bfloat16, enabled=self.training and self.config.precision == "bf16")

    # -- encoder and latent code --------------------------------------------------------------

    def encode(self, strokes, lengths, generator=None):
        """strokes (B, T, 5) without the start token, real points first -> z, mu, sigma_hat.
        The encoder's last outputs within each drawing, forwards and backwards, give the normal
        that z is drawn from: z = mu + exp(sigma_hat / 2) * N(0, I)."""
        b = strokes.shape[0]
        last = (lengths - 1).clamp(min=0)
        rows = torch.arange(b, device=strokes.device)
        zeros = strokes.new_zeros(2, b, self.config.enc_size)
        with self.low_precision(strokes.device):
            out, _ = self.enc(torch.stack([strokes, reverse_within_length(strokes, lengths)]), (zeros, zeros),
                              generator=generator)
        h = torch.cat([out[0, rows, last], out[1, rows, last]], dim=1).float()
        mu = self.to_mu(h)
        sigma_hat = self.to_sigma_hat(h)
        eps = torch.randn(mu.shape, device=mu.device, generator=generator)
        z = mu + torch.exp(sigma_hat / 2) * eps
        return z, mu, sigma_hat

    # -- decoder ------------------------------------------------------------------------------

    def initial_state(self, z, batch_size, device):
        """The decoder's first state: tanh of a projection of z, or zeros without z."""
        h_size = self.config.dec_size
        if z is None:
            zeros = torch.zeros(batch_size, h_size, device=device)
            return zeros, zeros
        h, c = torch.tanh(self.z_to_state(z)).split(h_size, dim=1)
        return h.contiguous(), c.contiguous()

    def decode(self, strokes, z, state, generator=None):
        """strokes (B, T, 5), z (B, N_z) or None, state ((B, H), (B, H)) -> raw outputs
        (B, T, 6M + 3), state. Step t reads [strokes[:, t], z]."""
        with self.low_precision(strokes.device):
            out, (h, c) = self.dec(strokes[None], (state[0][None], state[1][None]), None if z is None else z[None],
                                   generator)
            out, state = out[0], (h[0].float(), c[0].float())
            if self.training and self.config.output_dropout > 0:
                # Not F.dropout, which can only draw from torch's global generator.
                keep = 1 - self.config.output_dropout
                out = out * torch.rand(out.shape, device=out.device, generator=generator).lt_(keep).div_(keep)
            raw = self.out(out)
        return raw.float(), state

    def decode_step(self, row, z, state):
        """One step for sampling: row (B, 5), z (B, N_z) or None -> raw outputs (B, 6M + 3), state.
        decode with T = 1 gives the same, with more overhead per step."""
        inputs = row if z is None else torch.cat([row, z], dim=1)
        h, c = self.dec.step(inputs[None], (state[0][None], state[1][None]))
        return self.out(h[0]), (h[0], c[0])

    def forward(self, batch, lengths, generator=None):
        """batch (B, T + 1, 5) with the start token; returns the mixture parameters for the T
        targets batch[:, 1:], and mu, sigma_hat (None when unconditional). `generator` draws all
        of the pass's random numbers (z's noise, dropout masks); None: torch's global one."""
        targets = batch[:, 1:]
        z = mu = sigma_hat = None
        if self.config.conditional:
            z, mu, sigma_hat = self.encode(targets, lengths, generator)
        state = self.initial_state(z, batch.shape[0], batch.device)
        raw, _ = self.decode(batch[:, :-1], z, state, generator)
        return split_outputs(raw, self.config), mu, sigma_hat


# Checkpoints name the fused cell's encoder directions (its groups) enc_fwd and enc_bwd, two
# nn.LSTMs; state_dict and load_state_dict translate (named_parameters keeps the module's names).
CHECKPOINT_NAMES = {"enc.group.0.": "enc_fwd.", "enc.group.1.": "enc_bwd."}


def rename_keys(state_dict, prefix, names):
    """Rename, in place and in order, each key prefix + old... to prefix + new... ({old: new})."""
    items = list(state_dict.items())
    state_dict.clear()
    for key, value in items:
        for old, new in names.items():
            if key.startswith(prefix + old):
                key = prefix + new + key[len(prefix + old):]
                break
        state_dict[key] = value


def save_names(module, state_dict, prefix, local_metadata):
    rename_keys(state_dict, prefix, CHECKPOINT_NAMES)


def load_names(module, state_dict, prefix, *args):
    rename_keys(state_dict, prefix, {new: old for old, new in CHECKPOINT_NAMES.items()})


# ---------------------------------------------------------------------------------------------
# Output distribution and losses


def split_outputs(raw, config):
    """Raw decoder outputs (..., 6M + 3) -> dict of mixture and pen parameters (log space), the
    log-sigmas clamped to +-config.log_sigma_limit; "log_sigma_clamped" (...) counts, per step, the
    values (of 2M) that the clamp changed."""
    m, limit = config.num_mixture, config.log_sigma_limit
    pen_logits = raw[..., :3]
    pi_logits, mu_x, mu_y, log_sx, log_sy, rho_raw = raw[..., 3:].split(m, dim=-1)
    with torch.no_grad():
        clamped = (log_sx.abs() > limit).sum(dim=-1) + (log_sy.abs() > limit).sum(dim=-1)
    return {
        "log_pi": F.log_softmax(pi_logits, dim=-1),
        "mu_x": mu_x,
        "mu_y": mu_y,
        "log_sigma_x": log_sx.clamp(-limit, limit),
        "log_sigma_y": log_sy.clamp(-limit, limit),
        "rho": torch.tanh(rho_raw) * RHO_LIMIT,
        "pen_logits": pen_logits,
        "log_sigma_clamped": clamped,
    }


def log_sigma_clamp_counts(params, targets):
    """(values the log-sigma clamp changed, values) at the real points of targets, where L_s reads
    them: a tensor of two counts."""
    real = targets[..., 4] == 0
    return torch.stack([params["log_sigma_clamped"][real].sum(), real.sum() * 2 * params["mu_x"].shape[-1]])


def mixture_log_density(params, dx, dy):
    """log sum_j pi_j N(dx, dy | mu_j, sigma_j, rho_j), computed in log space."""
    zx = (dx[..., None] - params["mu_x"]) * torch.exp(-params["log_sigma_x"])
    zy = (dy[..., None] - params["mu_y"]) * torch.exp(-params["log_sigma_y"])
    rho = params["rho"]
    one_minus_rho2 = 1 - rho * rho
    log_normal = (
        -LOG_2PI
        - params["log_sigma_x"]
        - params["log_sigma_y"]
        - 0.5 * torch.log(one_minus_rho2)
        - (zx * zx + zy * zy - 2 * rho * zx * zy) / (2 * one_minus_rho2)
    )
    return torch.logsumexp(params["log_pi"] + log_normal, dim=-1)


def reconstruction_loss(params, targets, n_max, density_epsilon=0.0):
    """L_R = (L_s + L_p) / n_max summed per drawing, averaged over the batch.

    L_s: -log density of the offsets of the real points (targets with p3 = 0); with
    `density_epsilon`, -log(density + density_epsilon), as the reference computes it.
    L_p: pen cross-entropy over every target step given (all T steps).
    Returns (L_R, L_s, L_p) as batch means, each already divided by n_max.
    """
    real = targets[..., 4] == 0
    log_density = mixture_log_density(params, targets[..., 0], targets[..., 1])
    if density_epsilon > 0:
        log_density = torch.logaddexp(log_density, torch.tensor(math.log(density_epsilon), dtype=log_density.dtype,
                                                                 device=log_density.device))
    l_s = -(log_density * real).sum(dim=1) / n_max
    pen_target = targets[..., 2:5].argmax(dim=-1)
    pen_nll = F.cross_entropy(params["pen_logits"].transpose(1, 2), pen_target, reduction="none")
    l_p = pen_nll.sum(dim=1) / n_max
    return (l_s + l_p).mean(), l_s.mean(), l_p.mean()


def kl_loss(mu, sigma_hat):
    """L_KL = -0.5 mean(1 + sigma_hat - mu^2 - exp(sigma_hat)) over batch and z dims."""
    return -0.5 * torch.mean(1 + sigma_hat - mu * mu - torch.exp(sigma_hat))


def total_loss(config, l_r, l_kl, kl_weight):
    if l_kl is None:
        return l_r
    return l_r + kl_weight * torch.clamp(l_kl, min=config.kl_tolerance)
