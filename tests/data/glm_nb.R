# Reference fit for tests/analysis/test_fits_single_and_glmm.py: a negative-binomial GLM
# (variance mu + mu^2/theta, theta estimated by ML) by MASS::glm.nb on glm_nb.csv (written
# by glm_nb_data.py). Tight tolerances so that the reference is the optimum; the fit with
# theta held at 1 (what fit() did before estimating it) is recorded too.
# Run once from tests/data/:  Rscript glm_nb.R   (writes glm_nb_fits.json)
library(MASS)
library(jsonlite)
d <- read.csv("glm_nb.csv")
m <- glm.nb(y ~ x + z, data = d, control = glm.control(epsilon = 1e-12, maxit = 100))
fixed <- glm(y ~ x + z, data = d, family = negative.binomial(1))
out <- list(
  coef = unname(coef(m)),
  se = unname(sqrt(diag(vcov(m)))),
  theta = m$theta,
  se_theta = m$SE.theta,
  loglik = as.numeric(logLik(m)),
  df_loglik = attr(logLik(m), "df"),
  df_residual = m$df.residual,
  se_theta_1 = unname(sqrt(diag(vcov(fixed, dispersion = 1)))),
  MASS = as.character(packageVersion("MASS")),
  R = R.version.string
)
writeLines(toJSON(out, digits = 12, auto_unbox = TRUE, pretty = TRUE), "glm_nb_fits.json")
