"""Seeded draws: reproducible, isolated from the caller's stream, the same as torch.manual_seed's on CPU."""

from __future__ import annotations

import torch

from methods.seeding import seeded


def test_a_seeded_draw_depends_only_on_its_seed_and_leaves_the_callers_stream_alone() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    with seeded(7):
        a = torch.rand(4)
    with seeded(7, torch.device("cpu")):
        b = torch.rand(4)
    with seeded(8):
        c = torch.rand(4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.rand(3), expected_next)  # the caller's stream is where it was


def test_a_seeded_draw_equals_the_draw_after_torch_manual_seed_on_cpu() -> None:
    with seeded(2024):
        ours = (torch.rand(5), torch.randint(10, (5,)), torch.randperm(7))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2024)
        theirs = (torch.rand(5), torch.randint(10, (5,)), torch.randperm(7))
    assert all(torch.equal(x, y) for x, y in zip(ours, theirs, strict=True))
