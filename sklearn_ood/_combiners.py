"""Combiners of per-layer scores for :class:`~sklearn_ood.LayerEnsembleDetector`.

- :func:`lee_logistic_regression`: Lee et al.'s unconstrained logistic
  regression (scikit-learn's ``LogisticRegressionCV`` with the defaults of the
  authors' time);
- :class:`NonNegativeLogisticRegression`: a logistic regression whose weights
  are non-negative, so that the combined score can only rise when a layer's
  score rises. Use it when the ``-1`` rows that train the combiner are a proxy
  for real OOD data (adversarial images): an unconstrained combiner can learn a
  negative weight for a layer on which the proxy happens to score low, and then
  rank real OOD samples with extreme scores on that layer as in-distribution.
"""

from __future__ import annotations

import inspect
from numbers import Integral, Real

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.linear_model import LogisticRegressionCV
from sklearn.utils._param_validation import Interval
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["NonNegativeLogisticRegression", "lee_logistic_regression"]


def lee_logistic_regression() -> LogisticRegressionCV:
    """The combiner of Lee et al. (2018): ``LogisticRegressionCV`` defaults.

    L2 penalty, ``Cs=10`` values log-spaced in ``[1e-4, 1e4]``, lbfgs and
    accuracy as the selection score, which were scikit-learn's defaults in
    the authors' code. Parameters whose defaults change in recent scikit-learn
    versions are set explicitly to those values (no ``FutureWarning``).

    Returns
    -------
    model : LogisticRegressionCV
        An unfitted model.

    Examples
    --------
    >>> from sklearn_ood import lee_logistic_regression
    >>> lee_logistic_regression().Cs
    10
    """
    params = inspect.signature(LogisticRegressionCV).parameters
    kwargs = {"scoring": "accuracy"}
    if params.get("l1_ratios") is not None and params["l1_ratios"].default == "warn":
        kwargs["l1_ratios"] = (0.0,)
    if "use_legacy_attributes" in params:
        kwargs["use_legacy_attributes"] = False
    return LogisticRegressionCV(**kwargs)


class NonNegativeLogisticRegression(ClassifierMixin, BaseEstimator):
    """Binary logistic regression with non-negative weights on standardised inputs.

    Minimises, over ``beta >= 0`` (element-wise) and a free intercept ``b``,

    ``C * sum_i log(1 + exp(-t_i (z_i . beta + b))) + ||beta||^2 / 2``,

    where ``z_i`` is row ``i`` standardised by the training mean and standard
    deviation of each column, and ``t_i = +1`` for the class ``classes_[1]``,
    ``-1`` for ``classes_[0]``. This is scikit-learn's L2-penalised
    :class:`~sklearn.linear_model.LogisticRegression` on standardised columns
    (``make_pipeline(StandardScaler(), LogisticRegression(C=C))``) with the
    weights constrained to be non-negative, solved with L-BFGS-B
    (:func:`scipy.optimize.minimize`). Standardising makes the penalty treat
    columns of very different scales alike (per-layer Mahalanobis scores range
    from units to thousands) and leaves the signs of the weights unchanged.

    The decision function ``X @ coef_.T + intercept_`` is non-decreasing in
    every column: a sample cannot look more like ``classes_[1]`` because one of
    its inputs is lower.

    Parameters
    ----------
    C : float, default=1.0
        Inverse strength of the L2 penalty on the standardised weights.
    tol : float, default=1e-10
        Tolerance of L-BFGS-B on the projected gradient of the objective.
    max_iter : int, default=1000
        Maximum number of L-BFGS-B iterations.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The two class labels; ``decision_function > 0`` predicts ``classes_[1]``.
    coef_ : ndarray of shape (1, n_features)
        Non-negative weights on the original (unstandardised) columns.
    intercept_ : ndarray of shape (1,)
        Intercept on the original columns.
    n_iter_ : int
        Number of L-BFGS-B iterations run.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    lee_logistic_regression : The unconstrained combiner of Lee et al.
    sklearn.linear_model.LogisticRegression : The unconstrained model.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import NonNegativeLogisticRegression
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 2))
    >>> y = (X[:, 0] - X[:, 1] + rng.normal(size=200) > 0).astype(int)
    >>> clf = NonNegativeLogisticRegression().fit(X, y)
    >>> bool(clf.coef_[0, 0] > 0), float(clf.coef_[0, 1])  # -X[:, 1] would help
    (True, 0.0)
    """

    _parameter_constraints: dict = {
        "C": [Interval(Real, 0, None, closed="neither")],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
    }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        # Non-negative weights cannot follow a class difference along a
        # decreasing direction (as in scikit-learn's generic test data).
        tags.classifier_tags.poor_score = True
        return tags

    def __init__(self, C: float = 1.0, *, tol: float = 1e-10, max_iter: int = 1000):
        self.C = C
        self.tol = tol
        self.max_iter = max_iter

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit the weights and the intercept.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Binary class labels.

        Returns
        -------
        self : NonNegativeLogisticRegression
            The fitted model.
        """
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=False)
        kind = type_of_target(y, input_name="y", raise_unknown=True)
        classes = np.unique(y)
        if kind != "binary" or classes.size != 2:
            raise ValueError(
                "Only binary classification is supported by "
                f"NonNegativeLogisticRegression: y needs exactly two classes; got "
                f"{classes.size} class(es), a {kind} target."
            )
        self.classes_ = classes
        t = np.where(y == self.classes_[1], 1.0, -1.0)
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[~(scale > 0)] = 1.0
        Z = (X - mean) / scale
        C = float(self.C)
        d = Z.shape[1]

        def objective(w):
            beta, b = w[:d], w[d]
            margin = t * (Z @ beta + b)
            loss = C * np.sum(np.logaddexp(0.0, -margin)) + 0.5 * beta @ beta
            dm = -C * t * expit(-margin)  # d loss / d (z . beta + b)
            return loss, np.r_[Z.T @ dm + beta, dm.sum()]

        # Start from the intercept of the class prior and zero weights.
        prior = np.clip(np.mean(t > 0), 1e-12, 1 - 1e-12)
        w0 = np.r_[np.zeros(d), np.log(prior) - np.log1p(-prior)]
        res = minimize(
            objective,
            w0,
            jac=True,
            method="L-BFGS-B",
            bounds=[(0.0, None)] * d + [(None, None)],
            options={"gtol": float(self.tol), "ftol": 0.0, "maxiter": self.max_iter},
        )
        beta, b = res.x[:d], res.x[d]
        self.coef_ = (beta / scale)[None, :]
        self.intercept_ = np.array([b - np.sum(beta * mean / scale)])
        self.n_iter_ = int(res.nit)
        return self

    def decision_function(self, X) -> np.ndarray:
        """Compute the log-odds of ``classes_[1]``: ``X @ coef_.T + intercept_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Positive values predict ``classes_[1]``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X @ self.coef_[0] + self.intercept_[0]

    def predict_proba(self, X) -> np.ndarray:
        """Estimate class probabilities, in the order of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
            Probabilities of ``classes_[0]`` and ``classes_[1]``.
        """
        p = expit(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        """Predict class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            ``classes_[1]`` where ``decision_function > 0``, else ``classes_[0]``.
        """
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(int)]
