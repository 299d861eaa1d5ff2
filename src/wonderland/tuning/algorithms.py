"""Katib's algorithms as Optuna samplers: one registry keyed by ``algorithmName``.

Each entry checks ``algorithmSettings`` with the messages of the Katib service that serves
the algorithm upstream (the Optuna service for random, grid, tpe, multivariate-tpe and
cmaes; goptuna for sobol; scikit-optimize for bayesianoptimization) and builds the
sampler from them:

=====================  ======================================  ============================
algorithmName          Optuna sampler                          settings (Katib's names)
=====================  ======================================  ============================
random                 RandomSampler                           random_state
grid                   GridSampler                             random_state
tpe                    TPESampler(constant_liar=True)          n_startup_trials,
                                                               n_ei_candidates, random_state
multivariate-tpe       TPESampler(multivariate=True, ...)      as tpe
cmaes                  CmaEsSampler                            sigma, restart_strategy,
                                                               random_state
sobol                  QMCSampler(qmc_type="sobol")            random_state
bayesianoptimization   GPSampler (Gaussian process, log EI)    base_estimator=GP,
                                                               n_initial_points,
                                                               acq_func=gp_hedge|EI,
                                                               acq_optimizer, random_state
=====================  ======================================  ============================

Katib runs bayesianoptimization with scikit-optimize's ``gp_minimize``-style optimizer;
Optuna's closest is GPSampler (a Gaussian process with a Matérn kernel and log expected
improvement), so estimators other than ``GP`` and acquisition functions other than
expected improvement are refused rather than silently replaced.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from wonderland.api.schemas.katib import AlgorithmSetting, ExperimentSpec, ParameterSpec
from wonderland.errors import ConfigError

if TYPE_CHECKING:
    import optuna

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "distributions",
    "format_value",
    "grid_space",
    "require_optuna",
    "sampler_for",
    "validate_settings",
]

OPTUNA_MISSING = (
    "the tuning plugin needs Optuna, which is not installed: "
    "pip install 'wonderland[tuning]' (or `make up`, which installs it)"
)


def require_optuna() -> None:
    """ConfigError naming the extra when Optuna is not installed."""
    if importlib.util.find_spec("optuna") is None:
        raise ConfigError(OPTUNA_MISSING)


def _int(value: str) -> int:
    return int(value)


def _float(value: str) -> float:
    return float(value)


def _non_negative(name: str, message: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if int(value) >= 0 else message.format(name=name)

    return check


def _one_of(name: str, allowed: tuple[str, ...], message: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value in allowed else message.format(value=value, name=name)

    return check


@dataclass(frozen=True)
class Algorithm:
    """One algorithm: its settings (name → check returning an error or None) and the
    builder of its sampler from the converted settings."""

    name: str
    settings: dict[str, Callable[[str], str | None]]
    build: Callable[[dict[str, str], ExperimentSpec, int], optuna.samplers.BaseSampler]
    # Katib's Optuna service refuses any setting it does not know; goptuna ignores them.
    strict: bool = True


def _seed(settings: dict[str, str], offset: int) -> int | None:
    """``random_state`` (Katib's name for the seed); after a restart the study is rebuilt,
    so the seed moves on by the trials already made instead of repeating them."""
    raw = settings.get("random_state")
    return None if raw is None else int(raw) + offset


def _tpe(multivariate: bool) -> Callable[[dict[str, str], ExperimentSpec, int], Any]:
    def build(settings: dict[str, str], spec: ExperimentSpec, offset: int) -> Any:
        import optuna

        kwargs: dict[str, Any] = {"constant_liar": True, "seed": _seed(settings, offset)}
        if "n_startup_trials" in settings:
            kwargs["n_startup_trials"] = int(settings["n_startup_trials"])
        if "n_ei_candidates" in settings:
            kwargs["n_ei_candidates"] = int(settings["n_ei_candidates"])
        if multivariate:
            kwargs["multivariate"] = True
        return optuna.samplers.TPESampler(**kwargs)

    return build


def _random(settings: dict[str, str], spec: ExperimentSpec, offset: int) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=_seed(settings, offset))


def _grid(settings: dict[str, str], spec: ExperimentSpec, offset: int) -> Any:
    import optuna

    return optuna.samplers.GridSampler(grid_space(spec), seed=_seed(settings, offset))


def _cmaes(settings: dict[str, str], spec: ExperimentSpec, offset: int) -> Any:
    import optuna

    kwargs: dict[str, Any] = {"seed": _seed(settings, offset)}
    if "sigma" in settings:
        kwargs["sigma0"] = float(settings["sigma"])
    strategy = settings.get("restart_strategy")
    if strategy not in (None, "None", "none"):
        kwargs["restart_strategy"] = strategy
    return optuna.samplers.CmaEsSampler(**kwargs)


def _sobol(settings: dict[str, str], spec: ExperimentSpec, offset: int) -> Any:
    import optuna

    return optuna.samplers.QMCSampler(
        qmc_type="sobol", scramble=True, seed=_seed(settings, 0), warn_independent_sampling=False
    )


def _bayes(settings: dict[str, str], spec: ExperimentSpec, offset: int) -> Any:
    import optuna

    startup = int(settings.get("n_initial_points", "10"))
    return optuna.samplers.GPSampler(seed=_seed(settings, offset), n_startup_trials=startup)


_TPE_SETTINGS: dict[str, Callable[[str], str | None]] = {
    name: _non_negative(name, "{name} should be greate or equal than zero")
    for name in ("n_startup_trials", "n_ei_candidates", "random_state")
}

ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm(
            "random",
            {"random_state": _non_negative("random_state", "random_state should be >= 0")},
            _random,
        ),
        Algorithm(
            "grid",
            {"random_state": _non_negative("random_state", "random_state should be >= 0")},
            _grid,
        ),
        Algorithm("tpe", _TPE_SETTINGS, _tpe(False)),
        Algorithm("multivariate-tpe", _TPE_SETTINGS, _tpe(True)),
        Algorithm(
            "cmaes",
            {
                "restart_strategy": _one_of(
                    "restart_strategy",
                    ("ipop", "None", "none"),
                    "restart_strategy {value} is not supported in CMAES optimization",
                ),
                "sigma": lambda v: (
                    None if float(v) >= 0 else "sigma should be greate or equal than zero"
                ),
                "random_state": _non_negative(
                    "random_state", "random_state should be greate or equal than zero"
                ),
            },
            _cmaes,
        ),
        Algorithm(
            "sobol",
            {"random_state": _non_negative("random_state", "random_state should be >= 0")},
            _sobol,
        ),
        Algorithm(
            "bayesianoptimization",
            {
                "base_estimator": _one_of(
                    "base_estimator",
                    ("GP",),
                    "base_estimator {value} is not supported in Bayesian optimization here: "
                    "wonderland runs Optuna's GPSampler, a Gaussian process (use GP)",
                ),
                "n_initial_points": _non_negative(
                    "n_initial_points", "n_initial_points should be great or equal than zero"
                ),
                "acq_func": _one_of(
                    "acq_func",
                    ("gp_hedge", "EI"),
                    "acq_func {value} is not supported in Bayesian optimization here: "
                    "Optuna's GPSampler maximises expected improvement (use gp_hedge or EI)",
                ),
                "acq_optimizer": _one_of(
                    "acq_optimizer",
                    ("auto", "sampling", "lbfgs"),
                    "acq_optimizer {value} is not supported in Bayesian optimization",
                ),
                "random_state": _non_negative(
                    "random_state", "random_state should be great or equal than zero"
                ),
            },
            _bayes,
        ),
    )
}


def settings_dict(settings: list[AlgorithmSetting] | None) -> dict[str, str]:
    return {s.name: s.value for s in settings or []}


def validate_settings(spec: ExperimentSpec) -> str | None:
    """What Katib's suggestion service's ``ValidateAlgorithmSettings`` says about the
    algorithm, its settings and the parameters it can search; None when they are fine."""
    assert spec.algorithm is not None
    name = spec.algorithm.algorithmName
    algorithm = ALGORITHMS.get(name)
    if algorithm is None:
        return f"unknown algorithm name {name}"
    for setting in spec.algorithm.algorithmSettings or []:
        check = algorithm.settings.get(setting.name)
        if check is None:
            if not algorithm.strict:
                continue
            return f"unknown setting {setting.name} for algorithm {name}"
        try:
            problem = check(setting.value)
        except (ValueError, TypeError) as exc:
            return f"failed to validate {setting.name}({setting.value}): {exc}"
        if problem is not None:
            return problem
    params = spec.parameters or []
    if name == "cmaes":
        continuous = [p for p in params if p.parameterType in ("double", "int")]
        if len(continuous) < 2:
            return "cmaes only supports two or more dimensional continuous search space."
        categorical = [p.name for p in params if p.parameterType in ("categorical", "discrete")]
        if categorical:
            return (
                f"cmaes searches continuous parameters only; parameters {categorical} are "
                "categorical or discrete (use tpe, random or grid for them)"
            )
    if name == "grid":
        try:
            space = grid_space(spec)
        except ValueError as exc:
            return f"failed to validate parameters({[p.name for p in params]}): {exc}"
        combinations = math.prod(len(v) for v in space.values())
        if spec.maxTrialCount is not None and spec.maxTrialCount > combinations:
            return (
                f"Max Trial Count: {spec.maxTrialCount} > all possible search combinations: "
                f"{combinations}"
            )
    if name == "bayesianoptimization" and (
        importlib.util.find_spec("torch") is None or importlib.util.find_spec("scipy") is None
    ):
        return (
            "bayesianoptimization runs Optuna's GPSampler, which needs torch and scipy: "
            "pip install 'wonderland[tuning,training]'"
        )
    return None


def _decimal(value: str, what: str, param: str) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation:
        raise ValueError(f"Param {param} {what} {value!r} is not a number") from None


def _grid_values(param: ParameterSpec) -> list[Any]:
    space = param.feasibleSpace
    if param.parameterType in ("categorical", "discrete"):
        return list(space.list or [])
    if param.parameterType == "int":
        int_step = int(space.step) if space.step else 1
        return list(range(int(space.min), int(space.max) + 1, int_step))
    if not space.step:
        raise ValueError(
            f"Param {param.name} step is nil; For discrete search space, all parameters "
            "must include step"
        )
    low = _decimal(space.min, "min", param.name)
    high = _decimal(space.max, "max", param.name)
    step = _decimal(space.step, "step", param.name)
    if step <= 0:
        raise ValueError(f"Param {param.name} step must be greater than 0")
    count = int((high - low) / step) + 1
    return [float(low + step * i) for i in range(count) if low + step * i <= high]


def grid_space(spec: ExperimentSpec) -> dict[str, list[Any]]:
    """Every parameter's grid values (``feasibleSpace.step`` apart; a double needs one)."""
    return {p.name: _grid_values(p) for p in spec.parameters or []}


def grid_size(spec: ExperimentSpec) -> int:
    return len(list(itertools.product(*grid_space(spec).values())))


def distributions(spec: ExperimentSpec) -> dict[str, optuna.distributions.BaseDistribution]:
    """The Optuna search space of the experiment's parameters, as Katib's Optuna service
    converts them (``_get_optuna_search_space``)."""
    import optuna

    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for param in spec.parameters or []:
        space = param.feasibleSpace
        log = space.distribution == "logUniform"
        if param.parameterType == "int":
            low, high = int(space.min), int(space.max)
            if log:
                out[param.name] = optuna.distributions.IntDistribution(max(1, low), high, log=True)
            else:
                step = int(space.step) if space.step else 1
                out[param.name] = optuna.distributions.IntDistribution(low, high, step=step)
        elif param.parameterType == "double":
            low_f, high_f = float(space.min), float(space.max)
            if log:
                out[param.name] = optuna.distributions.FloatDistribution(
                    max(1e-10, low_f), high_f, log=True
                )
            else:
                step_f = float(space.step) if space.step else None
                out[param.name] = optuna.distributions.FloatDistribution(low_f, high_f, step=step_f)
        else:
            out[param.name] = optuna.distributions.CategoricalDistribution(list(space.list or []))
    return out


def format_value(value: Any) -> str:
    """A parameter value as Katib writes assignments (strings; ints without ``.0``)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return repr(value)
    return str(value)


def parse_value(value: str, dist: optuna.distributions.BaseDistribution) -> Any:
    """An assignment string back to the type of its distribution (for rebuilding studies)."""
    import optuna

    if isinstance(dist, optuna.distributions.IntDistribution):
        return int(float(value))
    if isinstance(dist, optuna.distributions.FloatDistribution):
        return float(value)
    return value


def sampler_for(spec: ExperimentSpec, offset: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler of the experiment's algorithm; ``offset`` is how many trials the study
    already holds (a seeded sampler rebuilt after a restart moves its seed on by it)."""
    require_optuna()
    assert spec.algorithm is not None
    algorithm = ALGORITHMS[spec.algorithm.algorithmName]
    with warnings.catch_warnings():
        # QMCSampler and GPSampler are marked experimental, CmaEsSampler's sigma0 deprecated
        # in Optuna 4.9 (still honoured); Katib's names map onto them all the same.
        warnings.simplefilter("ignore")
        return algorithm.build(settings_dict(spec.algorithm.algorithmSettings), spec, offset)
