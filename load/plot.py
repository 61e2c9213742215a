"""Plots what make load-test measured: requests/s and p50/p99 latency over time, one row per
scenario, from results/SCENARIO_timeline.json (written by load/locustfile.py) into
results/load-test.png. Usage: plot.py RESULTS_DIR SCENARIO..."""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

directory, scenarios = sys.argv[1], sys.argv[2:]
figure, axes = plt.subplots(len(scenarios), 2, figsize=(12, 3.5 * len(scenarios)), squeeze=False)
for row, scenario in enumerate(scenarios):
    with open(f"{directory}/{scenario}_timeline.json") as source:
        timeline = json.load(source)
    seconds = [point["second"] for point in timeline]
    axes[row][0].plot(seconds, [point["requests"] for point in timeline], label="requests/s")
    axes[row][0].plot(seconds, [point["failures"] for point in timeline], label="failures/s")
    axes[row][0].set(title=f"{scenario}: throughput", xlabel="s", ylabel="per second")
    axes[row][0].legend()
    axes[row][1].plot(seconds, [point["p50_ms"] for point in timeline], label="p50")
    axes[row][1].plot(seconds, [point["p99_ms"] for point in timeline], label="p99")
    axes[row][1].set(title=f"{scenario}: latency", xlabel="s", ylabel="ms")
    axes[row][1].legend()
figure.tight_layout()
figure.savefig(f"{directory}/load-test.png", dpi=100)
print(f"{directory}/load-test.png")
