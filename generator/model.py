"""Sketch-RNN (Ha & Eck 2017) in PyTorch: a bidirectional LSTM encoder, a latent code z, and an
autoregressive LSTM decoder that outputs a mixture of bivariate normals for the next offset and
a distribution over the three pen states.

Two cells: the fused nn.LSTM ("lstm", fast) and a layer-normalised LSTM with recurrent dropout
("layer_norm", the reference's choice for small datasets). The encoder reads only the real
points of each drawing without packing: the forward direction reads the padded batch and is
read out at each drawing's last point; the backward direction reads each drawing reversed within
its own length.
"""

import math
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)
LOG_SIGMA_RANGE = (-7.0, 7.0)  # guards exp(sigma) against under/overflow over long runs
RHO_LIMIT = 1 - 1e-4  # keeps 1 - rho^2 away from 0
CPU_CHUNK_BYTES = 8 << 20  # gate pre-activations per chunk of steps on the CPU (see steps_per_chunk)


CELLS = ("layer_norm", "lstm")


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


def make_config(preset="cpu", **overrides):
    if preset not in PRESETS:
        raise ValueError(f"unknown preset '{preset}' (choose from {', '.join(PRESETS)})")
    return replace(Config(), **{**PRESETS[preset], **overrides})


VALUE_KINDS = {int: "an integer", float: "a number", str: "a word"}


def parse_overrides(assignments):
    """["recurrent_dropout=0.2", ...] -> {"recurrent_dropout": 0.2, ...}, typed as Config's fields."""
    types = {f.name: f.type for f in fields(Config) if f.name != "categories"}
    overrides = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep or key not in types:
            raise ValueError(f"cannot set '{assignment}': use KEY=VALUE with KEY one of {', '.join(types)}")
        kind = types[key]
        if kind is bool:
            if text not in ("true", "false"):
                raise ValueError(f"cannot set '{assignment}': {key} takes true or false")
            value = text == "true"
        else:
            try:
                value = kind(text)
            except ValueError:
                raise ValueError(f"cannot set '{assignment}': {key} takes {VALUE_KINDS[kind]}") from None
        overrides[key] = value
    return overrides


# ---------------------------------------------------------------------------------------------
# Cells


