"""The report's figures: the gap panel finds its reference row by method, and long row labels stay on the canvas."""

from __future__ import annotations

import matplotlib.image as mpimg

from mlbench.reports.figures import figure1, figure2

PTS = [(0, 0.85, 0.01), (5, 0.71, 0.01), (10, 0.66, 0.02)]
LONG = "seq2set [suite reuters-trim-neural: epochs=40 init_from=<model of another run>]"


def test_figure1_draws_the_gap_panel_for_a_labelled_reference_row(tmp_path):
    # the seq2seq row carries its configuration in its label, as in a report with several seq2seq configurations
    two = tmp_path / "two.png"
    figure1({"br": PTS, "seq2seq+epochs=40@reuters-trim-neural": PTS, LONG: PTS}, two)
    one = tmp_path / "one.png"
    figure1({"br": PTS, LONG: PTS}, one)  # no seq2seq row: one panel
    assert mpimg.imread(two).shape[1] > 1.6 * mpimg.imread(one).shape[1]


def test_long_row_labels_stay_on_the_canvas(tmp_path):
    rows = {f"{LONG} {i}": {"hf_micro_f1": (0.9, 0.01, 3), "lf_micro_f1": (0.1, 0.01, 3)} for i in range(12)}
    few, many = tmp_path / "few.png", tmp_path / "many.png"
    figure2(dict(list(rows.items())[:2]), few)
    figure2(rows, many)
    pixels = mpimg.imread(many)
    assert pixels.shape[0] > 2 * mpimg.imread(few).shape[0]  # a line per row: the figure grows downwards
    # the labels are drawn left of the axes and inside the image: ink in the left tenth of the canvas
    left = pixels[:, : pixels.shape[1] // 10, :3]
    assert (left < 0.5).mean() > 0.001
