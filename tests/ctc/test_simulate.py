"""The simulator reproduces the paper's qualitative results (Li & Wang, figs 4-6)."""
import json

import pytest

from ctcdoctor.simulate import simulate

LABEL, FRAMES, STEPS, LR = "abcd", 40, 150, 1.0


@pytest.fixture(scope="module")
def runs():
    return {
        name: simulate(LABEL, FRAMES, steps=STEPS, lr=LR, seed=0, **kw)
        for name, kw in {"plain": {}, "alpha": {"alpha": 0.5}, "gamma": {"gamma": 1.0}}.items()
    }


def test_plain_ctc_turns_spiky(runs):
    r = runs["plain"]
    assert r.final.decoded == LABEL
    assert r.final.blank_ratio > 0.7  # suppression: blank takes most frames
    assert r.final.spike_width <= 2.0  # peaking: labels survive as 1-2 frame spikes
    assert r.final.spike_width < runs["alpha"].final.spike_width / 2
    early = r.history[STEPS // 16]
    assert early.decoded == "" and early.blank_ratio == 1.0  # the suppression phase shows


def test_alpha_keeps_half_the_frames_nonblank(runs):
    r = runs["alpha"]
    assert r.final.decoded == LABEL
    assert r.final.nonblank_mass == pytest.approx(0.5, abs=0.05)
    assert runs["plain"].final.nonblank_mass < 0.3


@pytest.mark.parametrize("name", ["alpha", "gamma"])
def test_modifications_converge_sooner(runs, name):
    plain, mod = runs["plain"].first_correct_step, runs[name].first_correct_step
    assert mod is not None and plain is not None
    assert mod < plain


def test_history_snapshots_and_json(runs):
    r = runs["gamma"]
    assert [m.step for m in r.history] == list(range(STEPS + 1))
    assert [s.step for s in r.snapshots] == [0, 9, 18, 37, 75, 150]
    assert r.snapshots[0].outputs.shape == (FRAMES, 5) == r.snapshots[0].target.shape
    d = json.loads(json.dumps(r.as_dict(snapshots=True)))
    assert d["first_correct_step"] == r.first_correct_step and len(d["history"]) == STEPS + 1


def test_index_labels_and_callback():
    seen = []
    r = simulate([2, 2, 1], 8, steps=5, num_classes=4, on_step=seen.append, snapshot_steps=[5])
    assert r.num_classes == 4 and r.text is None and [m.step for m in seen] == list(range(6))
    assert [s.step for s in r.snapshots] == [5]


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(label="aab", frames=3), "at least 4 frames"),
        (dict(label="", frames=3), "label is empty"),
        (dict(label=[0, 1], frames=5), "0 is the blank"),
        (dict(label="ab", frames=5, num_classes=2), "num_classes=2 is too small"),
    ],
)
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        simulate(steps=1, **kw)


def test_plot(runs, tmp_path):
    from ctcdoctor.render.plot_simulate import plot as plot_simulation

    path = tmp_path / "sim.png"
    fig = plot_simulation(runs["alpha"])
    fig.savefig(path)
    assert path.stat().st_size > 10_000
    assert len([a for a in fig.axes if a.get_visible()]) == len(runs["alpha"].snapshots)
    ax = fig.axes[0]
    styles = {line.get_linestyle() for line in ax.lines}
    assert styles == {"-", "--"}  # outputs solid, pseudo ground truth dashed
