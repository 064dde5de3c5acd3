import pytest
import torch

from generator import cells
from generator.cells import FusedLSTM, LayerNormLSTM, make_cell
from generator.model import Config


def test_fused_lstm_in_chunks_equals_one_call(monkeypatch):
    torch.manual_seed(0)
    lstm = FusedLSTM(5, 16)
    x = torch.randn(1, 4, 23, 5, requires_grad=True)
    state = (torch.randn(1, 4, 16), torch.randn(1, 4, 16))

    def outputs_and_gradients(chunk_bytes):
        monkeypatch.setattr(cells, "CPU_CHUNK_BYTES", chunk_bytes)
        lstm.zero_grad()
        x.grad = None
        out, (h, c) = lstm(x, state)
        (out.square().sum() + h.sum() + c.sum()).backward()
        return [out, h, c, x.grad] + [p.grad.clone() for p in lstm.parameters()]

    chunked = outputs_and_gradients(4 * 4 * 16 * 4 * 5)  # 5 steps per call: 5 calls, the last one short
    whole = outputs_and_gradients(1 << 40)
    for a, b in zip(chunked, whole):
        torch.testing.assert_close(a, b)


def cell_outputs_and_gradients(cell, forward, leaf):
    """forward() -> (outputs, state) of cell; returns the outputs and the gradients of a loss on
    them with respect to `leaf` and to the cell's parameters, with the same dropout masks each call."""
    cell.zero_grad()
    leaf.grad = None
    torch.manual_seed(1)
    out, (h, c) = forward()
    (out.square().sum() + c.sum()).backward()
    return [out, leaf.grad] + [p.grad.clone() for p in cell.parameters()]


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("steps_per_chunk", [4, 9])
def test_layer_norm_lstm_gradients_equal_plain_autograd(training, steps_per_chunk, monkeypatch):
    """forward computes w_hh's gradient in one matmul per chunk of steps (9 steps: chunks of
    4, 4 and 1, or one chunk); it must equal what autograd gives when every step multiplies
    by w_hh itself."""
    monkeypatch.setattr(cells, "CPU_CHUNK_BYTES", 2 * 3 * 4 * 12 * 8 * steps_per_chunk)
    torch.manual_seed(0)
    cell = LayerNormLSTM(5, 12, groups=2, dropout=0.3).double().train(training)
    x = torch.randn(2, 3, 9, 5, dtype=torch.float64)
    h0 = torch.randn(2, 3, 12, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 3, 12, dtype=torch.float64)

    def plain_forward():
        h, c = h0, c0
        outputs = []
        x_projs = cell.project_inputs(x).unbind(2)
        for x_proj, keep in zip(x_projs, cell.dropout_masks(len(x_projs), h)):
            h, c = cell.step_projected(x_proj, h, c, keep)
            outputs.append(h)
        return torch.stack(outputs, dim=2), (h, c)

    fused = cell_outputs_and_gradients(cell, lambda: cell(x, (h0, c0)), h0)
    for a, b in zip(fused, cell_outputs_and_gradients(cell, plain_forward, h0)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cell_name", ["lstm", "layer_norm"])
@pytest.mark.parametrize("groups", [1, 2])
def test_static_inputs_equal_the_same_inputs_at_every_step(cell_name, groups):
    """The decoder's z is given once (`static`); outputs and gradients must equal those of z
    repeated at every step of the input."""
    torch.manual_seed(0)
    cell = make_cell(Config(cell=cell_name, recurrent_dropout=0.3), 5 + 4, 12, groups).double().train()
    strokes = torch.randn(groups, 3, 9, 5, dtype=torch.float64)
    z = torch.randn(groups, 3, 4, dtype=torch.float64, requires_grad=True)
    state = (torch.randn(groups, 3, 12, dtype=torch.float64), torch.randn(groups, 3, 12, dtype=torch.float64))
    repeated = lambda: cell(torch.cat([strokes, z[:, :, None].expand(-1, -1, 9, -1)], dim=3), state)
    static = cell_outputs_and_gradients(cell, lambda: cell(strokes, state, static=z), z)
    for a, b in zip(static, cell_outputs_and_gradients(cell, repeated, z)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cell_name", ["lstm", "layer_norm"])
@pytest.mark.parametrize("groups", [1, 2])
def test_a_sequence_equals_its_steps_one_at_a_time(cell_name, groups):
    torch.manual_seed(0)
    cell = make_cell(Config(cell=cell_name), 5, 12, groups).double().eval()
    x = torch.randn(groups, 3, 7, 5, dtype=torch.float64)
    state = (torch.randn(groups, 3, 12, dtype=torch.float64), torch.randn(groups, 3, 12, dtype=torch.float64))
    whole, final = cell(x, state)
    steps = []
    for t in range(7):
        state = cell.step(x[:, :, t], state)
        steps.append(state[0])
    torch.testing.assert_close(torch.stack(steps, dim=2), whole)
    torch.testing.assert_close(state, final)


@pytest.mark.parametrize("cell_name", ["lstm", "layer_norm"])
def test_groups_are_independent_lstms(cell_name):
    """Group g's outputs depend on group g's inputs and weights only."""
    torch.manual_seed(0)
    cell = make_cell(Config(cell=cell_name), 5, 12, groups=2).double().eval()
    x = torch.randn(2, 3, 7, 5, dtype=torch.float64)
    zeros = torch.zeros(2, 3, 12, dtype=torch.float64)
    out, _ = cell(x, (zeros, zeros))
    changed = x.clone()
    changed[1] += 1
    out_changed, _ = cell(changed, (zeros, zeros))
    torch.testing.assert_close(out_changed[0], out[0], rtol=0, atol=0)
    assert not torch.allclose(out_changed[1], out[1])
    # Each group's weights are its own: the same inputs in both groups give different outputs.
    same, _ = cell(x[:1].expand(2, -1, -1, -1), (zeros, zeros))
    assert not torch.allclose(same[0], same[1])


def test_the_layer_norm_cell_drops_at_the_configured_rate():
    torch.manual_seed(0)
    cell = make_cell(Config(cell="layer_norm", recurrent_dropout=0.25), 5, 12).train()
    masks = torch.stack(cell.dropout_masks(200, torch.zeros(1, 30, 12)))
    assert (masks == 0).float().mean().item() == pytest.approx(0.25, abs=0.01)
    assert masks[masks > 0].unique().tolist() == [pytest.approx(1 / 0.75)]
