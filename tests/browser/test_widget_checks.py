"""The figure checks of ``widget_checks`` on hand-written plotly states (no browser needed)."""
from widget_checks import all_of, figure_problems, trace_problems
import re


def axis(key, title, type_="linear", categories=()):
    return {"key": key, "id": key[0] + key[5:], "type": type_, "visible": True, "title": title,
            "categories": list(categories)}


def trace(index, name, x, y, xaxis="x", yaxis="y", showlegend=True, type_="bar"):
    return {"index": index, "type": type_, "name": name, "visible": True, "showlegend": showlegend,
            "xaxis": xaxis, "yaxis": yaxis, "x": x, "y": y, "n": len(x or y or [])}


def figure(traces, axes=None, title="model bytes on disk", showlegend=True):
    axes = axes if axes is not None else [axis("xaxis", "storage format", "category", ["fp32", "CSR"]),
                                          axis("yaxis", "file size (kB)")]
    return {"title": title, "showlegend": showlegend, "ndata": len(traces), "axes": axes, "traces": traces}


def python(traces):
    return {"title": "model bytes on disk", "traces": [{"type": t["type"], "name": t["name"], "x": t["x"], "y": t["y"]}
                                                        for t in traces]}


GOOD = [trace(0, "dense", ["fp32", "CSR"], [1066.6, 161.8]), trace(1, "pruned", ["fp32", "CSR"], [1066.6, 50.0])]


def test_a_right_figure_has_no_problem():
    assert figure_problems(figure(GOOD)) == []
    assert trace_problems(figure(GOOD), python(GOOD)) == []


def test_labels_drawn_as_indices_are_reported():
    drawn = [trace(0, "dense", [0, 1], [1066.6, 161.8])]
    axes = [axis("xaxis", "storage format", "category", ["0", "1"]), axis("yaxis", "file size (kB)")]
    problems = figure_problems(figure(drawn, axes)) + trace_problems(figure(drawn, axes), python(GOOD[:1]))
    assert any("shows the indices ['0', '1'] instead of labels" in p for p in problems), problems
    assert any(p.startswith("trace 0 (dense): x differs") for p in problems), problems


def test_legend_names_unnamed_and_twice():
    drawn = [trace(0, "trace 0", [1, 2], [3, 4], type_="scatter"), trace(1, "T = 1", [1, 2], [3, 4], type_="scatter"),
             trace(2, "T = 1", [1, 2], [4, 5], type_="scatter")]
    problems = figure_problems(figure(drawn, [axis("xaxis", "class"), axis("yaxis", "probability (%)")]))
    assert "the legend shows an unnamed trace as 'trace 0' (set `name` when creating it)" in problems
    assert "the legend shows 'T = 1' 2 times" in problems
    named_in_python = python(drawn)
    named_in_python["traces"][0]["name"] = "teacher"
    assert "trace 0: named 'trace 0' in the browser, 'teacher' in Python" in trace_problems(figure(drawn), named_in_python)


def test_missing_titles_empty_categories_and_hidden_legend():
    drawn = [trace(0, "a", ["x"], [1.0], showlegend=False), trace(1, "b", ["y"], [2.0], showlegend=False)]
    axes = [axis("xaxis", "Click to enter X axis title", "category", []), axis("yaxis", "")]
    problems = figure_problems(figure(drawn, axes, title=""))
    assert problems == ["the figure has no title", "xaxis has no title (label it, with its unit)",
                        "xaxis is a category axis without categories", "yaxis has no title (label it, with its unit)",
                        "2 series share the subplot x/y but none is in a legend"]


def test_trace_counts_and_values_compared_with_python():
    fewer = figure(GOOD[:1])
    assert "Python holds 2 traces, the browser 1" in trace_problems(fewer, python(GOOD))
    moved = [dict(GOOD[0], y=[1066.6, 99.0])]
    assert trace_problems(figure(moved), python(GOOD[:1])) == [
        "trace 0 (dense): y differs: browser [1066.6, 99.0] vs Python [1066.6, 161.8]"]
    assert trace_problems(figure(GOOD), None) == [
        "no Python-side explorer found for this figure (is it assigned to a variable?)"]


def test_all_of_matches_in_any_order():
    pattern = all_of("fc1", "0.90", "(x)")
    assert re.search(pattern, "sparsity 0.90 of fc1 (x)") and not re.search(pattern, "fc1 at 0.50 (x)")
