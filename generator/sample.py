"""Drawing new sketches from a trained Sketch-RNN: batched, at a temperature.

Temperature tau: mixture weights and pen logits are divided by tau before the softmax, and each
normal is narrowed by a rule (TEMPERATURE_RULES): "paper" multiplies its variance by tau (sigma by
sqrt(tau)), as the paper and the reference's JS version do; "magenta" multiplies sigma by tau, as
the reference's TensorFlow code does (at tau 0.5 its sigma is 0.71 times the paper's).
tau = 0 is greedy: the most likely component's mean and the most likely pen state.
"""

from dataclasses import dataclass

import numpy as np
import torch

from .data import stroke5_batch
from .model import split_outputs
from .strokes import stroke5_to_stroke3


TEMPERATURE_RULES = ("paper", "magenta")


def sigma_scale(temperature, rule):
    """What a temperature multiplies each normal's sigma by, under a rule of TEMPERATURE_RULES."""
    if rule == "paper":
        return temperature ** 0.5
    if rule == "magenta":
        return temperature
    raise ValueError(f"unknown temperature rule '{rule}' (choose from {', '.join(TEMPERATURE_RULES)})")


@dataclass
class Samples:
    strokes: list  # stroke-3 float arrays in data units (scale factor applied back)
    ended: np.ndarray  # bool per sketch: it produced an end-of-sketch before max length

    def __len__(self):
        return len(self.strokes)


def is_degenerate(strokes, ended):
    """The rule of generate_samples --reject-degenerate: an empty sketch, or one that hit the length limit
    without ending."""
    return len(strokes) == 0 or not ended


def is_greedy(temperature):
    """Whether sampling at this temperature takes the most likely choice at every step. Below 1e-6
    it is greedy in effect, and dividing by it could overflow to inf and make the softmax NaN."""
    return temperature < 1e-6


def sample_next(params, temperature, generator=None, temperature_rule="paper"):
    """One row of stroke-5 per batch element from the mixture parameters of one step."""
    log_pi = params["log_pi"]
    pen_logits = params["pen_logits"]
    b = log_pi.shape[0]
    rows = torch.arange(b, device=log_pi.device)
    if is_greedy(temperature):
        component = log_pi.argmax(dim=-1)
        pen = pen_logits.argmax(dim=-1)
        noise = torch.zeros(b, 2, device=log_pi.device)
    else:
        component = torch.multinomial(torch.softmax(log_pi / temperature, dim=-1), 1, generator=generator)[:, 0]
        pen = torch.multinomial(torch.softmax(pen_logits / temperature, dim=-1), 1, generator=generator)[:, 0]
        noise = torch.randn(b, 2, device=log_pi.device, generator=generator)
    mu_x = params["mu_x"][rows, component]
    mu_y = params["mu_y"][rows, component]
    scale = sigma_scale(max(temperature, 0.0), temperature_rule)
    sx = torch.exp(params["log_sigma_x"][rows, component]) * scale
    sy = torch.exp(params["log_sigma_y"][rows, component]) * scale
    rho = params["rho"][rows, component]
    dx = mu_x + sx * noise[:, 0]
    dy = mu_y + sy * (rho * noise[:, 0] + torch.sqrt(1 - rho * rho) * noise[:, 1])
    row = torch.zeros(b, 5, device=log_pi.device)
    row[:, 0] = dx
    row[:, 1] = dy
    row[rows, 2 + pen] = 1
    return row


@torch.no_grad()
def sample(model, n=None, z=None, temperature=0.5, max_len=None, scale_factor=1.0, generator=None, device=None,
           temperature_rule="paper"):
    """Sample sketches in one batched pass.

    Unconditional models take n; conditional models take z (n, N_z), or n to draw z ~ N(0, I).
    Each sketch ends at its own end-of-sketch row or at max_len; `ended` says which did.
    """
    sigma_scale(1.0, temperature_rule)  # an unknown rule fails before any work
    model.eval()
    config = model.config
    device = device or next(model.parameters()).device
    # The reference samples N_max steps (the data's longest drawing); the default here is the
    # longer length filter (250), so that "never ends" means the same for every category.
    max_len = max_len or config.max_seq_len
    if config.conditional and z is None:
        if n is None:
            raise ValueError("give n or z")
        z = torch.randn(n, config.z_size, device=device, generator=generator)
    if z is not None:
        z = z.to(device)
        n = z.shape[0]
    state = model.initial_state(z, n, device)
    row = torch.zeros(n, 5, device=device)
    row[:, 2] = 1  # start token
    rows = torch.zeros(n, max_len, 5, device=device)
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    for t in range(max_len):
        raw, state = model.decode_step(row, z, state)
        row = sample_next(split_outputs(raw, config), temperature, generator, temperature_rule)
        rows[:, t] = row
        finished |= row[:, 4] > 0
        if bool(finished.all()):
            break
    rows = rows.cpu().numpy()
    strokes = []
    for r in rows:
        s3 = stroke5_to_stroke3(r)
        s3[:, 0:2] *= scale_factor
        strokes.append(s3)
    return Samples(strokes=strokes, ended=finished.cpu().numpy())


@torch.no_grad()
def encode(model, drawings, generator=None, device=None):
    """Latent codes z (sampled as the reference does: mu + sigma * eps) for normalised stroke-3
    drawings."""
    if not model.config.conditional:
        raise ValueError("an unconditional model has no encoder")
    model.eval()
    device = device or next(model.parameters()).device
    batch, lengths = stroke5_batch(drawings)
    z, _, _ = model.encode(torch.from_numpy(batch[:, 1:]).to(device), torch.from_numpy(lengths).to(device), generator)
    return z


def interpolate(z0, z1, steps):
    """Linear interpolation between two latent codes: (steps, N_z), both ends included."""
    weights = torch.linspace(0, 1, steps, device=z0.device)[:, None]
    return (1 - weights) * z0[None] + weights * z1[None]
