"""The recurrent cells Sketch-RNN's encoder and decoder run on, behind one interface (make_cell).

Every cell runs `groups` independent LSTMs side by side (the encoder's two directions are two
groups) and takes the same arguments:

    cell(x, (h, c), static=None, generator=None) -> outputs, (h, c)
        x (G, B, T, n): the first n inputs of T steps; static (G, B, in - n) or None: the other
        inputs, the same at every step (the decoder's z); h and c (G, B, H): the state before the
        first step, and after the last; outputs (G, B, T, H): h after every step; generator:
        draws the cell's random numbers in training (None: torch's global one).
    cell.step(x, (h, c)) -> (h, c)
        One step, for sampling: x (G, B, in); the new h is the step's output.

Cells:
- "layer_norm": an LSTM with layer normalisation of each gate and of the cell, and recurrent
  dropout on the candidate, as the reference's LayerNormLSTMCell (its choice for small datasets).
- "lstm": torch's fused nn.LSTM (faster, no recurrent dropout: its fused kernel has no place for a
  mask on the candidate, so config.recurrent_dropout does not apply to it).

On the CPU both run a few steps at a time (steps_per_chunk), and the layer-normalised cell
computes its recurrent weights' gradient in one matmul per chunk (RecurrentWeightGrad).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

CELLS = ("layer_norm", "lstm")  # the values of Config.cell
CPU_CHUNK_BYTES = 8 << 20  # gate pre-activations per chunk of steps on the CPU (see steps_per_chunk)


def make_cell(config, input_size, hidden_size, groups=1):
    """The cell that config.cell names, running `groups` LSTMs of input_size -> hidden_size."""
    if config.cell == "layer_norm":
        return LayerNormLSTM(input_size, hidden_size, groups, dropout=config.recurrent_dropout, eps=config.layer_norm_eps)
    if config.cell == "lstm":
        if groups == 1:
            return FusedLSTM(input_size, hidden_size)
        return CellGroup([FusedLSTM(input_size, hidden_size) for _ in range(groups)])
    raise ValueError(f"unknown cell '{config.cell}' (choose from {', '.join(CELLS)})")


def steps_per_chunk(x, rows, hidden_size, steps):
    """How many of `steps` steps a cell runs at a time. On the CPU, a few: each chunk's gate
    pre-activations (rows x 4H per step) then stay under glibc's mmap threshold, so freed memory is
    reused from the heap instead of being unmapped and page-faulted in again (about 20% of a
    paper-preset step). Elsewhere, all steps."""
    if x.device.type != "cpu":
        return steps
    return max(1, CPU_CHUNK_BYTES // (rows * 4 * hidden_size * x.element_size()))


class FusedLSTM(nn.Module):
    """One nn.LSTM (G = 1) over a whole sequence in a few calls (steps_per_chunk), or a step."""

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

    def forward(self, x, state, static=None, generator=None):
        x = x[0]
        if static is not None:
            x = torch.cat([x, static[0, :, None].expand(-1, x.shape[1], -1)], dim=2)
        # nn.LSTM's state is (layers, B, H): the group dimension is its one layer.
        h, c = (s.contiguous() for s in state)
        outputs = []
        for chunk in x.split(steps_per_chunk(x, x.shape[0], self.hidden_size, x.shape[1]), dim=1):
            out, (h, c) = self.lstm(chunk, (h, c))
            outputs.append(out)
        return torch.cat(outputs, dim=1)[None], (h, c)

    def step(self, x, state):
        _, state = self.lstm(x[0, :, None], tuple(s.contiguous() for s in state))
        return state


class CellGroup(nn.Module):
    """Cells of one group each, run one after the other as the groups of one cell."""

    def __init__(self, cells):
        super().__init__()
        self.group = nn.ModuleList(cells)

    def forward(self, x, state, static=None, generator=None):
        results = [cell(x[g:g + 1], (state[0][g:g + 1], state[1][g:g + 1]),
                        None if static is None else static[g:g + 1], generator)
                   for g, cell in enumerate(self.group)]
        outputs, states = zip(*results)
        return torch.cat(outputs), tuple(torch.cat(s) for s in zip(*states))

    def step(self, x, state):
        states = [cell.step(x[g:g + 1], (state[0][g:g + 1], state[1][g:g + 1])) for g, cell in enumerate(self.group)]
        return tuple(torch.cat(s) for s in zip(*states))


class LayerNormLSTM(nn.Module):
    """LSTM with layer normalisation of each gate and of the cell, and recurrent dropout on the
    candidate ("without memory loss"), as the reference's LayerNormLSTMCell."""

    def __init__(self, input_size, hidden_size, groups=1, dropout=0.1, eps=1e-5):
        super().__init__()
        self.hidden_size = hidden_size
        self.dropout = dropout
        self.eps = eps  # of the layer normalisations
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

    def step_projected(self, x_proj, h, c, keep=None, w_hh=None):
        """One step from projected input (G, B, 4H) and state (G, B, H) each; `keep` is the
        candidate's recurrent-dropout mask (already divided by the keep rate), or None.
        `w_hh` replaces the recurrent weights (forward passes a detached copy, see there)."""
        # Under autocast the matmul is bfloat16; the cell's own arithmetic stays in the state's dtype.
        gates = torch.baddbmm(x_proj, h, self.w_hh if w_hh is None else w_hh).to(c.dtype)
        shape = gates.shape
        gates = F.layer_norm(gates.view(*shape[:2], 4, self.hidden_size), (self.hidden_size,), eps=self.eps)
        gates = torch.addcmul(self.gate_bias, gates, self.gate_gain)
        i, f, j, o = gates.unbind(2)
        candidate = torch.tanh(j)
        if keep is not None:
            candidate = candidate * keep
        c = torch.addcmul(c * torch.sigmoid(f), torch.sigmoid(i), candidate)
        c_norm = torch.addcmul(self.cell_bias, F.layer_norm(c, (self.hidden_size,), eps=self.eps), self.cell_gain)
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
        """`static` is projected once, not at every step (for the cpu preset's decoder, 64 of its
        69 inputs).

        The steps multiply by a detached w_hh, so the backward pass computes only the state's
        gradient step by step; w_hh's gradient is one large matmul per chunk of steps
        (RecurrentWeightGrad), instead of one small one per step added up.
        """
        h, c = state
        w_hh = self.w_hh.detach()
        if torch.is_autocast_enabled(x.device.type):  # cast once, not at every step
            w_hh = w_hh.to(torch.get_autocast_dtype(x.device.type))
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
                h, c = self.step_projected(x_proj, h, c, keep, w_hh)
                outputs.append(h)
        return torch.stack(outputs, dim=2), (h, c)

    def step(self, x, state):
        return self.step_projected(self.project_inputs(x[:, :, None])[:, :, 0], *state)


class RecurrentWeightGrad(torch.autograd.Function):
    """Identity on the projected inputs (G, B, T, 4H) that adds w_hh's gradient in backward.

    The gradient reaching the projected inputs of step t is the gradient of that step's gates,
    so w_hh's gradient is sum_t h_{t-1}^T dgates_t: one matmul over all steps. `previous_h`
    is filled by the caller's loop with each step's input state (detached) before backward runs.
    """

    @staticmethod
    def forward(ctx, x_proj, w_hh, previous_h):
        ctx.previous_h = previous_h
        ctx.w_hh_dtype = w_hh.dtype
        return x_proj.view_as(x_proj)

    @staticmethod
    def backward(ctx, grad):
        grad_w_hh = None
        if ctx.needs_input_grad[1]:
            g, b, t, gates = grad.shape
            # In the projected inputs' dtype: bfloat16 under autocast, as the forward pass's matmuls.
            h = torch.stack(ctx.previous_h, dim=2).reshape(g, b * t, -1).to(grad.dtype)
            grad_w_hh = torch.bmm(h.transpose(1, 2), grad.reshape(g, b * t, gates)).to(ctx.w_hh_dtype)
        return grad, grad_w_hh, None