def steps_per_chunk(x, rows, hidden_size, steps):
    """How many of `steps` steps a cell runs at a time. On the CPU, a few: each chunk's gate
    pre-activations (rows x 4H per step) then stay under glibc's mmap threshold, so freed memory is
    reused from the heap instead of being unmapped and page-faulted in again (that was about 20%
    of a paper-preset step). Elsewhere, all steps."""
    if x.device.type != "cpu":
        return steps
    return max(1, CPU_CHUNK_BYTES // (rows * 4 * hidden_size * x.element_size()))


class FusedLSTM(nn.Module):
    """nn.LSTM over a whole sequence (teacher forcing), stepped one row at a time for sampling."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        # The reference's init: orthogonal recurrent weights per gate, forget-gate bias 1.0
        # (PyTorch's gate order: input, forget, candidate, output).
        nn.init.xavier_uniform_(self.lstm.weight_ih_l0)
        for gate in range(4):
            nn.init.orthogonal_(self.lstm.weight_hh_l0.data[gate * hidden_size:(gate + 1) * hidden_size])
        nn.init.zeros_(self.lstm.bias_hh_l0)
        nn.init.zeros_(self.lstm.bias_ih_l0)
        self.lstm.bias_ih_l0.data[hidden_size:2 * hidden_size] = 1.0

    def forward(self, x, state):
        """x (B, T, in), state (h, c) each (B, H) -> outputs (B, T, H), final state."""
        h, c = state
        h, c = h[None].contiguous(), c[None].contiguous()
        outputs = []
        for chunk in x.split(steps_per_chunk(x, x.shape[0], self.hidden_size, x.shape[1]), dim=1):
            out, (h, c) = self.lstm(chunk, (h, c))
            outputs.append(out)
        return torch.cat(outputs, dim=1), (h[0], c[0])


class LayerNormLSTM(nn.Module):
    """LSTM with layer normalisation of each gate and of the cell, and recurrent dropout on the
    candidate ("without memory loss"), as the reference's LayerNormLSTMCell.

    `groups` runs independent LSTMs side by side in one loop (the encoder's two directions):
    inputs (G, B, T, in), states (G, B, H).
    """

    def __init__(self, input_size, hidden_size, groups=1, dropout=0.1):
        super().__init__()
        self.hidden_size = hidden_size
        self.dropout = dropout
        self.w_ih = nn.Parameter(torch.empty(groups, input_size, 4 * hidden_size))
        self.w_hh = nn.Parameter(torch.empty(groups, hidden_size, 4 * hidden_size))
        self.gate_gain = nn.Parameter(torch.ones(groups, 1, 4, hidden_size))
        self.gate_bias = nn.Parameter(torch.zeros(groups, 1, 4, hidden_size))
        self.cell_gain = nn.Parameter(torch.ones(groups, 1, hidden_size))
        self.cell_bias = nn.Parameter(torch.zeros(groups, 1, hidden_size))
        for g in range(groups):
            nn.init.xavier_uniform_(self.w_ih.data[g])
            for gate in range(4):
                nn.init.orthogonal_(self.w_hh.data[g, :, gate * hidden_size:(gate + 1) * hidden_size])
        self.gate_bias.data[:, :, 1] = 1.0  # forget gate

    def project_inputs(self, x, static_proj=None):
        """x (G, B, T, n) -> (G, B, T, 4H): the input half of every gate, for all steps at once.
        x holds the first n inputs; static_proj (G, B, 4H) is the projection of the rest (forward's
        `static`), the same at every step."""
        g, b, t, n = x.shape
        x_proj = torch.bmm(x.reshape(g, b * t, n), self.w_ih[:, :n]).view(g, b, t, -1)
        # In place: bmm's backward needs its inputs, not its output.
        return x_proj if static_proj is None else x_proj.add_(static_proj[:, :, None])

    def step(self, x_proj, h, c, keep=None, w_hh=None):
        """One step from projected input (G, B, 4H) and state (G, B, H) each; `keep` is the
        candidate's recurrent-dropout mask (already divided by the keep rate), or None.
        `w_hh` replaces the recurrent weights (forward passes a detached copy, see there)."""
        gates = torch.baddbmm(x_proj, h, self.w_hh if w_hh is None else w_hh)
        shape = gates.shape
        gates = F.layer_norm(gates.view(*shape[:2], 4, self.hidden_size), (self.hidden_size,))
        gates = torch.addcmul(self.gate_bias, gates, self.gate_gain)
        i, f, j, o = gates.unbind(2)
        candidate = torch.tanh(j)
        if keep is not None:
            candidate = candidate * keep
        c = torch.addcmul(c * torch.sigmoid(f), torch.sigmoid(i), candidate)
        c_norm = torch.addcmul(self.cell_bias, F.layer_norm(c, (self.hidden_size,)), self.cell_gain)
        h = torch.tanh(c_norm) * torch.sigmoid(o)
        return h, c

    def dropout_masks(self, steps, like, generator=None):
        """Recurrent-dropout masks for `steps` steps, drawn in one call (one per step is slow),
        or Nones when not training."""
        if not (self.training and self.dropout > 0):
            return [None] * steps
        keep = 1 - self.dropout
        # rand < keep, not bernoulli_, which is several times slower on the CPU.
        return torch.rand(steps, *like.shape, device=like.device, generator=generator).lt_(keep).div_(keep).unbind(0)

    def forward(self, x, state, static=None, generator=None):
        """x (G, B, T, n) -> outputs (G, B, T, H), final state ((G, B, H), (G, B, H)).

        `static` (G, B, in - n) holds the last inputs when they are the same at every step (the
        decoder's z): they are projected once, not at every step (for the cpu preset's decoder,
        64 of its 69 inputs). `generator` draws the recurrent-dropout masks (None: torch's global one).

        The steps multiply by a detached w_hh, so the backward pass computes only the state's
        gradient step by step; w_hh's gradient is one large matmul per chunk of steps
        (RecurrentWeightGrad), instead of one small one per step added up.
        """
        h, c = state
        w_hh = self.w_hh.detach()
        static_proj = None if static is None else torch.bmm(static, self.w_ih[:, x.shape[-1]:])
        outputs = []
        # The projected inputs of all steps, and their gradient, would be tens of MB.
        for chunk in x.split(steps_per_chunk(x, x.shape[0] * x.shape[1], self.hidden_size, x.shape[2]), dim=2):
            inputs = []
            x_proj = RecurrentWeightGrad.apply(self.project_inputs(chunk, static_proj), self.w_hh, inputs)
            # unbind, not indexing: each index's backward would fill a whole zero tensor (O(T^2)).
            x_projs = x_proj.unbind(2)
            for x_proj, keep in zip(x_projs, self.dropout_masks(len(x_projs), h, generator)):
                inputs.append(h.detach())
                h, c = self.step(x_proj, h, c, keep, w_hh)
                outputs.append(h)
        return torch.stack(outputs, dim=2), (h, c)


class RecurrentWeightGrad(torch.autograd.Function):
    """Identity on the projected inputs (G, B, T, 4H) that adds w_hh's gradient in backward.

    The gradient reaching the projected inputs of step t is the gradient of that step's gates,
    so w_hh's gradient is sum_t h_{t-1}^T dgates_t: one matmul over all steps. `previous_h`
    is filled by the caller's loop with each step's input state (detached) before backward runs.
    """

    @staticmethod
    def forward(ctx, x_proj, w_hh, previous_h):
        ctx.previous_h = previous_h
        return x_proj.view_as(x_proj)

    @staticmethod
    def backward(ctx, grad):
        grad_w_hh = None
        if ctx.needs_input_grad[1]:
            g, b, t, gates = grad.shape
            h = torch.stack(ctx.previous_h, dim=2).reshape(g, b * t, -1)
            grad_w_hh = torch.bmm(h.transpose(1, 2), grad.reshape(g, b * t, gates))
        return grad, grad_w_hh, None


# ---------------------------------------------------------------------------------------------
# The model


def reverse_within_length(x, lengths):
    """Reverse each sequence of x (B, T, F) within its own length; padding stays at the end."""
    steps = torch.arange(x.shape[1], device=x.device)
    index = (lengths[:, None] - 1 - steps[None]) % x.shape[1]
    index = torch.where(steps[None] < lengths[:, None], index, steps[None])
    return torch.gather(x, 1, index[:, :, None].expand_as(x))


class SketchRNN(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        c = config
        dec_input = 5 + (c.z_size if c.conditional else 0)
        if c.conditional:
            if c.cell == "lstm":
                self.enc_fwd = FusedLSTM(5, c.enc_size)
                self.enc_bwd = FusedLSTM(5, c.enc_size)
            else:
                self.enc = LayerNormLSTM(5, c.enc_size, groups=2, dropout=c.recurrent_dropout)
            self.to_mu = nn.Linear(2 * c.enc_size, c.z_size)
            self.to_sigma_hat = nn.Linear(2 * c.enc_size, c.z_size)
            self.z_to_state = nn.Linear(c.z_size, 2 * c.dec_size)
            for layer in (self.to_mu, self.to_sigma_hat, self.z_to_state):
                nn.init.normal_(layer.weight, std=0.001)
                nn.init.zeros_(layer.bias)
        if c.cell == "lstm":
            self.dec = FusedLSTM(dec_input, c.dec_size)
        else:
            self.dec = LayerNormLSTM(dec_input, c.dec_size, groups=1, dropout=c.recurrent_dropout)
        self.out = nn.Linear(c.dec_size, 6 * c.num_mixture + 3)

    # -- encoder ------------------------------------------------------------------------------

    def encode(self, strokes, lengths, generator=None):
        """strokes (B, T, 5) without the start token, real points first -> z, mu, sigma_hat."""
        b = strokes.shape[0]
        last = (lengths - 1).clamp(min=0)
        rows = torch.arange(b, device=strokes.device)
        backward_input = reverse_within_length(strokes, lengths)
        if self.config.cell == "lstm":
            zeros = strokes.new_zeros(b, self.config.enc_size)
            fwd, _ = self.enc_fwd(strokes, (zeros, zeros))
            bwd, _ = self.enc_bwd(backward_input, (zeros, zeros))
        else:
            zeros = strokes.new_zeros(2, b, self.config.enc_size)
            out, _ = self.enc(torch.stack([strokes, backward_input]), (zeros, zeros), generator=generator)
            fwd, bwd = out[0], out[1]
        h = torch.cat([fwd[rows, last], bwd[rows, last]], dim=1)
        mu = self.to_mu(h)
        sigma_hat = self.to_sigma_hat(h)
        eps = torch.randn(mu.shape, device=mu.device, generator=generator)
        z = mu + torch.exp(sigma_hat / 2) * eps
        return z, mu, sigma_hat

    # -- decoder ------------------------------------------------------------------------------

    def initial_state(self, z, batch_size, device):
        h_size = self.config.dec_size
        if z is None:
            zeros = torch.zeros(batch_size, h_size, device=device)
            return zeros, zeros
        h, c = torch.tanh(self.z_to_state(z)).split(h_size, dim=1)
        return h.contiguous(), c.contiguous()

    def decode(self, strokes, z, state, generator=None):
        """strokes (B, T, 5), z (B, N_z) or None, state ((B, H), (B, H)) -> raw outputs
        (B, T, 6M + 3), state. Step t reads [strokes[:, t], z]."""
        if self.config.cell == "lstm":
            inputs = strokes if z is None else torch.cat([strokes, z[:, None].expand(-1, strokes.shape[1], -1)], dim=2)
            out, state = self.dec(inputs, state)
        else:
            out, (h, c) = self.dec(strokes[None], (state[0][None], state[1][None]), None if z is None else z[None],
                                   generator)
            out, state = out[0], (h[0], c[0])
        if self.training and self.config.output_dropout > 0:
            # Not F.dropout, which can only draw from torch's global generator.
            keep = 1 - self.config.output_dropout
            out = out * torch.rand(out.shape, device=out.device, generator=generator).lt_(keep).div_(keep)
        return self.out(out), state

    def decode_step(self, row, z, state):
        """One step for sampling: row (B, 5), z (B, N_z) or None -> raw outputs (B, 6M + 3), state.
        decode with T = 1 gives the same, with more overhead per step."""
        inputs = row if z is None else torch.cat([row, z], dim=1)
        if self.config.cell == "lstm":
            out, state = self.dec(inputs[:, None], state)
            return self.out(out[:, 0]), state
        h, c = self.dec.step(self.dec.project_inputs(inputs[None, :, None])[:, :, 0], state[0][None], state[1][None])
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
        return split_outputs(raw, self.config.num_mixture), mu, sigma_hat


# ---------------------------------------------------------------------------------------------
# Output distribution and losses


def split_outputs(raw, num_mixture):
    """Raw decoder outputs (..., 6M + 3) -> dict of mixture and pen parameters (log space)."""
    m = num_mixture
    pen_logits = raw[..., :3]
    pi_logits, mu_x, mu_y, log_sx, log_sy, rho_raw = raw[..., 3:].split(m, dim=-1)
    return {
        "log_pi": F.log_softmax(pi_logits, dim=-1),
        "mu_x": mu_x,
        "mu_y": mu_y,
        "log_sigma_x": log_sx.clamp(*LOG_SIGMA_RANGE),
        "log_sigma_y": log_sy.clamp(*LOG_SIGMA_RANGE),
        "rho": torch.tanh(rho_raw) * RHO_LIMIT,
        "pen_logits": pen_logits,
    }


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


def reconstruction_loss(params, targets, n_max):
    """L_R = (L_s + L_p) / n_max summed per drawing, averaged over the batch.

    L_s: -log density of the offsets of the real points (targets with p3 = 0).
    L_p: pen cross-entropy over every target step given (all T steps).
    Returns (L_R, L_s, L_p) as batch means, each already divided by n_max.
    """
    real = targets[..., 4] == 0
    log_density = mixture_log_density(params, targets[..., 0], targets[..., 1])
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
