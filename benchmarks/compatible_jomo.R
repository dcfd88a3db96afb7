# Model-based imputation with R's jomo.lmer on one data set of the compatible-imputation
# study, pooled with mitml. Usage: Rscript compatible_jomo.R in.csv nimp out.json
suppressMessages({library(jomo); library(mitml); library(lme4); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
df <- read.csv(args[1])
nimp <- as.integer(args[2])
df$g <- as.integer(df$g)
t0 <- proc.time()[["elapsed"]]
imp <- jomo.lmer(y ~ x + z + (1 + x | g), data = df[, c("y", "x", "z", "g")],
                 level = c(1, 1, 2, 1), nimp = nimp, output = 0)
seconds <- proc.time()[["elapsed"]] - t0
lst <- within(jomo2mitml.list(imp), g <- clus)
fits <- with(lst, lmer(y ~ x + z + (1 + x | g), REML = TRUE))
est <- testEstimates(fits, extra.pars = TRUE)
fe <- est$estimates
out <- list(seconds = seconds, fixed = list(), variance = list())
for (term in rownames(fe)) {
  b <- fe[term, "Estimate"]; se <- fe[term, "Std.Error"]; dfr <- fe[term, "df"]
  q <- qt(0.975, dfr)
  name <- if (term == "(Intercept)") "Intercept" else term
  out$fixed[[name]] <- list(estimate = b, se = se, ci_low = b - q * se, ci_high = b + q * se)
}
ep <- est$extra.pars
for (i in seq_len(nrow(ep))) out$variance[[rownames(ep)[i]]] <- ep[i, 1]
writeLines(toJSON(out, auto_unbox = TRUE, digits = 10), args[3])
