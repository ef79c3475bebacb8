"""``report(model)``: one table per model — per-layer output shapes, parameters, non-zeros, MACs —
with totals and bytes on disk per storage format.

Explained in notebooks/00_why_compress.ipynb.
"""

from __future__ import annotations

import html
from dataclasses import asdict

from torch import nn

from labkit.measure.compute import is_mac_layer, layer_macs, own_counts, trace_calls
from labkit.measure.counting import count_nonzeros, count_parameters, sparsity
from labkit.measure.storage import size_report
from labkit.validate import require_module


class Report:
    """Per-layer table of a model, with totals and (optionally) bytes on disk per storage format.

    ``rows`` is a list of dicts with keys ``name, type, output_shape, params, nonzeros, macs,
    nonzero_macs, fp32_bytes`` (one per leaf-module call); ``totals`` has ``params, nonzeros,
    sparsity, macs, nonzero_macs, fp32_bytes`` for the whole model; ``sizes`` maps format -> bytes.
    ``print(report)`` gives an aligned text table, Jupyter renders ``_repr_html_``.
    Explained in notebooks/00_why_compress.ipynb.
    """

    COLUMNS = (("name", "layer"), ("type", "type"), ("output_shape", "output"), ("params", "params"),
               ("nonzeros", "non-zeros"), ("macs", "MACs"), ("fp32_bytes", "fp32 bytes"))

    def __init__(self, rows: list[dict], totals: dict, sizes: dict | None = None):
        self.rows = rows
        self.totals = totals
        self.sizes = dict(sizes or {})

    def _cells(self) -> tuple[list[str], list[list[str]], list[str]]:
        """Header, body rows and totals row as strings."""
        header = [title for _, title in self.COLUMNS]
        body = [[_format_cell(row[key]) for key, _ in self.COLUMNS] for row in self.rows]
        total = ["total", "", ""] + [_format_cell(self.totals[key]) for key, _ in self.COLUMNS[3:]]
        return header, body, total

    def __str__(self) -> str:
        header, body, total = self._cells()
        widths = [max(len(line[i]) for line in [header, *body, total]) for i in range(len(header))]

        def line(cells):
            return "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

        rule = "-" * len(line(header))
        text = [line(header), rule, *map(line, body), rule, line(total)]
        text.append(f"sparsity {self.totals['sparsity']:.1%}")
        if self.sizes:
            text.append("bytes on disk: " + ", ".join(f"{f} {_human_bytes(b)}" for f, b in self.sizes.items()))
        return "\n".join(text)

    def _repr_html_(self) -> str:
        header, body, total = self._cells()

        def row(cells, tag="td"):
            return "<tr>" + "".join(f'<{tag} style="text-align:{"left" if i < 3 else "right"}">'
                                    f"{html.escape(c)}</{tag}>" for i, c in enumerate(cells)) + "</tr>"

        parts = ['<table class="labkit-report">', "<thead>", row(header, "th"), "</thead><tbody>",
                 *map(row, body), "</tbody><tfoot>", row(total, "th"), "</tfoot></table>",
                 f"<p>sparsity {self.totals['sparsity']:.1%}</p>"]
        if self.sizes:
            parts += ['<table class="labkit-sizes"><thead><tr><th>format</th><th>bytes on disk</th>'
                      "<th></th></tr></thead><tbody>"]
            parts += [f'<tr><td>{html.escape(f)}</td><td style="text-align:right">{b:,}</td>'
                      f'<td style="text-align:right">{_human_bytes(b)}</td></tr>' for f, b in self.sizes.items()]
            parts.append("</tbody></table>")
        return "".join(parts)

    def __repr__(self) -> str:
        return f"Report({len(self.rows)} rows, {self.totals['params']:,} params, {self.totals['macs']:,} MACs)"


def report(model: nn.Module, input_shape=None, *, with_sizes: bool = True) -> Report:
    """Trace ``model`` on one example of ``input_shape`` and tabulate every leaf layer.

    ``input_shape`` (one example, no batch dimension) defaults to ``(in_channels, image_size,
    image_size)`` from ``model.config()`` for models built by ``labkit.models.build``; other models
    must pass it. Rows: every leaf module called in the forward pass (activations and pooling too,
    with 0 parameters and 0 MACs) with its output shape (no batch dimension), parameters, effective
    non-zeros, MACs (as in ``macs``) and ``fp32_bytes = 4 * params``. Totals come from the whole
    model. ``with_sizes`` adds ``size_report(model)`` (writes one temporary file per format).
    Explained in notebooks/00_why_compress.ipynb.
    """
    if input_shape is None:
        input_shape = _configured_input_shape(model)
    rows = []
    for name, module, shape in trace_calls(model, input_shape):
        if is_mac_layer(module):
            row = asdict(layer_macs(name, module, shape))
        else:
            params, nonzeros = own_counts(module)
            row = dict(name=name, type=type(module).__name__, output_shape=shape, params=params,
                       nonzeros=nonzeros, macs=0, nonzero_macs=0)
        row["fp32_bytes"] = 4 * row["params"]
        rows.append(row)
    params = count_parameters(model)
    totals = dict(params=params, nonzeros=count_nonzeros(model),
                  sparsity=sparsity(model) if params else 0.0,
                  macs=sum(r["macs"] for r in rows), nonzero_macs=sum(r["nonzero_macs"] for r in rows),
                  fp32_bytes=4 * params)
    return Report(rows, totals, size_report(model) if with_sizes else None)


def _format_cell(value) -> str:
    if isinstance(value, tuple):
        return "×".join(map(str, value))
    if value is None:
        return "?"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _human_bytes(n: int) -> str:
    """``1536 -> '1.5 KiB'``: binary prefixes, one decimal."""
    if n < 1024:
        return f"{n} B"
    if n < 1024 ** 2:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024 ** 2:.1f} MiB"


def _configured_input_shape(model) -> tuple:
    """``(C, S, S)`` from the ``config()`` that every ``labkit.models`` model records."""
    require_module("model", model)
    config = model.config() if callable(getattr(model, "config", None)) else {}
    if not {"in_channels", "image_size"} <= set(config):
        raise TypeError(f"report() needs input_shape for a {type(model).__name__}, which does not record "
                        "its input size (only labkit.models do); pass one example's shape, e.g. (1, 28, 28)")
    return (config["in_channels"], config["image_size"], config["image_size"])
