"""tables.Table: the same rows as Markdown, HTML and text, with fixed decimals and NaN as a dash."""

import math

import numpy as np
import pytest

from sr_lib.evaluation.tables import Table


def test_markdown_html_and_text_agree():
    table = Table([{"method": "bicubic", "psnr_y": 28.4321, "n": 5}, {"method": "a|b", "psnr_y": math.nan, "n": 5}],
                  digits=2, title="Set5")
    markdown = table.to_markdown().splitlines()
    assert markdown[:4] == ["**Set5**", "", "| method | psnr_y | n |", "|---|---|---|"]
    assert markdown[4] == "| bicubic | 28.43 | 5 |" and markdown[5] == "| a\\|b | — | 5 |"
    html = table._repr_html_()
    assert "<caption>Set5</caption>" in html and "<td>28.43</td>" in html and html.count("<tr>") == 3
    text = str(table).splitlines()
    assert text[0] == "Set5" and text[1].split() == ["method", "psnr_y", "n"] and "28.43" in text[3]


def test_numpy_floats_are_formatted_and_columns_can_be_chosen():
    table = Table([{"a": np.float32(1.23456), "b": "x"}], columns=["b", "a"], digits=3)
    assert table.to_markdown().splitlines()[-1] == "| x | 1.235 |"


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="lack the column"):
        Table([{"a": 1}, {"b": 2}])
    with pytest.raises(ValueError, match="needs rows or columns"):
        Table([])
