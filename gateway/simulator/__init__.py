"""A simulated OpenAI upstream (September 2024 behaviour) for tests, demos and benchmarks."""

from gateway.simulator.app import SimulatedReset, Simulator, create_simulator

__all__ = ["SimulatedReset", "Simulator", "create_simulator"]
