"""The gating network: shapes for both stage lists, gate semantics, inhibition of return."""

import pytest
import torch

from attnlab.models.gating import GatingNet, run_glimpses, select_targets


def mnist_net(**kw) -> GatingNet:
    torch.manual_seed(0)
    return GatingNet(1, (28, 42), [20, 50], 10, upsample="nearest", strength=0.2, **kw)


def test_stage_shapes_match_the_paper_mnist_and_coco_nets():
    net = mnist_net()
    assert net.conv_sizes == [(25, 39), (9, 16)]
    assert net.pooled_sizes == [(12, 19), (4, 8)]
    assert net.classifier.in_features == 1600
    coco = GatingNet(3, (100, 100), [30, 60, 100, 20], 12, upsample="bicubic", strength=0.3)
    assert coco.conv_sizes == [(97, 97), (45, 45), (19, 19), (6, 6)]
    assert coco.classifier.in_features == 180
    assert [tuple(d.weight.shape[:2]) for d in coco.deconvs] == [(60, 1), (120, 30), (200, 60), (40, 100)]
    out = coco.step(torch.rand(2, 3, 100, 100), coco.initial_state(torch.rand(2, 3, 100, 100)))
    assert [tuple(g.shape[1:]) for g in out.gates] == coco.gate_shapes


def test_non_square_input_sizes_are_derived_per_axis():
    net = GatingNet(3, (64, 96), [8, 16], 5, upsample="bicubic")
    x = torch.rand(2, 3, 64, 96)
    out = net.glimpse(x)
    assert out.logits.shape == (2, 5)
    assert out.gated_input.shape == x.shape


def test_zero_gates_leave_the_input_unchanged_and_ones_suppress_by_strength():
    net = mnist_net()
    x = torch.rand(3, 1, 28, 42)
    zeros = net.initial_state(x)
    assert torch.equal(net.step(x, zeros).gated_input, x)
    ones = [torch.ones_like(g) for g in zeros]
    assert torch.allclose(net.step(x, ones).gated_input, 0.8 * x)


def test_gates_are_in_minus_one_one():
    net = mnist_net()
    out = net.step(torch.rand(4, 1, 28, 42), net.initial_state(torch.rand(4, 1, 28, 42)))
    for g in out.gates:
        assert g.min() > -1 and g.max() < 1


def test_ior_marks_open_locations_and_forces_full_suppression_next_glimpse():
    net = mnist_net()
    x = torch.rand(2, 1, 28, 42)
    first = net.glimpse(x)
    # IOR after glimpse 1 = locations whose gate going into the last step was below the threshold
    for m, g in zip(first.ior, first.gates):
        assert torch.equal(m, (g < net.ior_threshold).float())
    second = net.glimpse(x, first.ior)
    for m, g in zip(first.ior, second.gates):
        assert torch.all(g[m.bool()] == 1.0), "visited locations must be fully suppressed"
    # the IOR masks only grow
    for m1, m2 in zip(first.ior, second.ior):
        assert torch.all(m2 >= m1)
    assert all(not m.requires_grad for m in second.ior)


def test_first_step_of_a_glimpse_is_ungated_even_with_ior():
    net = mnist_net(steps=2)
    x = torch.rand(2, 1, 28, 42)
    full_ior = [torch.ones_like(g) for g in net.initial_state(x)]
    calls = []
    original = net.step

    def spy(inp, gates, feedback=True):
        calls.append([g.clone() for g in gates])
        return original(inp, gates, feedback)

    net.step = spy
    net.glimpse(x, full_ior)
    assert all(torch.all(g == 0) for g in calls[0])
    assert all(torch.all(g == 1) for g in calls[1])


def test_select_targets_picks_nearest_unattended_object():
    gated = torch.zeros(2, 1, 2, 2)
    targets = torch.stack([torch.full((2, 1, 2, 2), 5.0), torch.full((2, 1, 2, 2), 0.1)], dim=1)
    taken = torch.zeros(2, 2, dtype=torch.bool)
    assert select_targets(gated, targets, taken).tolist() == [1, 1]
    assert select_targets(gated, targets, taken).tolist() == [0, 0]  # the nearest one is taken now
    assert taken.all()


def test_glimpse_loop_attends_each_object_once_and_steps_per_glimpse():
    net = mnist_net()
    x = torch.rand(4, 1, 28, 42)
    targets = torch.rand(4, 2, 1, 28, 42)
    labels = torch.randint(0, 10, (4, 2))
    steps = []
    results = run_glimpses(net, x, targets, labels, 2, on_glimpse=lambda k, r: steps.append(k))
    assert steps == [0, 1]
    chosen = torch.stack([r.selected for r in results], dim=1)
    assert torch.all(chosen.sort(dim=1).values == torch.tensor([0, 1]))
    for r in results:
        assert torch.equal(r.target_class, labels[torch.arange(4), r.selected])


@pytest.mark.parametrize("bad", [dict(strength=1.5), dict(steps=1)])
def test_bad_arguments_raise(bad):
    with pytest.raises(ValueError):
        GatingNet(1, (28, 42), [20, 50], 10, **bad)
