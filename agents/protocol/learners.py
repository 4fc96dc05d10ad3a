"""Learners the protocol can drive: a least-squares learner for protocol tests and simulation scale.

:class:`LinearLearner` fits ``y ≈ X·w_shared + b_listener`` by gradient descent on one node's rows.
It is tiny and exactly deterministic (no sampling), so a test can compute by hand what a round of
merging must produce, and the simulator can run thousands of nodes without the cost of a GNN. The
design rows ``X`` can be a slice of one catalogue tensor shared by every node (a view, not a copy),
which is how the simulator keeps per-node memory to the node's own data and model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from agents.protocol.learning import TrainResult, Weights

__all__ = ["LinearLearner"]

SHARED = "artist_weight"
PRIVATE = "listener_bias"


@dataclass(frozen=True, eq=False)
class LinearLearner:
    """Least squares with a shared weight vector and one private per-node bias.

    ``features``: ``[n, d]`` rows of this node (may be a view into a shared table); ``targets``:
    ``[n]``; ``steps`` gradient steps of size ``learning_rate`` per round (the "local epochs").
    """

    features: Tensor
    targets: Tensor
    steps: int = 5
    learning_rate: float = 0.1

    def initial_weights(self, seed: int) -> dict[str, Tensor]:
        generator = torch.Generator().manual_seed(seed)
        dim = self.features.shape[1]
        return {SHARED: torch.randn(dim, generator=generator) * 0.1, PRIVATE: torch.zeros(1)}

    def gradient_step(self, shared: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
        """One full-batch gradient step on the mean squared error (pure: returns new tensors)."""
        residual = self.features @ shared + bias - self.targets
        rows = self.features.shape[0]
        grad_w = 2.0 * self.features.T @ residual / rows
        grad_b = 2.0 * residual.mean().reshape(1)
        return shared - self.learning_rate * grad_w, bias - self.learning_rate * grad_b

    def train(self, weights: Weights, *, seed: int) -> TrainResult:
        shared, bias = weights[SHARED], weights[PRIVATE]
        for _ in range(self.steps):
            shared, bias = self.gradient_step(shared, bias)
        new = {SHARED: shared, PRIVATE: bias}
        return TrainResult(weights=new, samples=int(self.features.shape[0]), metrics=self.evaluate(new))

    def evaluate(self, weights: Weights) -> dict[str, float]:
        residual = self.features @ weights[SHARED] + weights[PRIVATE] - self.targets
        return {"mse": float(residual.pow(2).mean())}
