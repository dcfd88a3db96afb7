# Reference fits for tests/analysis/test_multiterm.py (run once, from the repository root):
#   python tests/data/lme4_multiterm_data.py && Rscript tests/data/lme4_multiterm.R
# Fits each model with lme4 by REML and by ML, with tight optimiser tolerances so that
# the stored optimum is lme4's to about 1e-8, and writes tests/data/lme4_multiterm.json.
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
here <- "tests/data"
nested <- read.csv(file.path(here, "lme4_multiterm_nested.csv"))
crossed <- read.csv(file.path(here, "lme4_multiterm_crossed.csv"))
nested$school <- factor(nested$school); nested$classno <- factor(nested$classno)
nested$class <- factor(nested$class)
crossed$school <- factor(crossed$school); crossed$neighbourhood <- factor(crossed$neighbourhood)
models <- list(
  nested_intercepts = list(data = "nested",
    formula = "y ~ x + w + (1 | school) + (1 | school:classno)"),
  nested_slope = list(data = "nested", formula = "y ~ x + w + (1 + x | class) + (1 | school)"),
  crossed = list(data = "crossed", formula = "y ~ x + (1 | school) + (1 | neighbourhood)")
)
ctrl <- lmerControl(optimizer = "nloptwrap",
                    optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14, xtol_rel = 1e-12,
                                   ftol_rel = 1e-15, maxeval = 100000),
                    calc.derivs = FALSE)
out <- list(generated_by = paste(R.version.string, "lme4", packageVersion("lme4")))
for (name in names(models)) {
  m <- models[[name]]
  d <- if (m$data == "nested") nested else crossed
  for (reml in c(TRUE, FALSE)) {
    f <- lmer(as.formula(m$formula), data = d, REML = reml, control = ctrl)
    vc <- VarCorr(f)
    out[[paste0(name, if (reml) "_reml" else "_ml")]] <- list(
      formula = m$formula, data = m$data, reml = reml,
      fixef = as.list(fixef(f)),
      vcov = unname(as.matrix(vcov(f))),
      varcorr = lapply(vc, function(v) {
        v <- as.matrix(v); attr(v, "stddev") <- NULL; attr(v, "correlation") <- NULL
        list(names = colnames(v), cov = unname(v))
      }),
      sigma2 = sigma(f)^2,
      theta = unname(getME(f, "theta")),
      criterion = unname(if (reml) REMLcrit(f) else deviance(f)),
      loglik = as.numeric(logLik(f)),
      ngrps = as.list(ngrps(f))
    )
  }
}
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE, matrix = "rowmajor"),
           file.path(here, "lme4_multiterm.json"))
