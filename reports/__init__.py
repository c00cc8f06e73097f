"""Figures and the HTML report. Reads tables; never trains or measures; imports only `space`.

Compute (tables -> tidy frames and numbers): `published` (the paper's tables), `inputs` (the run
folder's tables, tolerant of what is missing), `pareto_data`, `metrics`, `families`.
Render (frames -> plotly figures): `paper`, `pareto`, `evidence`, with `style` and `labels`
(overlap-free point labels). Write: `html` (offline pages + index), `export` (PNG/SVG),
`browser` (headless Chromium: screenshots and the render check). `build.build_report` ties
them together for `ffnet-nas report`.
"""
