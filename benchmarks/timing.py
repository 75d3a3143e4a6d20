"""Timing shared by the side-by-side benchmarks: single calls in turn, medians."""

import statistics
import time

import keras


def timed_in_turn(runs, repeats):
    """{name: (median wall seconds, median CPU seconds)}: every run compiled and warmed up, then timed
    in turn, `repeats` rounds (the machine's stalls hit every run alike). A run's result is fetched
    (`.numpy()`) inside its time. CPU time is the process's, every thread's: on a shared machine it
    moves less than the wall time, which counts the time other processes hold the cores."""
    def once(run):
        wall, cpu = time.perf_counter(), time.process_time()
        keras.tree.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, run())
        return time.perf_counter() - wall, time.process_time() - cpu

    for run in runs.values():
        once(run)
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            times[name].append(once(run))
    return {name: tuple(statistics.median(clock) for clock in zip(*values)) for name, values in times.items()}


def round_robin(runs, repeats):
    """{name: median wall seconds} of `timed_in_turn`."""
    return {name: wall for name, (wall, _) in timed_in_turn(runs, repeats).items()}


def ours_against_keras_hub(ours, theirs, repeats):
    """One row: our and keras-hub's median milliseconds (wall and CPU) of two zero-argument calls
    timed in turn, and keras-hub's time over ours (above 1: ours is faster)."""
    times = timed_in_turn({"ours": ours, "keras-hub": theirs}, repeats)
    (our_wall, our_cpu), (their_wall, their_cpu) = times["ours"], times["keras-hub"]
    return {"ours_ms": our_wall * 1000, "keras_hub_ms": their_wall * 1000, "speed_vs_keras_hub": their_wall / our_wall,
            "ours_cpu_ms": our_cpu * 1000, "keras_hub_cpu_ms": their_cpu * 1000,
            "cpu_speed_vs_keras_hub": their_cpu / our_cpu}
