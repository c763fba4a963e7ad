# %% [markdown]
# # The delay sweep, from Python
#
# DMON against dMVX as the link delay grows: the figure of
# `dmvx sim scenarios/sweep-delay.yml --set 'policy.preset=[dmon, dmvx]' --plot delay.png`,
# made from the rows `dmvx.api` returns, as a notebook would. Run it as a
# script (`.venv/bin/python docs/guide/delay_sweep.py`) or cell by cell
# (`# %%` marks a cell for Jupyter, VS Code and Spyder). See analysis.md.

# %% parameters
from pathlib import Path

ITERATIONS = 20_000  # 1-byte reads per run; fewer run faster and keep the shape
FIGURE = Path("delay-sweep.png")  # .png, .svg or .pdf

# %% Run the sweep: 7 delays x 2 presets, in parallel on every core
from dmvx import api

REPO = Path(api.__file__).resolve().parent.parent
run = api.simulate(
    REPO / "scenarios" / "sweep-delay.yml",
    set={"policy.preset": ["dmon", "dmvx"], "workload.iterations": ITERATIONS},
)
rows = run.rows
print(rows.parameters)  # ('topology.links[*].delay', 'policy.preset')
print(rows.unit("topology.links[*].delay"), rows.unit("mvx_time_s"))  # s s

# %% The rows: one per point, numbers in SI base units
delay = "topology.links[*].delay"
for r in rows:
    print(f"{r['policy.preset']:5} {r[delay] * 1e3:6.1f} ms  slowdown {r['slowdown']:>10.2f}x")

# %% The same rows in pandas (pip install -e '.[analysis]')
try:
    frame = run.to_pandas()
except ImportError:
    frame = None  # pandas is optional; the rest needs only matplotlib
if frame is not None:
    print(frame.pivot(index=delay, columns="policy.preset", values="slowdown"))

# %% The figure: slowdown against delay, one line per preset, both axes logarithmic
import matplotlib

matplotlib.use("Agg")  # no window: write the file
import matplotlib.pyplot as plt
from matplotlib.ticker import EngFormatter

fig, axes = plt.subplots(figsize=(5.5, 4))
for preset in ("dmon", "dmvx"):
    points = [r for r in rows if r["policy.preset"] == preset]
    axes.plot([r[delay] for r in points], [r["slowdown"] for r in points], marker="o", label=preset)
axes.set_xscale("log")
axes.set_yscale("log")
axes.xaxis.set_major_formatter(EngFormatter(unit="s", sep=" "))
axes.set_xlabel("one-way delay of each link (s)")
axes.set_ylabel("slowdown vs native (x)")
axes.set_title(f"1-byte reads, {ITERATIONS:,} calls, 1Gbit star")
axes.legend(title="policy.preset")
axes.grid(True, which="major", alpha=0.3)
fig.tight_layout()
fig.savefig(FIGURE, dpi=150)
print(f"wrote {FIGURE}")

# %% Or the figure --plot draws, from the same run
run.plot(FIGURE.with_name(FIGURE.stem + "-plot" + FIGURE.suffix))
