"""Statistical building blocks: Dirichlet maximum likelihood and scores."""

from ._dirichlet import (
    dirichlet_log_likelihood,
    dirichlet_mle,
    dirichlet_normality_score,
    inverse_digamma,
)

__all__ = [
    "dirichlet_log_likelihood",
    "dirichlet_mle",
    "dirichlet_normality_score",
    "inverse_digamma",
]
