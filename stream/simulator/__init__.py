"""Seeded event simulator over the real KuaiRand-Pure population, with a hidden ground-truth model.

``EventSimulator(config.simulator, config.schema)``: ``events(n)`` (impressions and actions as a log
delivers them), ``labelled_samples(n, window_ms)`` (the same impressions labelled as a correct
event-time join would, with oracle probabilities), ``write_oracle(path, n, window_ms)``.
"""

from stream.simulator.config import KNOWN_TASKS, SimulatorConfig
from stream.simulator.generator import EventSimulator

__all__ = ["EventSimulator", "KNOWN_TASKS", "SimulatorConfig"]
