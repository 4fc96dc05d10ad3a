"""SPORE's rules against independent implementations: byzfl (EPFL DCL's Byzantine-robust
aggregators, installed by .ci/install-byzfl.sh), scipy and numpy. Skips cleanly without them.

byzfl's Krum sums distances to the ``n - f - 1`` nearest other vectors, Blanchard et al.'s paper
(and SPORE) to the ``n - f - 2`` nearest, so SPORE's Krum with ``f`` must equal byzfl's with
``f + 1``; likewise SPORE's Multi-Krum selecting ``m = n - f - 1`` equals byzfl's MultiKrum(f + 1).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import types

import numpy as np
import pytest
import torch

from models.merge import CoordinateMedian, Krum, ModelUpdate, TrimmedMean, WeightedMean

ARTISTS = "artist_embedding.weight"


@pytest.fixture(scope="module")
def byzfl() -> types.ModuleType:
    spec = importlib.util.find_spec("byzfl")
    if spec is None or importlib.util.find_spec("scipy") is None:
        pytest.skip("byzfl and scipy are not installed (bash .ci/install-byzfl.sh)")
    if "byzfl" not in sys.modules:
        # byzfl/__init__.py imports its benchmark framework (torchvision, matplotlib); the
        # aggregators need neither, so the package is registered bare and only they are imported.
        package = types.ModuleType("byzfl")
        package.__path__ = list(spec.submodule_search_locations or [])
        sys.modules["byzfl"] = package
    return importlib.import_module("byzfl.aggregators.aggregators")


def group(seed: int, members: int = 9, rows: int = 4, dim: int = 3, outliers: int = 2) -> list[ModelUpdate]:
    """Honest members near one point, a few far away; distinct example counts."""
    generator = torch.Generator().manual_seed(seed)
    centre = torch.randn(rows, dim, generator=generator, dtype=torch.float64)
    updates = []
    for i in range(members):
        value = centre + 0.1 * torch.randn(rows, dim, generator=generator, dtype=torch.float64)
        if i >= members - outliers:
            value = value + 20 * torch.randn(rows, dim, generator=generator, dtype=torch.float64)
        updates.append(
            ModelUpdate(
                sender=f"https://n.example/m{i}", round=1, weights={ARTISTS: value}, num_examples=3 + i
            )
        )
    return updates


def vectors(updates: list[ModelUpdate]) -> np.ndarray:
    return np.stack([u.weights[ARTISTS].numpy().reshape(-1) for u in updates])


def result(rule: object, updates: list[ModelUpdate]) -> np.ndarray:
    return rule.aggregate(updates)[ARTISTS].numpy().reshape(-1)  # type: ignore[attr-defined]


SEEDS = [0, 1, 2, 3]


@pytest.mark.parametrize("seed", SEEDS)
def test_weighted_mean_matches_numpy_average(seed: int) -> None:
    updates = group(seed)
    expected = np.average(vectors(updates), axis=0, weights=[u.num_examples for u in updates])
    np.testing.assert_allclose(result(WeightedMean(), updates), expected, rtol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_median_matches_byzfl_and_numpy(byzfl: types.ModuleType, seed: int) -> None:
    for members in (8, 9):
        updates = group(seed, members=members)
        got = result(CoordinateMedian(), updates)
        np.testing.assert_allclose(got, byzfl.Median()(vectors(updates)), rtol=1e-12)
        np.testing.assert_allclose(got, np.median(vectors(updates), axis=0), rtol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("beta", [0.1, 0.2, 0.3])
def test_trimmed_mean_matches_byzfl_and_scipy(byzfl: types.ModuleType, seed: int, beta: float) -> None:
    from scipy.stats import trim_mean

    updates = group(seed)
    got = result(TrimmedMean(beta=beta), updates)
    cut = math.floor(beta * len(updates))
    np.testing.assert_allclose(got, byzfl.TrMean(f=cut)(vectors(updates)), rtol=1e-12)
    np.testing.assert_allclose(got, trim_mean(vectors(updates), beta, axis=0), rtol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("f", [0, 1, 2])
def test_krum_matches_byzfl(byzfl: types.ModuleType, seed: int, f: int) -> None:
    updates = group(seed)
    np.testing.assert_allclose(result(Krum(num_byzantine=f), updates), byzfl.Krum(f=f + 1)(vectors(updates)))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("f", [0, 1, 2])
def test_multi_krum_matches_byzfl(byzfl: types.ModuleType, seed: int, f: int) -> None:
    updates = group(seed)
    rule = Krum(num_byzantine=f, num_selected=len(updates) - f - 1)
    expected = byzfl.MultiKrum(f=f + 1)(vectors(updates))
    np.testing.assert_allclose(result(rule, updates), expected, rtol=1e-12)


def test_robust_rules_stay_near_the_honest_centre() -> None:
    updates = group(5, members=9, outliers=2)
    honest = vectors(updates[:7]).mean(axis=0)
    for rule in (CoordinateMedian(), TrimmedMean(beta=0.25), Krum(num_byzantine=2)):
        assert np.abs(result(rule, updates) - honest).max() < 0.5, type(rule).__name__
    assert np.abs(result(WeightedMean(), updates) - honest).max() > 0.5
