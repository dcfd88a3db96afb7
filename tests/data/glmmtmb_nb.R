# Reference fits for tests/analysis/test_glmm_nb.py: negative-binomial GLMMs (nbinom2,
# variance mu + mu^2/theta, Laplace approximation) by glmmTMB on glmmtmb_nb.csv.
# Run once from tests/data/:  Rscript glmmtmb_nb.R   (writes glmmtmb_nb_fits.json)
library(glmmTMB)
library(jsonlite)
d <- read.csv("glmmtmb_nb.csv")
d$g <- factor(d$g)
one <- function(f) {
  m <- glmmTMB(f, data = d, family = nbinom2)
  stopifnot(m$fit$convergence == 0, m$sdr$pdHess)
  list(
    fixef = unname(fixef(m)$cond),
    se = unname(sqrt(diag(vcov(m)$cond))),
    varcorr = unname(as.matrix(VarCorr(m)$cond$g)),
    dispersion = sigma(m),
    loglik = as.numeric(logLik(m)),
    glmmTMB = as.character(packageVersion("glmmTMB"))
  )
}
out <- list(
  intercept = one(y ~ x + (1 | g)),
  slope = one(y ~ x + (1 + x | g))
)
writeLines(toJSON(out, digits = 12, auto_unbox = TRUE, pretty = TRUE), "glmmtmb_nb_fits.json")
