"""Complete-data fits that the pooled analysis runs on every completed data set: the
profiled linear mixed model (``mixedlm``, ``profiled``), the GLMM by adaptive quadrature
(``glmm``, ``likelihood``) and the OLS/GLM fits (``base``).
"""
