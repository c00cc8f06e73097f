"""Figures and the HTML report. Reads tables; never trains or measures; imports only `space`.

Compute (tables -> tidy frames and numbers): `published` (the paper's tables), `inputs` (the run
folder's tables, tolerant of what is missing), `pareto_data`, `metrics`, `families`, `claims`
(the paper's claims checked here), `verdict` (the run's found point vs its reference).
Render (frames -> plotly figures): `paper`, `pareto`, `evidence`, `compare`, with `style`, `labels`
(overlap-free point labels) and `sketch` (a point's stages as inline SVG). Write: `html` (offline
pages + index), `export` (PNG/SVG), `browser` (headless Chromium: screenshots and the render
check). `build.build_report` ties them together for `ffnet-nas report` and `run`'s last step.
"""
